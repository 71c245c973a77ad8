"""Reading a dataset: ``open_dataset`` (layout and metadata), ``read_movies``, ``read_labels``,
``read_runs`` (rows with their material maps) and ``summary`` (``jaxmag dataset info``)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from jaxmag.io.dataset.format import FORMAT, _WHAT, _open_dataset
from jaxmag.io.errors import InputError, open_h5



# -- reading -------------------------------------------------------------------------------------
# The readers below take any file in the layout above, also one written by hand or by another
# program with only /m (and optionally /labels, /done, /run_index and the ``components``
# attribute): they check the layout, not the ``format`` attribute.



@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset file holds, read from its metadata (``open_dataset``); no movie is read.

    ``done`` is all true and ``run_index`` the row numbers when the file has no ``/done`` or
    ``/run_index``; ``components`` is the ``components`` attribute, or the first C of ``xyz``
    when there is none; the attributes of a hand-written file that it lacks are ``None``."""

    path: Path
    shape: tuple[int, int, int, int, int]  # /m: (N, T, C, ny, nx)
    dtype: str  # of /m as stored: float32, or float16 (``store_dtype``)
    components: str  # letters of /m's C axis, e.g. "xz"
    done: np.ndarray = dataclasses.field(compare=False, repr=False)  # (N,) bool
    run_index: np.ndarray = dataclasses.field(compare=False, repr=False)  # (N,) int64, global run index per row
    has_labels: bool
    simulated: bool  # format attribute "jaxmag.dataset": written (and resumable) by `jaxmag simulate`
    virtual: bool  # a merged file whose /m reads shard files
    config_text: str | None  # resolved TOML config it was simulated with
    config_hash: str | None
    seed: int | None
    cell_size_m: tuple[float, ...] | None  # (dx, dy, dz), m
    frame_times_s: np.ndarray | None = dataclasses.field(compare=False, repr=False)  # (T,) s

    @property
    def num_rows(self) -> int:
        return self.shape[0]

    @property
    def num_frames(self) -> int:
        return self.shape[1]

    @property
    def image_shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return self.shape[3], self.shape[4]

    @property
    def done_rows(self) -> np.ndarray:
        """Rows (of this file) holding a finished run, ascending."""
        return np.flatnonzero(self.done)

    @property
    def complete(self) -> bool:
        """Every row holds a finished run."""
        return bool(np.all(self.done))

    @property
    def frame_interval_s(self) -> float | None:
        """Time between stored frames, s (None without ``/t`` or with fewer than 2 frames)."""
        t = self.frame_times_s
        return float(t[1] - t[0]) if t is not None and t.size >= 2 else None


def _inspect(f: h5py.File, path: Path) -> DatasetInfo:
    """Check the layout of an open dataset file and read its metadata."""
    fmt = str(f.attrs.get("format", ""))
    if fmt.startswith("jaxmag-measures"):
        raise InputError(f"{path} is a measures file (written by `jaxmag measures`), not a simulated dataset; "
                         "pass the dataset written by `jaxmag simulate`")
    if "m" not in f or not isinstance(f["m"], h5py.Dataset):
        raise InputError(f"{path}: not a jaxmag dataset (missing /m, the movies written by `jaxmag simulate`)")
    m = f["m"]
    if m.ndim != 5:
        raise InputError(f"{path}: not a jaxmag dataset (expected /m of shape (N, T, C, ny, nx), got {m.shape})")
    N, T, C, ny, nx = m.shape
    components = str(f.attrs["components"]) if "components" in f.attrs else "xyz"[:C]
    if len(components) != C:
        raise InputError(f"{path}: /m must be (N, T, C, ny, nx) with C = len(components) = {len(components)}, "
                         f"got shape {m.shape}")
    expected = {"labels": (N, ny, nx), "done": (N,), "run_index": (N,), "t": (T,)}
    for name, shape in expected.items():
        if name in f and tuple(f[name].shape) != shape:
            raise InputError(f"{path}: /{name} must have shape {shape} to match /m {m.shape}, got {f[name].shape}")
    attrs = f.attrs
    return DatasetInfo(
        path=path,
        shape=(N, T, C, ny, nx),
        dtype=m.dtype.name,
        components=components,
        done=np.asarray(f["done"][...], bool) if "done" in f else np.ones(N, bool),
        run_index=np.asarray(f["run_index"][...], np.int64) if "run_index" in f else np.arange(N, dtype=np.int64),
        has_labels="labels" in f,
        simulated=fmt == FORMAT,
        virtual=m.is_virtual,
        config_text=str(attrs["config"]) if "config" in attrs else None,
        config_hash=str(attrs["config_hash"]) if "config_hash" in attrs else None,
        seed=int(attrs["seed"]) if "seed" in attrs else None,
        cell_size_m=tuple(float(c) for c in attrs["cell_size_m"]) if "cell_size_m" in attrs else None,
        frame_times_s=np.asarray(f["t"][...], np.float64) if "t" in f else None,
    )


def open_dataset(path: str | Path) -> DatasetInfo:
    """The layout and metadata of a dataset file (``InputError`` naming the file when it is
    missing, not HDF5, damaged, a measures file, or has no (N, T, C, ny, nx) movies ``/m``)."""
    path = Path(path)
    with open_h5(path, _WHAT) as f:
        return _inspect(f, path)


