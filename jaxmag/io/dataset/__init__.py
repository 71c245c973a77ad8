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
* per batch, ``DatasetWriter`` (``jaxmag.io.rowfile.RowWriter``) writes the rows' bytes at those
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
``tests/test_faults.py`` fills the disk. The machinery is shared with the measures file
(``jaxmag.io.rowfile``).

Reading: ``open_dataset(path) -> DatasetInfo`` (shape, components, done rows, run indices,
stored config), ``read_movies(path, rows, components)`` and ``read_labels(path, rows)``, for
every reader of the movies; ``read_runs`` loads whole rows with their material maps.
"""
from jaxmag.io.dataset.format import (
    DATA_SECTIONS,
    FORMAT,
    FORMAT_VERSION,
    FileSpec,
    check_matches,
    pending_rows,
    stored_config_text,
)
from jaxmag.io.dataset.read import DatasetInfo, DatasetSummary, open_dataset, read_labels, read_movies, read_runs, summary
from jaxmag.io.dataset.shards import merge, shard_path
from jaxmag.io.dataset.write import DatasetWriter, RunRows, complete, create_file

__all__ = [
    "DATA_SECTIONS", "FORMAT", "FORMAT_VERSION", "FileSpec", "check_matches", "pending_rows", "stored_config_text",
    "DatasetInfo", "DatasetSummary", "open_dataset", "read_labels", "read_movies", "read_runs", "summary",
    "merge", "shard_path", "DatasetWriter", "RunRows", "complete", "create_file",
]
