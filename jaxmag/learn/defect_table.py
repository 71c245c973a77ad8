"""A table of the defects a mask finds: one row per connected region, with where, how large,
what type and how sure, written as ``defects.csv``.

``defect_rows(probability, mask, pixel_size_m=...)`` labels the connected regions of ``mask``
and returns one dict per region; ``write_defects_csv(path, rows)`` writes them atomically
(``jaxmag.io.atomic``) under the header ``COLUMNS``. An empty mask gives no row and a
header-only file.

**Regions.** Pixels are connected through their edges and their corners (8-connectivity, the
default; ``connectivity=4`` for edges only). A predicted mask is a thresholded probability: a
blob whose rim is uncertain often keeps only a diagonal bridge, and splitting it there would
report one defect twice; the simulated defects (``jaxmag.defects``) are 4-connected blobs with
no holes, so 8-connectivity never splits a true one. On a periodic film (``periodic=True``) the
film is a torus: pixels adjacent across opposite edges (and, with 8-connectivity, across the
corners) are neighbours, so a region crossing an edge is one region.

**Coordinates.** x runs along the columns (axis 1), y along the rows (axis 0); the origin is the
outer corner of pixel ``[0, 0]``, so pixel ``[i, j]`` has its centre at ``((j + 0.5) p,
(i + 0.5) p)`` with ``p = pixel_size_m``. The centroid is the mean of the region's pixel
centres. On a periodic film each axis is unwrapped first around the region's circular mean
(the angle of the mean of ``exp(2 pi i x / L)`` over its pixels) to within half the film's
length L of it, then averaged and wrapped back into ``[0, L)``: the exact centroid of any region
shorter than L/2 along that axis, wherever it crosses the edge, and the plain centroid of a
region that touches no edge. (A region that wraps all the way round an axis has no centroid
along it; the value is then the unwrapped mean around an ill-defined circular mean.)

**Columns** (``COLUMNS``; units in the names, the others dimensionless):

* ``id``: 1, 2, ... in the raster order of each region's first pixel (row by row from [0, 0]);
* ``centroid_x_m``, ``centroid_y_m`` (m): the centroid, above;
* ``area_m2`` (m²) ``= area_pixels * pixel_size_m**2``; ``area_pixels``: the pixel count;
* ``type``: the most frequent code of ``types`` over the region (ties: the smallest code), as
  ``type_names[code]`` (the code itself where the dict does not name it); ``"defect"`` without
  ``types``;
* ``mean_probability``, ``min_probability``: the defect probability over the region;
* ``confidence`` in [0, 1]: how sure the model is that the region is a defect, defined as the
  mean defect probability over the region. With calibrated probabilities
  (``jaxmag.learn.reliability``: a small expected calibration error, or after
  ``fit_temperature``) it is the expected fraction of the region's pixels that are truly defect
  pixels, the region's expected pixel precision. It is the column to sort or threshold on; it
  equals ``mean_probability`` today and stays the documented "how sure" column if its
  definition is refined (``mean_probability`` stays the plain statistic);
* ``mean_uncertainty``: the mean of ``uncertainty`` over the region (e.g. the spread of an
  ensemble, ``jaxmag.learn.ensemble``; in the units of that map, probability for a spread);
  NaN without an ``uncertainty`` map;
* ``contrast``: how the region stands out of the input map, a robust z-score
  ``(median_region - median_bg) / (1.4826 MAD_bg)``, where the background is every pixel
  outside the mask (outside all regions), MAD the median absolute deviation from the
  background's median (1.4826 MAD is the standard deviation of Gaussian noise) and non-finite
  pixels are ignored; NaN without an input map, without finite background pixels, or where the
  background is constant (MAD 0).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping

import numpy as np
from scipy import ndimage

from jaxmag.io.atomic import write_text

COLUMNS = ("id", "centroid_x_m", "centroid_y_m", "area_m2", "area_pixels", "type", "mean_probability",
           "min_probability", "confidence", "mean_uncertainty", "contrast")
"""The header of ``defects.csv``, in order (module docstring)."""

DEFAULT_TYPE = "defect"
MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): MAD of Gaussian noise times this is its standard deviation


def _check_map(name: str, arr, shape: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise ValueError(f"{name} must have the mask's shape {shape}, got {arr.shape}")
    return arr


def label_regions(mask, *, periodic: bool = False, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """``(labels (ny, nx) int, n)``: the connected regions of ``mask`` numbered 1..n in the raster
    order of their first pixel, 0 outside; across opposite edges too where ``periodic``."""
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"the mask must be a 2-D (ny, nx) map, got shape {mask.shape}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 (edges) or 8 (edges and corners), got {connectivity!r}")
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    labels, n = ndimage.label(mask, structure=structure)
    if periodic and n > 1:
        labels = _merge_across_edges(labels, n, connectivity)
    return _renumber(labels)


def _merge_across_edges(labels: np.ndarray, n: int, connectivity: int) -> np.ndarray:
    """Join the labels of pixels that are neighbours on the torus; inside the film they already
    agree, so only pairs across an edge can differ."""
    offsets = ((0, 1), (1, 0)) if connectivity == 4 else ((0, 1), (1, 0), (1, 1), (1, -1))
    parent = np.arange(n + 1)

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for dy, dx in offsets:
        neighbour = np.roll(labels, (-dy, -dx), axis=(0, 1))  # label of pixel [i + dy, j + dx] (mod)
        both = (labels > 0) & (neighbour > 0) & (labels != neighbour)
        for a, b in set(zip(labels[both].tolist(), neighbour[both].tolist())):
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(a) for a in range(n + 1)])
    return roots[labels]


def _renumber(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels 1..n in the raster order of each region's first pixel."""
    flat = labels.ravel()
    firsts = flat[flat > 0]
    _, where = np.unique(firsts, return_index=True)
    order = firsts[np.sort(where)]
    lookup = np.zeros(int(labels.max()) + 1, np.int64)
    lookup[order] = np.arange(1, len(order) + 1)
    return lookup[labels], len(order)


