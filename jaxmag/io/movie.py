"""Read a user's magnetisation movie for prediction: TIFF stack, HDF5, .npy or a folder of OVF frames.

Contract
--------
``read_movie(path, component="z", dataset=None, rescale="none") -> Movie`` returns one
component's time series as float32 ``(T, ny, nx)`` (time first, then rows y, then columns x,
the layout of ``jaxmag.measures``) and where it came from. Formats, by what ``path`` is:

* a folder: OVF frames (MuMax3 output ``m000000.ovf, m000001.ovf, ...``, or any ``*.ovf`` /
  ``*.omf`` files, in natural name order); 3-vector frames give the ``component`` asked for,
  scalar frames (``valuedim`` 1) their one value. The film must be one cell thick (``nz == 1``).
* ``.tif`` / ``.tiff``: a stack of 2-D pages ``(T, ny, nx)`` (read with ``tifffile``);
  ``component`` only labels it.
* ``.h5`` / ``.hdf5``: the array at ``dataset`` (an HDF5 path); ``(T, ny, nx)``, or a jaxmag
  simulation file's ``/m`` ``(N, T, C, ny, nx)``, whose run 0 and ``component`` are taken.
  Without ``dataset`` a file with exactly one 3-D dataset uses it.
* ``.npy``: an array ``(T, ny, nx)``.

Checks (``MovieError``, a ``ValueError``, with a message saying what to do):

* a 2-D image, a single frame or any other shape than ``(T >= 2, ny, nx)``: the measures are
  temporal, so a movie is needed;
* NaN or inf anywhere (count and first index are named);
* the value range. The models are trained on unit-vector components (dimensionless, in
  [-1, 1] up to the measurement noise); users' data seldom are: MuMax3 ``m_full`` is in A/m,
  Kerr or XMCD frames are camera counts. After rescaling, the movie must satisfy
  ``q99.9(|x|) <= max_abs`` (default ``MAX_ABS``) or reading fails and names the rescale options;
  ``q99(|x|) > 1.5`` only warns (strong noise or wrong units).

Rescale options (``--rescale``), applied to the whole movie (one affine map, so the relative
contrast between pixels and frames is kept):

* ``none``: values are already unit-vector components;
* ``ms:<A/m>``: divide by the saturation magnetisation (for ``m_full``/``M`` in A/m), e.g. ``ms:8e5``;
* ``maxabs``: divide by the largest ``|x|`` (signed data of unknown scale);
* ``minmax``: map ``[min, max]`` linearly onto ``[-1, 1]`` (unsigned data such as camera counts).

``mean`` and ``std`` measures change with the rescale, latent entropy (per-pixel binning) does
not; ``minmax`` and ``maxabs`` put noise spikes at the extremes, so prefer ``ms:`` when Ms is
known.

Signals (``signal=``): ``"magnetisation"`` (the default, everything above) or ``"counts"``:
raw detector counts in ADU, kept as they are (float32, no rescale, no unit-vector range check;
``rescale`` must stay ``"none"``) and refused (``MovieError``) when they cannot be raw counts
(``jaxmag.io.movie_counts.check_counts``: non-integer, negative, more than 1 % saturated, or
constant). ``signal="auto"`` (or None) takes ``default_signal(path, dataset)``: ``"counts"`` for
an integer-typed TIFF, HDF5 dataset or ``.npy`` array, ``"magnetisation"`` otherwise (OVF
folders, float files).

Metadata: ``Movie.pixel_size_m`` (square pixels, m) and ``Movie.frame_interval_s`` (s) when the
file states them (OME-TIFF, ImageJ TIFF, HDF5 attributes, OVF cell size and frame times; the
rules are in ``jaxmag.io.movie_metadata``), else None. Non-square pixels are refused
(``MovieError``); a unit not understood only warns and is left out.

This module owns the readers and the value checks. It re-exports, so that one import serves
every caller: ``Movie`` and ``MovieError`` (``jaxmag.io.movie_record``), and ``SIGNALS``,
``MAX_SATURATED_FRACTION``, ``parse_signal``, ``check_counts`` and ``write_counts_tiff`` (an
ImageJ hyperstack TIFF of a counts movie with its metadata; ``jaxmag.io.movie_counts``).
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from jaxmag.io.movie_counts import MAX_SATURATED_FRACTION, SIGNALS, check_counts, parse_signal, write_counts_tiff
from jaxmag.io.movie_metadata import _hdf5_metadata, _imagej_metadata, _ome_metadata, _ovf_metadata
from jaxmag.io.movie_record import Movie, MovieError

__all__ = [
    "COMPONENTS", "MAX_ABS", "MAX_SATURATED_FRACTION", "SIGNALS", "Movie", "MovieError", "check_counts",
    "check_movie_array", "check_range", "default_signal", "movie_from_array", "parse_rescale", "parse_signal",
    "read_movie", "rescale_movie", "write_counts_tiff",
]

COMPONENTS = "xyz"
_OVF_SUFFIXES = (".ovf", ".omf")
_TIFF_SUFFIXES = (".tif", ".tiff")
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
_RESCALE_HELP = "--rescale none | minmax | maxabs | ms:<Ms in A/m> (e.g. ms:8e5)"

# The one bound on a movie's values, for every reader (detect, predict, noise-estimate): a
# unit-vector component (|m_i| <= 1) plus noise of variance up to 1, the strongest level of the
# paper's sweep (jaxmag.noise.conditions.PAPER_LEVELS), has 99.9 % of |values| below
# 1 + 3.3 sigma = 4.3 (3.3: the two-sided 99.9 % point of a normal law). Data in A/m (1e5 to 1e6)
# or camera counts (hundreds and up) lie far above; noise no model is trained for lies above too.
MAX_ABS = 5.0


# --------------------------------------------------------------------------------------------
# checks and rescaling
# --------------------------------------------------------------------------------------------
def check_movie_array(raw: Any, what: str = "movie") -> np.ndarray:
    """``raw`` as float64 ``(T, ny, nx)`` after the shape and finiteness checks (``MovieError``)."""
    arr = np.asarray(raw)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise MovieError(f"{what}: expected numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise MovieError(f"{what}: complex values are not magnetisation components")
    if arr.ndim == 2:
        raise MovieError(
            f"{what} is a single 2-D image of shape {arr.shape}; the measures (temporal mean, std, latent "
            "entropy) need a movie of at least 2 frames (T, ny, nx)"
        )
    if arr.ndim != 3:
        raise MovieError(f"{what}: expected a movie (T, ny, nx), got shape {arr.shape}")
    if arr.shape[0] < 2:
        count = "no frames" if arr.shape[0] == 0 else "a single frame"
        raise MovieError(
            f"{what} has {count} (shape {arr.shape}); the measures are temporal and need at least 2 "
            "frames (T, ny, nx), and the paper's movies have about 100"
        )
    if arr.shape[1] < 3 or arr.shape[2] < 3:
        raise MovieError(f"{what}: frames must be at least 3 x 3 pixels, got {arr.shape[1]} x {arr.shape[2]}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise MovieError(
            f"{what} contains {int(bad.sum())} non-finite value(s) (NaN or inf); first at (frame, y, x) = "
            f"{first}. Mask or interpolate dead pixels before predicting"
        )
    return arr


def parse_rescale(text: str) -> tuple[str, float | None]:
    """``"none" | "minmax" | "maxabs" | "ms:<A/m>"`` -> ``(mode, Ms or None)``."""
    text = str(text).strip().lower()
    if text in ("none", "minmax", "maxabs"):
        return text, None
    match = re.fullmatch(r"ms[:=](.+)", text)
    if match:
        try:
            ms = float(match.group(1))
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms > 0:
            return "ms", ms
    raise MovieError(f"invalid rescale option {text!r}: use {_RESCALE_HELP}")


def rescale_movie(arr: np.ndarray, rescale: str = "none") -> tuple[np.ndarray, float, float]:
    """Apply a rescale option (module docstring): returns ``(scaled, scale, offset)``, ``scaled = (arr - offset) / scale``."""
    mode, ms = parse_rescale(rescale)
    if mode == "none":
        scale, offset = 1.0, 0.0
    elif mode == "ms":
        scale, offset = float(ms), 0.0
    elif mode == "maxabs":
        scale, offset = float(np.max(np.abs(arr))), 0.0
        if scale == 0:
            raise MovieError("--rescale maxabs: the movie is all zeros")
    else:
        lo, hi = float(arr.min()), float(arr.max())
        if hi == lo:
            raise MovieError(f"--rescale minmax: the movie is constant ({lo})")
        scale, offset = (hi - lo) / 2.0, (hi + lo) / 2.0
    return (arr - offset) / scale, scale, offset


def check_range(arr: np.ndarray, what: str, rescale: str, max_abs: float = MAX_ABS) -> None:
    """Fail (``MovieError``) if the values are clearly not unit-vector components; warn if doubtful."""
    a = np.abs(arr).ravel()
    q999 = float(np.quantile(a, 0.999))
    q99 = float(np.quantile(a, 0.99))
    if q999 > max_abs:
        guess = ""
        if 1e4 <= q999 <= 1e7:
            guess = f" (values near {q999:.3g} look like A/m: try --rescale ms:<Ms>, e.g. ms:8e5)"
        elif arr.min() >= 0:
            guess = " (non-negative values look like camera counts: try --rescale minmax)"
        raise MovieError(
            f"{what}: 99.9% of |values| reach {q999:.4g} after --rescale {rescale}, but the models take "
            f"dimensionless unit-vector components in [-1, 1] (plus noise){guess}; use {_RESCALE_HELP}"
        )
    if q99 > 1.5:
        warnings.warn(
            f"{what}: 1% of |values| exceed {q99:.3g} after --rescale {rescale}; unit-vector components lie in "
            "[-1, 1], so either the noise is strong or the units are wrong (see --rescale)",
            RuntimeWarning,
            stacklevel=3,
        )


def movie_from_array(
    raw: Any,
    *,
    component: str = "z",
    source: str = "array",
    rescale: str = "none",
    max_abs: float = MAX_ABS,
    times_s: np.ndarray | None = None,
    cell_size_m: tuple[float, float, float] | None = None,
    signal: str = "magnetisation",
    full_scale: float | None = None,
    pixel_size_m: float | None = None,
    frame_interval_s: float | None = None,
) -> Movie:
    """Check and rescale an in-memory array ``(T, ny, nx)`` into a ``Movie`` (what ``read_movie`` does after reading).

    ``signal="counts"`` keeps the values (ADU) after ``check_counts``; ``rescale`` must then be ``"none"``.
    """
    _check_component(component)
    kind = parse_signal(signal)
    if kind is None:
        kind = "counts" if _is_integer(np.asarray(raw).dtype) else "magnetisation"
    arr = check_movie_array(raw, source)
    if kind == "counts":
        if parse_rescale(rescale)[0] != "none":
            raise MovieError(f"{source}: --rescale {rescale} applies to magnetisation movies; counts are kept in "
                             "detector units (signal='counts')")
        check_counts(np.asarray(raw), source, full_scale)
        scaled, scale, offset = arr, 1.0, 0.0
    else:
        scaled, scale, offset = rescale_movie(arr, rescale)
        check_range(scaled, source, rescale, max_abs)
    return Movie(
        data=scaled.astype(np.float32),
        component=component,
        source=source,
        rescale=str(rescale).strip().lower(),
        scale=scale,
        offset=offset,
        times_s=times_s,
        cell_size_m=cell_size_m,
        signal=kind,
        pixel_size_m=pixel_size_m,
        frame_interval_s=frame_interval_s,
    )


def _check_component(component: str) -> None:
    if component not in tuple(COMPONENTS):
        raise MovieError(f"component must be one of x, y, z, got {component!r}")


def _is_integer(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.integer)  # bool is not an integer type for numpy


# --------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------
def read_movie(
    path: str | Path,
    *,
    component: str = "z",
    dataset: str | None = None,
    rescale: str = "none",
    max_abs: float = MAX_ABS,
    signal: str | None = "magnetisation",
    full_scale: float | None = None,
) -> Movie:
    """Read, check and rescale a movie (see the module docstring for formats, signals, checks and options).

    ``signal``: ``"magnetisation"`` (default, today's behaviour), ``"counts"``, or ``"auto"`` /
    None for ``default_signal(path, dataset)``. ``full_scale``: the detector's saturation level in
    ADU for ``"counts"`` (default: the data type's maximum).
    """
    path = Path(path)
    _check_component(component)
    parse_rescale(rescale)  # fail on a bad option before reading a large file
    kind = parse_signal(signal)
    if not path.exists():
        raise FileNotFoundError(f"movie not found: {path}")
    if dataset is not None and not (path.is_file() and path.suffix.lower() in _HDF5_SUFFIXES):
        raise MovieError("--dataset applies to HDF5 movies (.h5, .hdf5) only")
    if kind is None:
        kind = default_signal(path, dataset)
    times = cell = None
    meta: dict[str, float | None] = {}
    if path.is_dir():
        raw, times, cell, source = _read_ovf_folder(path, component)
        meta = _ovf_metadata(cell, times)
    else:
        suffix = path.suffix.lower()
        if suffix in _TIFF_SUFFIXES:
            raw, source, meta = _read_tiff(path)
        elif suffix in _HDF5_SUFFIXES:
            raw, source, meta = _read_hdf5(path, dataset, component)
        elif suffix == ".npy":
            raw, source = _read_npy(path), str(path)
        elif suffix in _OVF_SUFFIXES:
            raise MovieError(
                f"{path} is a single OVF frame; the measures need a movie: pass the folder holding the frames"
            )
        else:
            raise MovieError(
                f"{path}: unsupported movie format {suffix or '(no suffix)'}; use a TIFF stack (.tif), HDF5 "
                "(.h5 with --dataset), .npy (T, ny, nx) or a folder of OVF frames"
            )
    return movie_from_array(raw, component=component, source=source, rescale=rescale, max_abs=max_abs,
                            times_s=times, cell_size_m=cell, signal=kind, full_scale=full_scale,
                            pixel_size_m=meta.get("pixel_size_m"), frame_interval_s=meta.get("frame_interval_s"))


def default_signal(path: str | Path, dataset: str | None = None) -> str:
    """``"counts"`` for an integer-typed TIFF, HDF5 dataset or ``.npy`` array, else ``"magnetisation"``.

    Reads only the header (the data type), not the frames. OVF folders and float files are
    magnetisation; a jaxmag simulation file's ``/m`` is magnetisation whatever its type.
    """
    path = Path(path)
    if path.is_dir():
        return "magnetisation"
    suffix = path.suffix.lower()
    dtype = None
    if suffix in _TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                dtype = tif.series[0].dtype
        except Exception as exc:  # tifffile raises many types for corrupt files
            raise MovieError(f"{path}: cannot read TIFF ({type(exc).__name__}: {exc})") from None
    elif suffix in _HDF5_SUFFIXES:
        from jaxmag.io.errors import open_h5

        _check_hdf5(path)
        with open_h5(path, "movie file (HDF5)") as f:
            ds = f[_pick_dataset(f, path, dataset)]
            dtype = None if ds.ndim == 5 else ds.dtype
    elif suffix == ".npy":
        try:
            dtype = np.load(path, mmap_mode="r", allow_pickle=False).dtype
        except (ValueError, OSError, EOFError):
            dtype = None  # read_movie names the problem
    return "counts" if dtype is not None and _is_integer(np.dtype(dtype)) else "magnetisation"


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # numpy's message for a text file speaks of pickles
        raise MovieError(f"{path} is not a readable .npy array (expected a movie (T, ny, nx)): "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _read_tiff(path: Path) -> tuple[np.ndarray, str, dict]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            arr = tif.asarray()
            ome, imagej = tif.ome_metadata, tif.imagej_metadata
            page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
            xres, yres = (page.tags[k].value if k in page.tags else None for k in ("XResolution", "YResolution"))
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise MovieError(f"{path}: cannot read TIFF ({type(exc).__name__}: {exc})") from None
    if arr.ndim == 4 and arr.shape[-1] in (3, 4):
        raise MovieError(f"{path}: an RGB(A) stack {arr.shape}; save one grey-level channel per component")
    if ome:
        meta = _ome_metadata(ome, path)
    elif imagej:
        meta = _imagej_metadata(imagej, xres, yres, path)
    else:
        meta = {}
    return arr, str(path), meta


def _check_hdf5(path: Path) -> None:
    import h5py

    if path.stat().st_size and not h5py.is_hdf5(path):
        raise MovieError(f"{path}: not an HDF5 file")


def _pick_dataset(f: Any, path: Path, dataset: str | None) -> str:
    """The movie's dataset path in an open HDF5 file (the rules of the module docstring)."""
    import h5py

    if dataset is None:
        found: list[str] = []
        f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) and obj.ndim == 3 else None)
        if "m" in f and isinstance(f["m"], h5py.Dataset) and f["m"].ndim == 5:
            dataset = "m"
        elif len(found) == 1:
            dataset = found[0]
        else:
            raise MovieError(
                f"{path}: name the movie with --dataset PATH (3-D datasets in the file: "
                f"{', '.join('/' + n for n in found) or 'none'})"
            )
    if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
        raise MovieError(f"{path}: no dataset {dataset!r}")
    return dataset


