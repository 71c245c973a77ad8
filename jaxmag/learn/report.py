"""Figures and the markdown report of a run or study.

* ``fig_examples.png`` — like the paper's Fig. 2: per (measure, component) of the clean-trained
  models, on one test image, clean and under one noise condition: the input map in the measure's
  units (colour bar) and the prediction against the truth (hits, misses, false alarms), with a
  nanometre scale bar (``jaxmag.figures``).
* ``fig_dice_vs_noise.png`` — like its Fig. 3: test Dice against the noise level (σ²), one panel
  per (component, noise kind of ``[noise]``): clean-trained (dashed) and noise-matched (solid)
  models, the non-learned baseline of ``baseline.json`` (dash-dot) and the clean-trained model on
  clean data (dotted), each kind of line in the legend.
* ``report.md`` — embeds both, states every parameter (the resolved config), the results
  table, and checks the paper's qualitative findings (``shared/docs/study.md`` §4), each
  marked *reproduced* / *not reproduced* / *not tested* with the numbers behind it. Figures and
  findings use the binary units; a study with typed units (``[study] classes``) adds the section
  "Typed against binary" (``typed_section``): per headline input and condition, the any-defect
  Dice of both models, their difference, and the per-class Dice of the typed model and of the
  typed baseline.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

import jaxmag.figures as figures
from jaxmag.channels import parse_channels
from jaxmag.config import Config
from jaxmag.io.atomic import atomic_path, write_text
from jaxmag.learn.noise_match import reference_kind
from jaxmag.learn.study import RESULT_FILE, lookup, mean_perimeter_ratio
from jaxmag.noise import condition_label, noise_model

MEASURE_LABEL = {"mean": "mean", "std": "std", "latent_entropy": "latent entropy"}


def _load_unit(unit_dir: Path, measures_path: Path, condition: str, k: int | None):
    """(raw inputs as measured, labels, probabilities) of the first ``k`` test images (all if None):
    the model sees them normalised, a reader wants the measure's own units."""
    from jaxmag.learn.sources.measures import MeasuresSource
    from jaxmag.learn.evaluation import load_trained, predict_proba

    model, info = load_trained(unit_dir / "run")
    inputs = parse_channels(info["inputs"])
    source = MeasuresSource(measures_path, inputs, train_condition="clean", batch_size=1, indices=info["split"],
                            norm_stats=info["norm_stats"], load_train=False)
    test = source.test_set(condition)
    x, y = (test.inputs, test.labels) if k is None else test.examples(k)
    stats = info["norm_stats"]
    raw = x * np.asarray(stats["std"], np.float32) + np.asarray(stats["mean"], np.float32)
    return raw, y, predict_proba(model, x)


def _single_clean_units(records: Sequence[dict]) -> list[tuple[str, str, str]]:
    seen = []
    for r in records:
        key = (r["measure"], r["component"], r["unit"])
        if r["train_condition"] == "clean" and "," not in r["inputs"] and key not in seen:
            seen.append(key)
    return seen


