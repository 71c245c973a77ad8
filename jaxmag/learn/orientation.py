"""What of ``jaxmag detect`` follows the film's orientation (its easy axis): the open-edge test,
the candidate inputs and the latent-entropy bins.

Contract
--------
``guess_boundary(movies, easy_axis) -> ("open" | "periodic", evidence)``: open edges read off the
movie, with the signature of the film's orientation (in-plane: the drop of the easy-axis
component's mean at the edges normal to it; perpendicular or tilted: the excess temporal std of
a transverse component in the outermost cells, ``edge_std_ratio``).

``candidate_inputs(components, easy_axis) -> [names]``: the inputs ``detect`` scores with the
baseline. An in-plane film along x keeps permalloy's ``CANDIDATES``; any other film every measure
of every component that can carry contrast (``jaxmag.symmetry``: a component that an element of
the film's group reverses at fixed pixels has zero mean there).

``film_bins(m, components, easy_axis)``, ``calibrated_measures(measures, m, ...)``,
``uncalibrated_bins(measures)``: the latent-entropy ranges of a regime from its own clean films
(the 0.1-99.9 % rule that calibrated permalloy's, docs/calibration.md), symmetric about 0 for a
component the film's group reverses. A regime of another material than permalloy leaves its
ranges empty (``uncalibrated_bins``) and ``detect.calibrate_bins`` fills them.

Measured numbers: docs/detect.md ("A perpendicular film").
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

from jaxmag.io.movie import Movie
from jaxmag.symmetry import film_symmetries

X_AXIS = (1.0, 0.0, 0.0)  # permalloy's easy axis, the default


def _unit(easy_axis: Sequence[float]) -> np.ndarray:
    u = np.asarray(easy_axis, np.float64)
    return u / np.linalg.norm(u)


# -- the open-edge test ---------------------------------------------------------------------------

EDGE_STD_OPEN = 1.035  # edge_std_ratio above this: open edges of a perpendicular or tilted film


def guess_boundary(movies: Mapping[str, Movie], easy_axis: Sequence[float] = X_AXIS) -> tuple[str, str]:
    """``("open" | "periodic", evidence)`` from the movie itself, for a film along ``easy_axis``.

    A periodic film has no edges: its outer cells look like the inner ones. Open edges show
    differently by orientation:

    * **in-plane film**: the edges normal to the easy axis carry magnetic charge, and edge domains
      pull m away from the axis (the temporal mean of m_x drops from about 0.98 inside to about 0.5
      at the x-normal edges of a 48 x 48 permalloy film). With the easy-axis component the test is
      its edge deficit in the outer two columns (rows for an axis along y) against the interior,
      open when the drop exceeds 0.05. With m_z only, m_z fluctuates about 15 % more in the outer
      cells: the ratio of temporal std in the outer ring (two cells) to the interior, open above 1.06.
    * **perpendicular or tilted film** (``edge_std_ratio``): the edges carry little charge (m_z
      drops by about 0.002 in the outermost cells of a 40 x 40 CoFeB-like film), but the edge cells
      miss an exchange neighbour, so the components transverse to the axis fluctuate more there.
      The test is the temporal std of a transverse component (m_x of a perpendicular film) in the
      outermost cells over the interior, open above 1.035. Measured on 40 x 40 films of
      configs/pma.toml, 60 frames of 5 ps after 0.1-2 ns: 1.035-1.13 open, 0.97-1.04 periodic,
      clean to Gaussian 1e-2 (the noise dilutes the ratio; m_z's excess, 20 % clean, drowns in
      noise of 3e-3).
    """
    u = _unit(easy_axis)
    if abs(u[2]) < 1e-9:  # in-plane
        along, edge_axis = ("x", 1) if abs(u[0]) >= abs(u[1]) else ("y", 0)
        if along in movies:
            return _mean_drop_test(movies[along].data.mean(axis=0), along, edge_axis)
        comp = next(iter(movies))
        std = movies[comp].data.std(axis=0)
        ring = np.ones(std.shape, bool)
        ring[2:-2, 2:-2] = False
        ratio = float(np.median(std[ring]) / max(np.median(std[~ring]), 1e-12))
        verdict = "open" if ratio > 1.06 else "periodic"
        return verdict, f"std m_{comp}: outer ring / interior = {ratio:.3f} (open above 1.06)"
    comp = min(movies, key=lambda c: abs(u["xyz".index(c)]))  # the stored component most transverse to u
    ratio = edge_std_ratio(movies[comp].data)
    verdict = "open" if ratio > EDGE_STD_OPEN else "periodic"
    return verdict, f"std m_{comp}: outermost cells / interior = {ratio:.3f} (open above {EDGE_STD_OPEN})"


def _mean_drop_test(mean: np.ndarray, comp: str, edge_axis: int) -> tuple[str, str]:
    """The in-plane edge test: the drop of the temporal mean of the easy-axis component in the outer
    two columns (``edge_axis`` 1) or rows (0) against the interior, open above 0.05."""
    outer = (mean[:, :2], mean[:, -2:]) if edge_axis == 1 else (mean[:2], mean[-2:])
    edge = np.median(np.concatenate([o.ravel() for o in outer]))
    inner = np.median(mean[2:-2, 2:-2])
    verdict = "open" if float(inner - edge) > 0.05 else "periodic"
    where = "columns" if edge_axis == 1 else "rows"
    return verdict, f"mean m_{comp}: interior {inner:.3f}, outer two {where} {edge:.3f} (open if the drop exceeds 0.05)"


def edge_std_ratio(data: np.ndarray) -> float:
    """Median temporal std of ``data (T, ny, nx)`` in the outermost cells (corners left out) over the
    interior (``depth`` cells in from every edge, ``depth = min(4, side // 4)``): about 1 on a periodic film."""
    std = np.asarray(data, np.float64).std(axis=0)
    d = max(1, min(4, min(std.shape) // 4))
    edge = np.concatenate([std[0, d:-d], std[-1, d:-d], std[d:-d, 0], std[d:-d, -1]])
    return float(np.median(edge) / max(np.median(std[d:-d, d:-d]), 1e-12))


# -- the candidate inputs -------------------------------------------------------------------------

CANDIDATES = {"x": ("mean:x",), "z": ("std:z", "latent_entropy:z")}
"""The candidate inputs of an in-plane film along x, per movie component (permalloy's, in this order)."""
CANDIDATE_MEASURES = ("mean", "std", "latent_entropy")


def candidate_inputs(components: str, easy_axis=X_AXIS) -> list[str]:
    """The inputs ``choose_inputs`` scores for a movie of ``components`` of a film along ``easy_axis``.

    An in-plane film along x keeps ``CANDIDATES`` (mean m_x; std and latent entropy of m_z), so its
    choice does not move. Any other film scores every measure of every component that can carry
    contrast: all but the mean of a component that an element of the film's symmetry group reverses
    without moving a pixel (``jaxmag.symmetry``: its mean is then 0 at every pixel, in defects and
    background alike), e.g. for a perpendicular film std and latent entropy of m_x, and mean, std
    and latent entropy of m_z."""
    u = _unit(easy_axis)
    if np.allclose(np.abs(u), X_AXIS, atol=1e-9):
        return [n for c in components for n in CANDIDATES.get(c, ())]
    still = {c for rows, cols, signs, _ in film_symmetries("xyz", False, u).elements()
             if not (rows or cols) for c, s in zip("xyz", signs) if s < 0}
    return [f"{m}:{c}" for c in components for m in CANDIDATE_MEASURES if not (m == "mean" and c in still)]


# -- latent-entropy bins from the regime's own films -------------------------------------------

BIN_QUANTILES = (0.001, 0.999)  # the rule that calibrated permalloy's ranges (docs/calibration.md)


def uncalibrated_bins(measures: Any) -> Any:
    """``[measures]`` with ``fixed_range_x/y/z`` emptied: to be calibrated on the regime's own clean
    films (``film_bins``; ``jaxmag.learn.detect.calibrate_bins``). For a regime whose material is not
    the paper's permalloy, whose calibrated ranges it would otherwise inherit."""
    return dataclasses.replace(measures, fixed_range_x=(), fixed_range_y=(), fixed_range_z=())


def film_bins(m: np.ndarray, components: str, easy_axis: Sequence[float] = X_AXIS) -> dict[str, tuple[float, float]]:
    """Latent-entropy ranges ``{component: (lo, hi)}`` from clean films ``m (N, T, C, ny, nx)``.

    The 0.1 and 99.9 % quantiles of every value of the component (``BIN_QUANTILES``, the rule of
    docs/calibration.md), rounded outward to 0.01 within [-1, 1]. Where an element of the film's
    symmetry group (``jaxmag.symmetry.film_symmetries``) reverses the component, its law pooled over
    the pixels is symmetric about 0, so the range is too (``[-a, a]``, a the larger end): m_z of an
    in-plane film, m_x and m_y of a perpendicular one."""
    reversed_ = {c for _, _, signs, _ in film_symmetries("xyz", False, easy_axis).elements()
                 for c, s in zip("xyz", signs) if s < 0}
    out = {}
    for i, c in enumerate(components):
        lo, hi = (float(v) for v in np.quantile(np.asarray(m[:, :, i], np.float64), BIN_QUANTILES))
        if c in reversed_:
            lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
        lo, hi = max(-1.0, math.floor(lo * 100) / 100), min(1.0, math.ceil(hi * 100) / 100)
        out[c] = (lo, hi) if hi > lo else (max(-1.0, lo - 0.01), min(1.0, hi + 0.01))
    return out


def calibrated_measures(measures: Any, m: np.ndarray, components: str,
                        easy_axis: Sequence[float] = X_AXIS) -> tuple[Any, dict[str, tuple[float, float]]]:
    """``(measures, filled)``: ``[measures]`` with every empty ``fixed_range_<c>`` of ``components``
    filled from the films (``film_bins``) when the binning is ``"fixed"``; ``filled`` the ranges set
    (empty: nothing to calibrate, the ranges as written)."""
    empty = [c for c in components if not getattr(measures, f"fixed_range_{c}", (0,))]
    if measures.binning != "fixed" or not empty:
        return measures, {}
    bins = film_bins(m, components, easy_axis)
    filled = {c: bins[c] for c in empty}
    return dataclasses.replace(measures, **{f"fixed_range_{c}": r for c, r in filled.items()}), filled
