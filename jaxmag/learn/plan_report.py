"""The answer of ``jaxmag plan``: detectability maps, the recommendation in words, ``plan.csv`` /
``plan.json`` and ``report.md``, as pure functions of the result rows (``docs/plan.md``).

A row is a plain dict (``jaxmag.learn.plan``), one per (grid point, measure, method), with the
``COLUMNS``: every axis of ``jaxmag.plan_grid.AXES`` in its SI column, ``method`` ``"baseline"``
(non-learned robust z) or ``"model"`` (a noise-matched U-Net, at frontier points only), the pooled
test ``dice`` and ``dice_se``, the standard error of the per-film Dice (each film its own seed).

Two rules decide what a map or a recommendation shows:

* **The other axes at their most favourable value** (``Axis.better`` of ``AXES``: most photons, where 0 is no
  detector, i.e. unlimited photons; narrowest PSF; smallest pixel; least read noise; most frames;
  shortest exposure), named in every caption.
* **Within the spread** (``status``, ``beats``): a Dice within one ``dice_se`` of ``target_dice`` is
  marginal; a U-Net beats the baseline only by more than ``sqrt(se_model² + se_baseline²)``, else
  the baseline, which needs no training, is preferred.

Figures: matplotlib Agg under ``jaxmag.figures.style()``; every file written atomically.
"""
from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import jaxmag.figures as figures
from jaxmag.io.atomic import atomic_path, write_text
from jaxmag.plan_grid import AXES, PlanConfig

COLUMNS = ("point", *AXES, "measure", "method", "dice", "dice_se", "val_dice", "test_films", "train_s")
"""The columns of a row and of ``plan.csv``, in order (axes in ``AXES`` order, named with their unit)."""
METHODS = ("baseline", "model")
METHOD_NAME = {"baseline": "non-learned baseline", "model": "noise-matched U-Net"}
STATUSES = ("detectable", "marginal", "not detectable")
DPI = 110  # small figures: a report shows several
LINE_FIGURES = {"num_frames": "frames.png", "exposure_s": "exposure.png"}  # drawn when the axis is swept


def check_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The rows as a list of dicts; ``ValueError`` naming the first missing column or bad method."""
    if not rows:
        raise ValueError("the plan has no result rows: nothing was evaluated (run `jaxmag plan` again)")
    for i, row in enumerate(rows):
        missing = [c for c in COLUMNS if c not in row] if isinstance(row, Mapping) else ["(a mapping)"]
        if missing:
            raise ValueError(f"plan row {i} has no column {missing[0]!r}: every row needs {', '.join(COLUMNS)} (docs/plan.md)")
        if row["method"] not in METHODS:
            raise ValueError(f"plan row {i} ({row['point']}): method must be one of {METHODS}, got {row['method']!r}")
    return [dict(r) for r in rows]


def axis_key(name: str, value: Any) -> float:
    """A numeric axis' value as a sortable float: 0 photons (no detector) is unlimited photons, +inf."""
    v = float(value)
    return math.inf if name == "photons_per_pixel" and v == 0 else v


def _same(name: str, a: Any, b: Any) -> bool:
    return str(a) == str(b) if not AXES[name].numeric else math.isclose(float(a), float(b), rel_tol=1e-9)


def axis_values(rows: Sequence[Mapping], name: str) -> list:
    """The distinct values of an axis in ``rows``, ascending (``axis_key``; probes in first-seen order)."""
    seen: list = []
    for r in rows:
        if not any(_same(name, r[name], v) for v in seen):
            seen.append(r[name])
    return seen if not AXES[name].numeric else sorted(seen, key=lambda v: axis_key(name, v))


def favourable(rows: Sequence[Mapping], free: Sequence[str] = ()) -> dict[str, Any]:
    """The most favourable value (``Axis.better``, ordered by ``axis_key``) in ``rows`` of every
    ordered axis not in ``free``."""
    return {name: (max if axis.better > 0 else min)(axis_values(rows, name), key=lambda v: axis_key(name, v))
            for name, axis in AXES.items() if axis.better and name not in free}


def select(rows: Sequence[Mapping], **fixed: Any) -> list[Mapping]:
    """The rows whose columns equal ``fixed`` (axes compared as values, others exactly)."""
    return [r for r in rows if all(_same(k, r[k], v) if k in AXES else r[k] == v for k, v in fixed.items())]


