"""The decision threshold of a trained U-Net, chosen on the validation split.

A pixel is called a defect when the logit margin ``l1 - l0`` exceeds a threshold ``t``;
``t = 0`` is the argmax of the logits. A model with ``K > 2`` classes (typed defects,
``jaxmag.learn.classes``) is thresholded on its any-defect margin
``logsumexp(l1..l_{K-1}) - l0`` (``any_defect_margin``; ``l1 - l0`` for ``K = 2``). A model
trained on weak, noisy signal often ranks pixels well but is under-confident, so at ``t = 0``
it claims too few defect pixels (the predicted fraction falls far below the true one, down to
the collapse onto "no defect"). The recipes with ``calibrate = True`` (``jaxmag.learn.recipe``)
therefore pick, after training, the ``t`` of ``THRESHOLD_GRID`` that maximises the aggregated
Dice of the best checkpoint on the **validation** split, the same split that chose the
checkpoint. The test split is never seen.

The threshold is stored beside the checkpoints in ``decision.json`` (``{"best_epoch",
"decision_bias", "val_dice", "val_dice_argmax"}``) and applied when the model is loaded, by
moving the head's biases by ``+t/2`` (background) and ``-t/2`` (every defect class;
``shift_decision``): that moves the any-defect margin by exactly ``-t`` and leaves the ranking
of the defect classes alone, so the any-defect decision and the softmax of the shifted logits
carry the threshold to every user of the model (evaluation, the study, ``predict``,
``detect``) without a second code path, and the saved checkpoints are never rewritten.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmag.learn import sharding
from jaxmag.learn.classes import any_defect_margin
from jaxmag.learn.metrics import confusion_counts, dice_from_counts, segmentation_sums, summarize

DECISION_FILE = "decision.json"
THRESHOLD_GRID = np.round(np.linspace(-4.0, 4.0, 81), 6)
"""Logit-margin thresholds tried (step 0.1): defect probabilities from 0.018 to 0.982."""


def threshold_sums(logits: jax.Array, labels: jax.Array, mask: jax.Array, thresholds: jax.Array) -> jax.Array:
    """Summed ``(TP, FP, FN)`` of any defect for each threshold on the any-defect margin:
    ``(len(thresholds), 3)``.

    Additive over batches and devices, like ``metrics.segmentation_sums``; ``mask`` drops padding.
    """
    margin = any_defect_margin(logits)
    mask = mask.astype(jnp.float32)

    def counts(t):
        tp, fp, fn = confusion_counts(margin > t, labels)
        return jnp.stack([jnp.sum(tp * mask), jnp.sum(fp * mask), jnp.sum(fn * mask)])

    return jax.lax.map(counts, thresholds)


@functools.lru_cache(maxsize=16)
def _compiled_validation_sums(graphdef, mesh) -> Callable:
    bsh, rep = sharding.batch_sharding(mesh), sharding.replicated(mesh)

    def step(params, x, y, m, thresholds):
        logits = nnx.merge(graphdef, params)(x, train=False)  # one forward pass for both sums
        return segmentation_sums(logits, y, m), threshold_sums(logits, y, m, thresholds)

    return jax.jit(step, in_shardings=(rep, bsh, bsh, bsh, rep), out_shardings=rep)


def validate(graphdef, params, val_set, batch_size: int, mesh) -> tuple[dict, dict]:
    """``(metrics, decision)`` of ``params`` on ``val_set`` in one pass: the argmax metrics of
    ``loop.evaluate_params`` and ``choose_decision_bias``'s threshold."""
    step = _compiled_validation_sums(graphdef, mesh)
    grid = jax.device_put(jnp.asarray(THRESHOLD_GRID, jnp.float32), sharding.replicated(mesh))
    total = None
    for x, y, m in val_set.batches(batch_size, mesh):
        sums = step(params, x, y, m, grid)
        total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    if total is None:
        raise ValueError("the validation set is empty: no threshold can be chosen")
    metric_sums, threshold_counts = jax.device_get(total)
    return summarize(metric_sums), _best_threshold(threshold_counts)


def choose_decision_bias(graphdef, params, val_set, batch_size: int, mesh) -> dict:
    """The grid threshold with the best aggregated validation Dice (ties: the one nearest 0).

    Returns ``{"decision_bias", "val_dice", "val_dice_argmax"}`` (the last at ``t = 0``).
    """
    return validate(graphdef, params, val_set, batch_size, mesh)[1]


def _best_threshold(counts) -> dict:
    """The best row of summed ``(TP, FP, FN)`` per ``THRESHOLD_GRID`` entry, as ``choose_decision_bias`` returns it."""
    counts = np.asarray(counts, np.float64)
    dice = np.array([dice_from_counts(*c) for c in counts])
    best = max(range(len(dice)), key=lambda i: (dice[i], -abs(THRESHOLD_GRID[i])))
    zero = int(np.argmin(np.abs(THRESHOLD_GRID)))
    return {"decision_bias": float(THRESHOLD_GRID[best]), "val_dice": float(dice[best]),
            "val_dice_argmax": float(dice[zero])}


def shift_decision(model: nnx.Module, decision_bias: float) -> nnx.Module:
    """``model`` whose argmax calls a defect where the original margin exceeds ``decision_bias``.

    Moves the head's biases (background, every defect class) by (+t/2, −t/2, ...), in place, and
    returns the model (for ``K > 2`` the margin is the any-defect one, module docstring).
    """
    if decision_bias:
        bias = model.head.bias
        step = jnp.asarray([0.5] + [-0.5] * (bias[...].shape[-1] - 1), bias[...].dtype)
        bias[...] = bias[...] + step * decision_bias
    return model


def read_decision(run_dir: str | Path, best_epoch: int | None = None) -> dict | None:
    """``decision.json`` of a run, or None when the run has none (or one for another best epoch)."""
    path = Path(run_dir) / DECISION_FILE
    if not path.is_file():
        return None
    try:
        decision = json.loads(path.read_text())
        float(decision["decision_bias"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a decision record ({exc}); delete it and rerun the training with --resume") from None
    if best_epoch is not None and decision.get("best_epoch") != best_epoch:
        return None
    return decision
