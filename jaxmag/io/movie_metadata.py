"""A movie file's pixel size (m) and frame interval (s), parsed from its metadata.

``read_movie`` (``jaxmag.io.movie``) sets ``Movie.pixel_size_m`` (square pixels, m) and
``Movie.frame_interval_s`` (s) when the file states them, else None, from:

* OME-TIFF (``_ome_metadata``): ``Pixels`` ``PhysicalSizeX`` / ``PhysicalSizeY`` in
  ``PhysicalSizeXUnit`` (OME's default µm) and ``TimeIncrement`` in ``TimeIncrementUnit``
  (default s), or else the planes' ``DeltaT`` when evenly spaced;
* ImageJ TIFF (``_imagej_metadata``): the ``XResolution`` / ``YResolution`` tags (pixels per
  ``unit`` of the ImageJ description) and ``finterval`` (in ``tunit``, default s). Plain TIFF
  resolution tags (72 dpi defaults of image editors) are ignored by the caller;
* HDF5 (``_hdf5_metadata``): attributes of the dataset, else of the file root: ``pixel_size_m``
  and ``frame_interval_s``, or ``pixel_size`` + ``pixel_size_unit`` and ``frame_interval`` +
  ``frame_interval_unit`` (not used without the unit); a pixel size may be one number or
  ``(dy, dx)``;
* OVF folders (``_ovf_metadata``): the cell size when dx = dy, and the frame times' step when
  evenly spaced (``_even_step``).

Each parser returns ``{"pixel_size_m": float | None, "frame_interval_s": float | None}``.
Non-square pixels are refused (``MovieError``): the measures and the models take square pixels.
A unit not understood (the tables ``_LENGTH_M`` and ``_TIME_S`` give the SI factors), or a value
that is not a positive number, only warns and is left out: the movie is still read.
Kept apart from the readers because the unit handling is its own concept and the readers only
hand over the raw attributes.
"""
from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from jaxmag.io.movie_record import MovieError

_LENGTH_M = {"m": 1.0, "cm": 1e-2, "mm": 1e-3, "inch": 0.0254, "um": 1e-6, "µm": 1e-6, "μm": 1e-6, "micron": 1e-6,
             "microns": 1e-6, "\\u00b5m": 1e-6, "nm": 1e-9, "pm": 1e-12, "å": 1e-10, "angstrom": 1e-10}
_TIME_S = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "msec": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "usec": 1e-6,
           "\\u00b5s": 1e-6, "ns": 1e-9, "nsec": 1e-9, "ps": 1e-12, "fs": 1e-15, "min": 60.0, "h": 3600.0,
           "hour": 3600.0}


def _factor(unit: Any, table: dict[str, float], what: str, path: Path) -> float | None:
    """SI factor of ``unit`` (a name in ``table``); None, with a warning, for an unknown one (the
    metadata is then left out, the movie is still read)."""
    key = (unit.decode("utf-8", "replace") if isinstance(unit, bytes) else str(unit)).strip()
    factor = table.get(key, table.get(key.lower()))
    if factor is None:
        warnings.warn(f"{path}: unknown {what} unit {unit!r} (known: {', '.join(sorted(table))}); the {what} is "
                      "left out", RuntimeWarning, stacklevel=4)
    return factor