def _dice(row: Mapping) -> float:
    """The row's Dice for ranking (a failed, NaN one ranks last)."""
    d = float(row["dice"]) if row["dice"] is not None else math.nan
    return d if math.isfinite(d) else -math.inf


def _se(row: Mapping) -> float:
    se = row.get("dice_se")
    return float(se) if se is not None and math.isfinite(float(se)) else 0.0


def status(dice: float, dice_se: float, target: float) -> str:
    """``"detectable"`` (Dice above ``target`` by more than one se), ``"marginal"`` (within one se)
    or ``"not detectable"``."""
    se = dice_se if dice_se is not None and math.isfinite(dice_se) else 0.0
    return "detectable" if dice - se >= target else ("marginal" if dice + se >= target else "not detectable")


def beats(model: Mapping, base: Mapping) -> bool:
    """The U-Net's Dice exceeds the baseline's by more than their combined standard error."""
    return float(model["dice"]) - float(base["dice"]) > math.hypot(_se(model), _se(base))


def _best(candidates: Sequence[Mapping]) -> Mapping | None:
    """The highest Dice; a U-Net only when it beats the best baseline beyond the spread (``beats``)."""
    if not candidates:
        return None
    top = max(candidates, key=_dice)
    bases = [r for r in candidates if r["method"] == "baseline"]
    base = max(bases, key=_dice) if bases else top
    return top if top["method"] == "baseline" or beats(top, base) or base is top else base


def detectability(rows: Sequence[Mapping], plan: PlanConfig, probe: str, measure: str,
                  method: str, column: str = "dice") -> tuple[list, list, np.ndarray]:
    """``(xs, ys, grid)``: ``column`` (the Dice, or ``"dice_se"``) of ``(probe, measure, method)`` over
    the two map axes (``plan.maps()``: x the first, y the second; values ascending, ``axis_key``).
    ``grid[j, i]`` is at ``(xs[i], ys[j])``, the other axes at their most favourable value
    (``favourable``); NaN where no row exists (a U-Net only where one was trained)."""
    rows = check_rows(rows)
    if plan.maps() is None or not all(AXES[x].numeric for x in plan.maps()):
        raise ValueError("[plan] map_axes: a detectability map needs two swept numeric axes (the probe has a panel "
                         "of its own); list at least two values of two axes, or set map_axes")
    a, b = plan.maps()
    xs, ys = axis_values(rows, a), axis_values(rows, b)
    fixed = favourable(rows, free=(a, b))
    mine = select(rows, probe=probe, measure=measure, method=method, **fixed)
    grid = np.full((len(ys), len(xs)), np.nan)
    for j, i in np.ndindex(grid.shape):
        found = [r[column] for r in select(mine, **{a: xs[i], b: ys[j]}) if r[column] is not None]
        grid[j, i] = float(found[0]) if found else np.nan
    return xs, ys, grid


def group_axis(plan: PlanConfig, rows: Sequence[Mapping]) -> str:
    """What a recommendation is given per value of: the PSF FWHM if swept, else the first map axis
    that is not what it minimises (photons, frames), else the PSF's single value."""
    if len(axis_values(rows, "psf_fwhm_m")) > 1:
        return "psf_fwhm_m"
    return next((a for a in plan.maps() or () if a not in ("photons_per_pixel", "num_frames")), "psf_fwhm_m")


def _minimum(rows: Sequence[Mapping], axis: str, probe: str, measure: str, target: float) -> tuple[Mapping | None, str]:
    """The smallest value of ``axis`` in ``rows`` at which ``(probe, measure)``, by the better method
    (``_best``), is detectable, else marginal: ``(that row, status)``; ``(None, "not detectable")``."""
    found: dict[str, Mapping] = {}
    for v in axis_values(rows, axis):
        best = _best(select(rows, probe=probe, measure=measure, **{axis: v}))
        if best is not None:
            found.setdefault(status(float(best["dice"]), _se(best), target), best)
    return next(((found[s], s) for s in STATUSES[:2] if s in found), (None, "not detectable"))