def example_condition(config: Config, records: Sequence[dict]) -> str | None:
    """The noisy condition shown in the examples figure: a middle level of the reference kind
    (``noise_match.reference_kind``, Gaussian) if evaluated, else of any evaluated kind."""
    evaluated = {r["eval_condition"] for r in records}
    noisy = [s for s in config.noise.specs() if s.name in evaluated]
    shown = [s for s in noisy if s.kind == reference_kind()] or noisy
    return shown[len(shown) // 2].name if shown else None


def plot_examples(out_dir: Path, config: Config, records: Sequence[dict], measures_path: Path) -> Path | None:
    """``fig_examples.png``: per clean-trained single-input model (rows), on one test image, clean
    and under ``example_condition`` (column pairs): the input map in its units, and the prediction
    against the truth (hits, misses, false alarms); colour bars, a key and a nanometre scale bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = _single_clean_units(records)
    if not units:
        return None
    noisy = example_condition(config, records)
    conditions = ["clean"] + ([noisy] if noisy else [])
    ny, nx = config.grid.ny, config.grid.nx
    cols, height = 2 * len(conditions), 0.85 * figures.MAP_INCHES * ny / nx + 0.75  # maps narrower than their column
    with matplotlib.rc_context(figures.style()):
        fig, axes = plt.subplots(len(units), cols, figsize=(figures.MAP_INCHES * cols, height * len(units) + 0.4),
                                 squeeze=False, layout="constrained")
        fig.get_layout_engine().set(w_pad=0.1)
        for row, (measure, comp, unit_id) in enumerate(units):
            for k, cond in enumerate(conditions):
                raw, y, p = _load_unit(out_dir / "units" / unit_id, measures_path, cond, 1)
                _example_pair(fig, axes[row, 2 * k:2 * k + 2], config, f"{measure}:{comp}", cond, raw[0, ..., 0],
                              p[0] > 0.5, y[0] > 0, lookup(records, unit=unit_id, eval_condition=cond))
        figures.add_comparison_key(fig, loc="outside lower center", ncol=4)
        return _save_figure(fig, out_dir / "fig_examples.png")


def _example_pair(fig, axes, config: Config, channel: str, condition: str, image, prediction, truth,
                  dice: float | None) -> None:
    """One input map (colour bar in its units) and its prediction against the truth, both with a scale bar."""
    ax_in, ax_cmp = axes
    ny, nx = image.shape
    shown = ax_in.imshow(image, cmap="viridis", interpolation="nearest")
    figures.add_colour_bar(fig, shown, ax_in, figures.channel_label(channel, normalized_entropy=config.measures.normalize))
    ax_in.set_title(f"input {channel}, {condition_label(condition)}")
    ax_cmp.imshow(figures.comparison_rgb(prediction, truth), interpolation="nearest")
    trained = f"U-Net trained on clean data; test-set Dice {dice:.2f}" if dice is not None else "U-Net trained on clean data"
    ax_cmp.set_title(f"prediction vs truth, {condition_label(condition)}\n{trained}")
    for ax in axes:
        figures.strip_ticks(ax)
        figures.add_scale_bar(ax, config.grid.cell_size_m[0], nx, ny)


# line style of each kind of curve in fig_dice_vs_noise, with its legend text
CURVES = {
    "clean": dict(ls="--", marker="o", text="U-Net trained on clean data"),
    "matched": dict(ls="-", marker="o", text="U-Net trained with the evaluated noise"),
    "baseline": dict(ls="-.", marker="s", text="non-learned baseline (robust z),\nfitted on each condition"),
    "reference": dict(ls=":", marker="", text="U-Net trained on clean data,\nevaluated on clean data"),
}


def _measure_and_component(inputs: str) -> tuple[str, str]:
    """``"mean:x"`` -> ``("mean", "x")``; ``"mean:x,std:z"`` -> ``("mean+std", "x+z")``, as
    ``jaxmag.learn.study`` names a multi-channel unit."""
    channels = parse_channels(inputs)
    return "+".join(c[0] for c in channels), "+".join(c[1] for c in channels)


def plot_dice_vs_noise(out_dir: Path, config: Config, records: Sequence[dict],
                       base_records: Sequence[dict] = ()) -> Path | None:
    """``fig_dice_vs_noise.png``: test Dice against the noise level, one panel per (component, noise
    kind), one colour per measure; every kind of line (``CURVES``) has its legend entry. The
    non-learned baseline (``baseline.json``) is drawn wherever its inputs are."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noisy = [r for r in records if r["noise_type"] != "clean"]
    if not noisy:
        return None
    comps = sorted({r["component"] for r in noisy})
    kinds = [k for k in config.noise.kinds if any(r["noise_type"] == k for r in noisy)]
    colours: dict[str, str] = {}
    drawn: set[str] = set()
    with matplotlib.rc_context(figures.style()):
        fig, axes = plt.subplots(len(comps), len(kinds), figsize=(5.5 * len(kinds) + 3.8, 4.0 * len(comps) + 0.3),
                                 squeeze=False, layout="constrained")
        for i, comp in enumerate(comps):
            for j, kind in enumerate(kinds):
                rows = [r for r in noisy if r["component"] == comp and r["noise_type"] == kind]
                base = [b for b in base_records if b["noise_type"] == kind and _measure_and_component(b["inputs"])[1] == comp]
                drawn |= _dice_panel(axes[i, j], records, rows, base, comp, colours)
                model = noise_model(kind)
                unit = f" ({model.level_unit})" if model.level_unit else ""
                axes[i, j].set_xlabel(f"{kind} noise {model.level_name} {model.level_symbol}{unit}")
                axes[i, j].set_title(f"{figures.component_symbol(comp)}, {kind} noise")
        fig.legend(handles=_dice_legend(colours, drawn), loc="outside right upper", frameon=False,
                   title="colour: input measure\nline: model", alignment="left")
        return _save_figure(fig, out_dir / "fig_dice_vs_noise.png")


def _dice_panel(ax, records, rows, base, comp: str, colours: dict[str, str]) -> set[str]:
    """Draw one panel's curves; returns the kinds of curve drawn (keys of ``CURVES``)."""
    drawn = set()
    measures = sorted({r["measure"] for r in rows})
    for measure in measures:
        colour = colours.setdefault(measure, f"C{len(colours)}")
        for training in ("clean", "matched"):
            pts = sorted((r["noise_variance"], r["dice"]) for r in rows if r["measure"] == measure
                         and (r["train_condition"] == "clean") == (training == "clean"))
            if pts:
                ax.plot(*zip(*pts), ls=CURVES[training]["ls"], marker="o", ms=4, color=colour)
                drawn.add(training)
        pts = sorted((b["noise_variance"], b["dice"]) for b in base if _measure_and_component(b["inputs"])[0] == measure)
        if pts:
            ax.plot(*zip(*pts), ls=CURVES["baseline"]["ls"], marker="s", ms=4, color=colour, alpha=0.85)
            drawn.add("baseline")
        clean = lookup(records, measure=measure, component=comp, train_condition="clean", eval_condition="clean")
        if clean is not None:
            ax.axhline(clean, color=colour, lw=1.0, ls=CURVES["reference"]["ls"])
            drawn.add("reference")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("test Dice")
    ax.grid(alpha=0.3)
    return drawn


def _dice_legend(colours: dict[str, str], drawn: set[str]) -> list:
    """Legend handles: one colour per measure, then one grey line per kind of curve drawn."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=3, label=MEASURE_LABEL.get(m, m)) for m, c in colours.items()]
    handles += [Line2D([], [], color="0.3", ls=v["ls"], marker=v["marker"] or None, ms=4, label=v["text"])
                for key, v in CURVES.items() if key in drawn]
    return handles


def _save_figure(fig, path: Path) -> Path:
    """Save ``fig`` as PNG atomically (``jaxmag.io.atomic``) and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=figures.DPI, format="png")  # the temporary name has no .png suffix
    finally:
        plt.close(fig)
    return path


