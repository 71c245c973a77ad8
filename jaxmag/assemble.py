"""The assembly seam: a ``Config`` turned, once, into the plain objects the library takes.

Named for what it does: everything below it (physics, measures, noise, ``io``, ``simulate``)
takes a ``Grid``, a ``Material``, a ``MovieSpec``, ``MeasureOptions``, ``NoiseSpec``s and never
imports ``jaxmag.config``; everything above it (``jaxmag.learn``, ``jaxmag.cli``) reads a TOML
file and calls ``assemble(config)``.

``assemble(config) -> Assembly`` holds:

* ``simulation``: a ``jaxmag.simulate.SimulationSetup`` (``grid``, background ``Material`` in
  the compute precision, ``m0``, ``MovieSpec`` with the step counts, solver, components and
  the ``[instrument]`` exposure (``exposure_plan``, ``jaxmag.exposure``), ``DefectParams``), with
  ``grid``, ``background``, ``m0``, ``dtype``, ``movie`` as shortcuts;
* ``measure_options``: ``{"x"|"y"|"z": MeasureOptions}`` (per-component fixed binning ranges);
* ``noise_specs`` (the ``[noise]`` sweep) and ``noise_seed``; ``seed``, ``num_runs``,
  ``batch_size`` of ``[dataset]``.

The config-level jobs are thin compositions of ``assemble`` and the library:
``simulate(config, out=...)`` (the dataset job), ``build_run(config, i)``,
``batch_simulator(config, mesh)``, ``file_spec(config, runs)``, ``compute_measures_file(...)``
(measures of a dataset, options from a config or the dataset's own; with an ``[instrument]``, the
maps of what its detector records, component ``"p"``, through ``instrument_plan(config,
components)``).

For the ``.mx3`` export (``jaxmag.io.mx3``, still given ``config.simulation`` today): the same
facts are ``assembly.grid`` and ``assembly.movie`` (``dt`` s, ``burn_in_steps``,
``steps_per_frame``, ``num_frames``, ``frame_times()``, ``terms``, ``solver``), and a
run's film is ``simulate.build_run(assembly.simulation, run_index, seed)``.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag import simulate as sim
from jaxmag.config import Config, MeasuresConfig, config_hash, load_config, stored_config
from jaxmag.exposure import INSTANTANEOUS, ExposurePlan, plan_exposure
from jaxmag.io import dataset as ds
from jaxmag.io import measures_file as mf
from jaxmag.material import Material
from jaxmag.measures import MEASURES, MeasureOptions
from jaxmag.noise import NoiseSpec
from jaxmag.recording import PROBE_COMPONENT, RecordingPlan, recording_plan

_DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


@dataclasses.dataclass(frozen=True)
class Assembly:
    """The plain objects of one config (module docstring)."""

    simulation: sim.SimulationSetup
    measure_options: dict[str, MeasureOptions]
    noise_specs: tuple[NoiseSpec, ...]
    noise_seed: int
    seed: int
    num_runs: int
    batch_size: int

    @property
    def grid(self):
        return self.simulation.grid

    @property
    def background(self) -> Material:
        return self.simulation.background

    @property
    def m0(self) -> jax.Array:
        return self.simulation.m0

    @property
    def dtype(self):
        return self.simulation.dtype

    @property
    def movie(self) -> sim.MovieSpec:
        return self.simulation.movie

    def options_for(self, components: str) -> tuple[MeasureOptions, ...]:
        """One ``MeasureOptions`` per component letter, in order."""
        return tuple(self.measure_options[c] for c in components)

    def simulator(self, components: str | None = None) -> Callable[[Material, jax.Array, jax.Array], jax.Array]:
        """The one-film movie simulator ``(material, m0, key) -> (T, nz, ny, nx, C)``."""
        return self.movie.simulator(self.grid, components)


def compute_dtype(config: Config):
    """The simulation's compute dtype; float64 needs 64-bit JAX (checked here, not inside jit)."""
    precision = config.simulation.precision
    if precision == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "simulation.precision = 'float64' needs 64-bit JAX: set JAX_ENABLE_X64=1 "
            "(the jaxmag command does this for you)"
        )
    return _DTYPES[precision]