def recommendations(rows: Sequence[Mapping], plan: PlanConfig) -> list[dict]:
    """One recommendation per value of ``group_axis`` (usually the PSF FWHM), a dict of:

    ``axis``, ``value``: the group; ``point``, ``probe``, ``measure``, ``method``, ``dice``, ``dice_se``:
    the best at the most favourable other settings (a U-Net only beyond the spread, ``_best``);
    ``status`` (``STATUSES``); ``min_photons_per_pixel`` (at the most frames) and ``min_num_frames``
    (at the most photons): the least value at which that probe and measure reach ``target_dice``
    with either method (else the marginal one; None when not swept or never reached), with
    ``dice_at_min_*``, ``se_at_min_*`` and ``method_at_min_*`` there; ``models_trained``: the U-Net
    rows of the group; ``best_seen``: the best row of
    the group over every probe, measure, method and setting (what "not detectable" reports)."""
    rows = check_rows(rows)
    target, axis = plan.target_dice, group_axis(plan, rows)
    out = []
    for value in axis_values(rows, axis):
        group = select(rows, **{axis: value})
        fixed = favourable(group, free=(axis,))
        best = _best(select(group, **fixed))
        if best is None:
            continue
        seen = max(group, key=_dice)
        rec = {"axis": axis, "value": value, "target_dice": target,
               **{k: best[k] for k in ("point", "probe", "measure", "method", "dice", "dice_se")},
               "status": status(float(best["dice"]), _se(best), target),
               "models_trained": sum(r["method"] == "model" for r in group),
               "best_seen": {k: seen[k] for k in ("point", "probe", "measure", "method", "dice", "dice_se")}}
        for scan in ("photons_per_pixel", "num_frames"):
            hit, found = None, rec["status"]
            if scan != axis and len(axis_values(group, scan)) > 1:
                scanned = select(group, **{k: v for k, v in fixed.items() if k != scan})
                hit, found = _minimum(scanned, scan, best["probe"], best["measure"], target)
                if scan == "photons_per_pixel":
                    rec["status"] = found  # the scan holds the favourable photons: it decides
            rec.update({f"min_{scan}": hit and hit[scan], f"dice_at_min_{scan}": hit and float(hit["dice"]),
                        f"se_at_min_{scan}": hit and _se(hit), f"method_at_min_{scan}": hit and hit["method"]})
        out.append(rec)
    return out


def format_value(name: str, value: Any) -> str:
    """An axis value in words with its unit: ``psf_fwhm_m`` 1e-8 -> ``"PSF FWHM 10 nm"``."""
    v = value if not AXES[name].numeric else float(value)
    words = {"psf_fwhm_m": lambda: "PSF FWHM " + ("0 nm (no blur)" if v == 0 else f"{v * 1e9:g} nm"),
             "pixel_size_m": lambda: "one pixel per cell" if v == 0 else f"{v * 1e9:g} nm pixels",
             "photons_per_pixel": lambda: "no detector (unlimited photons)" if v == 0 else f"{v:,.0f} photons per pixel and frame",
             "read_noise": lambda: f"{v:g} ADU read noise",
             "exposure_s": lambda: "instantaneous frames" if v == 0 else f"{v * AXES[name].scale:g} ps exposure",
             "num_frames": lambda: f"{int(v)} frames", "probe": lambda: f"probe {v}"}
    return words[name]()


def _thing(row: Mapping) -> str:
    return (f"the {figures.measure_name(row['measure'])} of the {row['probe']} probe signal "
            f"with the {METHOD_NAME[row['method']]}")


def _pm(dice: Any, se: Any) -> str:
    return f"{float(dice):.3f} ± {float('nan') if se is None else float(se):.3f}"


def recommendation_text(recs: Sequence[Mapping], plan: PlanConfig) -> list[str]:
    """One sentence per recommendation (``recommendations``), numbers with their units."""
    lines = []
    for r in recs:
        head = f"At {format_value(r['axis'], r['value'])}"
        if r["status"] == "not detectable":
            b = r["best_seen"]
            where = " at this resolution" if r["axis"] == "psf_fwhm_m" and float(r["value"]) > 0 else ""
            caveat = "" if r.get("models_trained", 1) else (" No U-Net was trained here (the [plan] models budget "
                                                             "went elsewhere): a U-Net may do better.")
            lines.append(f"{head}: not detectable{where}. No setting of the grid reaches Dice "
                         f"{r['target_dice']:.2f}; the best seen is {_pm(b['dice'], b['dice_se'])}, {_thing(b)} "
                         f"(point {b['point']}).{caveat}")
            continue
        word = "detectable" if r["status"] == "detectable" else "marginal (within one standard error of the target)"
        text = (f"{head}: {word}. Best: {_thing(r)}, Dice {_pm(r['dice'], r['dice_se'])} (target "
                f"{r['target_dice']:.2f}) at the most favourable settings")
        for scan, joint in (("photons_per_pixel", "; it reaches the target from"), ("num_frames", ", and from")):
            if r.get(f"min_{scan}") is not None:
                method = "" if r[f"method_at_min_{scan}"] == r["method"] else f", {METHOD_NAME[r[f'method_at_min_{scan}']]}"
                text += (f"{joint} {format_value(scan, r[f'min_{scan}'])} (Dice "
                         f"{_pm(r[f'dice_at_min_{scan}'], r[f'se_at_min_{scan}'])}{method})")
        lines.append(text + ".")
    return lines


