"""The run folder of a training run: what is written there and how it is read back.

A run folder holds ``config.toml`` (the resolved config), ``run.json`` (inputs, train
condition, split, normalisation, config hash, source; ``RUN_FILE``), ``history.json``,
``checkpoints/{best,latest}`` and ``eval_<condition>.{json,png}``; see ``docs/training.md``.
This module owns the JSON files and the evaluation report; the training loop, evaluation,
fine-tuning and studies all go through it, so none of them imports another for file helpers.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxmag.config import Config, config_hash, first_difference
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
    return info


def _run_info(config: Config, source, input_norm: str = "none") -> dict:
    indices = getattr(source, "indices", None)
    return {
        "input_norm": input_norm,  # the UNet's input normalisation (jaxmag.models.unet)
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
        proba = np.asarray(jax.nn.softmax(model(np.asarray(x, np.float32), train=False), axis=-1)[..., 1])
        _plot_examples(run_dir / f"eval_{eval_set.condition}.png", x, y, proba, info["inputs"], eval_set.condition,
                       metrics["dice"])
    return record


def _plot_examples(path: Path, x, y, proba, names, condition: str, dice: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(x)
    fig, axes = plt.subplots(n, 4, figsize=(8, 2.1 * n + 0.4), squeeze=False)
    for i in range(n):
        panels = [(x[i, ..., 0], f"input {names[0]} (norm.)", "viridis"), (y[i], "truth", "gray"),
                  (proba[i], "P(defect)", "magma"), (proba[i] > 0.5, "prediction", "gray")]
        for ax, (img, title, cmap) in zip(axes[i], panels):
            ax.imshow(img, cmap=cmap, interpolation="nearest", **({"vmin": 0, "vmax": 1} if cmap != "viridis" else {}))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle(f"{condition}: test Dice {dice:.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
