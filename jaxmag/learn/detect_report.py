"""What ``jaxmag detect`` writes: the maps, the overlay figure, ``report.md`` and ``detect.json``.

``write_detection(result, out) -> {name: path}`` takes a ``jaxmag.learn.detect.DetectionResult``
and writes into ``out`` (claimed by ``detect`` before anything was simulated, ``OUTPUTS``):

* ``probability.{npy,tif}`` float32, ``mask.{npy,tif}`` and ``baseline_mask.{npy,tif}`` uint8
  (1 = defect), through ``jaxmag.learn.predict.write_maps``, as ``jaxmag predict`` writes its maps;
* ``overlay.png`` (``plot_overlay``): the input map with the U-Net's mask outlined, the probability,
  and the input map with the baseline's mask outlined;
* ``report.md`` (``report_markdown``): the regime and where each value came from, the noise
  estimate, the model against the baseline on the regime's films, the movie, the warnings;
* ``detect.json``: the same record, machine-readable.

``regime.toml`` (``regime_file_text``) is written by ``detect`` itself as soon as the regime is
known: the config, headed by comments that say where each value came from and how to rerun it.
``regime_rows`` is that table, shared by the header, ``report.md`` and ``detect.json``: each
value is read from the movie, the ``--regime`` file, a flag or a default (``regime.origin_kind``).
Every file goes through ``jaxmag.io.atomic``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from jaxmag.io.atomic import atomic_write, write_text
from jaxmag.learn.defect_table import write_defects_csv
from jaxmag.learn.predict import write_maps
from jaxmag.learn.regime import ORIGIN_ROWS, origin_kind

DETECT_FILE = "detect.json"
REGIME_FILE = "regime.toml"
OUTPUTS = ("probability.npy", "probability.tif", "mask.npy", "mask.tif", "baseline_mask.npy", "baseline_mask.tif",
           "uncertainty.npy", "uncertainty.tif", "types.npy", "types.tif", "defects.csv", "reliability.png", "overlay.png", "report.md",
           DETECT_FILE, REGIME_FILE)


def write_detection(result: Any, out: str | Path) -> dict[str, Path]:
    """Write the maps, the overlay, ``report.md`` and ``detect.json`` of ``result`` into ``out``; returns ``{name: path}``."""
    out = Path(out)
    files = {
        "probability": out / "probability.npy",
        "mask": out / "mask.npy",
        "baseline_mask": out / "baseline_mask.npy",
        "overlay": out / "overlay.png",
        "report": out / "report.md",
        "json": out / DETECT_FILE,
        "regime": out / REGIME_FILE,
        "defects": out / "defects.csv",
    }
    maps = {"probability": result.probability.astype(np.float32), "mask": result.mask.astype(np.uint8),
            "baseline_mask": result.baseline_mask.astype(np.uint8)}
    if result.uncertainty is not None:
        maps["uncertainty"] = result.uncertainty.astype(np.float32)
        files["uncertainty"] = out / "uncertainty.npy"
    if result.types is not None:
        maps["types"] = result.types.astype(np.uint8)
        files["types"] = out / "types.npy"
    write_maps(out, maps)
    write_defects_csv(files["defects"], defect_table(result))
    if result.confidence.get("curves"):
        from jaxmag.learn.reliability import plot_reliability

        files["reliability"] = out / "reliability.png"
        curves = {k: {kk: np.asarray(vv, np.float64) for kk, vv in c.items()} for k, c in result.confidence["curves"].items()}
        plot_reliability(files["reliability"], curves, result.confidence["ece_by_curve"])
    with atomic_write(files["overlay"], "wb") as f:
        plot_overlay(f, result)
    write_text(files["json"], json.dumps(detection_record(result), indent=1, default=float) + "\n")
    write_text(files["report"], report_markdown(result))
    return files


def defect_table(result: Any) -> list[dict]:
    """The rows of ``defects.csv`` (``jaxmag.learn.defect_table``): one per connected region of the mask."""
    from jaxmag.learn.defect_table import defect_rows

    pixel = getattr(result, "pixel_size_m", None) or result.facts.cell_size_m
    names = dict(enumerate(result.class_names)) if result.types is not None else None
    return defect_rows(result.probability, result.mask, pixel_size_m=pixel, input_map=result.inputs[..., 0],
                       types=result.types, type_names=names, uncertainty=result.uncertainty,
                       periodic=result.config.grid.boundary == "periodic")


def detection_record(result: Any) -> dict:
    """The JSON-able record of ``detect.json``; ``regime``: each value with where it came from."""
    return {
        "movie": result.movie,
        "facts": result.facts.to_dict(),
        "regime": [{"value": name, "is": value, "from": origin, "kind": origin_kind(origin)}
                   for name, value, origin in regime_rows(result.config, result.facts, result.origin)],
        "budget": result.budget,
        "inputs": list(result.input_names),
        "noise": result.noise,
        "validation": result.validation,
        "defect_fraction": float(result.mask.mean()),
        "baseline_defect_fraction": float(result.baseline_mask.mean()),
        "threshold": result.threshold,
        "ece": result.confidence.get("ece"),
        "confidence": {k: v for k, v in result.confidence.items() if k != "curves"},
        "defects": defect_table(result),
        "statistics": result.statistics,
        "warnings": list(result.warnings),
        "run_dir": str(result.run_dir),
        "cached": result.cached,
        "seconds": result.seconds,
    }


def plot_overlay(path, result: Any) -> None:
    """Three maps, each with a colour bar naming its quantity and unit and a nanometre scale bar
    (``jaxmag.figures``): the input map with the U-Net's mask outlined, the probability, the input
    map with the baseline's mask outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import jaxmag.figures as figures

    img = result.inputs[..., 0]
    ny, nx = img.shape
    lo, hi = np.percentile(img, [1, 99])
    name = result.input_names[0]
    quantity = figures.channel_label(name, normalized_entropy=result.config.measures.normalize)
    cell = getattr(result, "pixel_size_m", None) or result.facts.cell_size_m  # a counts movie's maps are on its pixels
    with matplotlib.rc_context(figures.style()):
        fig, axes = figures.map_figure(3, ny, nx)
        grey = dict(cmap="gray", vmin=lo, vmax=hi, label=quantity, pixel_size_m=cell)
        figures.map_panel(fig, axes[0], img, **grey, outline=result.mask, outline_colour="#D55E00",
                          title=f"{name} + U-Net mask\n({result.mask.mean():.1%} of the film)")
        for row in defect_table(result):  # the rows of defects.csv, by id, at their centroids
            axes[0].annotate(str(row["id"]), (row["centroid_x_m"] / cell - 0.5, row["centroid_y_m"] / cell - 0.5),
                             color="#D55E00", fontsize=9, ha="center", va="center", fontweight="bold")
        figures.map_panel(fig, axes[1], result.probability, cmap="magma", vmin=0.0, vmax=1.0,
                          label=figures.PROBABILITY_LABEL, pixel_size_m=cell, title="U-Net defect probability")
        figures.map_panel(fig, axes[2], img, **grey, outline=result.baseline_mask, outline_colour="#56B4E9",
                          title=f"{name} + baseline mask\n({result.baseline_mask.mean():.1%} of the film)")
        fig.savefig(path, dpi=figures.DPI, format="png")
    plt.close(fig)


