"""Runs to compare, read from disk: a jaxmag dataset run, an ``export-ovf`` folder or a MuMax3
output folder, each as one ``Trajectory``.

Contract
--------
``load_source(spec, run=None) -> Trajectory`` accepts ``data.h5#run=3`` (or ``data.h5`` with
``run``) or a folder of ``m*.ovf`` frames (``jaxmag.io.mumax3.read_output_folder``):

* frames ``m`` ``(T, nz, ny, nx, 3)`` float64, components not stored are NaN; ``times`` (s);
* ⟨m⟩(t) from ``table.txt`` when the folder has one (it is denser), else from the frames;
* ``regions``: an int map ``(nz, ny, nx)`` (0 = background) from a dataset's ``/labels``, or a
  ``regions.ovf`` in the folder or beside the ``<script>.out`` folder (the ``jaxmag mumax3
  export`` layout); None when there is none;
* ``temperature`` (K) from a dataset's config or ``Temp = ...`` in ``log.txt`` / the script.

Frame alignment: MuMax3's ``autosave`` also saves at the start of ``run``, so an engine
folder's ``m000000.ovf`` is the state at the end of the burn-in and ``m000001 ...`` match
jaxmag's frames 0, 1, ... (``jaxmag.io.mx3``). A folder whose frames carry no ``jaxmag
components`` line (so not written by ``export-ovf``) and hold at least three evenly spaced
frames is such an autosave series: its first frame and the table rows before the second frame
are dropped (``Trajectory.dropped_first``), so a run of N frames gives N frames, as in jaxmag.

A frame or table value that is NaN or infinite is an input error (``InputError``), never a
number in a report.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

import numpy as np

from jaxmag.io.errors import InputError
from jaxmag.io.mumax3 import read_output_folder

AXES = "xyz"


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """One run to compare.

    Attributes:
        m: frames, float64 ``(T, nz, ny, nx, 3)``; components not in ``components`` are NaN.
        times: frame times (s), ``(T,)``.
        mean_times, mean_m: the ⟨m⟩(t) series, ``(T',)`` s and ``(T', 3)`` (NaN where absent).
        cell_size: ``(dx, dy, dz)`` m.
        components: components holding data, e.g. ``"xz"``.
        temperature: K when the source says (jaxmag configs, mx3 scripts), else None.
        name: where it came from, for messages.
        regions: int ``(nz, ny, nx)`` region map (0 = background) or None.
        dropped_first: whether an engine folder's end-of-burn-in frame was dropped.
    """

    m: np.ndarray
    times: np.ndarray
    mean_times: np.ndarray
    mean_m: np.ndarray
    cell_size: tuple[float, float, float]
    components: str
    temperature: float | None
    name: str
    regions: np.ndarray | None = None
    dropped_first: bool = False

    @property
    def frame_interval(self) -> float:
        """Median spacing of the frame times (s); inf for a single frame."""
        return float(np.median(np.diff(self.times))) if len(self.times) > 1 else math.inf


def trajectory_from_frames(m: np.ndarray, times: np.ndarray, cell_size, *, components: str = "xyz", temperature: float | None = None,
                           name: str = "run", regions: np.ndarray | None = None) -> Trajectory:
    """A ``Trajectory`` from frames in memory: ``m`` ``(T, nz, ny, nx, 3)`` or ``(T, ny, nx, 3)``."""
    m = np.asarray(m, dtype=np.float64)
    if m.ndim == 4:
        m = m[:, None]
    if m.ndim != 5 or m.shape[-1] != 3:
        raise ValueError(f"{name}: frames must have shape (T, nz, ny, nx, 3), got {m.shape}")
    m = m.copy()
    for i, axis in enumerate(AXES):
        if axis not in components:
            m[..., i] = np.nan
    times = np.asarray(times, dtype=np.float64)
    if regions is not None:
        regions = np.asarray(regions).astype(np.int64).reshape(m.shape[1:4])
    _check_finite(m, components, name)
    return Trajectory(m, times, times, m.mean(axis=(1, 2, 3)), tuple(float(c) for c in cell_size), components, temperature, name, regions)


@dataclasses.dataclass(frozen=True)
class DatasetRun:
    """Run ``index`` of a jaxmag HDF5 dataset: ``m`` ``(T, C, ny, nx)``, ``times`` (s), ``labels`` (ny, nx)."""

    m: np.ndarray
    times: np.ndarray
    components: str
    cell_size: tuple[float, float, float]
    config_text: str
    index: int
    labels: np.ndarray | None = None


def read_dataset_run(path: str | os.PathLike, run: int) -> DatasetRun:
    """Read run ``run`` of a jaxmag dataset (``/m`` (N, T, C, ny, nx), ``/t``, ``/done``)."""
    from jaxmag.io.errors import open_h5

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: {path}")
    with open_h5(path, "jaxmag dataset") as f:  # InputError naming the file for a bad one
        for key in ("m", "t"):
            if key not in f:
                raise InputError(f"{path}: not a jaxmag dataset (no /{key})")
        dset = f["m"]
        if dset.ndim != 5:
            raise InputError(f"{path}: /m must have shape (N, T, C, ny, nx), got {dset.shape}")
        n = dset.shape[0]
        if not (0 <= run < n):
            raise ValueError(f"{path}: run {run} out of range (the dataset holds runs 0..{n - 1})")
        if "done" in f and not bool(f["done"][run]):
            raise ValueError(f"{path}: run {run} is not finished (done[{run}] is false); simulate it first")
        components = f.attrs.get("components", "")
        components = components.decode() if isinstance(components, bytes) else str(components)
        if len(components) != dset.shape[2] or not set(components) <= set(AXES):
            raise InputError(f"{path}: attribute components={components!r} does not match /m's {dset.shape[2]} channels")
        if "cell_size_m" not in f.attrs:
            raise InputError(f"{path}: missing root attribute cell_size_m")
        cell = tuple(float(c) for c in np.asarray(f.attrs["cell_size_m"]).reshape(-1))
        if len(cell) != 3:
            raise InputError(f"{path}: cell_size_m must hold 3 lengths, got {cell}")
        config = f.attrs.get("config", "")
        config = config.decode() if isinstance(config, bytes) else str(config)
        labels = np.asarray(f["labels"][run]) if "labels" in f and f["labels"].ndim == 3 else None
        return DatasetRun(
            m=np.asarray(dset[run], dtype=np.float64),
            times=np.asarray(f["t"][...], dtype=np.float64),
            components=components,
            cell_size=cell,  # type: ignore[arg-type]
            config_text=config,
            index=run,
            labels=labels,
        )


def dataset_frames(run: DatasetRun, *, fill_missing: bool = False) -> np.ndarray:
    """``(T, 1, ny, nx, 3)`` frames of a dataset run; missing components are 0 or NaN."""
    T, _, ny, nx = run.m.shape
    out = np.full((T, 1, ny, nx, 3), 0.0 if fill_missing else np.nan)
    for c, axis in enumerate(run.components):
        out[:, 0, :, :, AXES.index(axis)] = run.m[:, c]
    return out


_SPEC_RE = re.compile(r"^(?P<path>.+?)#run=(?P<run>\d+)$")


def load_source(spec: str, run: int | None = None) -> Trajectory:
    """A ``Trajectory`` from ``data.h5#run=3`` (or ``data.h5`` with ``run``) or a folder."""
    match = _SPEC_RE.match(spec)
    if match:
        if run is not None and run != int(match.group("run")):
            raise ValueError(f"{spec}: conflicting run numbers ({match.group('run')} in the path, {run} given)")
        spec, run = match.group("path"), int(match.group("run"))
    path = Path(spec)
    if path.is_dir():
        return _from_folder(path)
    if path.is_file():
        if run is None:
            raise ValueError(f"{spec}: say which run to compare, as '{spec}#run=I' or with --run-a/--run-b")
        return _from_dataset(path, run)
    raise FileNotFoundError(f"no such dataset or folder: {spec}")


