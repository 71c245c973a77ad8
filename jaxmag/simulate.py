"""The simulation dataset: one defect film and thermal movie per run index.

Contract
--------
Everything here takes plain objects (``SimulationSetup``: grid, background film, initial state,
``MovieSpec`` time stepping, ``DefectParams``), which ``jaxmag.assemble`` builds once from a
config; this module never sees the config.

* ``build_run(setup, run_index, seed) -> RunSpec``: everything run ``run_index`` needs, a pure
  function of ``(setup, seed, run_index)``: the defects come from ``defect_rng(seed, run_index)``,
  the thermal noise from ``jax.random.key(thermal_seed(seed, run_index))``. Neither depends on the
  batch a run is simulated in or on the device, so any run can be recomputed alone.
* ``batch_simulator(setup, mesh)`` compiles ``jit(vmap(simulate))`` with the batch axis sharded
  over a 1-D ``Mesh`` of all local devices (axis ``"data"``); one code path for 1..n devices.
* ``simulate_runs(setup, seed, runs)`` returns the arrays; ``write_runs(setup, seed, runs, path,
  spec)`` runs them batch by batch into an HDF5 file (``jaxmag.io.dataset``), resumable.

Frames: frame k (k = 0..T-1) is taken after ``burn_in_steps + (k + 1) * steps_per_frame``
steps, at ``t_k = (burn_in_steps + (k + 1) * steps_per_frame) * dt``. With an exposure
(``MovieSpec.exposure``, a ``jaxmag.exposure.ExposurePlan``) frame k is the mean of m over the
exposure ending at t_k; at camera rate every frame is the same thermal average over one simulated
window after burn-in, and t_k is the camera's nominal clock (frames ``frame_interval_s`` apart).
Stored frames have layout ``(T, C, ny, nx)`` (the film is one cell thick; ``grid.nz`` must be 1
for datasets).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxmag import drivers
from jaxmag.defects import DefectParams, Defects, apply_defects, defect_rng, generate_defects
from jaxmag.exposure import INSTANTANEOUS, ExposurePlan
from jaxmag.fields.terms import STANDARD_TERMS
from jaxmag.grid import Grid
from jaxmag.io import dataset as ds
from jaxmag.io.errors import WriteError
from jaxmag.layout import stored_from_solver
from jaxmag.material import Material, validate_material
from jaxmag.progress import bar as progress_bar


@dataclasses.dataclass(frozen=True)
class MovieSpec:
    """Time stepping and output of one thermal movie; hashable (what the compiled simulator
    depends on, so equal specs share one compilation).

    ``dt`` s; ``burn_in_steps`` before the first frame; one frame every ``steps_per_frame``;
    ``components`` the stored letters; ``store_dtype`` of the stored frames; ``solver`` a name
    of ``integrators.SOLVERS``; ``terms`` names of ``fields.terms.TERMS``; ``exposure`` how each
    frame integrates time (``jaxmag.exposure``; default instantaneous frames).
    """

    dt: float
    burn_in_steps: int
    steps_per_frame: int
    num_frames: int
    components: str = "xz"
    terms: tuple[str, ...] = STANDARD_TERMS
    solver: str = "heun"
    store_dtype: str = "float32"
    exposure: ExposurePlan = INSTANTANEOUS

    def frame_times(self) -> np.ndarray:
        """(T,) frame times in s: the end of each frame's interval and exposure (module docstring)."""
        k = np.arange(1, self.num_frames + 1, dtype=np.int64)
        return (self.burn_in_steps + k * self.steps_per_frame) * self.dt

    def simulator(self, grid: Grid, components: str | None = None) -> Callable[[Material, jax.Array, jax.Array], jax.Array]:
        """``drivers.movie_simulator`` of this spec: ``(material, m0, key) -> (T, nz, ny, nx, C)``."""
        return drivers.movie_simulator(grid, dt=self.dt, burn_in_steps=self.burn_in_steps,
                                       steps_per_frame=self.steps_per_frame, num_frames=self.num_frames,
                                       terms=self.terms, solver=self.solver,
                                       components=components or self.components,
                                       exposure_steps=self.exposure.exposure_steps,
                                       camera_window_steps=self.exposure.window_steps)


