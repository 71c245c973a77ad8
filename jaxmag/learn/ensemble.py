"""Test-time augmentation by the film's exact mirrors, and ensembles of models: a mean defect
probability and a per-pixel spread that says where the models disagree.

**The views** (``mirror_views``). An exact symmetry of the film (``jaxmag.symmetry``) moves the
pixels (flip the rows, the columns, or both) and changes the signs of some magnetisation
components; the moved film is another sample of the same law, so a model should find the same
defects in it, moved. On the measure maps ``(ny, nx, C)`` the element does two things:

* the pixel move, on every channel;
* the component's sign on the channels of a measure that is odd in it (``MEASURE_PARITY``):
  the temporal ``mean`` changes sign with the component; the temporal ``std`` and the
  ``latent_entropy`` (the binning of a sign-reversed series is the mirrored binning, so the same
  transition counts up to a relabelling of the states) are even, unchanged. For the entropy this
  holds with ``minmax`` binning, ``quantile`` binning of series without ties, and a ``fixed``
  range symmetric about 0 (the default (-1, 1)); with an asymmetric fixed range the views of an
  entropy channel are not exact and TTA should not be used.

For example on a film along x, the column flip maps (m_x, m_y, m_z) to (m_x, -m_y, -m_z): a view
of ``mean:z`` flips its columns and its sign, ``mean:x`` and ``std:z`` only their columns. The
recorded probe signal ``p = d . m`` (component ``p``, ``jaxmag.recording``) changes as m along
the probe direction d: by the sign s where the element maps d to s d; an element that maps d to
another direction is no symmetry of the recording and gives no view. Elements that reverse time
(``time_reversal=True`` groups) are left out: they are exact only for a stationary film
(``jaxmag.symmetry``). Elements that act alike on the channels give one view. Cyclic shifts of
periodic films are not used: the views here are the mirrors only.

**TTA** (``tta_probability``): each view of the raw maps is predicted, its probability moved back
(every flip is its own inverse; a probability is a scalar map, it has no sign), and the views
are averaged with equal weights. A model that is exactly equivariant gives its plain prediction;
any other gets its group average, which is equivariant.

**Ensembles** (``ensemble_probability``): the members (e.g. runs trained with different seeds)
each give their (TTA) probability; the result is their mean and their standard deviation
(ddof 0, "spread"), the per-pixel uncertainty of ``jaxmag.learn.defect_table``.
``predictive_entropy(p)`` is the binary entropy of a probability, ``mutual_information`` the part
of the mean's entropy that comes from the members' disagreement (Houlsby et al. 2011, BALD).

Layouts: raw maps ``(ny, nx, C)`` channel-last (``jaxmag.channels``), probabilities ``(ny, nx)``
in [0, 1]; a ``predict_fn(raw (ny, nx, C)) -> (ny, nx)`` is e.g.
``lambda r: jaxmag.learn.predict.predict_probability(model, info, r)[0]``. Pure functions, no I/O.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from jaxmag.channels import PROBE_COMPONENT, Channel, as_channels
from jaxmag.symmetry import AXES, FilmSymmetries

PredictFn = Callable[[np.ndarray], np.ndarray]

MEASURE_PARITY = {"mean": -1, "std": 1, "latent_entropy": 1}
"""How each measure map changes when its component's series changes sign: -1 odd (the map
changes sign), +1 even (unchanged). A measure missing here cannot be mirrored."""


@dataclasses.dataclass(frozen=True)
class MirrorView:
    """One symmetry element acting on raw maps ``(ny, nx, C)``: flip the ``rows``, the ``cols``,
    and multiply channel k by ``factors[k]`` (+1 or -1)."""

    rows: bool
    cols: bool
    factors: tuple[float, ...]

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """The maps of the transformed film: ``(ny, nx, C)`` -> ``(ny, nx, C)``."""
        raw = np.asarray(raw)
        if raw.ndim != 3 or raw.shape[-1] != len(self.factors):
            raise ValueError(f"raw maps must be (ny, nx, {len(self.factors)}), got {raw.shape}")
        return self.undo(raw) * np.asarray(self.factors, raw.dtype)

    def undo(self, image: np.ndarray) -> np.ndarray:
        """Move a map ``(ny, nx, ...)`` of the transformed film back onto the original's pixels
        (a flip is its own inverse)."""
        if self.rows:
            image = np.flip(image, 0)
        if self.cols:
            image = np.flip(image, 1)
        return image


IDENTITY_SIGNS = (1.0, 1.0, 1.0)


def _component_sign(component: str, signs: tuple[float, float, float], probe_direction) -> float | None:
    """The factor of component ``component`` under the sign change ``signs`` of (m_x, m_y, m_z);
    None when the element does not map the probe signal to +/- itself."""
    if component != PROBE_COMPONENT:
        return float(signs[AXES.index(component)])
    d = np.asarray(probe_direction, np.float64)
    moved = np.asarray(signs) * d
    for s in (1.0, -1.0):
        if np.allclose(moved, s * d):
            return s
    return None


def channel_factors(channels: Sequence[Channel | str], signs: tuple[float, float, float],
                    probe_direction=None) -> tuple[float, ...] | None:
    """The factor of each channel under the component sign change ``signs`` (``MEASURE_PARITY``);
    None where a probe channel is not mapped to +/- itself."""
    out = []
    for measure, component in as_channels(channels):
        if measure not in MEASURE_PARITY:
            raise ValueError(f"the measure {measure!r} has no known parity under a sign change of m; "
                             f"test-time mirrors know {', '.join(MEASURE_PARITY)}: predict without TTA")
        s = _component_sign(component, signs, probe_direction)
        if s is None:
            return None
        out.append(s if MEASURE_PARITY[measure] < 0 else 1.0)
    return tuple(out)


def mirror_views(symmetries: FilmSymmetries, channels: Sequence[Channel | str], *,
                 probe_direction=None) -> tuple[MirrorView, ...]:
    """The distinct views of raw maps with ``channels`` (``"mean:x"`` names or ``Channel``s) under the
    elements of ``symmetries`` (``jaxmag.symmetry.film_symmetries(...)``) that keep time's
    direction; the identity first. ``probe_direction``: the unit 3-vector of the instrument's
    probe, needed when a channel is the recorded signal ``p``."""
    channels = as_channels(channels)
    if probe_direction is None and any(c == PROBE_COMPONENT for _, c in channels):
        raise ValueError("a channel of the recorded probe signal (p) needs the probe direction to be mirrored: "
                         "pass probe_direction (the [instrument] probe), or predict without TTA")
    if probe_direction is not None and np.shape(probe_direction) != (3,):
        raise ValueError(f"probe_direction must be a 3-vector, got {probe_direction!r}")
    views: list[MirrorView] = []
    for rows, cols, signs, reverses_time in symmetries.elements():
        if reverses_time:
            continue
        factors = channel_factors(channels, signs, probe_direction)
        if factors is None:
            continue
        view = MirrorView(bool(rows), bool(cols), factors)
        if view not in views:
            views.append(view)
    return tuple(views)


def identity_view(num_channels: int) -> MirrorView:
    """The view that changes nothing, for ``num_channels`` channels."""
    return MirrorView(False, False, (1.0,) * int(num_channels))


def _predict(predict_fn: PredictFn, x: np.ndarray) -> np.ndarray:
    prob = np.asarray(predict_fn(x), np.float64)
    if prob.shape != x.shape[:2]:
        raise ValueError(f"the predictor returned a map of shape {prob.shape} for maps {x.shape}: "
                         f"expected a probability {x.shape[:2]}")
    return prob


def tta_members(predict_fn: PredictFn, raw, views: Sequence[MirrorView]) -> np.ndarray:
    """``(V, ny, nx)``: the probability of each view of ``raw (ny, nx, C)``, moved back onto the
    original pixels."""
    raw = np.asarray(raw)
    if not views:
        raise ValueError("test-time augmentation needs at least one view (the identity)")
    return np.stack([v.undo(_predict(predict_fn, v.apply(raw))) for v in views])


def tta_probability(predict_fn: PredictFn, raw, views: Sequence[MirrorView]) -> np.ndarray:
    """The defect probability ``(ny, nx)`` averaged over the ``views`` (``mirror_views``) of ``raw (ny, nx, C)``."""
    return tta_members(predict_fn, raw, views).mean(axis=0)


def ensemble_members(predict_fns: Sequence[PredictFn], raw, views: Sequence[MirrorView] | None = None) -> np.ndarray:
    """``(M, ny, nx)``: each member's probability of ``raw (ny, nx, C)``, averaged over ``views``
    (``None``: no test-time augmentation)."""
    if not predict_fns:
        raise ValueError("an ensemble needs at least one model")
    raw = np.asarray(raw)
    if raw.ndim != 3:
        raise ValueError(f"raw maps must be (ny, nx, C), got {raw.shape}")
    views = (identity_view(raw.shape[-1]),) if views is None else tuple(views)
    return np.stack([tta_probability(fn, raw, views) for fn in predict_fns])


def ensemble_probability(predict_fns: Sequence[PredictFn], raw,
                         views: Sequence[MirrorView] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (ny, nx), spread (ny, nx))``: the members' mean probability and their standard
    deviation (ddof 0; 0 for a single member), with test-time augmentation over ``views`` (``None``:
    none)."""
    members = ensemble_members(predict_fns, raw, views)
    return members.mean(axis=0), members.std(axis=0)


def predictive_entropy(p, eps: float = 1e-12) -> np.ndarray:
    """Binary entropy ``-(p ln p + (1 - p) ln(1 - p))`` in nats (0 at p in {0, 1}, ln 2 at 0.5)."""
    p = np.clip(np.asarray(p, np.float64), eps, 1.0 - eps)
    return -(p * np.log(p) + (1.0 - p) * np.log1p(-p))


def mutual_information(members) -> np.ndarray:
    """``H(mean_m p_m) - mean_m H(p_m)`` (nats) of member probabilities ``(M, ny, nx)``: the entropy
    that comes from the members' disagreement, 0 where they agree."""
    members = np.asarray(members, np.float64)
    return np.maximum(predictive_entropy(members.mean(axis=0)) - predictive_entropy(members).mean(axis=0), 0.0)