def exposure_plan(config: Config) -> ExposurePlan:
    """The ``jaxmag.exposure.ExposurePlan`` of ``[instrument]`` exposure_s and camera_window_s
    against ``[simulation]`` dt and frame_interval_s; instantaneous frames without an instrument.
    ``ExposureError`` (a ValueError) for an exposure the time stepping cannot realise."""
    inst = config.instrument
    if not inst.enabled or inst.exposure_s == 0:
        return INSTANTANEOUS
    s = config.simulation
    return plan_exposure(s.dt, s.steps[1], inst.exposure_s, inst.camera_window_s)


def movie_spec(config: Config) -> sim.MovieSpec:
    """The ``MovieSpec`` of ``[simulation]`` and the ``[instrument]`` exposure (hashable; no
    arrays, no dtype check)."""
    s = config.simulation
    burn, spf = s.steps
    return sim.MovieSpec(dt=s.dt, burn_in_steps=burn, steps_per_frame=spf, num_frames=s.num_frames,
                         components=s.components, terms=tuple(s.terms), solver=s.solver,
                         store_dtype=s.store_dtype, exposure=exposure_plan(config))


def simulation_setup(config: Config) -> sim.SimulationSetup:
    """Grid, background film, m0, movie spec and defect parameters of ``config``."""
    grid = config.grid.to_grid()
    mat = config.material
    dtype = compute_dtype(config)
    background = Material.uniform(grid, Ms=mat.Ms, A_ex=mat.A_ex, K_u=mat.K_u, easy_axis=mat.easy_axis,
                                  alpha=mat.alpha, temperature=mat.temperature, B_ext=mat.B_ext_T, dtype=dtype)
    u = np.asarray(mat.easy_axis, dtype=np.float64)
    m0 = jnp.broadcast_to(jnp.asarray(u / np.linalg.norm(u), dtype), grid.vector_shape)
    return sim.SimulationSetup(grid=grid, background=background, A_ex=mat.A_ex, K_u=mat.K_u,
                               easy_axis=tuple(mat.easy_axis), m0=m0, movie=movie_spec(config),
                               defects=config.defects)


def measure_options(config: MeasuresConfig) -> dict[str, MeasureOptions]:
    """``{"x": ..., "y": ..., "z": ...}``: each component's options of a ``[measures]`` section."""
    return {c: config.options(c) for c in "xyz"}


def assemble(config: Config) -> Assembly:
    """Every plain object of ``config``, built once (module docstring)."""
    return Assembly(
        simulation=simulation_setup(config),
        measure_options=measure_options(config.measures),
        noise_specs=config.noise.specs(),
        noise_seed=config.noise.seed,
        seed=config.dataset.seed,
        num_runs=config.dataset.num_runs,
        batch_size=config.dataset.batch_size,
    )


# ---------------------------------------------------------------------------------------------
# the dataset job


def resolve_config(config: Config | str | Path, *, num: int | None = None, seed: int | None = None,
                   batch: int | None = None) -> Config:
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


def build_run(config: Config, run_index: int, *, seed: int | None = None) -> sim.RunSpec:
    """``simulate.build_run`` of run ``run_index`` (``seed`` overrides ``[dataset] seed``)."""
    return sim.build_run(simulation_setup(config), run_index, config.dataset.seed if seed is None else seed)


def batch_simulator(config: Config, mesh) -> Callable:
    """``simulate.batch_simulator`` of ``config`` (one compilation per grid and movie spec)."""
    if config.grid.nz != 1:  # before any array is built
        raise ValueError(f"datasets store 2-D frames of a film one cell thick: grid.nz must be 1, got {config.grid.nz}")
    return sim.batch_simulator(simulation_setup(config), mesh)


def step_counts(config: Config) -> tuple[int, int]:
    """``(burn_in_steps, steps_per_frame)`` of ``[simulation]``."""
    return config.simulation.steps


def frame_times(config: Config) -> np.ndarray:
    """(T,) frame times in s."""
    return movie_spec(config).frame_times()


def data_hash(config: Config) -> str:
    """Hash of everything that determines a run's data (batch size and other sections excluded).

    An exposure changes the simulated frames, so a non-instantaneous ``exposure_plan`` is part of
    it (an ``-e`` suffix); without one the hash is that of the configs written before exposures."""
    base = config_hash(config, *ds.DATA_SECTIONS) + f"-s{config.dataset.seed}-n{config.dataset.num_runs}"
    plan = exposure_plan(config)
    if plan == INSTANTANEOUS:
        return base
    digest = hashlib.sha256(repr(dataclasses.astuple(plan)).encode()).hexdigest()[:8]
    return f"{base}-e{digest}"