@dataclasses.dataclass(frozen=True)
class SimulationSetup:
    """What every run of a dataset shares.

    grid: the (static) grid; background: the defect-free film (``Material`` maps (nz, ny, nx),
    compute precision); A_ex (J/m), K_u (J/m³), easy_axis: the background values as Python
    floats, which the defect factors multiply in float64 (``defects.material_maps``); m0:
    (nz, ny, nx, 3) unit vectors along the easy axis; movie: the ``MovieSpec``; defects: the
    ``DefectParams`` of the blobs.
    """

    grid: Grid
    background: Material
    A_ex: float
    K_u: float
    easy_axis: tuple[float, float, float]
    m0: jax.Array
    movie: MovieSpec
    defects: DefectParams

    @property
    def dtype(self):
        return self.background.Ms.dtype


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Inputs of one run.

    material: per-cell maps, shape (nz, ny, nx) (easy_axis (nz, ny, nx, 3)), SI units.
    labels: (ny, nx) uint8, 0 background, 1..num_a "a" blobs, then the "b" blobs.
    m0: (nz, ny, nx, 3), unit vectors along the background easy axis.
    key: the run's thermal jax.random key, ``jax.random.key(thermal_seed)``.
    thermal_seed: int in [0, 2**31), a function of (seed, run_index) only (MuMax3 ``ThermSeed``).
    """

    run_index: int
    material: Material
    labels: np.ndarray
    m0: jax.Array
    key: jax.Array
    thermal_seed: int
    defects: Defects


def thermal_seed(seed: int, run_index: int) -> int:
    """The thermal seed of run ``run_index``: 31 bits from ``SeedSequence([seed, run_index, 1])``
    (the defects use ``[seed, run_index, 0]``, an independent stream)."""
    state = np.random.SeedSequence([seed, run_index, 1]).generate_state(1, dtype=np.uint32)[0]
    return int(state & 0x7FFFFFFF)  # MuMax3's ThermSeed is a signed int


def build_run(setup: SimulationSetup, run_index: int, seed: int) -> RunSpec:
    """Material maps, labels, initial state and thermal key of run ``run_index`` of dataset ``seed``."""
    grid = setup.grid
    defects = generate_defects(setup.defects, grid.ny, grid.nx, defect_rng(seed, run_index), periodic=grid.periodic)
    material = apply_defects(setup.background, defects, setup)
    tseed = thermal_seed(seed, run_index)
    return RunSpec(
        run_index=run_index,
        material=material,
        labels=defects.labels,
        m0=setup.m0,
        key=jax.random.key(tseed),
        thermal_seed=tseed,
        defects=defects,
    )


def local_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all local devices)."""
    devices = jax.local_devices() if devices is None else list(devices)
    return Mesh(np.array(devices), ("data",))


def batch_simulator(setup: SimulationSetup, mesh: Mesh) -> Callable[[Material, jax.Array, jax.Array], jax.Array]:
    """``run(material, m0, seeds) -> frames`` for a batch, jitted and sharded over ``mesh``.

    material: maps with a leading batch axis B (a multiple of the mesh size); m0: (B, nz, ny,
    nx, 3); seeds: (B,) uint32 thermal seeds. frames: (B, T, C, ny, nx) in ``store_dtype``.
    """
    if setup.grid.nz != 1:
        raise ValueError(f"datasets store 2-D frames of a film one cell thick: grid.nz must be 1, got {setup.grid.nz}")
    return _compiled_batch_simulator(setup.grid, setup.movie, mesh)


@functools.lru_cache(maxsize=8)
def _compiled_batch_simulator(grid: Grid, movie: MovieSpec, mesh: Mesh):
    # Cached on what the compiled code depends on (not seed or run count), so repeated
    # simulate() calls with the same grid and time stepping reuse the jit cache: no recompiles.
    one = movie.simulator(grid)
    store = jnp.dtype(movie.store_dtype)

    def run(material: Material, m0: jax.Array, seeds: jax.Array) -> jax.Array:
        # The key is built from the seed inside, so that keys never cross the host boundary
        # and equal jax.random.key(thermal_seed) of build_run exactly.
        frames = jax.vmap(lambda mat, m, sd: one(mat, m, jax.random.key(sd)))(material, m0, seeds)
        return stored_from_solver(frames).astype(store)

    sharded = NamedSharding(mesh, PartitionSpec("data"))
    return jax.jit(run, in_shardings=(sharded, sharded, sharded), out_shardings=sharded)