# -- the paper's findings ----------------------------------------------------------------------
# They are the paper's statements about its two kinds, Gaussian and speckle, so they name them;
# rows of any other registered kind are not part of them.


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _status(ok: bool | None) -> str:
    return "not tested" if ok is None else ("**reproduced**" if ok else "**not reproduced**")


def findings(config: Config, records: Sequence[dict], smoothness: float | None = None) -> list[tuple[str, str, str]]:
    """``(finding, status, numbers)`` for each qualitative finding of the paper (1 to 7, in order)."""
    gauss = sorted({r["noise_variance"] for r in records if r["noise_type"] == "gaussian"})
    return [
        _clean_ordering(records),
        _weak_noise(records, gauss),
        _moderate_noise(records, gauss),
        *([_strong_noise(records, gauss)] if gauss else []),
        _speckle_vs_gaussian(records, gauss),
        # a clear margin: predictions' boundary per area at least 15 % below the truth's
        ("6. Predicted masks are smoother than the jagged ground truth (rule: ratio < 0.85)",
         _status(None if smoothness is None or math.isnan(smoothness) else smoothness < 0.85),
         f"mean (boundary length/area) of predictions ÷ that of the truth, clean test set: {_fmt(smoothness)}"),
        _multichannel(records),
    ]


def _clean(records, measure, comp, train="clean", cond="clean"):
    return lookup(records, measure=measure, component=comp, train_condition=train, eval_condition=cond)


