"""Random defect blobs: the ground truth of the segmentation dataset.

Contract
--------
``generate_defects(params, ny, nx, rng, periodic=...)`` places ``num_a + num_b`` blobs in a
``(ny, nx)`` film and returns a ``Defects`` record; ``apply_defects(material, defects, params)``
turns it into per-cell material maps. Everything is drawn from the numpy ``Generator`` passed
in, so a run's defects are a pure function of ``defect_rng(seed, run_index)``.

Each blob is

* **4-connected and simply connected**: grown cell by cell from a random seed cell by adding a
  random 4-neighbour of the blob (Eden growth, which gives irregular, jagged outlines), then
  every background cell that is not 4-connected to the outside of the blob is filled in (so
  the background is 4-, hence also 8-connected: no holes in either digital topology);
* of ``size_min ≤ size ≤ size_max`` cells (the target size is drawn uniformly, a blob whose
  hole filling overshoots ``size_max`` is redrawn);
* separated from every other blob by at least ``min_gap`` background cells: the Chebyshev
  (8-neighbour) distance between cells of different blobs is ``> min_gap``; with periodic
  boundaries the distance wraps around the edges, since the film does;
* at least ``margin`` cells away from the edges. Blobs never wrap around an edge, so the label
  map shows each blob as one piece.

Labels: 0 is background, ``1 .. num_a`` are the blobs scaled by ``factor_a`` ("a" blobs),
``num_a + 1 .. num_a + num_b`` those scaled by ``factor_b`` ("b" blobs). With the default
two-and-two pattern, blobs 1 and 2 are "a", 3 and 4 are "b".

Inside a blob A_ex and K_u are multiplied by the blob's factor, and the easy axis is rotated
in the film plane (about z) by an angle drawn from N(0, angle_sigma_deg): one angle per blob
(``angle_mode = "per_blob"``, the default: a grain with its own texture) or one per cell
(``"per_cell"``: disorder inside the defect).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from typing import Literal

from jaxmag.material import Material
from jaxmag.params import require

_MAX_BLOB_TRIES = 200  # attempts to place one blob before starting the whole map again
_MAX_MAP_TRIES = 50  # whole-map restarts before giving up (grid too crowded)


@dataclasses.dataclass(frozen=True)
class DefectParams:
    """Random defect blobs (the ``[defects]`` section): ``num_a`` blobs scale A_ex and K_u by
    ``factor_a``, ``num_b`` by ``factor_b``; sizes in cells, angles in degrees."""

    num_a: int = 2
    num_b: int = 2
    factor_a: float = 0.5
    factor_b: float = 2.0
    size_min: int = 20  # cells per blob
    size_max: int = 36
    min_gap: int = 2  # cells of background between blobs (Chebyshev distance)
    margin: int = 0  # cells kept free at the edges (useful for open boundaries)
    angle_sigma_deg: float = 10.0  # std of the in-plane easy-axis rotation inside blobs
    angle_mode: Literal["per_blob", "per_cell"] = "per_blob"

    def __post_init__(self) -> None:
        require(self.num_a >= 0 and self.num_b >= 0, "num_a", "must be non-negative")
        require(0 < self.size_min <= self.size_max, "size_min", "must be positive and <= defects.size_max")
        require(self.min_gap >= 0, "min_gap", "must be >= 0")
        require(self.margin >= 0, "margin", "must be >= 0")
        require(self.factor_a > 0 and self.factor_b > 0, "factor_a", "and factor_b must be positive")
        require(self.angle_sigma_deg >= 0, "angle_sigma_deg", "must be >= 0")
        require(self.angle_mode in ("per_blob", "per_cell"), "angle_mode", "must be 'per_blob' or 'per_cell'")


@dataclasses.dataclass(frozen=True)
class Defects:
    """One film's defects.

    labels:  (ny, nx) uint8, 0 background, k = 1..n the k-th blob.
    factors: (n,) float64, the factor multiplying A_ex and K_u inside blob k+1.
    angles_rad: (ny, nx) float64, in-plane easy-axis rotation (rad), 0 outside the blobs.
    """

    labels: np.ndarray
    factors: np.ndarray
    angles_rad: np.ndarray

    @property
    def num_blobs(self) -> int:
        return int(self.factors.shape[0])

    @property
    def mask(self) -> np.ndarray:
        """(ny, nx) bool, the union of the blobs (the segmentation target)."""
        return self.labels > 0


def defect_rng(seed: int, run_index: int) -> np.random.Generator:
    """The generator for run ``run_index`` of a dataset with ``seed``: a function of both only."""
    if seed < 0 or run_index < 0:
        raise ValueError(f"seed and run_index must be non-negative, got seed={seed}, run_index={run_index}")
    # The trailing 0 separates this stream from the thermal seed's (jaxmag.simulate uses 1).
    return np.random.default_rng(np.random.SeedSequence([seed, run_index, 0]))


def generate_defects(params: DefectParams, ny: int, nx: int, rng: np.random.Generator, *, periodic: bool = False) -> Defects:
    """Draw ``params.num_a + params.num_b`` blobs on a ``(ny, nx)`` film (see module docstring).

    Raises ``ValueError`` if the blobs cannot be placed (grid too small or too crowded for the
    sizes, gap and margin asked for).
    """
    n = params.num_a + params.num_b
    if n > 255:
        raise ValueError(f"at most 255 defect blobs fit in a uint8 label map, got {n}")
    _check_fits(params, ny, nx)
    for _ in range(_MAX_MAP_TRIES):
        labels = _place_blobs(params, ny, nx, rng, periodic)
        if labels is not None:
            break
    else:
        raise ValueError(
            f"could not place {n} blobs of {params.size_min}-{params.size_max} cells with min_gap "
            f"{params.min_gap} and margin {params.margin} on a {ny}x{nx} grid: use a larger grid or "
            "fewer/smaller blobs"
        )
    factors = np.array([params.factor_a] * params.num_a + [params.factor_b] * params.num_b, dtype=np.float64)
    sigma = np.deg2rad(params.angle_sigma_deg)
    if params.angle_mode == "per_blob":
        per_blob = np.concatenate([[0.0], rng.normal(0.0, sigma, size=n)])
        angles = per_blob[labels]
    else:
        angles = np.where(labels > 0, rng.normal(0.0, sigma, size=labels.shape), 0.0)
    return Defects(labels=labels, factors=factors, angles_rad=angles)


def _check_fits(params: DefectParams, ny: int, nx: int) -> None:
    inner_y, inner_x = ny - 2 * params.margin, nx - 2 * params.margin
    if inner_y <= 0 or inner_x <= 0:
        raise ValueError(f"defects.margin = {params.margin} leaves no room on a {ny}x{nx} grid")
    n = params.num_a + params.num_b
    # Each blob blocks at least its own cells and a min_gap-wide ring around them; a loose
    # lower bound catches hopeless configs early with a clear message.
    need = n * params.size_min
    if need > inner_y * inner_x:
        raise ValueError(
            f"{n} blobs of at least {params.size_min} cells cannot fit in the {inner_y}x{inner_x} "
            "free area of the grid"
        )


def _place_blobs(params: DefectParams, ny: int, nx: int, rng: np.random.Generator, periodic: bool) -> np.ndarray | None:
    labels = np.zeros((ny, nx), dtype=np.uint8)
    allowed = np.zeros((ny, nx), dtype=bool)
    m = params.margin
    allowed[m : ny - m, m : nx - m] = True
    for label in range(1, params.num_a + params.num_b + 1):
        blob = None
        for _ in range(_MAX_BLOB_TRIES):
            blob = _grow_blob(allowed, rng, int(rng.integers(params.size_min, params.size_max + 1)))
            if blob is not None and params.size_min <= blob.sum() <= params.size_max:
                break
            blob = None
        if blob is None:
            return None
        labels[blob] = label
        allowed &= ~_dilate_chebyshev(blob, params.min_gap, periodic)
    return labels


def _grow_blob(allowed: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray | None:
    """Eden growth of ``size`` cells inside ``allowed``, then hole filling; None if stuck or if
    a filled hole lands outside ``allowed``."""
    free = np.flatnonzero(allowed)
    if free.size == 0:
        return None
    ny, nx = allowed.shape
    start = int(free[rng.integers(free.size)])
    blob = np.zeros_like(allowed)
    blob.flat[start] = True
    frontier: list[int] = []  # may hold duplicates: a cell touching the blob twice is twice as likely
    _push_neighbours(start, blob, allowed, frontier, ny, nx)
    count = 1
    while count < size:
        if not frontier:
            return None
        cell = frontier.pop(int(rng.integers(len(frontier))))
        if blob.flat[cell]:
            continue
        blob.flat[cell] = True
        count += 1
        _push_neighbours(cell, blob, allowed, frontier, ny, nx)
    # Holes lie inside the bounding box, so fill there (the flood fill costs ~ box size).
    ys, xs = np.nonzero(blob)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    filled = np.zeros_like(blob)
    filled[box] = fill_holes(blob[box])
    if np.any(filled & ~allowed):
        return None
    return filled


def _push_neighbours(cell: int, blob: np.ndarray, allowed: np.ndarray, frontier: list[int], ny: int, nx: int) -> None:
    y, x = divmod(cell, nx)
    for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
        if 0 <= yy < ny and 0 <= xx < nx and allowed[yy, xx] and not blob[yy, xx]:
            frontier.append(yy * nx + xx)


def fill_holes(blob: np.ndarray) -> np.ndarray:
    """``blob`` (2-D bool) plus every background cell not 4-connected to the array's outside."""
    outside = np.zeros((blob.shape[0] + 2, blob.shape[1] + 2), dtype=bool)
    background = np.pad(~blob, 1, constant_values=True)
    outside[0, :] = outside[-1, :] = outside[:, 0] = outside[:, -1] = True
    # Flood fill by repeated 4-neighbour dilation restricted to background; converges in at
    # most (number of background cells) sweeps, in practice a few dozen for blob-sized shapes.
    while True:
        grown = outside.copy()
        grown[1:, :] |= outside[:-1, :]
        grown[:-1, :] |= outside[1:, :]
        grown[:, 1:] |= outside[:, :-1]
        grown[:, :-1] |= outside[:, 1:]
        grown &= background
        if np.array_equal(grown, outside):
            break
        outside = grown
    return ~outside[1:-1, 1:-1]