def _check_finite(m: np.ndarray, components: str, name: str, times: np.ndarray | None = None, files=None) -> None:
    idx = [AXES.index(c) for c in components]
    bad = ~np.isfinite(m[..., idx]).all(axis=(1, 2, 3, 4))
    if np.any(bad):
        k = int(np.nonzero(bad)[0][0])
        where = f"{files[k]}" if files is not None else f"frame {k}"
        raise InputError(f"{name}: {where} holds NaN or infinite magnetisation values ({int(bad.sum())} bad frames); "
                         "the run diverged or the file is corrupt")


def _from_dataset(path: Path, run: int) -> Trajectory:
    data = read_dataset_run(path, run)
    frames = dataset_frames(data)
    name = f"{path}#run={run}"
    _check_finite(frames, data.components, name)
    temperature = None
    if data.config_text:
        import tomllib

        # the stored text is a resolved config (every key written): plain TOML suffices, and the
        # library stays below the config schema
        temperature = float(tomllib.loads(data.config_text)["material"]["temperature"])
    mean = frames.mean(axis=(1, 2, 3))
    regions = None if data.labels is None else data.labels.astype(np.int64)[None]
    return Trajectory(frames, data.times, data.times, mean, data.cell_size, data.components, temperature, name, regions)


def _is_autosave_series(times: np.ndarray) -> bool:
    if len(times) < 3:
        return False
    steps = np.diff(times)
    return bool(np.all(steps > 0) and np.allclose(steps, np.median(steps), rtol=1e-3, atol=0))