def _clean_ordering(records) -> tuple[str, str, str]:
    mx = {m: _clean(records, m, "x") for m in ("mean", "std", "latent_entropy")}
    mz = {m: _clean(records, m, "z") for m in ("mean", "std", "latent_entropy")}
    nums = "m_x: " + ", ".join(f"{k} {_fmt(v)}" for k, v in mx.items()) + "; m_z: " + ", ".join(f"{k} {_fmt(v)}" for k, v in mz.items())
    ok = None
    if all(v is not None for v in (*mx.values(), *mz.values())):
        ok = mx["mean"] > mx["std"] and mx["mean"] > mx["latent_entropy"] and mz["mean"] < min(mz["std"], mz["latent_entropy"])
    return ("1. Clean data: m_x mean best (then std, latent entropy); m_z mean much weaker than std and latent entropy", _status(ok), nums)


def _pairs(records, variance, kind="gaussian"):
    """(condition, [(measure, comp, clean baseline, clean-trained at cond, matched at cond)])."""
    cond = next((r["eval_condition"] for r in records if r["noise_type"] == kind and r["noise_variance"] == variance), None)
    rows = []
    for measure, comp in sorted({(r["measure"], r["component"]) for r in records if "," not in r["inputs"]}):
        rows.append((measure, comp, _clean(records, measure, comp), _clean(records, measure, comp, "clean", cond),
                     _clean(records, measure, comp, cond, cond)))
    return cond, rows


def _weak_noise(records, gauss) -> tuple[str, str, str]:
    if not gauss:
        return ("2. Weak Gaussian noise: Dice near clean baseline", _status(None), "no Gaussian conditions evaluated")
    cond, rows = _pairs(records, gauss[0])
    drops = [b - c for _, _, b, c, _ in rows if b is not None and c is not None]
    gains = [n - c for _, _, _, c, n in rows if c is not None and n is not None]
    # Both halves must be measured: a run without noise-matched models cannot test the second.
    ok = (max(drops) < 0.1 and max(gains) < 0.1) if drops and gains else None
    return (f"2. Weak Gaussian noise ({condition_label(cond)}): Dice stays near the clean baseline; matched training adds little", _status(ok),
            f"largest drop from clean baseline {_fmt(max(drops) if drops else None)}, largest matched-training gain {_fmt(max(gains) if gains else None)}")