def _dilate_chebyshev(mask: np.ndarray, radius: int, periodic: bool) -> np.ndarray:
    """Cells within Chebyshev distance ``radius`` of ``mask`` (wrapping if ``periodic``)."""
    out = mask.copy()
    for axis in (0, 1):
        acc = out.copy()
        for shift in range(1, radius + 1):
            for s in (shift, -shift):
                if periodic:
                    acc |= np.roll(out, s, axis=axis)
                else:
                    acc |= _shift_no_wrap(out, s, axis)
        out = acc
    return out


def _shift_no_wrap(mask: np.ndarray, shift: int, axis: int) -> np.ndarray:
    out = np.zeros_like(mask)
    src = [slice(None)] * 2
    dst = [slice(None)] * 2
    if shift > 0:
        src[axis], dst[axis] = slice(0, -shift), slice(shift, None)
    else:
        src[axis], dst[axis] = slice(-shift, None), slice(0, shift)
    out[tuple(dst)] = mask[tuple(src)]
    return out


def material_maps(
    defects: Defects, *, A_ex: float, K_u: float, easy_axis: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background values with the defects applied, in float64.

    Returns ``A_ex`` (ny, nx) J/m, ``K_u`` (ny, nx) J/m³ and ``easy_axis`` (ny, nx, 3) unit
    vectors: inside blob k the background ``A_ex`` and ``K_u`` times ``factors[k-1]`` (one
    multiplication in float64, so a file storing float32 holds ``float32(factor * A0)``
    exactly), and the background easy axis rotated about z by ``angles_rad``.
    """
    factor = np.concatenate([[1.0], defects.factors])[defects.labels]
    u = np.asarray(easy_axis, dtype=np.float64)
    u = u / np.linalg.norm(u)
    c, s = np.cos(defects.angles_rad), np.sin(defects.angles_rad)
    axis = np.stack([c * u[0] - s * u[1], s * u[0] + c * u[1], np.broadcast_to(u[2], c.shape)], axis=-1)
    return A_ex * factor, K_u * factor, axis


def apply_defects(material: Material, defects: Defects, background) -> Material:
    """``material`` (a uniform background of shape (nz, ny, nx)) with the defects written into
    A_ex, K_u and easy_axis of every layer. ``background`` supplies the background values as
    Python floats (anything with ``A_ex``, ``K_u``, ``easy_axis``), not the material's own arrays,
    so the factors multiply the float64 values (see ``material_maps``)."""
    A, K, u = material_maps(defects, A_ex=background.A_ex, K_u=background.K_u, easy_axis=background.easy_axis)
    nz = material.A_ex.shape[0]
    dtype = material.A_ex.dtype
    return material.replace(
        A_ex=jnp.asarray(np.broadcast_to(A, (nz,) + A.shape), dtype=dtype),
        K_u=jnp.asarray(np.broadcast_to(K, (nz,) + K.shape), dtype=dtype),
        easy_axis=jnp.asarray(np.broadcast_to(u, (nz,) + u.shape), dtype=dtype),
    )
