"""Preallocated-row HDF5 files: created complete once, then filled row by row with raw writes.

The dataset (``jaxmag.io.dataset``) and the measures file (``jaxmag.io.measures_file``) are
both written this way; this module holds what they share, so that their crash safety is one
piece of code:

* ``create`` builds the whole file (every dataset allocated at creation, ``alloc_time =
  early``, no filters, no timestamps, so each row sits at a byte offset fixed then) under a
  temporary name and renames it into place (``jaxmag.io.atomic.create_hdf5``). With ``force``
  and an existing file the new one is made beside it as ``staging_path`` (``NAME.incomplete.h5``)
  and ``promote`` moves it over the old one only once it is complete, so a killed ``--force``
  run keeps the old file, and ``resume_target`` is the file ``--resume`` continues.
* ``RowWriter`` reads every row's offset once, then writes rows with ``pwrite`` and never
  through HDF5 (``jaxmag.io.atomic.RawFile``); ``commit`` fsyncs and reads back everything
  written since the last commit. Writing the data, committing, then setting the ``done`` flags
  and committing again leaves, after a kill at any moment, valid metadata, complete rows marked
  done and at worst a partly written row still marked not done.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import h5py
import numpy as np

from jaxmag.io.atomic import RawFile, create_hdf5, fsync_dir
from jaxmag.io.errors import open_h5


def staging_path(path: str | Path) -> Path:
    """Where a ``--force`` run writes its new file until it is complete: ``NAME.incomplete.h5``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.incomplete{path.suffix}")


def resume_target(path: str | Path) -> Path:
    """The file ``--resume`` continues: an interrupted ``--force`` run's ``staging_path`` if
    there is one, else ``path``."""
    staging = staging_path(path)
    return staging if staging.is_file() else Path(path)


def refuse_folder(path: Path, example: str) -> None:
    """``IsADirectoryError`` when the output ``path`` is a folder (``example``: a file name to suggest)."""
    if path.is_dir():
        raise IsADirectoryError(f"output path {path} is a directory, expected a file name such as {example}")


def fresh_target(path: str | Path, *, force: bool, example: str) -> Path:
    """The file a new (not resumed) write goes to: ``path``, or with ``force`` and an existing
    ``path`` its ``staging_path``. Refuses a folder, an existing ``path`` without ``force`` and a
    missing parent folder."""
    path = Path(path)
    refuse_folder(path, example)
    staging = staging_path(path)
    if path.exists() and not force:
        extra = f" ({staging} holds an interrupted --force run: --resume continues it)" if staging.exists() else ""
        raise FileExistsError(f"{path} exists; pass --resume to continue it or --force to overwrite it{extra}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {path.parent}")
    return staging if path.exists() else path


def create(path: str | Path, fill: Callable[[h5py.File], None], *, force: bool, example: str,
           eager_bytes: int, hint: str = "") -> Path:
    """Make the file a new write fills (``fresh_target``), complete and atomically:
    ``fill(h5py.File)`` writes its skeleton; ``eager_bytes`` is what that writes at once
    (checked free first). Returns the file to write."""
    work = fresh_target(path, force=force, example=example)
    return create_hdf5(work, fill, eager_bytes=eager_bytes, hint=hint)


def promote(work: str | Path, path: str | Path) -> Path:
    """Move a complete ``work`` file over ``path`` (durably; a no-op when they are the same file)."""
    work, path = Path(work), Path(path)
    if work != path:
        os.replace(work, path)
        fsync_dir(path.parent)
    return path


def preallocated(group: h5py.Group, name: str, shape: tuple[int, ...], dtype, *, chunks=None,
                 fill=None) -> h5py.Dataset:
    """A dataset whose file space is allocated now (and filled with ``fill`` when given), so that
    later writes touch raw data only, at offsets fixed here."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return group.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, dcpl=dcpl, track_times=False,
                                fillvalue=fill, fill_time="alloc" if fill is not None else "never")


def row_layout(d: h5py.Dataset, path: Path) -> Callable[[int], tuple[int, np.dtype, tuple[int, ...]]]:
    """``j -> (byte offset, dtype, shape)`` of row ``j`` of a dataset made by ``preallocated``
    (contiguous, or one chunk per row)."""
    shape, dtype = d.shape[1:], d.dtype
    foreign = (f"{path}: /{d.name.lstrip('/')} is not a preallocated raw dataset; it was written by an older "
               "jaxmag or another program (use --force to start over)")
    if d.compression or d.is_virtual or dtype.byteorder == ">":
        raise ValueError(foreign)
    if d.chunks is not None:
        if d.chunks != (1,) + shape:
            raise ValueError(foreign)
        offsets = [d.id.get_chunk_info_by_coord((j,) + (0,) * len(shape)).byte_offset for j in range(d.shape[0])]
        return lambda j: (offsets[j], dtype, shape)
    base = d.id.get_offset()
    if base is None:
        raise ValueError(foreign)
    row_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return lambda j: (base + j * row_bytes, dtype, shape)


class RowWriter:
    """Checked raw writes of rows of the named datasets of a preallocated file (use as a context
    manager): ``put`` rows, then ``commit`` (fsync, read back). No HDF5 handle is open for writing."""

    def __init__(self, path: str | Path, names: Sequence[str], *, what: str, hint: str = ""):
        self.path = Path(path)
        with open_h5(self.path, what) as f:
            self._layout = {name: row_layout(f[name], self.path) for name in names}
        self._raw = RawFile(self.path, hint=hint)
        self._pending: list[tuple[int, np.ndarray]] = []

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._raw.close()

    def put(self, name: str, rows: Sequence[int] | np.ndarray, values) -> None:
        """Write ``values[k]`` to row ``rows[k]`` of ``/name`` (not yet durable: ``commit``)."""
        layout = self._layout[name]
        rows = np.asarray(rows, np.int64).reshape(-1)
        if not rows.size:
            return
        _, dtype, shape = layout(int(rows[0]))
        data = np.array(values, dtype=dtype, order="C")
        if data.shape != (rows.size,) + shape:
            raise ValueError(f"{name} rows of shape {data.shape[1:]} do not fit {self.path} (rows of shape {shape})")
        for k, j in enumerate(rows):
            row = data[k, ...]  # an array even for scalar rows (done flags), so .data is its bytes
            offset = layout(int(j))[0]
            self._raw.write(offset, row.data)
            self._pending.append((offset, row))

    def commit(self) -> None:
        """fsync, then read back everything written since the last commit (``WriteError`` if it differs)."""
        self._raw.sync()  # durable against power loss too, not just kills
        for offset, row in self._pending:
            self._raw.verify(offset, row.data)
        self._pending = []
