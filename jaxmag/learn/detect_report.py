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

``regime.toml`` is written by ``detect`` itself as soon as the regime is known. Every file goes
through ``jaxmag.io.atomic``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from jaxmag.io.atomic import atomic_write, write_text
from jaxmag.learn.predict import write_maps

DETECT_FILE = "detect.json"
REGIME_FILE = "regime.toml"
OUTPUTS = ("probability.npy", "probability.tif", "mask.npy", "mask.tif", "baseline_mask.npy", "baseline_mask.tif",
           "overlay.png", "report.md", DETECT_FILE, REGIME_FILE)


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
    }
    write_maps(out, {"probability": result.probability.astype(np.float32), "mask": result.mask.astype(np.uint8),
                     "baseline_mask": result.baseline_mask.astype(np.uint8)})
    with atomic_write(files["overlay"], "wb") as f:
        plot_overlay(f, result)
    write_text(files["json"], json.dumps(detection_record(result), indent=1, default=float) + "\n")
    write_text(files["report"], report_markdown(result))
    return files


def detection_record(result: Any) -> dict:
    """The JSON-able record of ``detect.json``."""
    return {
        "movie": result.movie,
        "facts": result.facts.to_dict(),
        "budget": result.budget,
        "inputs": list(result.input_names),
        "noise": result.noise,
        "validation": result.validation,
        "defect_fraction": float(result.mask.mean()),
        "baseline_defect_fraction": float(result.baseline_mask.mean()),
        "threshold": result.threshold,
        "statistics": result.statistics,
        "warnings": list(result.warnings),
        "run_dir": str(result.run_dir),
        "cached": result.cached,
        "seconds": result.seconds,
    }


def plot_overlay(path, result: Any) -> None:
    """Three panels at ~8 screen pixels per cell: the input map with the U-Net's mask outlined, the
    probability, the input map with the baseline's mask outlined; colour bars on each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = result.inputs[..., 0]
    ny, nx = img.shape
    size = max(3.5, min(7.0, nx / 12))
    fig, axes = plt.subplots(1, 3, figsize=(3 * size + 1.5, size * ny / nx + 0.6), constrained_layout=True)
    lo, hi = np.percentile(img, [1, 99])
    name = result.input_names[0]
    panels = (
        (img, "gray", (lo, hi), result.mask, "tab:red", f"{name} + U-Net mask ({result.mask.mean():.1%})"),
        (result.probability, "magma", (0.0, 1.0), None, None, "defect probability"),
        (img, "gray", (lo, hi), result.baseline_mask, "tab:cyan", f"{name} + baseline mask ({result.baseline_mask.mean():.1%})"),
    )
    for ax, (data, cmap, (vmin, vmax), mask, colour, title) in zip(axes, panels):
        im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if mask is not None and mask.any() and not mask.all():
            ax.contour(mask.astype(float), levels=[0.5], colors=colour, linewidths=1.8)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.85)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


# -- report.md ----------------------------------------------------------------------------------

def report_markdown(result: Any) -> str:
    """``report.md``: regime, noise, model against baseline, the movie and its warnings, wall time."""
    f = result.facts
    lines = ["# jaxmag detect", "",
             f"Movie: `{result.movie}`: {f.num_frames} frames of {f.ny} x {f.nx} pixels, components {', '.join(f.components)}.",
             ""]
    lines += _regime_section(result) + _noise_section(result) + _model_section(result) + _movie_section(result)
    s = result.seconds
    lines += ["", f"Wall time: {s.get('total', 0):.0f} s (simulate {s.get('simulate', 0):.0f} s, choose inputs "
              f"{s.get('inputs', 0):.0f} s, train {s.get('train', 0):.0f} s{' (cached model)' if result.cached else ''}, "
              f"predict {s.get('predict', 0):.0f} s).", ""]
    return "\n".join(lines)


def _regime_section(result: Any) -> list[str]:
    f, c = result.facts, result.config
    o = f.origin
    return [
        "## Regime (`regime.toml`)",
        "",
        "| | value | from |",
        "|---|---|---|",
        f"| grid | {f.ny} x {f.nx} cells, one layer | {o['grid']} |",
        f"| cell size | {f.cell_size_m * 1e9:.3g} nm | {o['cell_size_m']} |",
        f"| frame interval | {f.frame_interval_s * 1e12:.4g} ps, {f.num_frames} frames | {o['frame_interval_s']} |",
        f"| boundary | {f.boundary} | {o['boundary']}{': ' + f.boundary_evidence if f.boundary_evidence else ''} |",
        f"| temperature | {c.material.temperature:g} K | --temperature |",
        f"| material | Ms {c.material.Ms:g} A/m, A_ex {c.material.A_ex:g} J/m, K_u {c.material.K_u:g} J/m³, alpha {c.material.alpha:g} | --material |",
        f"| defects | {c.defects.num_a} x {c.defects.factor_a:g} and {c.defects.num_b} x {c.defects.factor_b:g} (A_ex, K_u), "
        f"{c.defects.size_min}-{c.defects.size_max} cells each | the paper's areas at this cell size |",
        f"| time step | {c.simulation.dt * 1e15:.4g} fs, burn-in {c.simulation.burn_in_s * 1e12:.4g} ps | stability at this cell size |",
        "",
    ]


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
    if v["model"]["test_dice"] <= v["baseline"]["test_dice"]:
        lines += ["The U-Net does **not** beat the baseline on this regime: trust `baseline_mask` as much, or "
                  "rerun with a larger `--budget`.", ""]
    return lines


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
