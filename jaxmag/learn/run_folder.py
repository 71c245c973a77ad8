"""The run folder of a training run: what is written there and how it is read back.

A run folder holds ``config.toml`` (the resolved config), ``run.json`` (inputs, train
condition, split, normalisation, config hash, source; ``RUN_FILE``), ``history.json``,
``checkpoints/{best,latest}`` and ``eval_<condition>.{json,png}``; see ``docs/training.md``.
This module owns the JSON files and the evaluation report (``plot_eval_examples``: the input in its
units, the probability, prediction against truth, with ``jaxmag.figures``' colour bars and scale
bars); the training loop, evaluation, fine-tuning and studies all go through it, so none of them
imports another for file helpers.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxmag.config import Config, config_hash, first_difference, stored_config
from jaxmag.io.atomic import atomic_write
from jaxmag.learn.recipe import model_dropout

RUN_FILE = "run.json"
HISTORY_FILE = "history.json"


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file + rename), from process 0 only."""
    if jax.process_index() != 0:
        return
    with atomic_write(path) as f:
        f.write(json.dumps(data, indent=1) + "\n")


def read_run_info(run_dir: str | Path) -> dict:
    """The ``run.json`` of a run folder (``FileNotFoundError`` if it is not a run)."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{Path(run_dir)} is not a training run (no {RUN_FILE})")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is corrupt: {exc}") from None
    info.setdefault("input_norm", "none")  # runs from before the option had none
    info.setdefault("head", "joint")  # runs from before the hierarchical head had the joint one
    return info


def _run_info(config: Config, source, input_norm: str = "none", head: str = "joint") -> dict:
    indices = getattr(source, "indices", None)
    return {
        "input_norm": input_norm,  # the UNet's input normalisation (jaxmag.models.unet)
        "head": head,  # the UNet's head: joint or hierarchical (jaxmag.models.unet.HEADS)
        "inputs": list(source.input_names),
        "train_condition": source.train_condition,
        "config_hash": config_hash(config),
        # the dropout the model trains with: the recipe's where it overrides [model] dropout
        "model": {"in_channels": len(source.input_names), **config.to_dict()["model"], "dropout": model_dropout(config)},
        "compute_dtype": config.training.compute_dtype,
        "norm_stats": source.norm_stats,
        "split": None if indices is None else {k: [int(i) for i in v] for k, v in indices.items()},
        "source": source.describe(),
    }


def _config_change(run_dir: Path, config: Config | None) -> str | None:
    """Which config key changed since the run folder's ``config.toml`` was written (None if unknown)."""
    path = run_dir / "config.toml"
    if config is None or not path.is_file():
        return None
    try:
        stored = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    found = first_difference(stored, tomllib.loads(config.to_toml()))
    return None if found is None else f"{found[0]}: {found[1]!r} in the run folder, {found[2]!r} now"


def _check_resumable(stored: dict, fresh: dict, run_dir: Path, config: Config | None = None) -> None:
    if stored.get("config_hash") != fresh.get("config_hash"):
        change = _config_change(run_dir, config)
        if change:
            raise ValueError(f"cannot resume {run_dir}: its config differs from this invocation ({change}); "
                             "use a new --out or restore the old value")
    for key, what in (
        ("config_hash", "config"),
        ("inputs", "inputs"),
        ("train_condition", "training condition"),
        ("split", "split"),
        ("norm_stats", "normalisation statistics"),
        ("input_norm", "input normalisation"),
        ("head", "U-Net head"),
        ("model", "model (with the recipe's dropout)"),
    ):
        if stored.get(key) != fresh.get(key):
            raise ValueError(
                f"cannot resume {run_dir}: its {what} differs from this invocation "
                f"({stored.get(key)!r:.80} vs {fresh.get(key)!r:.80}); use a new --out"
            )
    a, b = stored.get("source", {}), fresh.get("source", {})
    if a.get("labels_sha256") != b.get("labels_sha256"):
        raise ValueError(f"cannot resume {run_dir}: the measures file's labels differ from the run's")


def save_eval_report(run_dir: str | Path, eval_set, metrics: dict, model, extra: dict | None = None,
                     num_examples: int = 4) -> dict:
    """Write ``eval_<condition>.json`` and ``eval_<condition>.png`` into the run folder; returns the record."""
    run_dir = Path(run_dir)
    record = {"condition": eval_set.condition, **metrics, **(extra or {})}
    if eval_set.indices is not None:
        record["test_indices"] = [int(i) for i in eval_set.indices]
    x, y = eval_set.examples(num_examples)
    if jax.process_index() == 0:
        info = read_run_info(run_dir)
        record.update(inputs=info["inputs"], train_condition=info["train_condition"], config_hash=info["config_hash"])
        _write_json(run_dir / f"eval_{eval_set.condition}.json", record)
        # a handful of example images: one eager forward pass, dropout off
        from jaxmag.learn.classes import any_defect_probability

        proba = np.asarray(any_defect_probability(model(np.asarray(x, np.float32), train=False)))
        config = _run_config(run_dir)
        plot_eval_examples(run_dir / f"eval_{eval_set.condition}.png", _raw_inputs(x, info), y, proba,
                           _input_label(info, config), None if config is None else float(config.grid.cell_size_m[0]),
                           condition=eval_set.condition, train_condition=info["train_condition"],
                           dice=metrics["dice"])
    return record