def file_spec(config: Config, runs: range, t: np.ndarray | None = None) -> ds.FileSpec:
    """The ``FileSpec`` of a dataset file holding ``runs`` of ``config`` (``t``: frame times,
    default ``frame_times(config)``)."""
    s, g = config.simulation, config.grid
    return ds.FileSpec(
        config_text=config.to_toml(),
        config_hash=data_hash(config),
        seed=config.dataset.seed,
        num_runs=config.dataset.num_runs,
        run_start=runs.start,
        num_rows=len(runs),
        num_frames=s.num_frames,
        components=s.components,
        ny=g.ny,
        nx=g.nx,
        store_dtype=s.store_dtype,
        cell_size_m=tuple(float(c) for c in g.cell_size_m),
        t=np.asarray(frame_times(config) if t is None else t, dtype=np.float64),
        rehash=_stored_data_hash,
    )


def _stored_data_hash(text: str) -> str:
    """``data_hash`` of a config text stored in a dataset, read with today's defaults."""
    from jaxmag.config import stored_config

    return data_hash(stored_config(text))


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
    shard_index: int | None = None,
    num_shards: int | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> sim.SimulationData | Path:
    """Simulate the dataset described by ``config`` (``[dataset]`` overridden by num/batch/seed).

    With ``out``: write (or, with ``resume``, finish) the HDF5 file and return its path; with
    several shards (``shard_index``/``num_shards``, default ``jax.process_index()`` /
    ``jax.process_count()``) each writes its slice of runs to ``shard_path(out, ...)``.
    Without ``out``: return a ``SimulationData`` of this shard's runs.
    """
    if resume and force:
        raise ValueError("--resume and --force exclude each other")
    config = resolve_config(config, num=num, seed=seed, batch=batch)
    num_shards = jax.process_count() if num_shards is None else num_shards
    shard_index = jax.process_index() if shard_index is None else shard_index
    runs = sim.run_slice(config.dataset.num_runs, shard_index, num_shards)
    batch_simulator(config, sim.local_mesh(devices))  # the nz check, before the defects are drawn
    setup, d = simulation_setup(config), config.dataset
    if out is None:
        return sim.simulate_runs(setup, d.seed, runs, batch=d.batch_size, progress=progress, devices=devices)
    return sim.write_runs(setup, d.seed, runs, ds.shard_path(out, shard_index, num_shards), file_spec(config, runs),
                          batch=d.batch_size, resume=resume, force=force, progress=progress, devices=devices)


# ---------------------------------------------------------------------------------------------
# the measures job


def dataset_config(dataset_path: str | Path) -> Config:
    """The config stored in a dataset file (its root attribute ``config``)."""
    text = ds.stored_config_text(dataset_path)
    return stored_config(text, source=f"{dataset_path}:/config")


RANGE_RUNS = 16  # runs whose clean record suggests a missing fixed_range_p (check_record_range)
RANGE_QUANTILES = (0.001, 0.999)  # the rule of docs/calibration.md (jaxmag.learn.orientation.BIN_QUANTILES)


def instrument_plan(films: Config, components: str, instrument=None) -> RecordingPlan:
    """The ``jaxmag.recording.RecordingPlan`` of ``instrument`` (default ``films.instrument``) on
    the grid of ``films`` (the config the films were simulated with: cells of ``cell_size_m``,
    its boundary), recording stored films of ``components``.

    ``ValueError`` when the instrument is not enabled, or when its exposure (``exposure_s``,
    ``camera_window_s``, applied by the solver) differs from the one the films were simulated with."""
    instrument = films.instrument if instrument is None else instrument
    if not instrument.enabled:
        raise ValueError("the config has no [instrument] section: its films are the magnetisation itself")
    if exposure_plan(films) != exposure_plan(films.replace(instrument=instrument)):
        raise ValueError(f"[instrument] exposure_s = {instrument.exposure_s:g} s (camera_window_s = "
                         f"{instrument.camera_window_s:g} s) is not the exposure the films were simulated with "
                         f"({films.instrument.exposure_s if films.instrument.enabled else 0:g} s): the solver applies "
                         "the exposure, so simulate again (`jaxmag simulate`) or keep the films' exposure")
    g = films.grid
    dx, dy, _ = g.cell_size_m
    return recording_plan(instrument, (g.ny, g.nx), (dy, dx), components, g.boundary == "periodic")


