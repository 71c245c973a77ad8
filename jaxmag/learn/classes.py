"""Class schemes of the segmentation: what the U-Net's ``K`` logits stand for.

The films carry two groups of defect blobs on purpose (``[defects]``,
``jaxmag.defects.DefectParams``): ``num_a`` blobs whose ``A_ex`` and ``K_u`` are scaled by
``factor_a`` and ``num_b`` blobs scaled by ``factor_b``. Simulated labels ``(N, ny, nx)`` are
blob ids: 0 background, ``1..num_a`` the "a" blobs, ``num_a + 1..`` the "b" blobs
(``jaxmag.simulate.RunSpec``). A scheme turns blob ids into classes:

- ``binary`` (K = 2): background, defect (any blob);
- ``typed`` (K = 3): background, the "a" group, the "b" group; each group is named from its
  factor: below 1 ``"softer"``, above 1 ``"harder"``, 1 ``"neutral"`` (the default
  ``[defects]`` gives ``("background", "softer", "harder")``).

Class 0 is background in every scheme. **Any defect** is one decision for every scheme, so
binary and typed models are compared on the same headline Dice:

- margin ``logsumexp(l_1..l_{K-1}) - l_0`` (for K = 2 exactly ``l_1 - l_0``): the log-odds of
  "some defect" against background; the calibrated threshold (``jaxmag.learn.calibration``)
  is a threshold on it;
- prediction: margin > 0, i.e. ``p(any defect) > p(background)``; for K = 2 this is
  ``argmax == 1`` and is computed that way (bit-identical to the binary code before typed
  classes); for K > 2 it is also what thresholding the any-defect probability at 1/2
  (``jaxmag.learn.predict``) and the training's soft Dice (``jaxmag.learn.recipe``) decide;
- probability ``1 - p(background)``, computed as ``Σ_{k≥1} p_k`` (no cancellation when the
  background is nearly certain; for K = 2 it is ``p_1`` itself).

The type of a detected pixel is the most probable defect class (``typed_prediction``): detect
first, then type, so the class map's background is exactly the any-defect prediction's.

Detector pixels (``jaxmag.recording``): a pixel is a defect where defect cells cover at least
half its area (``jaxmag.recording.pixel_labels``), and its class is the defect class covering
most of it (``pixel_classes``), so the typed pixel labels' any-defect mask equals the binary one.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

BACKGROUND = 0  # class index of the background in every scheme


@dataclasses.dataclass(frozen=True)
class ClassScheme:
    """One way to read the labels: ``name``, the number of classes ``num_classes`` (the U-Net's
    logits) and ``typed`` (whether the defect groups of ``[defects]`` are told apart)."""

    name: str
    num_classes: int
    typed: bool
    description: str

    def __len__(self) -> int:
        return self.num_classes

    def labels(self, blob_labels: Any, num_a: int | None = None) -> Any:
        """Blob ids ``(..., ny, nx)`` -> class indices, uint8 (NumPy in, NumPy out; jax in, jax out)."""
        xp = jnp if isinstance(blob_labels, jax.Array) else np
        ids = xp.asarray(blob_labels)
        if not self.typed:
            return (ids > 0).astype(xp.uint8)
        if num_a is None or int(num_a) < 0:
            raise ValueError(f"classes = {self.name!r} needs num_a (the number of 'a' blobs, [defects] num_a) "
                             f"to tell the groups apart, got {num_a!r}")
        return xp.where(ids > int(num_a), 2, xp.where(ids > 0, 1, 0)).astype(xp.uint8)

    def names(self, defects=None) -> tuple[str, ...]:
        """Class names, background first (``defects``: a ``DefectParams``, for typed schemes)."""
        if not self.typed:
            return ("background", "defect")
        if defects is None:
            raise ValueError(f"classes = {self.name!r}: the class names come from [defects] factor_a and factor_b")
        a, b = factor_name(defects.factor_a), factor_name(defects.factor_b)
        if a == b:  # both groups on one side of the background: keep them apart by group
            a, b = f"{a}_a", f"{b}_b"
        return ("background", a, b)


SCHEMES: dict[str, ClassScheme] = {
    "binary": ClassScheme("binary", 2, False, "background, defect (any blob)"),
    "typed": ClassScheme("typed", 3, True, "background, the [defects] 'a' group, the 'b' group"),
}


def class_scheme(name: str | ClassScheme) -> ClassScheme:
    """The ``SCHEMES`` entry ``name`` (a scheme passes through), or ``ValueError`` naming the known ones."""
    if isinstance(name, ClassScheme):
        return name
    if name not in SCHEMES:
        raise ValueError(f"unknown classes {name!r}: expected one of {', '.join(SCHEMES)} ([model] classes, --classes)")
    return SCHEMES[name]


def factor_name(factor: float) -> str:
    """``"softer"`` for a factor on ``A_ex`` and ``K_u`` below 1, ``"harder"`` above 1, else ``"neutral"``."""
    return "softer" if factor < 1 else "harder" if factor > 1 else "neutral"


def class_labels(labels: Any, scheme: str | ClassScheme = "binary", num_a: int | None = None) -> Any:
    """Blob ids ``(..., ny, nx)`` (0 background) -> class indices of ``scheme``, uint8.

    ``binary``: ``labels > 0``; ``typed``: 1 for ids ``1..num_a``, 2 above (``num_a`` needed)."""
    return class_scheme(scheme).labels(labels, num_a)


def class_names(scheme: str | ClassScheme, defects=None) -> tuple[str, ...]:
    """The names of ``scheme``'s classes, background first; typed names come from ``defects``'
    factors (``factor_name``), e.g. ``("background", "softer", "harder")``."""
    return class_scheme(scheme).names(defects)


def pixel_classes(cell_classes: Any, plan, num_classes: int) -> Any:
    """Cell classes ``(..., ny, nx)`` -> detector-pixel classes ``(..., ny_pix, nx_pix)`` uint8 with
    ``plan.binning`` (a ``jaxmag.recording.RecordingPlan``'s pixel averages ``(W_y, W_x)``).

    A pixel is a defect where defect cells (any class) cover at least half its area, as in
    ``jaxmag.recording.pixel_labels``, and takes the defect class covering most of it (ties: the
    lower class). For ``num_classes = 2`` the result equals ``pixel_labels``."""
    wy, wx = plan.binning
    xp = jnp if isinstance(cell_classes, jax.Array) else np
    wy, wx = xp.asarray(wy, xp.float32), xp.asarray(wx, xp.float32)
    cls = xp.asarray(cell_classes)

    def cover(mask):
        return xp.einsum("Yy,...yx,Xx->...YX", wy, mask.astype(xp.float32), wx)

    defect = cover(cls > 0) >= 0.5 - 1e-6
    if num_classes <= 2:
        return defect.astype(xp.uint8)
    covers = xp.stack([cover(cls == k) for k in range(1, num_classes)], axis=0)
    return xp.where(defect, 1 + xp.argmax(covers, axis=0), 0).astype(xp.uint8)


# -- any defect, from the logits (jnp; inside jitted steps) ------------------------------------


def any_defect_margin(logits: jax.Array) -> jax.Array:
    """``(..., K) -> (...)``: ``logsumexp(l_1..l_{K-1}) - l_0`` float32, the log-odds of any defect
    against background (``l_1 - l_0`` for K = 2)."""
    logits = logits.astype(jnp.float32)
    if logits.shape[-1] == 2:
        return logits[..., 1] - logits[..., 0]
    return jax.nn.logsumexp(logits[..., 1:], axis=-1) - logits[..., 0]


def any_defect_prediction(logits: jax.Array) -> jax.Array:
    """``(..., K) -> (...)`` bool: any defect more probable than background (``argmax == 1`` for K = 2)."""
    if logits.shape[-1] == 2:
        return jnp.argmax(logits, axis=-1) == 1
    return any_defect_margin(logits) > 0


def any_defect_probability(logits: jax.Array) -> jax.Array:
    """``(..., K) -> (...)`` float32: ``1 - p(background) = Σ_{k≥1} p_k`` (``p_1`` for K = 2)."""
    p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    if logits.shape[-1] == 2:
        return p[..., 1]
    return jnp.sum(p[..., 1:], axis=-1)


def typed_prediction(logits: jax.Array) -> jax.Array:
    """``(..., K) -> (...)`` int32 classes: background where ``any_defect_prediction`` is false,
    else the most probable defect class (``argmax`` for K = 2)."""
    if logits.shape[-1] == 2:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    kind = 1 + jnp.argmax(logits[..., 1:], axis=-1)
    return jnp.where(any_defect_prediction(logits), kind, BACKGROUND).astype(jnp.int32)