def _from_folder(folder: Path) -> Trajectory:
    out = read_output_folder(folder)
    m = out.m.copy()
    for i, axis in enumerate(AXES):
        if axis not in out.components:
            m[..., i] = np.nan
    _check_finite(m, out.components, str(folder), files=out.files)
    times = out.times
    dropped = not out.jaxmag_export and _is_autosave_series(times)
    if dropped:
        m, times = m[1:], times[1:]
    mean_times, mean_m = times, m.mean(axis=(1, 2, 3))
    table = out.table
    if table is not None and "t" in table and table.num_rows >= 2:
        cols = [f"m{a}" for a in AXES]
        if any(c in table for c in cols):
            t_table = table["t"]
            mean = np.stack([table[c] if c in table and a in out.components else np.full(table.num_rows, np.nan)
                             for c, a in zip(cols, AXES)], axis=1)
            keep = np.ones(len(t_table), bool)
            if dropped:
                keep = t_table >= times[0] - 1e-6 * (times[1] - times[0])
            if np.sum(keep) >= 2:
                mean_times, mean_m = t_table[keep], mean[keep]
                idx = [AXES.index(c) for c in out.components]
                if not np.isfinite(mean_m[:, idx]).all():
                    raise InputError(f"{folder / 'table.txt'}: holds NaN or infinite values of <m>")
    return Trajectory(m, times, mean_times, mean_m, out.cell_size, out.components, _folder_temperature(folder), str(folder),
                      _folder_regions(folder, m.shape[1:4]), dropped)


def _folder_regions(folder: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """``regions.ovf`` in the folder, or beside a ``<script>.out`` folder (export layout)."""
    from jaxmag.io.ovf import read_ovf

    candidates = [folder / "regions.ovf"] + ([folder.parent / "regions.ovf"] if folder.name.endswith(".out") else [])
    for path in candidates:
        if path.is_file():
            region = read_ovf(path).array[..., 0]
            if region.shape != tuple(shape):
                raise InputError(f"{path}: region map of shape {region.shape} does not match the frames' {tuple(shape)}")
            if not np.all(np.isfinite(region)) or np.any(region != np.round(region)) or region.min() < 0:
                raise InputError(f"{path}: a region map must hold non-negative integers")
            return region.astype(np.int64)
    return None


def _folder_temperature(folder: Path) -> float | None:
    """Temperature (K) from the script MuMax3 copies into ``log.txt``, or a ``*.mx3`` beside it."""
    from jaxmag.io.mx3 import script_temperature

    candidates = [folder / "log.txt", *sorted(folder.glob("*.mx3"))]
    if folder.name.endswith(".out"):
        candidates.append(folder.with_name(folder.name[: -len(".out")] + ".mx3"))
    for path in candidates:
        if path.is_file():
            temperature = script_temperature(path.read_text(errors="replace"))
            if temperature is not None:
                return temperature
    return None
