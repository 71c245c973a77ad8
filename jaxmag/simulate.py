"""From a config to the simulation dataset: one defect film and thermal movie per run index.

Contract
--------
* ``build_run(config, run_index) -> RunSpec``: everything run ``run_index`` needs, a pure
  function of ``(config, run_index)``: the defects come from ``defect_rng(seed, run_index)``, the
  thermal noise from ``jax.random.key(thermal_seed(seed, run_index))``. Neither depends on the
  batch a run is simulated in or on the device, so any run can be recomputed alone.
* ``batch_simulator(config)`` compiles ``jit(vmap(simulate))`` with the batch axis sharded over
  a 1-D ``Mesh`` of all local devices (axis ``"data"``); one code path for 1..n devices.
* ``simulate(config, out=...)`` runs a dataset (or this process's slice of it) batch by batch
  into an HDF5 file (``jaxmag.io.dataset``), resumable; with ``out=None`` it returns the arrays.

Frames: frame k (k = 0..T-1) is taken after ``burn_in_steps + (k + 1) * steps_per_frame`` Heun
steps, at ``t_k = burn_in_s + (k + 1) * frame_interval_s``. Stored frames have layout
``(T, C, ny, nx)`` (the film is one cell thick; ``grid.nz`` must be 1 for datasets).
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
from jaxmag.config import Config, GridConfig, SimulationConfig, load_config
from jaxmag.defects import Defects, apply_defects, defect_rng, generate_defects
from jaxmag.io import dataset as ds
from jaxmag.io.errors import WriteError
from jaxmag.material import Material, validate_material

_DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


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


def step_counts(config: Config) -> tuple[int, int]:
    """``(burn_in_steps, steps_per_frame)`` from ``[simulation]`` (validated multiples of dt)."""
    return _steps(config.simulation)


def _steps(s: SimulationConfig) -> tuple[int, int]:
    return int(round(s.burn_in_s / s.dt)), int(round(s.frame_interval_s / s.dt))


def frame_times(config: Config) -> np.ndarray:
    """(T,) frame times in s (see the module docstring)."""
    burn, spf = step_counts(config)
    k = np.arange(1, config.simulation.num_frames + 1)
    return (burn + k * spf) * config.simulation.dt


def background_material(config: Config) -> Material:
    """The defect-free film of ``[material]`` on ``[grid]``, in the config's compute precision."""
    mat = config.material
    return Material.uniform(
        config.grid.to_grid(),
        Ms=mat.Ms,
        A_ex=mat.A_ex,
        K_u=mat.K_u,
        easy_axis=mat.easy_axis,
        alpha=mat.alpha,
        temperature=mat.temperature,
        B_ext=mat.B_ext_T,
        dtype=_compute_dtype(config),
    )


def build_run(config: Config, run_index: int, *, seed: int | None = None) -> RunSpec:
    """Material maps, labels, initial state and thermal key of run ``run_index``.

    ``seed`` overrides ``config.dataset.seed``."""
    seed = config.dataset.seed if seed is None else seed
    grid = config.grid.to_grid()
    mat = config.material
    dtype = _compute_dtype(config)
    defects = generate_defects(config.defects, grid.ny, grid.nx, defect_rng(seed, run_index), periodic=grid.periodic)
    material = apply_defects(background_material(config), defects, mat)
    u = np.asarray(mat.easy_axis, dtype=np.float64)
    m0 = jnp.broadcast_to(jnp.asarray(u / np.linalg.norm(u), dtype), grid.vector_shape)
    tseed = thermal_seed(seed, run_index)
    return RunSpec(
        run_index=run_index,
        material=material,
        labels=defects.labels,
        m0=m0,
        key=jax.random.key(tseed),
        thermal_seed=tseed,
        defects=defects,
    )


def _compute_dtype(config: Config):
    precision = config.simulation.precision
    if precision == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "simulation.precision = 'float64' needs 64-bit JAX: set JAX_ENABLE_X64=1 "
            "(the jaxmag command does this for you)"
        )
    return _DTYPES[precision]


