"""Segmentation metrics, pure jnp functions that run on device inside the jitted steps.

Shapes: ``logits (B, ny, nx, K)`` float (channel 0 background; ``K = 2``: channel 1 defect;
``K = 3``: the typed classes of ``jaxmag.learn.classes``), ``labels (B, ny, nx)`` int (class
indices: 0 background), ``mask (B,)`` float (1 for real images, 0 for padding added to make the
last evaluation batch full).

The headline Dice is that of **any defect**, whatever ``K``, so binary and typed models compare
on one number; with ``P`` the predicted defect pixels (``jaxmag.learn.classes.any_defect_prediction``:
``argmax(logits) == 1`` for ``K = 2``) and ``T`` the true ones (``labels > 0``):

- **per image**: ``2|P∩T| / (|P| + |T|)``; if both are empty the image is scored 1 (nothing to
  find, nothing claimed), if exactly one is empty it is scored 0;
- **aggregated** (the headline ``dice``): pixel counts summed over the whole set before
  dividing, ``2ΣTP / (2ΣTP + ΣFP + ΣFN)``; it is 1 if the set has no true and no predicted
  defect pixel at all. Large defects weigh more than small ones, and images without defects
  contribute only their false positives.

For ``K > 2`` the sums add the confusion matrix ``confusion[i, j]`` (pixels of true class ``i``
predicted as class ``j``, ``jaxmag.learn.classes.typed_prediction``) and ``summarize`` the
per-class Dice ``2 C_kk / (Σ_j C_kj + Σ_i C_ik)`` (1 when the class is neither true nor
predicted anywhere); binary models report neither, and their numbers are unchanged.

The ``*_sums`` functions return additive sums so that batches (and devices) combine exactly;
``dice(pred, truth)`` is the aggregated Dice of two host masks (NumPy), for maps outside a run.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.learn.classes import any_defect_prediction, typed_prediction


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Pixel-wise cross-entropy per image: ``(B, ny, nx, K), (B, ny, nx) -> (B,)`` mean over pixels
    (softmax over the ``K`` classes; labels are class indices)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return -jnp.mean(picked, axis=(1, 2))


def confusion_counts(pred: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-image (TP, FP, FN) pixel counts of the defect class: ``(B, ny, nx)`` bool/int -> 3 x ``(B,)`` float32."""
    p = pred.astype(bool)
    t = labels.astype(bool)
    tp = jnp.sum(p & t, axis=(1, 2), dtype=jnp.float32)
    fp = jnp.sum(p & ~t, axis=(1, 2), dtype=jnp.float32)
    fn = jnp.sum(~p & t, axis=(1, 2), dtype=jnp.float32)
    return tp, fp, fn


def dice_per_image(pred: jax.Array, labels: jax.Array) -> jax.Array:
    """Defect-class Dice of each image ``(B,)``: both empty -> 1, exactly one empty -> 0."""
    tp, fp, fn = confusion_counts(pred, labels)
    denom = 2 * tp + fp + fn
    return jnp.where(denom > 0, 2 * tp / jnp.maximum(denom, 1.0), 1.0)


def dice_from_counts(tp: float, fp: float, fn: float) -> float:
    """Aggregated Dice ``2TP / (2TP + FP + FN)`` from summed counts (1 when all are zero)."""
    denom = 2 * tp + fp + fn
    return float(2 * tp / denom) if denom > 0 else 1.0


def dice(pred, truth) -> float:
    """Aggregated Dice of two masks of any shape (host arrays, e.g. a mask against ``labels.npy``):
    pixel counts summed over every image, then ``dice_from_counts``."""
    p, t = np.asarray(pred, bool), np.asarray(truth) > 0
    return dice_from_counts(int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum()))


def segmentation_sums(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """Additive metric sums over the real images of a batch (scalars, float32).

    Keys: ``loss_sum`` (sum of per-image cross-entropy), ``dice_image_sum`` (sum of per-image
    any-defect Dice) and ``dice_image_sq_sum`` (of its squares: the spread over images), ``tp``, ``fp``, ``fn`` (any-defect pixel counts), ``pred_pixels`` and
    ``count`` (images); for ``K > 2`` also ``confusion`` ``(K, K)`` (``class_confusion``).
    """
    mask = mask.astype(jnp.float32)
    pred = any_defect_prediction(logits)
    tp, fp, fn = confusion_counts(pred, labels)
    per_image = dice_per_image(pred, labels)
    extra = {}
    if logits.shape[-1] > 2:
        extra["confusion"] = class_confusion(typed_prediction(logits), labels, mask, logits.shape[-1])
    return {
        "loss_sum": jnp.sum(cross_entropy(logits, labels) * mask),
        "dice_image_sum": jnp.sum(per_image * mask),
        "dice_image_sq_sum": jnp.sum(per_image**2 * mask),
        "tp": jnp.sum(tp * mask),
        "fp": jnp.sum(fp * mask),
        "fn": jnp.sum(fn * mask),
        "pred_pixels": jnp.sum((tp + fp) * mask),
        "count": jnp.sum(mask),
        **extra,
    }


def class_confusion(pred: jax.Array, labels: jax.Array, mask: jax.Array, num_classes: int) -> jax.Array:
    """``(K, K)`` float32 pixel counts over the real images: row = true class, column = predicted."""
    t = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    p = jax.nn.one_hot(pred, num_classes, dtype=jnp.float32)
    return jnp.einsum("bhwi,bhwj,b->ij", t, p, mask.astype(jnp.float32))


def class_dice(confusion) -> list[float]:
    """Per-class Dice ``2 C_kk / (Σ_j C_kj + Σ_i C_ik)`` of a ``(K, K)`` confusion matrix (1 for a
    class that is neither true nor predicted anywhere)."""
    c = np.asarray(confusion, np.float64)
    diag = np.diag(c)
    return [dice_from_counts(diag[k], c[:, k].sum() - diag[k], c[k].sum() - diag[k]) for k in range(c.shape[0])]


def summarize(sums: dict[str, float]) -> dict[str, float]:
    """Turn accumulated ``segmentation_sums`` into reported metrics.

    Returns ``dice`` (aggregated), ``dice_per_image`` (mean of per-image Dice) and
    ``dice_per_image_se`` (its standard error over the images, where the sums hold the squares), ``loss``
    (mean cross-entropy), ``tp``/``fp``/``fn`` and ``num_images``; with a ``confusion`` sum
    (``K > 2``) also ``class_dice`` (per class, background first) and ``confusion`` (``K x K``
    integer pixel counts, rows true, columns predicted).
    """
    n = float(sums["count"])
    if n <= 0:
        raise ValueError("cannot summarise metrics over an empty set")
    extra = {}
    if "confusion" in sums:
        confusion = np.rint(np.asarray(sums["confusion"], np.float64)).astype(np.int64)
        extra = {"class_dice": class_dice(confusion), "confusion": confusion.tolist()}
    if "dice_image_sq_sum" in sums:
        mean = float(sums["dice_image_sum"]) / n
        var = max(0.0, float(sums["dice_image_sq_sum"]) / n - mean**2) * n / max(n - 1.0, 1.0)
        extra["dice_per_image_se"] = (var / n) ** 0.5
    return {
        "dice": dice_from_counts(float(sums["tp"]), float(sums["fp"]), float(sums["fn"])),
        "dice_per_image": float(sums["dice_image_sum"]) / n,
        "loss": float(sums["loss_sum"]) / n,
        "tp": int(sums["tp"]),
        "fp": int(sums["fp"]),
        "fn": int(sums["fn"]),
        "num_images": int(n),
        **extra,
    }