def _moderate_noise(records, gauss) -> tuple[str, str, str]:
    if len(gauss) < 3:
        return ("3. Moderate noise: clean-trained fail, matched hold", _status(None), "fewer than 3 Gaussian levels evaluated")
    cond, rows = _pairs(records, gauss[len(gauss) // 2])
    failed = [f"{m}:{c}" for m, c, _, ct, _ in rows if ct is not None and ct < 0.3]
    kept = [f"{m}:{c}" for m, c, _, _, nt in rows if nt is not None and nt > 0.5]
    z_nt = {m: nt for m, c, _, _, nt in rows if c == "z" and nt is not None}
    ok = None
    if z_nt and any(nt is not None for *_, nt in rows):
        ok = len(failed) >= 2 and len(kept) >= 2 and max(z_nt, key=z_nt.get) == "std"
    return (f"3. Moderate noise ({condition_label(cond)}): clean-trained models fail for several measures, matched keep high Dice; for m_z std is the most robust with matched training",
            _status(ok), f"clean-trained Dice < 0.3: {failed or 'none'}; matched Dice > 0.5: {kept or 'none'}; m_z matched: "
            + ", ".join(f"{k} {_fmt(v)}" for k, v in z_nt.items()))


def _strong_noise(records, gauss) -> tuple[str, str, str]:
    strongest = gauss[-1]
    cond = next(r["eval_condition"] for r in records if r["noise_type"] == "gaussian" and r["noise_variance"] == strongest)
    ct = [r for r in records if r["eval_condition"] == cond and r["train_condition"] == "clean"]
    nt = [r for r in records if r["eval_condition"] == cond and r["train_condition"] == cond]
    ct_all = [r["pred_fraction"] for r in ct]
    nt_none = [r["pred_fraction"] for r in nt]
    ok = None
    if ct and nt:
        true_frac = np.mean([r["true_fraction"] for r in ct])
        ok = np.mean(ct_all) > 2 * true_frac and np.mean(nt_none) < 0.5 * true_frac
    return (f"4. Strong noise ({condition_label(cond)}): clean-trained collapse to 'everything is defect', matched to 'nothing is defect'", _status(ok),
            f"predicted defect fraction: clean-trained {_fmt(float(np.mean(ct_all)) if ct_all else None)}, matched {_fmt(float(np.mean(nt_none)) if nt_none else None)}, "
            f"true {_fmt(float(np.mean([r['true_fraction'] for r in ct])) if ct else None)}; Dice clean-trained "
            + ", ".join(f"{r['inputs']} {_fmt(r['dice'])}" for r in ct if ',' not in r['inputs']))


def _speckle_vs_gaussian(records, gauss) -> tuple[str, str, str]:
    speckle = sorted({r["noise_variance"] for r in records if r["noise_type"] == "speckle"})
    common = [v for v in speckle if v in gauss]
    if not common:
        return ("5. Speckle tolerated better for m_z std / latent entropy", _status(None), "no speckle and Gaussian conditions at equal σ²")
    diffs = []
    for v in common:
        for measure in ("std", "latent_entropy"):
            g = [r for r in records if r["measure"] == measure and r["component"] == "z" and r["noise_type"] == "gaussian" and r["noise_variance"] == v]
            s = [r for r in records if r["measure"] == measure and r["component"] == "z" and r["noise_type"] == "speckle" and r["noise_variance"] == v]
            for rg in g:
                rs = next((r for r in s if (r["train_condition"] == "clean") == (rg["train_condition"] == "clean")), None)
                if rs:
                    diffs.append(rs["dice"] - rg["dice"])
    ok = (float(np.mean(diffs)) > 0.01) if diffs else None
    return ("5. Speckle noise is tolerated better than Gaussian for m_z std and latent entropy", _status(ok),
            f"mean Dice(speckle) − Dice(Gaussian) at equal σ² over {len(diffs)} pairs: {_fmt(float(np.mean(diffs)) if diffs else None)}")


def _multichannel(records) -> tuple[str, str, str]:
    multi = [r for r in records if "," in r["inputs"]]
    if not multi:
        return ("7. Multi-channel input beats the best single channel", _status(None), "no multi-channel rows in this run")
    lines, wins = [], []
    for cond in sorted({r["eval_condition"] for r in multi}):
        for r in (x for x in multi if x["eval_condition"] == cond):
            single = [x["dice"] for x in records if "," not in x["inputs"] and x["eval_condition"] == cond
                      and x["train_condition"] == r["train_condition"]]
            if single:
                wins.append(r["dice"] > max(single))
                lines.append(f"{condition_label(cond)} ({condition_label(r['train_condition'])}-trained): multi {_fmt(r['dice'])} vs best single {_fmt(max(single))}")
    return ("7. Multi-channel input (the paper's suggested next step) beats the best single channel", _status(all(wins) if wins else None),
            "; ".join(lines) or "no comparable rows")


def smoothness_ratio(out_dir: Path, records: Sequence[dict], measures_path: Path) -> float | None:
    values = []
    for _, _, unit_id in _single_clean_units(records):
        if not (out_dir / "units" / unit_id / RESULT_FILE).is_file():
            continue
        _, y, p = _load_unit(out_dir / "units" / unit_id, measures_path, "clean", None)
        values.append(mean_perimeter_ratio(p > 0.5, y > 0))
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else None


def is_binary(record: dict) -> bool:
    """Whether a results record is of a binary model (records without ``classes`` predate typed units)."""
    return record.get("classes", "binary") == "binary"


def results_table(records: Sequence[dict]) -> str:
    typed = not all(map(is_binary, records))  # the classes column only where a study has typed units
    lines = ["| recipe | seed | " + ("classes | " if typed else "") + "inputs | trained on | evaluated on | Dice | per-image Dice | predicted / true defect fraction |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if typed else "")]
    for r in records:
        cls = f"{r.get('classes', 'binary')} | " if typed else ""
        lines.append(f"| {r.get('recipe') or '-'} | {r.get('seed', 0)} | {cls}{r['inputs']} | {condition_label(r['train_condition'])} | "
                     f"{condition_label(r['eval_condition'])} | {r['dice']:.3f} | "
                     f"{r['dice_per_image']:.3f} | {r['pred_fraction']:.3f} / {r['true_fraction']:.3f} |")
    return "\n".join(lines)


def typed_section(config: Config, records: Sequence[dict], base_records: Sequence[dict] = ()) -> list[str]:
    """Markdown lines of "Typed against binary" (``[]`` without typed records): per typed unit of
    the first seed trained and evaluated on the same condition (the headline units), the
    any-defect test Dice of the binary unit of the same recipe, input and condition, the typed
    unit's, typed − binary, the typed unit's Dice per defect class and the typed baseline's
    (``baseline.json``, ``dice_<class>``), and the mean and largest difference."""
    from jaxmag.learn.classes import class_names
    from jaxmag.learn.study import class_dice_key

    typed = [r for r in records if not is_binary(r) and not r.get("seed", 0) and r["train_condition"] == r["eval_condition"]]
    if not typed:
        return []
    binary = {(r.get("recipe", ""), r["inputs"], r["train_condition"], r["eval_condition"]): r["dice"]
              for r in records if is_binary(r) and not r.get("seed", 0)}
    base = {(b["inputs"], b["eval_condition"]): b for b in base_records}
    lines = ["## Typed against binary", "",
             "Each headline unit trained twice: binary (background, defect) and typed (`[model] classes`; background "
             "and one class per `[defects]` group). Both are scored on the same any-defect decision (a typed model's "
             "defect mask is where some defect class is more probable than the background, `jaxmag.learn.classes`), "
             "so the difference is what telling the groups apart costs (negative) or gains. Per-class Dice: test "
             "Dice of each defect class; the baseline's types its detected pixels by the sign of the smoothed "
             "robust z, fitted on the validation split (`jaxmag.learn.baseline.fit_types`). The results table holds "
             "every evaluation of the typed units.", "",
             "| recipe | classes | inputs | trained and evaluated on | binary Dice | typed Dice | typed − binary "
             "| typed per-class Dice | baseline per-class Dice |",
             "|---|---|---|---|---|---|---|---|---|"]
    diffs = []
    for r in typed:
        names = class_names(r["classes"], config.defects)[1:]
        b = binary.get((r.get("recipe", ""), r["inputs"], r["train_condition"], r["eval_condition"]))
        diff = None if b is None else r["dice"] - b
        if diff is not None:
            diffs.append(diff)
        bb = base.get((r["inputs"], r["eval_condition"]), {})
        per_class = ", ".join(f"{n} {_fmt(r.get(class_dice_key(n)))}" for n in names)
        base_class = ", ".join(f"{n} {_fmt(bb.get(class_dice_key(n)))}" for n in names)
        lines.append(f"| {r.get('recipe') or config.training.recipe} | {r['classes']} | {r['inputs']} | "
                     f"{condition_label(r['eval_condition'])} | {_fmt(b)} | {_fmt(r['dice'])} | "
                     f"{'n/a' if diff is None else f'{diff:+.3f}'} | {per_class} | {base_class} |")
    lines.append("")
    if diffs:
        worst = min(diffs)
        lines += [f"Typed − binary any-defect Dice over {len(diffs)} pairs: mean {np.mean(diffs):+.3f}, "
                  f"lowest {worst:+.3f}; typed lower than binary in {sum(d < 0 for d in diffs)} of {len(diffs)}.", ""]
    return lines


def write_report(out_dir: Path, config: Config, records: Sequence[dict], measures_path: Path, *,
                 title: str, timings: dict[str, float] | None = None) -> Path:
    """Make the figures and ``report.md`` in ``out_dir``; returns the report's path."""
    out_dir = Path(out_dir)
    from jaxmag.learn import baseline, recipe

    base_records = baseline.load_study_records(out_dir)
    recipes = recipe.recipes_in(records)
    # one set of findings per recipe, on its first-seed binary units (the table keeps every unit;
    # typed units have their own section)
    by_recipe = {name: [r for r in records if r.get("recipe", "") == name and not r.get("seed", 0) and is_binary(r)]
                 for name in recipes}
    shown = by_recipe[recipes[-1]] if recipes else []  # the figures show the last recipe (the study's own)
    examples = plot_examples(out_dir, config, shown, measures_path)
    shown_inputs = {r["inputs"] for r in shown}
    curves = plot_dice_vs_noise(out_dir, config, shown, [b for b in base_records if b["inputs"] in shown_inputs])
    parts = [f"# {title}", "",
             "Generated by jaxmag. Physics, defects and training follow `configs/` (all values below); "
             "every number here was measured in this run. The paper (Knapman et al. 2026) published no "
             "numbers we could use, so the findings are checked qualitatively, each by the rule stated with it, "
             "against the list in `docs/findings.md`.", ""]
    if timings:
        parts += ["## Stages", "", "| stage | seconds |", "|---|---|"]
        parts += [f"| {k} | {v:.1f} |" for k, v in timings.items()] + [""]
    parts += ["## Results", "", results_table(records), ""]
    if examples:
        parts += ["## Example predictions", "", f"![examples]({examples.name})", "",
                  "Per row, one U-Net trained on clean data and one test image, clean and noisy: the input map in "
                  "the measure's units, and the thresholded prediction against the truth (hits, missed defects, false "
                  "alarms). The bar marks length in the film's plane; the Dice in the titles is over the whole test set.", ""]
    if curves:
        parts += ["## Dice versus noise", "", f"![dice vs noise]({curves.name})", "",
                  f"Recipe {recipes[-1] or config.training.recipe}. Colour: the input measure. Dashed: the U-Net trained "
                  "on clean data; solid: trained with the noise it is evaluated on; dash-dot: the non-learned baseline "
                  "(robust z, fitted on each condition's validation split); dotted: the clean-trained U-Net on clean data. "
                  "In the noise formulas x is the component of m = M/M_s.", ""]
    parts += baseline.report_section(records, base_records)
    parts += recipe.seed_section(records, base_records)
    parts += typed_section(config, records, base_records)
    parts += ["## The paper's findings", "", "| recipe | finding | status | numbers |", "|---|---|---|---|"]
    for name, rows in by_recipe.items():
        smooth = smoothness_ratio(out_dir, rows, measures_path)
        parts += [f"| {name or config.training.recipe} | {f} | {s} | {n} |" for f, s, n in findings(config, rows, smooth)]
    parts += ["", "## Parameters (resolved config)", "", "```toml", config.to_toml().rstrip(), "```", ""]
    return write_text(out_dir / "report.md", "\n".join(parts))
