"""Detector-count movies: the signal names, the check that an array can be raw counts, and the TIFF writer.

``signal="counts"`` (``jaxmag.io.movie.read_movie``, ``movie_from_array``) means raw detector
counts in ADU (a camera's or a photon counter's integer frames), for the detector fit
(``jaxmag.detector``) and the virtual microscope. Counts are kept as they are (float32, no
rescale, no unit-vector range check), and ``check_counts`` refuses (``MovieError``) an array that
cannot be raw counts: non-integer values (a float TIFF or array of processed data), negative
values (dark-subtracted or flat-fielded data), more than ``MAX_SATURATED_FRACTION`` (1 %) of the
values at the detector's full scale (the data type's maximum, e.g. 65535 for uint16, or
``full_scale``: saturated pixels have no noise, so every estimate is biased) or a constant movie.

``parse_signal`` reads the ``signal`` option (``"magnetisation"``, ``"counts"``, ``"auto"``);
``write_counts_tiff`` writes a counts movie as an ImageJ hyperstack TIFF (uint16) with its pixel
size (m) and frame interval (s), which ``read_movie`` reads back (``jaxmag.io.movie_metadata``).
All names are re-exported by ``jaxmag.io.movie``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from jaxmag.io.movie_record import MovieError

SIGNALS = ("magnetisation", "counts")
# More saturated values than this bias every noise and contrast estimate (clipped pixels have no
# noise); a few hot pixels stay below it.
MAX_SATURATED_FRACTION = 0.01


def check_counts(raw: np.ndarray, what: str = "movie", full_scale: float | None = None) -> None:
    """Refuse (``MovieError``) an array that cannot be raw detector counts (module docstring).

    ``raw``: the array as stored (its dtype gives the full scale of integer data);
    ``full_scale``: the detector's saturation level in ADU, overriding the dtype's maximum
    (e.g. 4095 for a 12-bit camera stored as uint16).
    """
    arr = np.asarray(raw)
    if arr.dtype == bool:
        raise MovieError(f"{what}: a boolean array is a mask, not detector counts")
    if not np.issubdtype(arr.dtype, np.integer):
        frac = arr != np.round(arr)
        if frac.any():
            first = tuple(int(i) for i in np.argwhere(frac)[0])
            raise MovieError(
                f"{what}: a float TIFF/array passed as counts holds non-integer values ({int(frac.sum())} of them, "
                f"first {float(arr[first]):.6g} at (frame, y, x) = {first}); detector counts are integers. Pass the "
                "camera's raw frames, or read processed data as signal='magnetisation' with --rescale"
            )
    lo = arr.min()
    if lo < 0:
        raise MovieError(
            f"{what}: {int((arr < 0).sum())} negative value(s) (min {float(lo):.6g}) in a counts movie; detector "
            "counts are >= 0, so this looks dark-subtracted or flat-fielded: pass the raw frames"
        )
    top = full_scale
    if top is None and np.issubdtype(arr.dtype, np.integer):
        top = np.iinfo(arr.dtype).max
    if top is not None:
        saturated = float(np.mean(arr >= top))
        if saturated > MAX_SATURATED_FRACTION:
            raise MovieError(
                f"{what}: {saturated:.2%} of the values are at the detector's full scale {float(top):.6g} ADU "
                f"(saturated; at most {MAX_SATURATED_FRACTION:.0%} is accepted): saturated pixels have no noise and "
                "bias every estimate; record with a shorter exposure (or a lower flux or gain)"
            )
    hi = arr.max()
    if hi == lo:
        raise MovieError(
            f"{what}: the counts movie is constant (every value {float(lo):.6g}"
            f"{', all zero' if hi == 0 else ''}): no signal and no noise; check the detector and the exposure"
        )


def parse_signal(signal: str | None) -> str | None:
    """``"magnetisation"``, ``"counts"``, or None for ``"auto"`` / None (``default_signal`` decides)."""
    if signal is None:
        return None
    text = str(signal).strip().lower()
    if text == "auto":
        return None
    if text == "magnetization":
        text = "magnetisation"
    if text not in SIGNALS:
        raise MovieError(f"invalid signal {signal!r}: use magnetisation, counts or auto")
    return text


def write_counts_tiff(path: str | Path, counts: Any, pixel_size_m: float, frame_interval_s: float) -> Path:
    """Write a counts movie ``(T, ny, nx)`` as an ImageJ hyperstack TIFF (uint16, axes TYX).

    ``counts``: integer values in [0, 65535] (ADU); ``pixel_size_m`` (m) and ``frame_interval_s``
    (s) go into the ImageJ metadata (``XResolution``/``YResolution`` in pixels per µm, ``unit``,
    ``finterval``), which ``read_movie`` and ImageJ/Fiji read back. Written under a temporary
    name and renamed (``jaxmag.io.atomic``): a crash never leaves a complete-looking file.
    """
    import tifffile

    from jaxmag.io.atomic import atomic_path

    arr = np.asarray(counts)
    if arr.ndim != 3 or arr.shape[0] < 2:
        raise ValueError(f"write_counts_tiff: expected a movie (T >= 2, ny, nx), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or (np.issubdtype(arr.dtype, np.floating)
                                                     and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))):
        raise ValueError(f"write_counts_tiff: counts must be integers, got dtype {arr.dtype} with non-integer values")
    if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.uint16).max):
        raise ValueError(f"write_counts_tiff: counts must lie in [0, 65535] for uint16, got [{arr.min()}, {arr.max()}]")
    for name, value in (("pixel_size_m", pixel_size_m), ("frame_interval_s", frame_interval_s)):
        if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value > 0):
            raise ValueError(f"write_counts_tiff: {name} must be a positive number, got {value!r}")
    per_um = 1.0 / (float(pixel_size_m) * 1e6)  # ImageJ stores the resolution in pixels per unit
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, arr.astype(np.uint16), imagej=True, resolution=(per_um, per_um),
                         metadata={"axes": "TYX", "unit": "um", "finterval": float(frame_interval_s)})
    return Path(path)