def _unit(value: Any, unit: Any, table: dict[str, float], what: str, path: Path) -> float | None:
    """A positive ``value`` in ``unit`` converted to SI; None when absent, and None with a warning
    when the unit is unknown or the value not a positive number (the movie is still read)."""
    if value is None:
        return None
    factor = _factor(unit, table, what, path)
    if factor is None:
        return None
    try:
        number = float(np.asarray(value, np.float64).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        warnings.warn(f"{path}: the {what} {value!r} is not a positive number; it is left out", RuntimeWarning,
                      stacklevel=4)
        return None
    return number * factor


def _square(dx_m: float | None, dy_m: float | None, path: Path) -> float | None:
    """The pixel size of square pixels; ``MovieError`` for non-square ones."""
    if dx_m is None or dy_m is None:
        return dx_m if dy_m is None else dy_m
    if not math.isclose(dx_m, dy_m, rel_tol=1e-4):
        raise MovieError(
            f"{path}: non-square pixels ({dx_m:.6g} m along x, {dy_m:.6g} m along y); the measures and the models "
            "take square pixels: resample the movie onto a square grid first"
        )
    return dx_m


def _ome_metadata(xml: str, path: Path) -> dict:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        warnings.warn(f"{path}: unreadable OME-XML metadata ({exc}); pixel size and frame interval left out",
                      RuntimeWarning, stacklevel=3)
        return {}
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return {}
    a = pixels.attrib
    dx = _unit(a.get("PhysicalSizeX"), a.get("PhysicalSizeXUnit", "µm"), _LENGTH_M, "pixel size", path)
    dy = _unit(a.get("PhysicalSizeY"), a.get("PhysicalSizeYUnit", "µm"), _LENGTH_M, "pixel size", path)
    dt = _unit(a.get("TimeIncrement"), a.get("TimeIncrementUnit", "s"), _TIME_S, "frame interval", path)
    if dt is None:  # per-plane DeltaT, when evenly spaced
        times: dict[int, float] = {}
        for el in pixels:
            p = el.attrib
            if el.tag.rsplit("}", 1)[-1] == "Plane" and "DeltaT" in p:
                factor = _factor(p.get("DeltaTUnit", "s"), _TIME_S, "DeltaT", path)
                try:
                    times.setdefault(int(p.get("TheT", 0)), float(p["DeltaT"]) * (factor or math.nan))
                except ValueError:  # not a number: no frame interval (NaN fails _even_step)
                    times.setdefault(int(p.get("TheT", 0)), math.nan)
        dt = _even_step(np.array([times[k] for k in sorted(times)]))
    return {"pixel_size_m": _square(dx, dy, path), "frame_interval_s": dt}


def _imagej_metadata(meta: dict, xres: Any, yres: Any, path: Path) -> dict:
    unit = meta.get("unit")
    size = {}
    for axis, res in (("x", xres), ("y", yres)):
        if unit is None or str(unit).strip().lower() in ("", "pixel", "pixels") or res is None:
            size[axis] = None
            continue
        num, den = (res if isinstance(res, tuple) else (res, 1))
        if not num or not den:
            size[axis] = None
            continue
        size[axis] = _unit(den / num, meta.get("yunit", unit) if axis == "y" else unit, _LENGTH_M, "pixel size", path)
    finterval = meta.get("finterval")
    dt = _unit(finterval, meta.get("tunit", "s"), _TIME_S, "frame interval", path) if finterval else None
    return {"pixel_size_m": _square(size["x"], size["y"], path), "frame_interval_s": dt}


def _hdf5_metadata(attr_sets: list, path: Path) -> dict:
    """From the first attribute set (dataset, then file root) that has them."""
    def first(key: str) -> tuple[Any, Any]:
        for attrs in attr_sets:
            if key in attrs:
                return attrs[key], attrs
        return None, None

    out: dict = {"pixel_size_m": None, "frame_interval_s": None}
    value, attrs = first("pixel_size_m")
    unit = "m"
    if value is None:
        value, attrs = first("pixel_size")
        unit = attrs.get("pixel_size_unit") if attrs is not None else None
        if unit is None:  # a bare number without its unit is not used
            value = None
    if value is not None:
        sizes = np.atleast_1d(np.asarray(value, np.float64))
        if sizes.size not in (1, 2):
            raise MovieError(f"{path}: a pixel size is one number or (dy, dx), got {sizes.tolist()}")
        dy, dx = (_unit(v, unit, _LENGTH_M, "pixel size", path) for v in (sizes[0], sizes[-1]))
        out["pixel_size_m"] = _square(dx, dy, path)
    value, attrs = first("frame_interval_s")
    unit = "s"
    if value is None:
        value, attrs = first("frame_interval")
        unit = attrs.get("frame_interval_unit") if attrs is not None else None
        if unit is None:
            value = None
    out["frame_interval_s"] = _unit(value, unit, _TIME_S, "frame interval", path)
    return out


def _ovf_metadata(cell: Any, times: np.ndarray | None) -> dict:
    pixel = None
    if cell is not None and math.isclose(float(cell[0]), float(cell[1]), rel_tol=1e-9):
        pixel = float(cell[0])  # OVF cells may be rectangular; the raw cell_size_m keeps both
    return {"pixel_size_m": pixel, "frame_interval_s": None if times is None else _even_step(times)}


def _even_step(times: np.ndarray) -> float | None:
    """The common step of evenly spaced ``times`` (within 0.1 %), else None."""
    if times.size < 2 or not np.all(np.isfinite(times)):
        return None
    steps = np.diff(times)
    step = float(np.median(steps))
    if step > 0 and np.all(np.abs(steps - step) <= 1e-3 * step):
        return step
    return None
