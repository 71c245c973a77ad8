"""Figures and the markdown report of a run or study.

* ``fig_examples.png`` — like the paper's Fig. 2: per (measure, component) of the clean-trained
  models, the input map, the prediction and the truth on one test image, clean and under one
  noise condition.
* ``fig_dice_vs_noise.png`` — like its Fig. 3: test Dice against the noise level (σ²), one panel
  per (component, noise kind of ``[noise]``), clean-trained (dashed) and noise-matched (solid) models.
* ``report.md`` — embeds both, states every parameter (the resolved config), the results
  table, and checks the paper's qualitative findings (``shared/docs/study.md`` §4), each
  marked *reproduced* / *not reproduced* / *not tested* with the numbers behind it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxmag.channels import parse_channels
from jaxmag.config import Config
from jaxmag.io.atomic import atomic_path, write_text
from jaxmag.learn.noise_match import reference_kind
from jaxmag.learn.study import RESULT_FILE, lookup, mean_perimeter_ratio
from jaxmag.noise import noise_model

MEASURE_LABEL = {"mean": "mean", "std": "std", "latent_entropy": "latent entropy"}


def _load_unit(unit_dir: Path, measures_path: Path, condition: str, k: int | None):
    """(normalised inputs, labels, probabilities) of the first ``k`` test images (all if None)."""
    from jaxmag.learn.sources.measures import MeasuresSource
    from jaxmag.learn.evaluation import load_trained, predict_proba

    model, info = load_trained(unit_dir / "run")
    inputs = parse_channels(info["inputs"])
    source = MeasuresSource(measures_path, inputs, train_condition="clean", batch_size=1, indices=info["split"],
                            norm_stats=info["norm_stats"], load_train=False)
    test = source.test_set(condition)
    x, y = (test.inputs, test.labels) if k is None else test.examples(k)
    return x, y, predict_proba(model, x)


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = _single_clean_units(records)
    if not units:
        return None
    noisy = example_condition(config, records)
    conditions = ["clean"] + ([noisy] if noisy else [])
    cols = 2 * len(conditions) + 1
    fig, axes = plt.subplots(len(units), cols, figsize=(1.8 * cols, 1.9 * len(units)), squeeze=False)
    for row, (measure, comp, unit_id) in enumerate(units):
        col = 0
        for cond in conditions:
            x, y, p = _load_unit(out_dir / "units" / unit_id, measures_path, cond, 1)
            dice = lookup(records, unit=unit_id, eval_condition=cond)
            axes[row, col].imshow(x[0, ..., 0], cmap="viridis")
            axes[row, col].set_title(f"{MEASURE_LABEL.get(measure, measure)} m_{comp}\n{cond}", fontsize=7)
            axes[row, col + 1].imshow(p[0] > 0.5, cmap="gray", vmin=0, vmax=1)
            axes[row, col + 1].set_title(f"prediction\n(test-set Dice {dice:.2f})" if dice is not None else "prediction", fontsize=7)
            col += 2
        axes[row, col].imshow(y[0] > 0, cmap="gray", vmin=0, vmax=1)
        axes[row, col].set_title("truth", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return _save_figure(fig, out_dir / "fig_examples.png")


def plot_dice_vs_noise(out_dir: Path, config: Config, records: Sequence[dict]) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noisy = [r for r in records if r["noise_type"] != "clean"]
    if not noisy:
        return None
    comps = sorted({r["component"] for r in noisy})
    kinds = [k for k in config.noise.kinds if any(r["noise_type"] == k for r in noisy)]
    fig, axes = plt.subplots(len(comps), len(kinds), figsize=(4.2 * len(kinds), 3.0 * len(comps)), squeeze=False)
    colors = {}
    for i, comp in enumerate(comps):
        for j, kind in enumerate(kinds):
            ax = axes[i, j]
            for training, style in (("clean", "--"), ("matched", "-")):
                rows = [r for r in noisy if r["component"] == comp and r["noise_type"] == kind
                        and (r["train_condition"] == "clean") == (training == "clean")]
                for measure in sorted({r["measure"] for r in rows}):
                    pts = sorted((r["noise_variance"], r["dice"]) for r in rows if r["measure"] == measure)
                    color = colors.setdefault(measure, f"C{len(colors)}")
                    ax.plot(*zip(*pts), style, marker="o", ms=3, color=color,
                            label=f"{MEASURE_LABEL.get(measure, measure)} ({training}-trained)")
                    base = lookup(records, measure=measure, component=comp, train_condition="clean", eval_condition="clean")
                    if base is not None and training == "clean":
                        ax.axhline(base, color=color, lw=0.6, ls=":")
            ax.set_xscale("log")
            ax.set_ylim(-0.02, 1.02)
            model = noise_model(kind)
            ax.set_xlabel(f"noise {model.level_name} {model.level_symbol}")
            ax.set_ylabel("test Dice")
            ax.set_title(f"m_{comp}, {kind} noise", fontsize=9)
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return _save_figure(fig, out_dir / "fig_dice_vs_noise.png")


def _save_figure(fig, path: Path) -> Path:
    """Save ``fig`` as PNG atomically (``jaxmag.io.atomic``) and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80, format="png")  # the temporary name has no .png suffix
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
    return (f"2. Weak Gaussian noise ({cond}): Dice stays near the clean baseline; matched training adds little", _status(ok),
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
    return (f"3. Moderate noise ({cond}): clean-trained models fail for several measures, matched keep high Dice; for m_z std is the most robust with matched training",
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
    return (f"4. Strong noise ({cond}): clean-trained collapse to 'everything is defect', matched to 'nothing is defect'", _status(ok),
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
                lines.append(f"{cond} ({r['train_condition']}-trained): multi {_fmt(r['dice'])} vs best single {_fmt(max(single))}")
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


def results_table(records: Sequence[dict]) -> str:
    lines = ["| recipe | seed | inputs | trained on | evaluated on | Dice | per-image Dice | predicted / true defect fraction |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r.get('recipe') or '-'} | {r.get('seed', 0)} | {r['inputs']} | {r['train_condition']} | {r['eval_condition']} | {r['dice']:.3f} | "
                     f"{r['dice_per_image']:.3f} | {r['pred_fraction']:.3f} / {r['true_fraction']:.3f} |")
    return "\n".join(lines)


def write_report(out_dir: Path, config: Config, records: Sequence[dict], measures_path: Path, *,
                 title: str, timings: dict[str, float] | None = None) -> Path:
    """Make the figures and ``report.md`` in ``out_dir``; returns the report's path."""
    out_dir = Path(out_dir)
    from jaxmag.learn import baseline, recipe

    base_records = baseline.load_study_records(out_dir)
    recipes = recipe.recipes_in(records)
    # one set of findings per recipe, on its first-seed units (the table keeps every unit)
    by_recipe = {name: [r for r in records if r.get("recipe", "") == name and not r.get("seed", 0)] for name in recipes}
    shown = by_recipe[recipes[-1]] if recipes else []  # the figures show the last recipe (the study's own)
    examples = plot_examples(out_dir, config, shown, measures_path)
    curves = plot_dice_vs_noise(out_dir, config, shown)
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
                  "Per row: the input map and the thresholded prediction on one test image, clean and noisy, and the truth.", ""]
    if curves:
        parts += ["## Dice versus noise", "", f"![dice vs noise]({curves.name})", "",
                  f"Recipe {recipes[-1] or config.training.recipe}. Dashed: trained on clean data; solid: trained with matching noise; dotted: clean baseline.", ""]
    parts += baseline.report_section(records, base_records)
    parts += recipe.seed_section(records, base_records)
    parts += ["## The paper's findings", "", "| recipe | finding | status | numbers |", "|---|---|---|---|"]
    for name, rows in by_recipe.items():
        smooth = smoothness_ratio(out_dir, rows, measures_path)
        parts += [f"| {name or config.training.recipe} | {f} | {s} | {n} |" for f, s, n in findings(config, rows, smooth)]
    parts += ["", "## Parameters (resolved config)", "", "```toml", config.to_toml().rstrip(), "```", ""]
    return write_text(out_dir / "report.md", "\n".join(parts))
