"""The simulation dataset on disk: HDF5 layout, crash-safe writing, resume, merge and summary.

Layout (one file holds the rows ``run_start .. run_start + n - 1`` of a dataset of
``num_runs`` runs; a single-process file has ``run_start = 0, n = num_runs``):

==========================  =====================  ==============================================
path                        shape, dtype           meaning
==========================  =====================  ==============================================
``/m``                      (n, T, C, ny, nx)      magnetisation components (``components``),
                            ``store_dtype``        one chunk per run
``/labels``                 (n, ny, nx) uint8      0 background, 1..4 blob id
``/material/A``             (n, ny, nx) float32    exchange stiffness A_ex, J/m
``/material/Ku``            (n, ny, nx) float32    uniaxial anisotropy K_u, J/m³
``/material/easy_axis``     (n, ny, nx, 3) f32     anisotropy axis (unit vector)
``/t``                      (T,) float64           frame times, s
``/done``                   (n,) bool              row i holds a complete run
``/run_index``              (n,) int64             global run index of each row
==========================  =====================  ==============================================

Root attributes: ``config`` (resolved TOML), ``config_hash`` (of the sections that determine
the data), ``jaxmag_version``, ``thermal_generator`` (``jaxmag.rng.THERMAL_GENERATOR``; absent
in files written before it existed), ``seed``, ``components``, ``cell_size_m``, ``num_runs``,
``run_start``, ``format`` and ``format_version``.

Every dataset has attributes ``axes`` (comma-separated axis names, e.g. ``run,frame,component,y,x``
for ``/m``) and ``units`` (``1`` for dimensionless); ``/m`` also has ``components``.

Crash safety. HDF5 keeps its metadata (object headers, chunk B-trees, free space) in a cache
that it writes back lazily, and h5py reports a failed write that happens when a temporary object
is freed only as an ignored exception; a process killed while metadata is dirty can leave a file
that no longer opens. The writer therefore never changes metadata after creation, and never
writes through HDF5 at all after creation:

* the file is built complete (all datasets, attributes, ``/done`` all false) under a temporary
  name, flushed, fsynced and atomically renamed into place (``jaxmag.io.atomic``);
* every dataset is allocated at creation (``alloc_time = early``, no timestamps, no filters), so
  each row sits at a byte offset fixed at creation;
* per batch, ``DatasetWriter`` (``jaxmag.io.atomic.RawFile``) writes the rows' bytes at those
  offsets with ``pwrite``, fsyncs, reads them back and compares, and only then sets ``/done``
  for those rows the same way. A full disk or any other write error raises ``WriteError``
  naming the file (exit 2 in the CLI), and the batch stays not done.

A kill at any moment therefore leaves valid metadata, complete rows marked done, and at worst a
partly written row whose ``/done`` is still false, which ``--resume`` recomputes. (Superblock
version 0, the default, has no "file open for writing" flag, so the file reopens without
``h5clear``.) With ``force`` the new file is written beside the old one as
``NAME.incomplete.h5`` and replaces it only when every row is done, so a killed ``--force`` run
keeps the old file (``--resume`` continues the new one). ``tests/test_dataset.py`` checks that
writing a batch leaves every byte outside the raw data unchanged and kills a writer with SIGKILL;
``tests/test_faults.py`` fills the disk.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Callable, Sequence

import h5py
import numpy as np

from jaxmag import __version__
from jaxmag.rng import LEGACY_THERMAL_GENERATOR, THERMAL_GENERATOR
from jaxmag.io.atomic import RawFile, atomic_path, create_hdf5, fsync_dir
from jaxmag.io.errors import InputError, WriteError, open_h5
from jaxmag.layout import STORED_AXES

FORMAT = "jaxmag.dataset"
FORMAT_VERSION = 1
DATA_SECTIONS = ("grid", "material", "defects", "simulation")  # what determines the data


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """What a dataset file must contain; two files with equal specs are interchangeable."""

    config_text: str
    config_hash: str
    seed: int
    num_runs: int  # of the whole dataset
    run_start: int  # first global run index held by this file
    num_rows: int  # runs held by this file
    num_frames: int
    components: str
    ny: int
    nx: int
    store_dtype: str
    cell_size_m: tuple[float, float, float]
    t: np.ndarray  # (T,) s
    # ``config_hash`` of a stored config text under today's rules (its defaults filled in), so a
    # file written before a config key existed still matches when the data are the same;
    # ``None``: compare the stored hash only.
    rehash: Callable[[str], str] | None = dataclasses.field(default=None, compare=False, repr=False)
    thermal_generator: str = THERMAL_GENERATOR  # the thermal draws' algorithm (jaxmag.rng)

    @property
    def m_shape(self) -> tuple[int, int, int, int, int]:
        return (self.num_rows, self.num_frames, len(self.components), self.ny, self.nx)


def staging_path(path: str | Path) -> Path:
    """Where a ``--force`` run writes its new file until it is complete: ``NAME.incomplete.h5``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.incomplete{path.suffix}")