def run_slice(num_runs: int, shard_index: int, num_shards: int) -> range:
    """The contiguous block of run indices simulated by shard ``shard_index`` of ``num_shards``."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard index {shard_index} is not in [0, {num_shards})")
    if num_shards > num_runs:
        raise ValueError(f"{num_shards} shards for only {num_runs} runs")
    return range(shard_index * num_runs // num_shards, (shard_index + 1) * num_runs // num_shards)


def effective_batch(batch: int, num_devices: int, num_runs: int) -> int:
    """Batch size actually compiled: at most what the runs need, rounded up to a multiple of
    the device count (the padding rows are computed and dropped)."""
    batch = min(batch, num_runs)
    return -(-batch // num_devices) * num_devices


def _stack_inputs(specs: Sequence[RunSpec], size: int) -> tuple[Material, np.ndarray, np.ndarray]:
    """Batch ``specs`` padded to ``size`` rows by repeating the last run (dropped afterwards)."""
    padded = list(specs) + [specs[-1]] * (size - len(specs))
    material = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *[p.material for p in padded])
    m0 = np.stack([np.asarray(p.m0) for p in padded])
    seeds = np.array([p.thermal_seed for p in padded], dtype=np.uint32)
    return material, m0, seeds


def _rows(specs: Sequence[RunSpec], frames: np.ndarray) -> ds.RunRows:
    mats = [s.material for s in specs]
    return ds.RunRows(
        run_index=np.array([s.run_index for s in specs], dtype=np.int64),
        m=frames[: len(specs)],
        labels=np.stack([s.labels for s in specs]),
        A=np.stack([np.asarray(m.A_ex[0], np.float32) for m in mats]),
        Ku=np.stack([np.asarray(m.K_u[0], np.float32) for m in mats]),
        easy_axis=np.stack([np.asarray(m.easy_axis[0], np.float32) for m in mats]),
    )


@dataclasses.dataclass(frozen=True)
class SimulationData:
    """In-memory dataset (``simulate(config)`` without ``out``); same arrays as the file."""

    run_index: np.ndarray  # (N,)
    m: np.ndarray  # (N, T, C, ny, nx)
    labels: np.ndarray  # (N, ny, nx) uint8
    A: np.ndarray  # (N, ny, nx) J/m
    Ku: np.ndarray  # (N, ny, nx) J/m³
    easy_axis: np.ndarray  # (N, ny, nx, 3)
    t: np.ndarray  # (T,) s


def _batches(indices: Sequence[int], size: int) -> Iterator[list[int]]:
    indices = [int(i) for i in indices]
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def _prepare(setup: SimulationSetup, seed: int, runs: Sequence[int], batch: int, devices):
    """Fail early on impossible defects or an unstable step; the compiled step and batch size."""
    mesh = local_mesh(devices)
    size = effective_batch(batch, mesh.size, len(runs))
    first = build_run(setup, runs[0], seed)
    validate_material(first.material, setup.grid)
    drivers.check_time_step(setup.grid, first.material, setup.movie.dt, setup.movie.terms)
    return batch_simulator(setup, mesh), size


def simulate_runs(setup: SimulationSetup, seed: int, runs: Sequence[int], *, batch: int = 16, progress: bool = True,
                  devices: Sequence[jax.Device] | None = None) -> SimulationData:
    """Simulate ``runs`` of dataset ``seed`` in memory (batches of ``batch``, padded to the devices)."""
    step, size = _prepare(setup, seed, runs, batch, devices)
    parts = list(_run_batches(setup, seed, step, list(runs), size, progress))
    return SimulationData(
        run_index=np.concatenate([p.run_index for p in parts]),
        m=np.concatenate([p.m for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        A=np.concatenate([p.A for p in parts]),
        Ku=np.concatenate([p.Ku for p in parts]),
        easy_axis=np.concatenate([p.easy_axis for p in parts]),
        t=setup.movie.frame_times(),
    )


def write_runs(setup: SimulationSetup, seed: int, runs: range, path: str | Path, spec: ds.FileSpec, *,
               batch: int = 16, resume: bool = False, force: bool = False, progress: bool = True,
               devices: Sequence[jax.Device] | None = None) -> Path:
    """Write (or, with ``resume``, finish) the dataset file ``path`` holding ``runs``; returns it.

    ``spec`` describes the file (``jaxmag.io.dataset.FileSpec``); resuming refuses a file of
    another spec. With ``force`` the new file is written beside ``path`` and replaces it only
    when complete; a new file that got no finished batch is removed on an error (not after a
    write error such as a full disk, so that ``resume`` continues it).
    """
    if resume and force:
        raise ValueError("--resume and --force exclude each other")
    path = Path(path)
    step, size = _prepare(setup, seed, runs, batch, devices)
    created = False
    if resume:
        work = ds.check_matches(path, spec)  # path, or the file an interrupted --force run left
    else:
        work = ds.create_file(path, spec, force=force)  # with --force: beside path until complete
        created = True
    pending = ds.pending_rows(work)
    wrote = False
    try:
        with ds.DatasetWriter(work) as writer:
            for rows in _run_batches(setup, seed, step, pending, size, progress, total=len(runs)):
                writer.write(rows)
                wrote = True
    except BaseException as exc:
        if created and not wrote and not isinstance(exc, WriteError):
            work.unlink(missing_ok=True)  # nothing finished: leave no empty file behind
        raise  # (after a full disk the file stays, so that --resume continues it)
    return ds.complete(work, path)


def _run_batches(
    setup: SimulationSetup, seed: int, step, indices: Sequence[int], size: int, progress: bool, total: int | None = None
) -> Iterator[ds.RunRows]:
    """Simulate ``indices`` in batches of ``size``; yields each batch's rows in order.

    The next batch's inputs are built on the host while the device computes (dispatch is
    asynchronous)."""
    indices = list(indices)
    total = len(indices) if total is None else total
    bar = progress_bar(
        total,
        initial=total - len(indices),
        unit="run",
        desc="simulate",
        enabled=progress,
        dynamic_ncols=True,
        # always runs/s (tqdm would switch to s/run below 1 run/s)
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]",
    )
    try:
        groups = list(_batches(indices, size))
        if not groups:
            return
        specs = [build_run(setup, i, seed) for i in groups[0]]
        for k in range(len(groups)):
            frames = step(*_stack_inputs(specs, size))
            next_specs = [build_run(setup, i, seed) for i in groups[k + 1]] if k + 1 < len(groups) else None
            rows = _rows(specs, np.asarray(frames))
            yield rows
            bar.update(len(specs))
            specs = next_specs
    finally:
        bar.close()