def local_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all local devices)."""
    devices = jax.local_devices() if devices is None else list(devices)
    return Mesh(np.array(devices), ("data",))


def batch_simulator(config: Config, mesh: Mesh) -> Callable[[Material, jax.Array, jax.Array], jax.Array]:
    """``run(material, m0, seeds) -> frames`` for a batch, jitted and sharded over ``mesh``.

    material: maps with a leading batch axis B (a multiple of the mesh size); m0: (B, nz, ny,
    nx, 3); seeds: (B,) uint32 thermal seeds. frames: (B, T, C, ny, nx) in ``store_dtype``.
    """
    if config.grid.nz != 1:
        raise ValueError(f"datasets store 2-D frames of a film one cell thick: grid.nz must be 1, got {config.grid.nz}")
    return _compiled_batch_simulator(config.grid, config.simulation, mesh)


@functools.lru_cache(maxsize=8)
def _compiled_batch_simulator(grid_config: GridConfig, s: SimulationConfig, mesh: Mesh):
    # Cached on what the compiled code depends on (not seed or run count), so repeated
    # simulate() calls with the same grid and time stepping reuse the jit cache: no recompiles.
    grid = grid_config.to_grid()
    burn, spf = _steps(s)
    one = drivers.movie_simulator(
        grid, dt=s.dt, burn_in_steps=burn, steps_per_frame=spf, num_frames=s.num_frames, demag=s.demag, components=s.components
    )
    store = jnp.dtype(s.store_dtype)

    def run(material: Material, m0: jax.Array, seeds: jax.Array) -> jax.Array:
        # The key is built from the seed inside, so that keys never cross the host boundary
        # and equal jax.random.key(thermal_seed) of build_run exactly.
        frames = jax.vmap(lambda mat, m, sd: one(mat, m, jax.random.key(sd)))(material, m0, seeds)
        return jnp.moveaxis(frames[:, :, 0], -1, 2).astype(store)  # (B, T, ny, nx, C) -> (B, T, C, ny, nx)

    sharded = NamedSharding(mesh, PartitionSpec("data"))
    return jax.jit(run, in_shardings=(sharded, sharded, sharded), out_shardings=sharded)


def run_slice(num_runs: int, process_id: int, num_processes: int) -> range:
    """The contiguous block of run indices simulated by ``process_id`` of ``num_processes``."""
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process id {process_id} is not in [0, {num_processes})")
    if num_processes > num_runs:
        raise ValueError(f"{num_processes} processes for only {num_runs} runs")
    return range(process_id * num_runs // num_processes, (process_id + 1) * num_runs // num_processes)


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


def resolve_config(config: Config | str | Path, *, num: int | None = None, seed: int | None = None, batch: int | None = None) -> Config:
    """``config`` (or the file it names) with the CLI overrides of ``[dataset]`` applied."""
    if not isinstance(config, Config):
        config = load_config(config)
    d = config.dataset
    for name, value, low in (("num", num, 1), ("batch", batch, 1), ("seed", seed, 0)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < low):
            raise ValueError(f"--{name} must be an integer >= {low}, got {value!r}")
    d = dataclasses.replace(
        d,
        num_runs=d.num_runs if num is None else int(num),
        seed=d.seed if seed is None else int(seed),
        batch_size=d.batch_size if batch is None else int(batch),
    )
    return config.replace(dataset=d)


def _batches(indices: Sequence[int], size: int) -> Iterator[list[int]]:
    indices = [int(i) for i in indices]
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def simulate(
    config: Config | str | Path,
    *,
    out: str | Path | None = None,
    num: int | None = None,
    batch: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    process_id: int | None = None,
    num_processes: int | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> SimulationData | Path:
    """Simulate the dataset described by ``config`` (``[dataset]`` overridden by num/batch/seed).

    With ``out``: write (or, with ``resume``, finish) the HDF5 file and return its path; with
    several processes (``process_id``/``num_processes``, default ``jax.process_index()`` /
    ``jax.process_count()``) each writes its slice of runs to ``shard_path(out, ...)``.
    Without ``out``: return a ``SimulationData`` of this process's runs.
    """
    if resume and force:
        raise ValueError("--resume and --force exclude each other")
    config = resolve_config(config, num=num, seed=seed, batch=batch)
    num_processes = jax.process_count() if num_processes is None else num_processes
    process_id = jax.process_index() if process_id is None else process_id
    runs = run_slice(config.dataset.num_runs, process_id, num_processes)
    mesh = local_mesh(devices)
    size = effective_batch(config.dataset.batch_size, mesh.size, len(runs))
    first = build_run(config, runs[0])  # fail early on impossible defects or precision
    validate_material(first.material, config.grid.to_grid())
    drivers.check_time_step(config.grid.to_grid(), first.material, config.simulation.dt)
    step = batch_simulator(config, mesh)
    t = frame_times(config)

    if out is None:
        parts = list(_run_batches(config, step, list(runs), size, progress))
        return SimulationData(
            run_index=np.concatenate([p.run_index for p in parts]),
            m=np.concatenate([p.m for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
            A=np.concatenate([p.A for p in parts]),
            Ku=np.concatenate([p.Ku for p in parts]),
            easy_axis=np.concatenate([p.easy_axis for p in parts]),
            t=t,
        )

    path = ds.shard_path(out, process_id, num_processes)
    spec = ds.FileSpec.from_config(config, t, runs.start, len(runs))
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
            for rows in _run_batches(config, step, pending, size, progress, total=len(runs)):
                writer.write(rows)
                wrote = True
    except BaseException as exc:
        if created and not wrote and not isinstance(exc, WriteError):
            work.unlink(missing_ok=True)  # nothing finished: leave no empty file behind
        raise  # (after a full disk the file stays, so that --resume continues it)
    return ds.complete(work, path)


def _run_batches(
    config: Config, step, indices: Sequence[int], size: int, progress: bool, total: int | None = None
) -> Iterator[ds.RunRows]:
    """Simulate ``indices`` in batches of ``size``; yields each batch's rows in order.

    The next batch's inputs are built on the host while the device computes (dispatch is
    asynchronous)."""
    from tqdm.auto import tqdm

    indices = list(indices)
    total = len(indices) if total is None else total
    bar = tqdm(
        total=total,
        initial=total - len(indices),
        unit="run",
        desc="simulate",
        disable=not progress,
        dynamic_ncols=True,
        # always runs/s (tqdm would switch to s/run below 1 run/s)
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]",
    )
    try:
        groups = list(_batches(indices, size))
        if not groups:
            return
        specs = [build_run(config, i) for i in groups[0]]
        for k in range(len(groups)):
            frames = step(*_stack_inputs(specs, size))
            next_specs = [build_run(config, i) for i in groups[k + 1]] if k + 1 < len(groups) else None
            rows = _rows(specs, np.asarray(frames))
            yield rows
            bar.update(len(specs))
            specs = next_specs
    finally:
        bar.close()