def _plain(x: Any) -> Any:
    """JSON-safe: NumPy scalars to Python, NaN and infinities to None."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_table(out_dir: str | Path, rows: Sequence[Mapping], meta: Mapping | None = None) -> tuple[Path, Path]:
    """``(plan.json, plan.csv)`` in ``out_dir``: the JSON ``{"rows", "columns", **meta}`` (NaN as
    null), the CSV with ``COLUMNS`` in order (empty cells for None)."""
    rows = check_rows(rows)
    out = Path(out_dir)
    doc = {**_plain(dict(meta or {})), "columns": list(COLUMNS), "rows": _plain(rows)}
    json_path = write_text(out / "plan.json", json.dumps(doc, indent=1, allow_nan=False) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow(["" if r[c] is None else (repr(float(r[c])) if isinstance(r[c], (float, np.floating)) else r[c])
                         for c in COLUMNS])
    return json_path, write_text(out / "plan.csv", buf.getvalue())


def _coords(name: str, values: Sequence) -> tuple[list[float], list[str]]:
    """Plot positions and tick labels: log10 for a log axis (0 photons drawn a decade beyond, "∞")."""
    ax = AXES[name]
    if ax.log:
        finite = [float(v) for v in values if float(v) > 0]
        top = math.log10(max(finite)) + 1 if finite else 0.0
        pos = [math.log10(float(v)) if float(v) > 0 else top for v in values]
        return pos, [f"{float(v):.0e}".replace("e+0", "e") if float(v) > 0 else "∞" for v in values]
    return [float(v) * ax.scale for v in values], [f"{float(v) * ax.scale:g}" for v in values]


def _label(name: str) -> str:
    return AXES[name].label + (" (log scale)" if AXES[name].log else "")


def _caption(fixed: Mapping[str, Any], width_in: float = 0.0) -> str:
    """What the unshown axes are fixed at; wrapped to a figure ``width_in`` inches wide (0: one line)."""
    text = "other axes at their most favourable value: " + ", ".join(format_value(k, v) for k, v in fixed.items())
    return textwrap.fill(text, int(width_in * 14)) if width_in else text


def _pyplot():
    """``(matplotlib, pyplot)`` on the Agg backend (imported here: only the figures need them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return matplotlib, plt


def _save(fig, path: Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=DPI, format="png")
    finally:
        _pyplot()[1].close(fig)
    return path


def write_maps(out_dir: str | Path, rows: Sequence[Mapping], plan: PlanConfig) -> Path | None:
    """``maps.png``: per (probe, measure) the baseline Dice over the two map axes (colour and number),
    the ``target_dice`` contour (cells at or above it marked where the grid is smaller than 2 × 2),
    the U-Net's Dice as text where one was trained. With one swept axis only, Dice against it
    instead; None when nothing numeric is swept. Also ``LINE_FIGURES``: Dice against the frames /
    the exposure where swept (``_line_figure``)."""
    matplotlib, plt = _pyplot()
    rows = check_rows(rows)
    for axis, name in LINE_FIGURES.items():
        if len(axis_values(rows, axis)) > 1:
            _line_figure(Path(out_dir) / name, rows, plan, axis)
    path = Path(out_dir) / "maps.png"
    if plan.maps() is None:
        swept = [a for a in AXES if AXES[a].numeric and len(axis_values(rows, a)) > 1]
        return _line_figure(path, rows, plan, swept[0]) if swept else None
    a, b = plan.maps()
    probes, measures = axis_values(rows, "probe"), [m for m in plan.measures if select(rows, measure=m)]
    fixed = favourable(rows, free=(a, b))
    with matplotlib.rc_context({**figures.style(), "savefig.dpi": DPI}):
        fig, axes = plt.subplots(len(probes), len(measures), figsize=(3.3 * len(measures) + 1.2, 2.9 * len(probes) + 0.9),
                                 squeeze=False, layout="constrained")
        mesh = None
        for i, probe in enumerate(probes):
            for j, measure in enumerate(measures):
                ax = axes[i, j]
                xs, ys, base = detectability(rows, plan, probe, measure, "baseline")
                model = detectability(rows, plan, probe, measure, "model")[2]
                # equal cells whatever the spacing of the values (5, 10, 20 nm; decades of photons)
                (_, xl), (_, yl) = _coords(a, xs), _coords(b, ys)
                px, py = np.arange(len(xl), dtype=float), np.arange(len(yl), dtype=float)
                mesh = ax.pcolormesh(px, py, np.ma.masked_invalid(base), shading="nearest", cmap="viridis", vmin=0, vmax=1)
                finite = base[np.isfinite(base)]
                if min(base.shape) >= 2 and finite.size and finite.min() < plan.target_dice < finite.max():
                    ax.contour(px, py, np.ma.masked_invalid(base), levels=[plan.target_dice], colors="white", linewidths=2)
                else:
                    jj, ii = np.nonzero(np.nan_to_num(base, nan=-1) >= plan.target_dice)
                    ax.scatter([px[k] for k in ii], [py[k] for k in jj], marker="s", s=160, facecolors="none",
                               edgecolors="white", linewidths=2)
                for jj, ii in zip(*np.nonzero(np.isfinite(base))):
                    ax.text(px[ii], py[jj], f"{base[jj, ii]:.2f}", ha="center", va="bottom", fontsize=figures.SMALL_PT,
                            color="black" if base[jj, ii] > 0.6 else "white")
                for jj, ii in zip(*np.nonzero(np.isfinite(model))):
                    ax.text(px[ii], py[jj], f"U-Net {model[jj, ii]:.2f}", ha="center", va="top", fontsize=figures.SMALL_PT,
                            weight="bold", bbox={"facecolor": "white", "alpha": 0.8, "pad": 1, "edgecolor": "none"})
                ax.set(xticks=px, xticklabels=xl, yticks=py, yticklabels=yl, xlabel=_label(a), ylabel=_label(b),
                       title=f"{figures.measure_name(measure)}, probe {probe}")
        figures.add_colour_bar(fig, mesh, list(axes.ravel()), "baseline test Dice (unitless)")
        unlimited = "photons_per_pixel" in (a, b) and 0 in [float(v) for v in axis_values(rows, "photons_per_pixel")]
        fig.suptitle(f"white line: Dice = {plan.target_dice:g}{'; ∞: no detector (unlimited photons)' if unlimited else ''}\n"
                     + _caption(fixed, fig.get_figwidth()), fontsize=figures.SMALL_PT)
        return _save(fig, path)


def _line_figure(path: Path, rows: Sequence[Mapping], plan: PlanConfig, axis: str) -> Path:
    """Dice against ``axis``, one panel per probe, one colour per measure: the baseline (line, error
    bars: dice_se) and the U-Net where trained (open markers); the other axes at their most favourable."""
    matplotlib, plt = _pyplot()
    probes, values = axis_values(rows, "probe"), axis_values(rows, axis)
    fixed = favourable(rows, free=(axis,))
    pos, labels = _coords(axis, values)
    with matplotlib.rc_context({**figures.style(), "savefig.dpi": DPI}):
        fig, axes = plt.subplots(1, len(probes), figsize=(4.2 * len(probes) + 1.8, 3.4), squeeze=False, layout="constrained")
        for ax, probe in zip(axes[0], probes):
            for k, measure in enumerate(m for m in plan.measures if select(rows, measure=m)):
                for method, style in (("baseline", dict(ls="-", marker="o")), ("model", dict(ls="none", marker="D", mfc="none"))):
                    pts = [(p, r) for p, v in zip(pos, values)
                           for r in select(rows, probe=probe, measure=measure, method=method, **{**fixed, axis: v})]
                    if pts:
                        ax.errorbar([p for p, _ in pts], [float(r["dice"]) for _, r in pts],
                                    yerr=[_se(r) for _, r in pts], color=f"C{k}", capsize=3, ms=5, **style,
                                    label=f"{figures.measure_name(measure)}, {'U-Net' if method == 'model' else 'baseline'}")
            ax.axhline(plan.target_dice, color="0.4", ls="--", lw=1, label=f"target Dice {plan.target_dice:g}")
            ax.set(xticks=pos, xticklabels=labels, xlabel=_label(axis), ylabel="test Dice (unitless)", ylim=(-0.02, 1.02),
                   title=f"probe {probe}")
            ax.grid(alpha=0.3)
        axes[0, -1].legend(loc="best", fontsize=figures.SMALL_PT)
        fig.suptitle(_caption(fixed, fig.get_figwidth()), fontsize=figures.SMALL_PT)
        return _save(fig, path)


def _num(x: Any, fmt: str = ".3f") -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else format(float(x), fmt)


def _setup(meta: Mapping, rows: Sequence[Mapping], plan: PlanConfig) -> list[str]:
    """The film, the material, the defects, the films, the instrument's base values and the axes."""
    (ny, nx), cell, m, d = meta["grid"], float(meta["cell_m"]), meta.get("material", {}), meta.get("defects", {})
    split, ins = meta.get("split", {}), meta.get("instrument") or {}
    lines = ["## Setup", "",
             f"- **Film**: {ny} × {nx} cells of {cell * 1e9:g} nm ({ny * cell * 1e9:g} × {nx * cell * 1e9:g} nm), "
             f"{meta.get('boundary', '?')} boundary, {_num(meta.get('temperature_K'), 'g')} K; Ms = {_num(m.get('Ms'), 'g')} A/m, "
             f"A_ex = {_num(m.get('A_ex'), 'g')} J/m, K_u = {_num(m.get('K_u'), 'g')} J/m³, alpha = {_num(m.get('alpha'), 'g')}.",
             f"- **Defects**: {d.get('num_a')} blobs with A_ex and K_u × {d.get('factor_a')} and {d.get('num_b')} × "
             f"{d.get('factor_b')}, {d.get('size_min')}–{d.get('size_max')} cells each.",
             f"- **Films**: {meta.get('films')} simulated once for the whole grid (train / validation / test "
             f"{split.get('train')} / {split.get('val')} / {split.get('test')}), a frame every "
             f"{_num(meta.get('frame_interval_s'), 'g')} s.",
             "- **Correlation time** of the films' fluctuations (median over pixels of the 1/e time; an exposure "
             "much longer averages them away): " + (", ".join(
                 f"m_{c} {float(t) * 1e12:.3g} ps" if t is not None else f"m_{c} none (identical frames: camera rate)"
                 for c, t in (meta.get("correlation_time_s") or {}).items()) or "n/a") + ".",
             "- **Instrument, base values** (`[instrument]`): " + ", ".join(
                 f"`{k}` = {v if isinstance(v, str) else format(v, 'g')}" for k, v in ins.items()
                 if isinstance(v, (str, int, float)) and k != "enabled" and v != "") + ".",
             "", "| axis (column) | unit | values |", "|---|---|---|"]
    for a in AXES:
        vals = axis_values(rows, a)
        lines.append(f"| `{a}`{' (swept)' if len(vals) > 1 else ''} | {AXES[a].unit or '—'} | "
                     + ", ".join(format(v, "g") if AXES[a].numeric else str(v) for v in vals) + " |")
    return lines + ["", f"Target Dice: {plan.target_dice:g}. Measures, each of the probe signal: "
                    + ", ".join(figures.measure_name(x) for x in plan.measures) + ".", ""]


def _point_table(rows: Sequence[Mapping]) -> list[str]:
    """Per point: the best baseline, the best U-Net, the baseline of the U-Net's input, and whether the
    U-Net is better beyond the combined spread (``beats``)."""
    swept = [a for a in AXES if len(axis_values(rows, a)) > 1]
    head = [AXES[a].label for a in swept] + ["best baseline", "U-Net", "baseline, same input", "U-Net better beyond the spread"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    top = lambda rs: max(rs, key=_dice) if rs else None  # noqa: E731
    for pid in dict.fromkeys(r["point"] for r in rows):
        here = select(rows, point=pid)
        base = [r for r in here if r["method"] == "baseline"]
        model = top([r for r in here if r["method"] == "model"])
        same = next((r for r in base if model and r["measure"] == model["measure"]), None)
        cells = [f"{float(here[0][a]) * AXES[a].scale:g}" if AXES[a].numeric else str(here[0][a]) for a in swept]
        cells += [f"{_pm(r['dice'], r['dice_se'])} ({r['measure']})" if r else "—" for r in (top(base), model)]
        cells[-1] = cells[-1] if model else "not trained"
        cells.append(_pm(same["dice"], same["dice_se"]) if same else "—")
        cells.append("—" if not (model and same) else f"{'yes' if beats(model, same) else 'no'} "
                     f"({float(model['dice']) - float(same['dice']):+.3f}, spread {math.hypot(_se(model), _se(same)):.3f})")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


METHOD_NOTE = (
    "The films are simulated once; every grid point is a view of them (the first N frames, or the exposure as a sample "
    "average) recorded through its instrument. The non-learned robust-z baseline, fitted on the validation films, scores "
    "every measure at every point; noise-matched U-Nets are trained only at the frontier, where the baseline falls below "
    "the target, closest first: there learning matters most. Dice ± se: the pooled test Dice and the standard error of "
    "the per-film Dice (each film an independent seed). Within one se of the target is marginal; a U-Net counts as "
    "better only beyond the combined spread, else the baseline (no training) is recommended. Axes not shown sit at "
    "their most favourable value (most photons, narrowest PSF, smallest pixel, least read noise, most frames, "
    "shortest exposure).")


def write_plan_report(out_dir: str | Path, plan: PlanConfig, rows: Sequence[Mapping], meta: Mapping) -> Path:
    """``report.md`` in ``out_dir`` with its figures (``write_maps``): the setup, the recommendation in
    words, the maps, the best Dice per point (baseline and U-Net), the timings and the method. Every
    number is read from ``rows`` and ``meta`` (``jaxmag.learn.plan.plan_meta``: ``grid``, ``cell_m``,
    ``material``, ``defects``, ``films``, ``split``, ``instrument``, ``timings``, ...)."""
    rows = check_rows(rows)
    out = Path(out_dir)
    maps = write_maps(out, rows, plan)
    recs = recommendations(rows, plan)
    text = [f"# Experiment plan: {meta.get('name', 'plan')}", ""] + _setup(meta, rows, plan)
    text += ["## Recommendation", ""] + [f"- {s}" for s in recommendation_text(recs, plan)] + [""]
    text += ["| group | status | probe | measure | method | Dice ± se | min photons per pixel | min frames |",
             "|" + "---|" * 8]
    text += [f"| {format_value(r['axis'], r['value'])} | {r['status']} | {r['probe']} | {r['measure']} | {r['method']} | "
             f"{_pm(r['dice'], r['dice_se'])} | {_num(r['min_photons_per_pixel'], 'g')} | {_num(r['min_num_frames'], 'g')} |"
             for r in recs]
    text += ["", "Photons 0: no detector (unlimited photons; ∞ on the maps). n/a: not swept, or the target not reached.", "",
             "## Detectability", ""]
    if maps is not None:
        text += [f"![detectability maps]({maps.name})", "",
                 "Colour and upper number: the baseline's test Dice; bold: the noise-matched U-Net where one was "
                 f"trained; white line (or squares): Dice = {plan.target_dice:g}; "
                 + _caption(favourable(rows, free=plan.maps() or ())) + ".", ""]
    text += [f"![Dice against the {f.removesuffix('.png')}]({f})\n" for a, f in LINE_FIGURES.items() if len(axis_values(rows, a)) > 1]
    text += ["## Best Dice per grid point", ""] + _point_table(rows)
    trained = [r for r in rows if r["method"] == "model"]
    text += ["", "## Cost", "", "| stage | wall time (s) |", "|---|---|"]
    text += [f"| {k.removesuffix('_s')} | {_num(v, '.1f')} |" for k, v in (meta.get("timings") or {}).items()]
    text += ["", f"{len(trained)} U-Nets trained at the frontier, {_num(sum(float(r['train_s'] or 0) for r in trained), '.1f')} "
             "s of training in all.", "", "## Method", "", METHOD_NOTE, ""]
    return write_text(out / "report.md", "\n".join(text))