def _raw_inputs(x, info: dict) -> np.ndarray:
    """The first input channel in the measure's own units: the model sees it normalised with the
    run's clean statistics (``jaxmag.learn.normalization``), a reader wants what was measured."""
    first = np.asarray(x, np.float32)[..., 0]
    stats = info.get("norm_stats")
    if not stats:
        return first
    return first * np.float32(stats["std"][0]) + np.float32(stats["mean"][0])


def _run_config(run_dir: Path) -> Config | None:
    """The run folder's ``config.toml`` (the resolved config it was trained with; its grid gives the
    cell size, the pixel of the maps), or None if unreadable: the figure then goes without scale bar."""
    path = run_dir / "config.toml"
    try:
        return stored_config(path.read_text(), source=str(path))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _input_label(info: dict, config: Config | None) -> str:
    """The colour-bar label of the first input (``jaxmag.figures.channel_label``): quantity and unit."""
    from jaxmag import figures

    label = figures.channel_label(info["inputs"][0],
                                  normalized_entropy=bool(config is not None and config.measures.normalize))
    return label if info.get("norm_stats") else f"{label}, normalised"


def plot_eval_examples(path: Path, raw, truth, proba, input_label: str, cell_size_m: float | None, *,
                       condition: str, train_condition: str, dice: float) -> Path:
    """``eval_<condition>.png``: per test image (rows), the first input map in its units, the
    defect probability with the true defects outlined, and the prediction (probability > 0.5)
    against the truth; colour bars with quantity and unit, a nanometre scale bar on every map
    (none when ``cell_size_m`` is unknown), fonts of at least 9 pt (``jaxmag.figures``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxmag import figures
    from jaxmag.noise import condition_label

    n, ny, nx = np.shape(raw)
    width = figures.map_inches(nx)
    # maps are narrower than their column (colour bar); a wide film's row still fits its colour-bar label
    row_inches = max(0.8 * width * ny / nx, 2.8) + 0.15
    with matplotlib.rc_context(figures.style()):
        fig, axes = plt.subplots(n, 3, figsize=(width * 3, row_inches * n + 1.2), squeeze=False,
                                 layout="constrained")
        fig.get_layout_engine().set(w_pad=0.1)
        for i in range(n):
            _eval_row(fig, axes[i], raw[i], np.asarray(truth[i]) > 0, proba[i], input_label, cell_size_m,
                      titles=i == 0)
        fig.suptitle(f"test images at {condition_label(condition)}: Dice {dice:.3f} over the test set "
                     f"(U-Net trained on {condition_label(train_condition)})")
        figures.add_comparison_key(axes[-1, 2])  # under the last comparison map
        if cell_size_m is None:
            fig.supxlabel("no scale bar: the run folder has no readable config.toml (cell size unknown)")
        fig.savefig(path, dpi=figures.DPI)
        plt.close(fig)
    return path


def _eval_row(fig, axes, image, truth, proba, input_label: str, cell_size_m: float | None, *, titles: bool) -> None:
    """One test image: input map, probability (truth outlined), prediction against truth."""
    from jaxmag import figures

    ax_in, ax_p, ax_cmp = axes
    ny, nx = image.shape
    shown = ax_in.imshow(image, cmap="viridis", interpolation="nearest")
    figures.add_colour_bar(fig, shown, ax_in, input_label)
    shown = ax_p.imshow(proba, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    if truth.any() and not truth.all():
        ax_p.contour(truth.astype(float), levels=[0.5], colors="#56B4E9", linewidths=1.5)
    figures.add_colour_bar(fig, shown, ax_p, figures.PROBABILITY_LABEL)
    ax_cmp.imshow(figures.comparison_rgb(proba > 0.5, truth), interpolation="nearest")
    if titles:
        ax_in.set_title("input map")
        ax_p.set_title("U-Net probability\n(true defects outlined)")
        ax_cmp.set_title("prediction (> 0.5) vs truth")
    for ax in axes:
        figures.strip_ticks(ax)
        if cell_size_m is not None:
            figures.add_scale_bar(ax, cell_size_m, nx, ny)