# -- report.md ----------------------------------------------------------------------------------

def report_markdown(result: Any) -> str:
    """``report.md``: regime, noise, model against baseline, the movie and its warnings, wall time."""
    f = result.facts
    if "recording" in result.noise:
        ny, nx = result.probability.shape
        what = (f"{f.num_frames} frames of {ny} x {nx} detector pixels of {result.pixel_size_m * 1e9:.4g} nm "
                f"(detector counts; simulated on {f.ny} x {f.nx} cells of {f.cell_size_m * 1e9:.4g} nm)")
    else:
        what = f"{f.num_frames} frames of {f.ny} x {f.nx} pixels, components {', '.join(f.components)}"
    lines = ["# jaxmag detect", "", f"Movie: `{result.movie}`: {what}.", ""]
    noise = _recording_section(result) if "recording" in result.noise else _noise_section(result)
    lines += (_regime_section(result) + noise + _model_section(result) + _confidence_section(result)
              + _movie_section(result) + _defects_section(result))
    s = result.seconds
    lines += ["", f"Wall time: {s.get('total', 0):.0f} s (simulate {s.get('simulate', 0):.0f} s, choose inputs "
              f"{s.get('inputs', 0):.0f} s, train {s.get('train', 0):.0f} s{' (cached model)' if result.cached else ''}, "
              f"predict {s.get('predict', 0):.0f} s).", ""]
    return "\n".join(lines)