def _checked_rows(info: DatasetInfo, rows) -> np.ndarray:
    rows = np.asarray(rows, np.int64).reshape(-1)
    outside = rows[(rows < 0) | (rows >= info.num_rows)]
    if outside.size:
        raise ValueError(f"{info.path}: rows must be in [0, {info.num_rows}), got {outside[0]}")
    return rows


def read_movies(path: str | Path, rows, components: str | None = None) -> np.ndarray:
    """Movies of ``rows`` (of this file, any order, repeats allowed), finished runs only.

    Returns ``(len(rows), T, C, ny, nx)`` in the stored layout and dtype (float32, or float16
    for ``store_dtype = "float16"``), with the stored components in the order of ``components``
    (default all, as stored). Reads the rows in ascending order, all of ``/m`` at once when
    ``rows`` covers it (one contiguous read)."""
    path = Path(path)
    with open_h5(path, _WHAT) as f:
        info = _inspect(f, path)
        rows = _checked_rows(info, rows)
        pending = rows[~info.done[rows]]
        if pending.size:
            raise ValueError(f"{path}: run {info.run_index[pending[0]]} (row {pending[0]}) is not done; "
                             "finish the dataset with `jaxmag simulate --resume`")
        picks = None
        if components is not None:
            missing = [c for c in components if c not in info.components]
            if missing:
                raise ValueError(f"{path} stores the components {', '.join(info.components)} only, not {missing[0]}")
            picks = [info.components.index(c) for c in components]
        m = f["m"]
        unique, inverse = np.unique(rows, return_inverse=True)  # h5py reads ascending rows only
        if unique.size == info.num_rows:
            data = m[...]  # the whole dataset: one contiguous read
        elif unique.size:
            data = m[unique.tolist()]
        else:
            data = np.zeros((0,) + m.shape[1:], m.dtype)
    out = data[inverse.reshape(-1)]
    return out if picks is None or picks == list(range(info.shape[2])) else out[:, :, picks]


def read_labels(path: str | Path, rows=None) -> np.ndarray:
    """``/labels`` of ``rows`` (default all) as stored: ``(len(rows), ny, nx)`` uint8, 0 background,
    1..4 defect blob id. Unfinished rows read as written (zeros)."""
    path = Path(path)
    with open_h5(path, _WHAT) as f:
        info = _inspect(f, path)
        if not info.has_labels:
            raise InputError(f"{path}: the dataset has no /labels")
        if rows is None:
            return np.asarray(f["labels"][...])
        return np.asarray(f["labels"][...])[_checked_rows(info, rows)]


@dataclasses.dataclass(frozen=True)
class DatasetSummary:
    path: str
    runs_done: int
    num_rows: int
    run_start: int
    m_shape: tuple[int, ...]
    m_dtype: str
    file_bytes: int  # on disk (allocated blocks), this file only
    data_bytes: int  # logical size of /m
    virtual: bool
    config_hash: str
    seed: int
    components: str
    cell_size_m: tuple[float, ...]
    jaxmag_version: str

    def format(self) -> str:
        gib = 1024**3
        kind = "virtual (reads its shard files)" if self.virtual else "regular"
        return "\n".join(
            [
                f"file:          {self.path} ({kind})",
                f"runs done:     {self.runs_done} / {self.num_rows} (rows {self.run_start}..{self.run_start + self.num_rows - 1})",
                f"/m:            {self.m_shape} {self.m_dtype}, {self.data_bytes / gib:.3f} GiB",
                f"on disk:       {self.file_bytes / gib:.3f} GiB",
                f"components:    {self.components}",
                f"cell size:     {' x '.join(f'{c * 1e9:g}' for c in self.cell_size_m)} nm",
                f"seed:          {self.seed}",
                f"config hash:   {self.config_hash}",
                f"written by:    jaxmag {self.jaxmag_version}",
            ]
        )


def summary(path: str | Path) -> DatasetSummary:
    """Facts about a dataset file (``jaxmag dataset info``)."""
    path = Path(path)
    with _open_dataset(path, missing="not found") as f:
        m = f["m"]
        return DatasetSummary(
            path=str(path),
            runs_done=int(np.count_nonzero(f["done"][...])),
            num_rows=int(m.shape[0]),
            run_start=int(f.attrs["run_start"]),
            m_shape=tuple(m.shape),
            m_dtype=m.dtype.name,
            file_bytes=os.stat(path).st_blocks * 512,
            data_bytes=int(np.prod(m.shape)) * m.dtype.itemsize,
            virtual=m.is_virtual,
            config_hash=str(f.attrs["config_hash"]),
            seed=int(f.attrs["seed"]),
            components=str(f.attrs["components"]),
            cell_size_m=tuple(float(c) for c in f.attrs["cell_size_m"]),
            jaxmag_version=str(f.attrs["jaxmag_version"]),
        )


def read_runs(path: str | Path, indices: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Load rows of a dataset into memory: ``{"m", "labels", "A", "Ku", "easy_axis", "done",
    "run_index", "t"}`` (all rows when ``indices`` is None; indices are rows of this file)."""
    with _open_dataset(Path(path), missing="not found") as f:
        sel = slice(None) if indices is None else np.asarray(indices)
        return {
            "m": f["m"][sel],
            "labels": f["labels"][sel],
            "A": f["material/A"][sel],
            "Ku": f["material/Ku"][sel],
            "easy_axis": f["material/easy_axis"][sel],
            "done": f["done"][sel],
            "run_index": f["run_index"][sel],
            "t": f["t"][...],
        }