def _axis_centroid(index: np.ndarray, length: int, periodic: bool) -> float:
    """Mean pixel-centre coordinate (in pixels) of pixel indices ``index`` along an axis of ``length``."""
    centres = index + 0.5
    if not periodic:
        return float(centres.mean())
    angle = 2 * np.pi * centres / length
    reference = np.angle(np.mean(np.exp(1j * angle))) * length / (2 * np.pi)
    unwrapped = reference + (centres - reference + length / 2) % length - length / 2
    return float(unwrapped.mean() % length)


def robust_contrast(values_in: np.ndarray, background: np.ndarray) -> float:
    """``(median(values_in) - median_bg) / (1.4826 MAD_bg)`` over finite values; NaN where undefined."""
    inside = values_in[np.isfinite(values_in)]
    bg = background[np.isfinite(background)]
    if inside.size == 0 or bg.size == 0:
        return float("nan")
    median_bg = np.median(bg)
    scale = MAD_TO_SIGMA * np.median(np.abs(bg - median_bg))
    if not scale > 0:
        return float("nan")
    return float((np.median(inside) - median_bg) / scale)


def _majority(codes: np.ndarray) -> int:
    values, counts = np.unique(codes, return_counts=True)
    return int(values[np.argmax(counts)])  # np.unique sorts: ties go to the smallest code


def defect_rows(probability, mask, *, pixel_size_m: float, input_map=None, types=None,
                type_names: Mapping[int, str] | None = None, uncertainty=None, periodic: bool = False,
                connectivity: int = 8) -> list[dict]:
    """One row (a dict keyed by ``COLUMNS``) per connected region of ``mask``.

    probability: ``(ny, nx)`` defect probability in [0, 1]; mask: ``(ny, nx)`` bool; pixel_size_m:
    the pixel's side (m); input_map: ``(ny, nx)`` input measure map for ``contrast`` (any unit);
    types: ``(ny, nx)`` int type code per pixel, named by ``type_names``; uncertainty: ``(ny, nx)``
    per-pixel uncertainty (e.g. an ensemble's spread of the probability); periodic: the film is
    periodic (regions join across opposite edges); connectivity: 8 (edges and corners) or 4.
    Definitions in the module docstring. Raises ``ValueError`` for mismatched shapes or a pixel
    size that is not a positive number.
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"the mask must be a 2-D (ny, nx) map, got shape {mask.shape}")
    shape = mask.shape
    prob = _check_map("the probability", probability, shape).astype(np.float64)
    pixel = float(pixel_size_m)
    if not (np.isfinite(pixel) and pixel > 0):
        raise ValueError(f"pixel_size_m must be a positive length in metres, got {pixel_size_m!r}")
    signal = None if input_map is None else _check_map("the input map", input_map, shape).astype(np.float64)
    codes = None if types is None else _check_map("the type map", types, shape).astype(np.int64)
    spread = None if uncertainty is None else _check_map("the uncertainty map", uncertainty, shape).astype(np.float64)
    names = dict(type_names or {})

    labels, n = label_regions(mask, periodic=periodic, connectivity=connectivity)
    ny, nx = shape
    rows = []
    for region in range(1, n + 1):
        where = labels == region
        iy, ix = np.nonzero(where)
        p = prob[where]
        area = int(where.sum())
        if codes is None:
            kind = DEFAULT_TYPE
        else:
            code = _majority(codes[where])
            kind = str(names.get(code, code))
        mean_p = float(p.mean())
        rows.append({
            "id": region,
            "centroid_x_m": _axis_centroid(ix, nx, periodic) * pixel,
            "centroid_y_m": _axis_centroid(iy, ny, periodic) * pixel,
            "area_m2": area * pixel**2,
            "area_pixels": area,
            "type": kind,
            "mean_probability": mean_p,
            "min_probability": float(p.min()),
            "confidence": float(np.clip(mean_p, 0.0, 1.0)),
            "mean_uncertainty": float("nan") if spread is None else float(spread[where].mean()),
            "contrast": float("nan") if signal is None else robust_contrast(signal[where], signal[~mask]),
        })
    return rows


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.9g}"  # nan -> "nan", which csv readers and float() accept
    return str(value)


def defects_csv_text(rows: list[dict]) -> str:
    """The CSV text of ``rows`` under the header ``COLUMNS`` (floats to 9 significant digits)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"defect row {row.get('id', '?')} lacks the column(s) {', '.join(missing)}")
        writer.writerow([_cell(row[c]) for c in COLUMNS])
    return buffer.getvalue()


def write_defects_csv(path: str | Path, rows: list[dict]) -> Path:
    """Write ``rows`` (``defect_rows``) to ``path`` as CSV, atomically; header only when there is no row."""
    return write_text(path, defects_csv_text(rows))