_RESUME_HINT = "free some space and rerun the same command with --resume (finished runs are kept)"


def create_file(path: str | Path, spec: FileSpec, *, force: bool = False) -> Path:
    """Create an empty dataset file (all rows not done) atomically; return the file to write.

    That is ``path``, or with ``force`` and an existing ``path`` its ``staging_path``, which
    ``complete`` renames over ``path`` once every row is done (the old file survives a kill).
    Refuses an existing ``path`` unless ``force``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"output path {path} is a directory, expected a file name such as data.h5")
    staging = staging_path(path)
    if path.exists() and not force:
        extra = f" ({staging} holds an interrupted --force run: --resume continues it)" if staging.exists() else ""
        raise FileExistsError(f"{path} exists: use --resume to continue it or --force to overwrite it{extra}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {path.parent}")
    work = staging if path.exists() else path
    # everything but /m (left sparse, filled by checked raw writes) is written at creation
    n, cells = spec.num_rows, spec.ny * spec.nx
    return create_hdf5(work, lambda f: _write_skeleton(f, spec),
                       eager_bytes=n * cells * (1 + 4 + 4 + 12) + 9 * n + spec.t.nbytes,
                       hint="free some space (or choose another --out) and run the command again")


def resume_target(path: str | Path) -> Path:
    """The file ``--resume`` continues: an interrupted ``--force`` run's ``staging_path`` if
    there is one, else ``path``."""
    staging = staging_path(path)
    return staging if staging.is_file() else Path(path)


def complete(work: str | Path, path: str | Path) -> Path:
    """Once every row of ``work`` is done, move it to ``path`` (a no-op when they are the same
    file); returns the path of the finished file, or ``work`` while rows are pending."""
    work, path = Path(work), Path(path)
    if work == path or pending_rows(work).size:
        return work
    os.replace(work, path)
    fsync_dir(path.parent)
    return path


def _preallocated(group: h5py.Group, name: str, shape: tuple[int, ...], dtype, chunks=None) -> h5py.Dataset:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # all file space now: later writes touch raw data only
    return group.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, dcpl=dcpl, fill_time="never", track_times=False)


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
    m = _preallocated(f, "m", spec.m_shape, spec.store_dtype, chunks=(1,) + spec.m_shape[1:])
    _describe(m, ",".join(STORED_AXES), "1", components=spec.components)
    _describe(_preallocated(f, "labels", (n, spec.ny, spec.nx), np.uint8), "run,y,x", "1", zero=True,
              meaning="0 background, 1..4 defect blob id")
    mat = f.create_group("material", track_order=False)
    _describe(_preallocated(mat, "A", (n, spec.ny, spec.nx), np.float32), "run,y,x", "J/m", zero=True)
    _describe(_preallocated(mat, "Ku", (n, spec.ny, spec.nx), np.float32), "run,y,x", "J/m^3", zero=True)
    _describe(_preallocated(mat, "easy_axis", (n, spec.ny, spec.nx, 3), np.float32), "run,y,x,component", "1",
              zero=True, components="xyz")
    _describe(_preallocated(f, "done", (n,), bool), "run", "1", zero=True)
    _describe(_preallocated(f, "run_index", (n,), np.int64), "run", "1")[...] = np.arange(spec.run_start, spec.run_start + n)
    _describe(_preallocated(f, "t", spec.t.shape, np.float64), "frame", "s")[...] = spec.t


def _describe(d: h5py.Dataset, axes: str, units: str, *, zero: bool = False, **extra: str) -> h5py.Dataset:
    """Self-describing datasets: ``axes`` and ``units`` attributes (set at creation only)."""
    d.attrs["axes"] = axes
    d.attrs["units"] = units
    for key, value in extra.items():
        d.attrs[key] = value
    if zero:
        d[...] = 0
    return d


def _open_dataset(path: Path, *, missing: str, prefix: str = "") -> h5py.File:
    """Open a jaxmag dataset for reading; clear errors for a missing, unreadable or foreign file."""
    if not path.exists():
        raise FileNotFoundError(f"{prefix}{path} {missing}" if prefix else f"dataset file {missing}: {path}")
    try:
        f = open_h5(path, "jaxmag dataset file")
    except InputError as exc:
        raise InputError(f"{prefix}{exc}") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise InputError(f"{prefix}{path} is not a jaxmag dataset file")
    return f


def check_matches(path: str | Path, spec: FileSpec) -> Path:
    """Raise ``ValueError`` naming the first difference if ``path`` (or the ``resume_target``
    beside it) was not written for ``spec``; returns the file to continue."""
    path = resume_target(path)
    with _open_dataset(path, missing="does not exist", prefix="cannot resume: ") as f:
        if f.attrs["config_hash"] != spec.config_hash and not _same_data(str(f.attrs["config"]), spec):
            diff = _config_difference(str(f.attrs["config"]), spec.config_text)
            raise ValueError(f"cannot resume {path}: it was written with a different config ({diff}); use --force to overwrite it")
        stored_generator = str(f.attrs.get("thermal_generator", LEGACY_THERMAL_GENERATOR))
        # a finished file is only read, whatever drew it; unfinished rows must not mix generators
        if stored_generator != spec.thermal_generator and not bool(np.all(f["done"][...])):
            raise ValueError(
                f"cannot resume {path}: its runs were drawn with the thermal noise generator "
                f"{stored_generator!r} (jaxmag {f.attrs['jaxmag_version']}), this jaxmag draws with "
                f"{spec.thermal_generator!r}; finishing it would mix the two, which no config reproduces: "
                "finish it with the jaxmag that started it, or use --force to simulate it afresh"
            )
        have = (int(f.attrs["run_start"]), f["m"].shape, f["m"].dtype.name)
        want = (spec.run_start, spec.m_shape, spec.store_dtype)
        if have != want:
            raise ValueError(f"cannot resume {path}: it holds rows/shape/dtype {have}, this run needs {want}")
    return path


def _same_data(stored_text: str, spec: FileSpec) -> bool:
    if spec.rehash is None:
        return False
    try:
        return spec.rehash(stored_text) == spec.config_hash
    except (ValueError, KeyError, TypeError):  # a stored config today's loader rejects: not the same
        return False


def _config_difference(old_text: str, new_text: str) -> str:
    # both texts are resolved configs (every key written), so plain TOML tables compare
    old, new = tomllib.loads(old_text), tomllib.loads(new_text)
    for section in DATA_SECTIONS + ("dataset",):
        for key, value in new.get(section, {}).items():
            if old.get(section, {}).get(key) != value and key != "batch_size":
                return f"{section}.{key}: {old.get(section, {}).get(key)!r} in the file, {value!r} now"
    return "config hash differs"


def stored_config_text(path: str | Path) -> str:
    """The resolved TOML config a dataset file was written with (its root attribute ``config``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset not found: {path}")
    with open_h5(path, "jaxmag dataset (written by `jaxmag simulate`)") as f:
        if "config" not in f.attrs:
            raise ValueError(f"{path}: not a jaxmag dataset (missing root attribute 'config')")
        return str(f.attrs["config"])


def pending_rows(path: str | Path) -> np.ndarray:
    """Global run indices of the rows of ``path`` not yet done, ascending."""
    with _open_dataset(Path(path), missing="not found") as f:
        done = f["done"][...]
        return f["run_index"][...][~done]


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
            self._layout = {name: _row_layout(f[name], self.path) for name in self._ROWS + ("done",)}
        self._raw = RawFile(self.path, hint=_RESUME_HINT)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._raw.close()

    def _put(self, name: str, j: int, value) -> None:
        offset, dtype, shape = self._layout[name](j)
        data = np.array(value, dtype=dtype, order="C")
        if data.shape != shape:
            raise ValueError(f"{name} row of shape {data.shape} does not fit {self.path} (rows of shape {shape})")
        self._raw.write(offset, data.data)
        self._written.append((offset, data))

    def write(self, rows: RunRows) -> None:
        """Write the rows, make them durable and read them back, then mark them done."""
        local = np.asarray(rows.run_index) - self._run_start
        if np.any(local < 0) or np.any(local >= self._rows):
            raise ValueError(f"run indices {rows.run_index} are outside the rows of {self.path}")
        for stage in ("data", "done"):
            self._written: list[tuple[int, np.ndarray]] = []
            for b, j in enumerate(local):
                if stage == "data":
                    for name, value in zip(self._ROWS, (rows.m, rows.labels, rows.A, rows.Ku, rows.easy_axis)):
                        self._put(name, int(j), value[b])
                else:
                    self._put("done", int(j), True)
            self._raw.sync()  # durable against power loss too, not just kills
            for offset, data in self._written:
                self._raw.verify(offset, data.data)


def _row_layout(d: h5py.Dataset, path: Path):
    """``j -> (byte offset, dtype, shape)`` of row ``j`` of an allocated, unfiltered dataset."""
    shape, dtype = d.shape[1:], d.dtype
    if d.compression or d.is_virtual or dtype.byteorder == ">":
        raise ValueError(f"{path}: /{d.name} is not a raw preallocated dataset; it was not made by create_file")
    if d.chunks is not None:
        if d.chunks != (1,) + shape:
            raise ValueError(f"{path}: /{d.name} must have one chunk per row")
        offsets = [d.id.get_chunk_info_by_coord((j,) + (0,) * len(shape)).byte_offset for j in range(d.shape[0])]
        return lambda j: (offsets[j], dtype, shape)
    base = d.id.get_offset()
    if base is None:
        raise ValueError(f"{path}: /{d.name} has no allocated storage; it was not made by create_file")
    row_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return lambda j: (base + j * row_bytes, dtype, shape)


def shard_path(out: str | Path, process_id: int, num_processes: int) -> Path:
    """``data.h5`` for one process, else ``data.shard003-of-008.h5``."""
    out = Path(out)
    if num_processes == 1:
        return out
    return out.with_name(f"{out.stem}.shard{process_id:03d}-of-{num_processes:03d}{out.suffix}")


_ROW_DATASETS = ("m", "labels", "material/A", "material/Ku", "material/easy_axis", "done", "run_index")


def merge(shards: Sequence[str | Path], out: str | Path, *, copy: bool = False, force: bool = False) -> Path:
    """Present shard files as one dataset at ``out``.

    By default ``out`` holds HDF5 virtual datasets that read the shards in place (they must stay
    next to ``out``: sources are stored relative to its directory); ``copy=True`` writes one
    self-contained file instead. Shards must come from the same config and not overlap; runs no
    shard holds read as not done.
    """
    out = Path(out)
    if not shards:
        raise ValueError("merge needs at least one shard file")
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists: use --force to overwrite it")
    infos = [_shard_info(Path(p)) for p in shards]
    first = infos[0]
    for info in infos[1:]:
        if info["config_hash"] != first["config_hash"]:
            raise ValueError(f"{info['path']} was written with a different config than {first['path']}")
    infos.sort(key=lambda i: i["run_start"])
    for a, b in zip(infos, infos[1:]):
        if a["run_start"] + a["rows"] > b["run_start"]:
            raise ValueError(f"{a['path']} and {b['path']} hold overlapping runs")
    n = int(first["num_runs"])
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as dst, h5py.File(infos[0]["path"], "r") as ref:
            dst.attrs.update({k: v for k, v in ref.attrs.items()})
            dst.attrs["run_start"] = 0
            dst["t"] = ref["t"][...]
            dst["t"].attrs.update(ref["t"].attrs)
            for name in _ROW_DATASETS:
                src = ref[name]
                shape = (n,) + src.shape[1:]
                if copy:
                    chunks = (1,) + shape[1:] if name == "m" else None
                    d = dst.create_dataset(name, shape=shape, dtype=src.dtype, chunks=chunks, fillvalue=_fill(name, src.dtype))
                    for info in infos:
                        with h5py.File(info["path"], "r") as s:
                            for j in range(info["rows"]):  # row by row: /m rows are large
                                d[info["run_start"] + j] = s[name][j]
                else:
                    layout = h5py.VirtualLayout(shape=shape, dtype=src.dtype)
                    for info in infos:
                        rel = os.path.relpath(Path(info["path"]).resolve(), out.resolve().parent)
                        source = h5py.VirtualSource(rel, name, shape=(info["rows"],) + src.shape[1:])
                        layout[info["run_start"] : info["run_start"] + info["rows"]] = source
                    dst.create_virtual_dataset(name, layout, fillvalue=_fill(name, src.dtype))
                dst[name].attrs.update(src.attrs)  # axes, units, components
    return out


def _fill(name: str, dtype: np.dtype):
    if name == "run_index":
        return -1  # rows that no shard holds
    return np.zeros((), dtype=dtype)[()]


def _shard_info(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"shard file not found: {path}")
    with _open_dataset(path, missing="not found") as f:
        return {
            "path": str(path),
            "config_hash": str(f.attrs["config_hash"]),
            "num_runs": int(f.attrs["num_runs"]),
            "run_start": int(f.attrs["run_start"]),
            "rows": int(f["done"].shape[0]),
        }


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