def regime_rows(config: Any, facts: Any, origin: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """``(value, what it is, where it came from)`` for each row of the regime (``regime.ORIGIN_ROWS``)."""
    c, f = config, facts
    m, d, s, g = c.material, c.defects, c.simulation, c.grid
    easy = ", ".join(f"{a:g}" for a in m.easy_axis)
    values = {
        "grid": f"{g.ny} x {g.nx} cells, {g.nz} layer{'s' if g.nz > 1 else ''}",
        "num_frames": f"{s.num_frames} frames",
        "cell_size_m": f"{g.cell_size_m[0] * 1e9:.4g} nm",
        "frame_interval_s": f"{s.frame_interval_s * 1e12:.4g} ps",
        "boundary": g.boundary,
        "temperature": f"{m.temperature:g} K",
        "material": f"Ms {m.Ms:g} A/m, A_ex {m.A_ex:g} J/m, K_u {m.K_u:g} J/m³ along ({easy}), alpha {m.alpha:g}",
        "defects": f"{d.num_a} x {d.factor_a:g} and {d.num_b} x {d.factor_b:g} (A_ex, K_u)",
        "defect_sizes": f"{d.size_min}-{d.size_max} cells each",
        "dt": f"{s.dt * 1e15:.4g} fs",
        "burn_in_s": f"{s.burn_in_s * 1e12:.4g} ps",
        "measures": f"latent entropy: {c.measures.num_states} states, {c.measures.binning} bins",
        "films": f"{c.dataset.num_runs} films",
        "seed": f"{c.dataset.seed}",
        "model": f"U-Net, {c.model.base_features} base features, depth {c.model.depth}",
        "training": f"{c.training.epochs} epochs, batch {c.training.batch_size}, learning rate {c.training.learning_rate:g}",
        "instrument": _instrument_text(c.instrument),
    }
    said = dict(origin)
    if origin_kind(origin.get("boundary", "")) == "movie" and f.boundary_evidence:
        said["boundary"] += f": {f.boundary_evidence}"  # the auto guess shows its evidence
    return [(ROW_NAMES[row], values[row], said[row]) for row in ORIGIN_ROWS if row in origin]


ROW_NAMES = {
    "grid": "grid", "num_frames": "frame count", "cell_size_m": "cell size", "frame_interval_s": "frame interval",
    "boundary": "boundary", "temperature": "temperature", "material": "material", "defects": "defect factors",
    "defect_sizes": "defect areas", "dt": "time step", "burn_in_s": "burn-in", "measures": "[measures]",
    "films": "films ([dataset] num_runs)", "seed": "seed", "model": "[model]", "training": "[training]",
    "instrument": "[instrument]",
}


def _instrument_text(i: Any) -> str:
    if not i.enabled:
        return "none (the magnetisation itself)"
    parts = [f"probe {i.probe}", f"PSF FWHM {i.psf_fwhm_m * 1e9:.3g} nm", f"pixels {(i.pixel_size_m or 0) * 1e9:.3g} nm"]
    if i.records_counts:
        parts += [f"{i.photons_per_pixel:.4g} photons/pixel/frame", f"contrast {i.contrast:.3g}", f"gain {i.gain:.3g} ADU/photon",
                  f"offset {i.offset:.4g} ADU", f"read noise {i.read_noise:.3g} ADU"]
    parts.append("camera-rate frames" if i.camera_rate else
                 f"exposure {i.exposure_s * 1e12:.3g} ps" if i.exposure_s else "instantaneous frames")
    return ", ".join(parts)
RERUN = ("`jaxmag detect MOVIE --regime DIR/regime.toml --out DIR` (or another `--out` with `--cache DIR/cache`): "
         "unedited, the same regime reuses the cached films and model")


def regime_file_text(regime: Any, facts: Any, movie_source: str) -> str:
    """``regime.toml``: comments (the movie, each value and its origin, how to rerun) and the config."""
    lines = ["# Simulation regime of a movie, written by `jaxmag detect` (docs/detect.md).", f"# movie: {movie_source}"]
    lines += [f"# {name}: {value}, from {origin}" for name, value, origin in regime_rows(regime.config, facts, regime.origin)]
    lines += ["# Edit and rerun: jaxmag detect MOVIE --regime THIS_FILE --out DIR (the file is used as written;",
              "# a flag you give overrides it). Simulate it: jaxmag simulate THIS_FILE --out d.h5"]
    return "\n".join(lines) + "\n" + regime.config.to_toml()


def _regime_section(result: Any) -> list[str]:
    lines = ["## Regime (`regime.toml`)", "",
             "Each value is read from the movie, the `--regime` file, a flag or a default. To rerun with this "
             f"regime as written (after editing it, say): {RERUN}.", "",
             "| | value | from |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {origin} |" for name, value, origin in regime_rows(result.config, result.facts, result.origin)]
    return lines + [""]


def _noise_section(result: Any) -> list[str]:
    """The estimate of every kind that has an estimator (``jaxmag.noise.NOISE_MODELS``), per component."""
    from jaxmag.noise import noise_model

    n = result.noise
    kinds = list(next(iter(n["per_component"].values()))["raw"])
    readings = " / ".join(kinds)
    lines = [
        "## Noise",
        "",
        "The estimator (`jaxmag.noise.estimate_noise_variances`) reads a floor on clean films too; the "
        "calibrated level is the noise that, added to clean films of the regime, gives the movie's reading.",
        "",
        f"| component | estimator on the movie ({readings}) | on clean films of the regime | "
        + " | ".join(f"calibrated {k} {noise_model(k).level_symbol}" for k in kinds) + " |",
        "|---|---|---|" + "---|" * len(kinds),
    ]
    for comp, p in n["per_component"].items():
        raw, floor = (" / ".join(f"{p[part][k]:.3g}" for k in kinds) for part in ("raw", "floor"))
        lines.append(f"| m_{comp} | {raw} | {floor} | " + " | ".join(f"{p[k]:.3g}" for k in kinds) + " |")
    return lines + ["", f"Kind: {n['why']}. Model trained at `{n['trained']}`.", ""]


def _recording_section(result: Any) -> list[str]:
    """A counts movie: the detector and calibration read from it (``jaxmag.learn.counts``), each with its standard error."""
    r = result.noise["recording"]
    se = lambda k: f" ± {r[k + '_se']:.3g}" if r.get(k + "_se") == r.get(k + "_se") and r.get(k + "_se") is not None else ""
    return [
        "## Detector (read from the movie)", "",
        "The counts are modelled as level + scale · s + Poisson–Gaussian noise, s the probe signal in units of Ms; "
        "the scale is read from the thermal fluctuations (a physical standard at the regime's temperature) or, "
        "where they are lost, from the static contrast (`jaxmag.learn.counts`). Standard errors from blocks of frames.", "",
        "| quantity | estimate |", "|---|---|",
        f"| level at s = 0 | {r['level']:.6g}{se('level')} ADU |",
        f"| scale (from {r['scale_from']}) | {r['scale']:.4g}{se('scale')} ADU per unit of m |",
        f"| noise variance at the level | {r['noise_variance']:.4g}{se('noise_variance')} ADU² |",
        f"| gain | {r['gain']:.4g}{se('gain')} ADU/photon |",
        f"| offset, read noise | {r['offset']:.4g} ADU, {r['read_noise']:.4g} ADU |",
        f"| photons per pixel and frame (I0), contrast c | {r['photons_per_pixel']:.4g}, {r['contrast']:.4g} |", "",
        f"Detector fit: {r['detector_note']}", "",
        f"Model trained at `{result.noise['trained']}`.", "",
    ]


def _model_section(result: Any) -> list[str]:
    n, v = result.noise, result.validation
    lines = [
        f"## Model ({result.budget} budget{', cached' if result.cached else ''})",
        "",
        f"Inputs: `{', '.join(result.input_names)}`." + (" Baseline validation Dice of each candidate: " + ", ".join(
            f"`{k}` {s:.3f}" for k, s in v["inputs_scored_by_baseline"].items()) + "." if v["inputs_scored_by_baseline"] else ""),
        "",
        f"Dice on simulated films of this regime at `{n['trained']}` (validation: {v['val_films']} films, "
        f"test: {v['test_films']} other films, {v['test_images']} noisy images):",
        "",
        "| | validation Dice | test Dice |",
        "|---|---|---|",
        f"| U-Net | {v['model']['val_dice']:.3f} | {v['model']['test_dice']:.3f} |",
        f"| baseline (robust z > {v['baseline']['z']:g}, smoothing {v['baseline']['sigma_px']:g} px) | "
        f"{v['baseline']['val_dice']:.3f} | {v['baseline']['test_dice']:.3f} |",
        "",
    ]
    typed = v.get("typed")
    if typed:
        names = list(result.class_names)
        lines += ["Per class on the test films (Dice; rows of the confusion matrices are the true class, columns the "
                  "predicted one, in pixels):", "",
                  "| | " + " | ".join(names) + " | confusion |", "|---|" + "---|" * (len(names) + 1)]
        for who, rec in (("U-Net", typed["model"]), ("typed baseline (sign of the robust z)", typed["baseline"])):
            lines.append(f"| {who} | " + " | ".join(f"{d:.3f}" for d in rec["class_dice"]) + f" | {rec['confusion']} |")
        how = ("the sign of the input map's smoothed robust z (the typed baseline's rule)" if typed.get("typing") == "contrast"
               else "the U-Net's most probable defect class")
        lines += ["", f"The movie's defects are typed by {how}: it typed the validation films better (mean per-class "
                  "validation Dice of the two rules compared).", ""]
    if v["model"]["test_dice"] <= v["baseline"]["test_dice"]:
        lines += ["The U-Net does **not** beat the baseline on this regime: trust `baseline_mask` as much, or "
                  "rerun with a larger `--budget`.", ""]
    return lines


def _confidence_section(result: Any) -> list[str]:
    c = result.confidence
    if not c:
        return []
    lines = ["## Confidence", "",
             f"`probability` is the mean of {c['members']} model(s) (training seeds) over {c['views']} mirror view(s) of "
             "the film; `uncertainty` is their standard deviation per pixel. Calibration on the regime's test films "
             f"({c['test_pixels']} pixels; expected calibration error, {c['bins']} bins):", "",
             "| probabilities | ECE |", "|---|---|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in c["ece_by_curve"].items()]
    temp = (f"A temperature of {c['temperature']:.2f} on the ensemble's logit lowered the validation ECE and is applied."
            if c["temperature"] != 1.0 else "Temperature scaling did not lower the validation ECE: none applied.")
    return lines + ["", temp, "", "![reliability](reliability.png)", ""]


def _defects_section(result: Any) -> list[str]:
    rows = defect_table(result)
    lines = ["", "## Defects (`defects.csv`)", ""]
    if not rows:
        return lines + ["The mask holds no region.", ""]
    lines += ["| id | centroid x (nm) | centroid y (nm) | area (nm²) | type | mean probability | confidence | contrast (robust z) |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['id']} | {r['centroid_x_m'] * 1e9:.1f} | {r['centroid_y_m'] * 1e9:.1f} | {r['area_m2'] * 1e18:.0f} | "
              f"{r['type']} | {r['mean_probability']:.2f} | {r['confidence']:.2f} | {r['contrast']:+.1f} |" for r in rows]
    return lines + [""]


def _movie_section(result: Any) -> list[str]:
    stats, film_stats = result.statistics["movie"], result.statistics["films"]
    lines = [
        "## This movie",
        "",
        f"Defect fraction: U-Net {result.mask.mean():.3f}, baseline {result.baseline_mask.mean():.3f}. "
        "Files: `probability.npy/.tif`, `mask.npy/.tif`, `baseline_mask.npy/.tif`, `overlay.png`.",
        "",
        "![overlay](overlay.png)",
        "",
        "| statistic | movie | simulated films (noisy) |",
        "|---|---|---|",
    ]
    for name, value in stats.items():
        vals = [s[name] for s in film_stats]
        lines.append(f"| {name} | {value:.4g} | {min(vals):.4g} to {max(vals):.4g} |")
    lines += ["", "## Warnings", ""]
    return lines + ([f"- {w}" for w in result.warnings] or ["None: the movie's statistics lie within the simulated regime's."])