def check_record_range(measures_config: MeasuresConfig, measures: Sequence[str], dataset_path: str | Path,
                       plan: RecordingPlan, noise_seed: int) -> None:
    """Refuse ``binning = "fixed"`` without ``fixed_range_p`` when the latent entropy of the record is
    wanted: the shared ``fixed_range`` (±1 by default) is a range of m, not of a detector's record
    (whose shot noise widens it, and whose probe may see a component that lives near 0). The
    error suggests a range: the 0.1-99.9 % quantiles (``RANGE_QUANTILES``) of the clean record of the
    first ``RANGE_RUNS`` finished runs (``jaxmag.io.measures_file.fixed_records``, the measures
    file's own record), rounded outward to 0.01. A config states its ranges, as configs/paper.toml
    does for m_x and m_z: the measures file and every training source then bin alike."""
    if measures_config.binning != "fixed" or measures_config.fixed_range_p or "latent_entropy" not in measures:
        return
    info = ds.open_dataset(dataset_path)
    rows = info.done_rows[:RANGE_RUNS]
    hint = ""
    if rows.size:
        s = np.asarray(mf.fixed_records(ds.read_movies(dataset_path, rows), info.run_index[rows].astype(np.uint32),
                                        noise_seed, plan))
        lo, hi = np.quantile(s.astype(np.float64), RANGE_QUANTILES)
        lo, hi = np.floor(lo * 100) / 100, np.ceil(hi * 100) / 100
        hint = (f"; the clean record of the first {rows.size} runs spans [{lo:.2f}, {hi:.2f}] (0.1-99.9 %): "
                f"e.g. fixed_range_p = [{lo:.2f}, {hi:.2f}]")
    raise ValueError(f"[measures] binning = \"fixed\" needs fixed_range_p for the latent entropy of the instrument's "
                     f"record (component p, units of Ms){hint}; or choose binning = \"quantile\" or \"minmax\"")


def compute_measures_file(
    dataset_path: str | Path,
    out_path: str | Path,
    noise_specs: Sequence[NoiseSpec | str] = (),
    *,
    config: MeasuresConfig | Config | str | Path | None = None,
    measures: Sequence[str] = MEASURES,
    noise_seed: int | None = None,
    **kwargs: Any,
) -> Path:
    """``jaxmag.io.measures_file.compute_measures_file`` with options from a config.

    ``config``: the measure options (a ``MeasuresConfig``, a ``Config`` or a TOML path); default:
    the dataset's stored config. ``noise_seed``: default the ``[noise] seed`` of that config (or
    of the dataset's). Other keywords (``chunk``, ``resume``, ``force``, ``allow_partial``,
    ``progress``) are passed on.

    With an ``[instrument]`` (in ``config`` when it is a ``Config``, else in the dataset's): the
    maps are of each run's record, component ``"p"``, on the detector's pixels, with pixel labels
    (``jaxmag.io.measures_file``); the plan is ``instrument_plan`` on the dataset's grid, and
    ``binning = "fixed"`` needs ``fixed_range_p`` (``check_record_range``).
    """
    if not Path(dataset_path).is_file():
        raise FileNotFoundError(f"dataset not found: {dataset_path}")
    if isinstance(config, (str, Path)):
        config = load_config(config)
    source = dataset_config(dataset_path)
    full = config if isinstance(config, Config) else source
    mconf = config if isinstance(config, MeasuresConfig) else full.measures
    seed = full.noise.seed if noise_seed is None else noise_seed
    if full.instrument.enabled:
        plan = instrument_plan(source, ds.open_dataset(dataset_path).components, full.instrument)
        check_record_range(mconf, measures, dataset_path, plan, seed)
        return mf.compute_measures_file(dataset_path, out_path, noise_specs,
                                        options={PROBE_COMPONENT: mconf.options(PROBE_COMPONENT)}, measures=measures,
                                        noise_seed=seed, source_hash=config_hash(source), recording=plan, **kwargs)
    return mf.compute_measures_file(dataset_path, out_path, noise_specs, options=measure_options(mconf),
                                    measures=measures, noise_seed=seed, source_hash=config_hash(source), **kwargs)