def _read_hdf5(path: Path, dataset: str | None, component: str) -> tuple[np.ndarray, str, dict]:
    from jaxmag.io.errors import open_h5

    _check_hdf5(path)
    with open_h5(path, "movie file (HDF5)") as f:
        dataset = _pick_dataset(f, path, dataset)
        ds = f[dataset]
        meta = _hdf5_metadata([dict(ds.attrs), dict(f.attrs)], path)
        if ds.ndim == 5:  # jaxmag simulation file /m (N, T, C, ny, nx): run 0
            stored = str(f.attrs.get("components", COMPONENTS[: ds.shape[2]]))
            if component not in stored:
                raise MovieError(f"{path}:/{dataset} stores components {stored}, not {component!r}")
            return (np.asarray(ds[0, :, stored.index(component)]), f"{path}:/{dataset} run 0 component {component}",
                    meta)
        return np.asarray(ds[...]), f"{path}:/{dataset.lstrip('/')}", meta


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _read_ovf_folder(folder: Path, component: str):
    from jaxmag.io.mumax3 import frame_files
    from jaxmag.io.ovf import read_ovf

    files = frame_files(folder) or sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in _OVF_SUFFIXES), key=_natural_key
    )
    if not files:
        raise MovieError(f"{folder}: no OVF frames (m000000.ovf, ... or *.ovf / *.omf) found")
    frames, times = [], []
    first = None
    for path in files:
        data = read_ovf(path)
        if first is None:
            first = data
            if data.shape[0] != 1:
                raise MovieError(f"{path}: the mesh has nz = {data.shape[0]} layers; prediction needs a film one cell thick")
            if data.valuedim not in (1, 3):
                raise MovieError(f"{path}: valuedim {data.valuedim}; expected a 3-vector (m) or a scalar")
            stored = _stored_components(data)
            if data.valuedim == 3 and component not in stored:
                raise MovieError(f"{folder}: the frames hold data for components {stored} only, not {component!r}")
        elif data.array.shape != first.array.shape:
            raise MovieError(f"{path}: mesh {data.array.shape} differs from {files[0].name} {first.array.shape}")
        values = data.array[0]
        frames.append(values[..., COMPONENTS.index(component)] if data.valuedim == 3 else values[..., 0])
        times.append(np.nan if data.time_s is None else data.time_s)
    times_arr = np.asarray(times, np.float64)
    source = f"{folder} ({len(files)} OVF frames, component {component})"
    return np.stack(frames), (None if np.isnan(times_arr).all() else times_arr), first.cell_size, source


def _stored_components(data) -> str:
    match = re.search(r"jaxmag components:\s*([xyz]+)", data.header.get("desc", ""), re.IGNORECASE)
    return match.group(1).lower() if match else COMPONENTS


