"""Writing a dataset: the file built complete and atomically (``create_file``), rows stored by
checked raw writes (``DatasetWriter``) and the finished file moved into place (``complete``);
the crash-safety argument is in ``jaxmag.io.dataset``."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np

from jaxmag import __version__
from jaxmag.io import rowfile
from jaxmag.io.dataset.format import FORMAT, FORMAT_VERSION, FileSpec, _describe, _open_dataset, pending_rows
from jaxmag.layout import STORED_AXES



_RESUME_HINT = "free some space and rerun the same command with --resume (finished runs are kept)"


def create_file(path: str | Path, spec: FileSpec, *, force: bool = False) -> Path:
    """Create an empty dataset file (all rows not done) atomically; return the file to write.

    That is ``path``, or with ``force`` and an existing ``path`` its ``rowfile.staging_path``,
    which ``complete`` renames over ``path`` once every row is done (the old file survives a
    kill). Refuses an existing ``path`` unless ``force``."""
    # everything but /m (left sparse, filled by checked raw writes) is written at creation
    n, cells = spec.num_rows, spec.ny * spec.nx
    return rowfile.create(path, lambda f: _write_skeleton(f, spec), force=force, example="data.h5",
                          eager_bytes=n * cells * (1 + 4 + 4 + 12) + 9 * n + spec.t.nbytes,
                          hint="free some space (or choose another --out) and run the command again")


def complete(work: str | Path, path: str | Path) -> Path:
    """Once every row of ``work`` is done, move it to ``path`` (a no-op when they are the same
    file); returns the path of the finished file, or ``work`` while rows are pending."""
    work, path = Path(work), Path(path)
    if work == path or pending_rows(work).size:
        return work
    return rowfile.promote(work, path)


def _write_skeleton(f: h5py.File, spec: FileSpec) -> None:
    n = spec.num_rows
    attrs = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": spec.config_text,
        "config_hash": spec.config_hash,
        "jaxmag_version": __version__,
        "thermal_generator": spec.thermal_generator,
        "seed": spec.seed,
        "components": spec.components,
        "cell_size_m": np.asarray(spec.cell_size_m, dtype=np.float64),
        "num_runs": spec.num_runs,
        "run_start": spec.run_start,
    }
    f.attrs.update(attrs)
    # /m is never read where /done is false, so leaving its bytes unwritten (sparse) is fine;
    # the small datasets are zeroed so that an unfinished row reads as background.
    m = rowfile.preallocated(f, "m", spec.m_shape, spec.store_dtype, chunks=(1,) + spec.m_shape[1:])
    _describe(m, ",".join(STORED_AXES), "1", components=spec.components)
    _describe(rowfile.preallocated(f, "labels", (n, spec.ny, spec.nx), np.uint8), "run,y,x", "1", zero=True,
              meaning="0 background, 1..4 defect blob id")
    mat = f.create_group("material", track_order=False)
    _describe(rowfile.preallocated(mat, "A", (n, spec.ny, spec.nx), np.float32), "run,y,x", "J/m", zero=True)
    _describe(rowfile.preallocated(mat, "Ku", (n, spec.ny, spec.nx), np.float32), "run,y,x", "J/m^3", zero=True)
    _describe(rowfile.preallocated(mat, "easy_axis", (n, spec.ny, spec.nx, 3), np.float32), "run,y,x,component", "1",
              zero=True, components="xyz")
    _describe(rowfile.preallocated(f, "done", (n,), bool), "run", "1", zero=True)
    _describe(rowfile.preallocated(f, "run_index", (n,), np.int64), "run", "1")[...] = np.arange(spec.run_start, spec.run_start + n)
    _describe(rowfile.preallocated(f, "t", spec.t.shape, np.float64), "frame", "s")[...] = spec.t


@dataclasses.dataclass(frozen=True)
class RunRows:
    """A batch of finished runs to store; leading axis B, global run indices ``run_index``.

    m: (B, T, C, ny, nx); labels: (B, ny, nx) uint8; A, Ku: (B, ny, nx); easy_axis: (B, ny, nx, 3).
    """

    run_index: np.ndarray
    m: np.ndarray
    labels: np.ndarray
    A: np.ndarray
    Ku: np.ndarray
    easy_axis: np.ndarray


class DatasetWriter:
    """Stores finished runs in a file made by ``create_file`` (use as a context manager).

    Raw, checked writes at the offsets fixed at creation (see the module docstring); no HDF5
    handle is open for writing."""

    _ROWS = ("m", "labels", "material/A", "material/Ku", "material/easy_axis")

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with _open_dataset(self.path, missing="not found") as f:
            self._run_start = int(f.attrs["run_start"])
            self._rows = f["done"].shape[0]
        self._out = rowfile.RowWriter(self.path, self._ROWS + ("done",), what="jaxmag dataset file", hint=_RESUME_HINT)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._out.close()

    def write(self, rows: RunRows) -> None:
        """Write the rows, make them durable and read them back, then mark them done."""
        local = np.asarray(rows.run_index) - self._run_start
        if np.any(local < 0) or np.any(local >= self._rows):
            raise ValueError(f"run indices {rows.run_index} are outside the rows of {self.path}")
        for name, value in zip(self._ROWS, (rows.m, rows.labels, rows.A, rows.Ku, rows.easy_axis)):
            self._out.put(name, local, value)
        self._out.commit()  # the rows are on disk and read back ...
        self._out.put("done", local, np.ones(local.size, bool))
        self._out.commit()  # ... before they are marked done
