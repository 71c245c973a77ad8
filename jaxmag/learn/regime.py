"""From a researcher's movie to the simulation regime that matches it (the config ``jaxmag detect`` trains on).

Contract
--------
``read_movies(movie, component=None, ...) -> ({component: Movie}, description)`` reads a movie
(``jaxmag.io.movie``): m_x and m_z of an OVF folder or jaxmag HDF5 file, else the one component
it holds; values must be unit-vector components (``max_abs`` after ``rescale``).

``movie_facts(movies, cell_size_m=None, frame_interval_s=None, boundary=None, regime=None) -> MovieFacts``
reads what the movie itself says: its size and frame count, the cell size and frame times from
OVF headers (or the flags or a ``--regime`` file, for TIFF/HDF5/npy, which store neither), and the film's boundary
(``"auto"``: open edges show in the movie, see ``guess_boundary``). Every value records where
it came from (``"OVF header"``, ``"--frame-interval"``, ``"default"``, ``"movie"``), for the report.

``build_regime(facts, regime=None, material=None, temperature=None, ...) -> Regime(config, origin)``
builds a normal jaxmag config: the movie's grid, cell size, boundary, frame interval and frame
count; the material (permalloy of ``configs/paper.toml``, or the ``[material]`` and ``[defects]``
tables of a config file given as ``material``); the defect blobs of the paper's film scaled to
the cell size (same physical area) and capped so four blobs fit the grid; a Heun step that
divides the frame interval and respects the ``dx**2`` stability scaling; the ``[model]`` and
``[training]`` of a budget (``jaxmag.learn.budgets.BUDGETS``). ``jaxmag simulate`` and ``jaxmag
train`` accept it unchanged. With ``regime`` (the config of a ``--regime`` file, such as the
``regime.toml`` that ``detect`` writes) the file is the base and is used as written: a keyword
that is given overrides it, one that is None does not, so a ``regime.toml`` read back builds the
identical config (the same ``config_hash``, the same cached films and model). ``origin`` says for
every value whether it was read from the movie, the file, a flag or a default (``origin_kind``).
``regime_config(facts, ...)`` is the config alone, without a file.

``movie_statistics(movies)`` and ``regime_warnings(movie_stats, film_stats)`` check afterwards
that the movie lies within what its regime's (noisy) films produce: a statistic outside their
range says the material, temperature, boundary or history of the movie differs from the regime.

Scope: the temporal measures read the thermal fluctuations, which live on ps-ns time scales, so
the frames must be 0.01 ps - 10 ns apart (simulations, time-resolved X-ray or electron imaging).
A camera-rate movie (ms - s) has averaged the fluctuations away: it keeps the static contrast
(the temporal mean), not the fluctuation measures, and is refused with that reason.

Errors (``ValueError`` subclasses, one line each, naming the fix): a movie too short for the
measures (``MIN_FRAMES``), a TIFF/HDF5/npy movie without ``--frame-interval``, OVF frame times
that are not evenly spaced, a frame interval outside the scope above, frames smaller than the
U-Net's minimum side, a ``--regime`` file whose grid, frame count, cell size or frame interval
differs from the movie's (naming both values).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from jaxmag.config import Config, config_from_dict, load_config
from jaxmag.io.movie import MAX_ABS, Movie, MovieError, movie_from_array, read_movie
from jaxmag.learn.orientation import guess_boundary, uncalibrated_bins

MIN_FRAMES = 8  # below this the temporal std and latent entropy of a pixel are mostly noise
DEFAULT_CELL_SIZE = 4e-9  # m: the paper's cells
PAPER_CELL = 4e-9
PAPER_BLOB_AREA = (24, 40)  # cells of 4 nm (configs/paper.toml [defects] size_min, size_max)
MAX_DEFECT_FRACTION = 0.12  # the four blobs cover at most this much of the grid (paper: ~10 %)
DT_MAX_4NM = 1e-13  # s: configs/paper.toml's step at 4 nm cells (stable limit ~1.7e-13 s)
BURN_IN_S = 1e-10  # s before the first simulated frame: the defects' contrast is there by then (docs/dataset.md)
# Frames must sample the thermal fluctuations (magnon periods of ps, correlation times up to ns):
# a slower movie averages them away (docs/detect.md, "Scope: time scales").
MIN_FRAME_INTERVAL, MAX_FRAME_INTERVAL = 1e-14, 1e-8  # s
REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class RegimeError(ValueError):
    """The movie does not say enough, or is not fit, to build a simulation regime."""


@dataclasses.dataclass(frozen=True)
class MovieFacts:
    """What a movie tells about its regime; ``origin`` says where each value came from."""

    num_frames: int
    ny: int
    nx: int
    components: str
    cell_size_m: float
    frame_interval_s: float
    boundary: str
    origin: Mapping[str, str]
    boundary_evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_frames": self.num_frames,
            "ny": self.ny,
            "nx": self.nx,
            "components": self.components,
            "cell_size_m": self.cell_size_m,
            "frame_interval_s": self.frame_interval_s,
            "boundary": self.boundary,
            "origin": dict(self.origin),
            "boundary_evidence": self.boundary_evidence,
        }


def read_movies(
    movie: Any, *, component: str | None = None, dataset: str | None = None, rescale: str = "none",
    max_abs: float = MAX_ABS,
) -> tuple[dict[str, Movie], str]:
    """``({component: Movie}, description)``: m_x and m_z of an OVF folder or jaxmag HDF5 file, else one component."""
    if isinstance(movie, Movie):
        return {movie.component: movie}, movie.source
    if isinstance(movie, Mapping):
        out = {c: m if isinstance(m, Movie) else movie_from_array(m, component=c, source=f"movie {c}",
                                                                 rescale=rescale, max_abs=max_abs)
               for c, m in movie.items()}
        return out, ", ".join(m.source for m in out.values())
    if not isinstance(movie, (str, Path)):
        c = component or "z"
        m = movie_from_array(movie, component=c, source="array", rescale=rescale, max_abs=max_abs)
        return {c: m}, "array"
    path = Path(movie)
    if not path.exists():
        raise FileNotFoundError(f"movie not found: {path}")
    vector = path.is_dir() or (path.suffix.lower() in (".h5", ".hdf5", ".hdf") and dataset is None)
    comps = (component,) if component else (("x", "z") if vector else ("z",))
    out = {}
    for c in comps:
        try:
            out[c] = read_movie(path, component=c, dataset=dataset, rescale=rescale, max_abs=max_abs)
        except MovieError as exc:
            if component is None and len(comps) > 1 and "component" in str(exc) and out:
                continue  # the file holds fewer components: use those it has
            raise
    if len({m.source for m in out.values()}) < len(out):  # a scalar movie read once per component
        out = {comps[-1]: out[comps[-1]]}
    return out, str(path)


def movie_facts(
    movies: Mapping[str, Movie],
    *,
    cell_size_m: float | None = None,
    frame_interval_s: float | None = None,
    boundary: str | None = None,
    regime: Config | None = None,
    regime_name: str = "the regime file",
    easy_axis: Sequence[float] = (1.0, 0.0, 0.0),
) -> MovieFacts:
    """The movie's size, cell size, frame interval and boundary (module docstring).

    ``regime``: the config of a ``--regime`` file. The movie's grid and frame count must match it,
    and so must the cell size and frame interval where the movie stores them; where neither the
    movie nor a flag gives one, the file's value is taken (origin ``"file <regime_name>"``).
    ``easy_axis``: the regime's (``regime_easy_axis``), for the open-edge test of ``guess_boundary``."""
    if not movies:
        raise RegimeError("no movie component was read")
    first = next(iter(movies.values()))
    T, ny, nx = first.shape
    for c, m in movies.items():
        if m.shape != first.shape:
            raise RegimeError(f"component {c} has shape {m.shape}, component {first.component} {first.shape}")
    if T < MIN_FRAMES:
        raise RegimeError(
            f"{first.source}: {T} frames are too few for the temporal measures (std, latent entropy): "
            f"detect needs at least {MIN_FRAMES} frames, the paper's movies have about 100"
        )
    if regime is not None:
        check_regime_file(regime, regime_name, T, ny, nx)
    origin: dict[str, str] = {"grid": "movie", "num_frames": "movie"}
    cell, origin["cell_size_m"] = _cell_size(first, cell_size_m, regime, regime_name)
    interval, origin["frame_interval_s"] = _frame_interval(first, frame_interval_s, regime, regime_name)
    check_frame_interval(interval)
    evidence = ""
    if boundary is None and regime is not None:
        boundary, origin["boundary"] = regime.grid.boundary, f"file {regime_name}"
    elif boundary in (None, "auto"):
        boundary, evidence = guess_boundary(movies, easy_axis)  # the edge signature follows the film's axis
        origin["boundary"] = "movie (auto)"
    elif boundary in ("open", "periodic"):
        origin["boundary"] = "--boundary"
    else:
        raise RegimeError(f"--boundary must be open, periodic or auto, got {boundary!r}")
    return MovieFacts(T, ny, nx, "".join(movies), cell, interval, boundary, origin, evidence)


def check_regime_file(regime: Config, name: str, num_frames: int, ny: int, nx: int) -> None:
    """A ``--regime`` file fits the movie: same grid and frame count, one layer of square cells."""
    g, s = regime.grid, regime.simulation
    if (g.ny, g.nx) != (ny, nx):
        raise RegimeError(f"{name}: [grid] ny x nx is {g.ny} x {g.nx}, the movie's frames are {ny} x {nx}; "
                          "use the regime.toml written for this movie (or edit [grid] ny, nx)")
    if s.num_frames != num_frames:
        raise RegimeError(f"{name}: [simulation] num_frames is {s.num_frames}, the movie has {num_frames} frames; "
                          "use the regime.toml written for this movie (or edit num_frames)")
    if not math.isclose(g.cell_size_m[0], g.cell_size_m[1], rel_tol=1e-3):
        raise RegimeError(f"{name}: [grid] cell_size_m {g.cell_size_m[0]:g} x {g.cell_size_m[1]:g} m is not square; "
                          "jaxmag's defects assume square cells")


def _cell_size(first: Movie, flag: float | None, regime: Config | None, regime_name: str) -> tuple[float, str]:
    """``(cell size, origin)``: the flag, else the OVF header (the file must agree), else the file, else 4 nm."""
    file_cell = None if regime is None else float(regime.grid.cell_size_m[0])
    if flag is not None:
        cell, label = float(flag), "--cell-size"
    elif first.cell_size_m is not None:
        dx, dy, _ = first.cell_size_m
        if not math.isclose(dx, dy, rel_tol=1e-3):
            raise RegimeError(f"{first.source}: cells of {dx:g} x {dy:g} m are not square; jaxmag's defects assume square cells")
        cell, label = float(dx), "OVF header"
        if file_cell is not None:
            if not math.isclose(cell, file_cell, rel_tol=1e-3):
                raise RegimeError(f"{regime_name}: [grid] cell_size_m is {file_cell:g} m, the movie's OVF headers say "
                                  f"{cell:g} m; edit the file or pass --cell-size")
            cell, label = file_cell, "OVF header; the file agrees"  # the file's value as written: the same hash
    elif file_cell is not None:
        cell, label = file_cell, f"file {regime_name}"
    else:
        cell, label = DEFAULT_CELL_SIZE, "default (the movie does not store it; pass --cell-size)"
    if not 1e-10 <= cell <= 1e-7:
        raise RegimeError(f"cell size {cell:g} m is not a micromagnetic cell (0.1-100 nm); give --cell-size in metres, e.g. 4e-9")
    return cell, label


def _frame_interval(first: Movie, flag: float | None, regime: Config | None, regime_name: str) -> tuple[float, str]:
    """``(frame interval, origin)``: the flag, else the OVF frame times (the file must agree), else the file."""
    T = first.shape[0]
    file_interval = None if regime is None else float(regime.simulation.frame_interval_s)
    if flag is not None:
        return float(flag), "--frame-interval"
    if first.times_s is not None and len(first.times_s) == T and np.all(np.isfinite(first.times_s)):
        steps = np.diff(np.asarray(first.times_s, np.float64))
        interval = float(np.median(steps))
        if not interval > 0 or np.max(np.abs(steps - interval)) > 0.01 * interval:
            raise RegimeError(
                f"{first.source}: the frame times in the OVF headers are not evenly spaced "
                f"(steps {steps.min():.3g} to {steps.max():.3g} s); pass --frame-interval to override"
            )
        if file_interval is None:
            return interval, "OVF header"
        if abs(interval - file_interval) > 0.01 * interval:
            raise RegimeError(f"{regime_name}: [simulation] frame_interval_s is {file_interval:g} s, the movie's OVF "
                              f"frame times are {interval:g} s apart; edit the file or pass --frame-interval")
        return file_interval, "OVF header; the file agrees"
    if file_interval is not None:
        return file_interval, f"file {regime_name}"
    raise RegimeError(
        f"{first.source}: the movie does not store its frame times; pass --frame-interval SECONDS "
        "(the time between two frames, e.g. 1e-11 for 10 ps)"
    )


def check_frame_interval(interval: float) -> None:
    """The temporal measures need frames on the time scale of the thermal fluctuations (module docstring, Scope)."""
    if interval > MAX_FRAME_INTERVAL:
        raise RegimeError(
            f"frame interval {interval:g} s is slower than the thermal fluctuations that detect's temporal measures "
            "(std, latent entropy) read: they need frames 0.01 ps - 10 ns apart, from simulations or time-resolved "
            "X-ray or electron imaging; a camera-rate movie (ms - s) averages the fluctuations away and keeps only the "
            "static contrast, its temporal mean (docs/detect.md, Scope: time scales)"
        )
    if not interval >= MIN_FRAME_INTERVAL:
        raise RegimeError(f"frame interval {interval:g} s is below 0.01 ps, shorter than any integration step of the "
                          "dynamics; give --frame-interval in seconds, e.g. 1e-11 for 10 ps")


def material_source(material: str | Path) -> Config:
    """The config whose ``[material]`` and ``[defects]`` a regime uses: ``"permalloy"`` or a TOML file."""
    if str(material) == "permalloy":
        return load_config(REPO_CONFIGS / "paper.toml")
    path = Path(material)
    if path.suffix.lower() != ".toml":
        raise RegimeError(f"--material must be 'permalloy' or a jaxmag config file (.toml), got {material!r}")
    return load_config(path)


def regime_easy_axis(material: str | Path | None, regime: Config | None = None) -> tuple[float, float, float]:
    """The easy axis the regime will have, known before it is built (``movie_facts`` needs it for
    the boundary): ``material``'s when given, else the ``--regime`` file's, else permalloy's (+x)."""
    if material is not None:
        return tuple(float(v) for v in material_source(material).material.easy_axis)
    if regime is not None:
        return tuple(float(v) for v in regime.material.easy_axis)
    return (1.0, 0.0, 0.0)


def check_min_side(ny: int, nx: int, depth: int) -> None:
    """Frames must be at least ``2 ** (depth + 1)`` pixels a side: the U-Net's bottleneck is then 2 x 2."""
    side = 2 ** (int(depth) + 1)
    if min(ny, nx) < side:
        raise RegimeError(
            f"frames of {ny} x {nx} pixels are smaller than the U-Net's minimum of {side} x {side} "
            f"(depth {depth}: the image is halved {depth} times); use a larger field of view"
        )


def defect_sizes(cell_size_m: float, ny: int, nx: int, count: int) -> tuple[int, int]:
    """Blob areas ``(size_min, size_max)`` in cells: the paper's 24-40 cells of 4 nm at equal physical
    area, capped so ``count`` blobs cover at most ``MAX_DEFECT_FRACTION`` of the grid."""
    scale = (PAPER_CELL / cell_size_m) ** 2
    lo, hi = PAPER_BLOB_AREA[0] * scale, PAPER_BLOB_AREA[1] * scale
    cap = MAX_DEFECT_FRACTION * ny * nx / max(count, 1)
    if hi > cap:
        lo, hi = lo * cap / hi, cap
    hi_i = max(4, int(round(hi)))
    return max(3, min(hi_i, int(round(lo)))), hi_i


def time_step(frame_interval_s: float, cell_size_m: float) -> float:
    """The largest Heun step that divides the frame interval and keeps ``dt <= 1e-13 s * (dx / 4 nm)**2``.

    The exchange field grows as ``1 / dx**2``, so the stability limit of configs/paper.toml's 0.1 ps
    step at 4 nm shrinks with the square of the cell size."""
    dt_max = DT_MAX_4NM * min(1.0, (cell_size_m / PAPER_CELL) ** 2)
    n = max(1, math.ceil(frame_interval_s / dt_max - 1e-9))
    return frame_interval_s / n


@dataclasses.dataclass(frozen=True)
class Regime:
    """A regime's config and where each of its values came from: ``origin`` maps a row of the
    report (``ORIGIN_ROWS``) to a label that starts with ``movie``, ``file``, ``flag`` or ``default``."""

    config: Config
    origin: Mapping[str, str]


ORIGIN_ROWS = ("grid", "num_frames", "cell_size_m", "frame_interval_s", "boundary", "temperature", "material",
               "defects", "defect_sizes", "dt", "burn_in_s", "measures", "films", "seed", "model", "training",
               "instrument")
PAPER_LABEL = "default (permalloy, configs/paper.toml)"


def origin_kind(label: str) -> str:
    """``"movie"``, ``"file"``, ``"flag"`` or ``"default"``: where an origin label says a value came from."""
    return label.split(maxsplit=1)[0] if label else "default"


def _facts_label(label: str) -> str:
    """``movie_facts``' origin labels in the words of ``origin_kind``."""
    if label.startswith("--"):
        return f"flag {label}"
    return f"movie ({label})" if label.startswith("OVF header") else label


def build_regime(
    facts: MovieFacts,
    *,
    regime: Config | None = None,
    regime_name: str = "the regime file",
    material: str | Path | None = None,
    temperature: float | None = None,
    model: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    num_runs: int | None = None,
    seed: int | None = None,
    budget_label: str = "flag --budget",
    name: str = "detect",
) -> Regime:
    """The movie's regime (module docstring) and the origin of each value.

    ``regime``: the config of a ``--regime`` file, taken as written (``movie_facts`` checked it
    against the movie), else configs/paper.toml. A keyword that is given (not None) overrides the
    file: ``material`` (a name or config file: its ``[material]`` and ``[defects]``, defect areas
    rescaled to the cell size; a file other than permalloy also gives its ``burn_in_s``,
    ``material_burn_in``, and leaves the latent-entropy ranges to its films, ``uncalibrated_bins``),
    ``temperature`` (K), ``model``/``training``/``num_runs`` (a budget,
    labelled ``budget_label``), ``seed``. Without a file, the ones not given are the defaults."""
    from_file = regime is not None
    base = regime if from_file else load_config(REPO_CONFIGS / "paper.toml")
    base_label = f"file {regime_name}" if from_file else "default (configs/paper.toml)"
    origin = {k: _facts_label(v) for k, v in facts.origin.items()}
    mat, defects, found = _material(facts, base if from_file else None, material, temperature, base_label)
    origin.update(found)
    simulation, found = _simulation(facts, base, from_file, base_label)
    origin.update(found)
    cell = float(facts.cell_size_m)
    dz = base.grid.cell_size_m[2] if from_file else cell  # a file's layer thickness as written
    grid = dataclasses.replace(base.grid, nx=facts.nx, ny=facts.ny, cell_size_m=(cell, cell, dz), boundary=facts.boundary,
                               **({} if from_file else {"nz": 1, "pbc_images": 2}))
    ds = base.dataset
    dataset = dataclasses.replace(ds, num_runs=int(num_runs if num_runs is not None else ds.num_runs if from_file else 64),
                                  batch_size=ds.batch_size if from_file else 8,
                                  seed=int(seed if seed is not None else ds.seed if from_file else 0))
    origin["films"] = budget_label if num_runs is not None else base_label if from_file else "default (64 films)"
    origin["seed"] = "flag --seed" if seed is not None else base_label if from_file else "default"
    model_cfg = dataclasses.replace(base.model, **dict(model or {}))
    training_cfg = dataclasses.replace(base.training, **dict(training or {}))
    origin["model"] = budget_label if model else base_label
    origin["training"] = budget_label if training else base_label
    own = not from_file and material is not None and str(material) != "permalloy"  # a film other than permalloy:
    if own:  # its own time to reach its thermal state, and its own latent-entropy ranges
        simulation, origin["burn_in_s"] = material_burn_in(simulation, material)
    measures = uncalibrated_bins(base.measures) if own else base.measures  # filled by detect.calibrate_bins
    origin["measures"] = "default (the regime's clean films)" if own else base_label
    check_min_side(facts.ny, facts.nx, model_cfg.depth)
    config = base.replace(name=base.name if from_file else name, grid=grid, material=mat, defects=defects,
                          simulation=simulation, dataset=dataset, model=model_cfg, training=training_cfg,
                          measures=measures)
    config = config_from_dict(config.to_dict(), source=regime_name if from_file else "detect regime")  # a file's checks
    return Regime(config, origin)


def _material(facts: MovieFacts, regime: Config | None, material: str | Path | None, temperature: float | None,
              base_label: str) -> tuple[Any, Any, dict[str, str]]:
    """``(material, defects, origin)``: the file's as written, else those of ``material`` (default
    permalloy) with the defect areas scaled to the cell size; ``temperature`` overrides either."""
    if material is None and regime is not None:
        mat, defects = regime.material, regime.defects
        origin = {"material": base_label, "defects": base_label, "defect_sizes": base_label}
    else:
        src = material_source("permalloy" if material is None else material)
        label = PAPER_LABEL if material is None else f"flag --material {material}"
        mat, defects = src.material, scaled_defects(src.defects, facts)
        origin = {"material": label, "defects": label, "defect_sizes": "default (the paper's areas at this cell size)"}
    origin["temperature"] = origin["material"]
    if temperature is not None:
        mat = dataclasses.replace(mat, temperature=float(temperature))
        origin["temperature"] = "flag --temperature"
    return mat, defects, origin


def scaled_defects(defects: Any, facts: MovieFacts) -> Any:
    """``[defects]`` with the blob areas (``defect_sizes``) and the gap rescaled to the movie's cells."""
    size_min, size_max = defect_sizes(facts.cell_size_m, facts.ny, facts.nx, defects.num_a + defects.num_b)
    gap = max(1, min(defects.min_gap, round(defects.min_gap * PAPER_CELL / facts.cell_size_m)))
    return dataclasses.replace(defects, size_min=size_min, size_max=size_max, min_gap=gap)


def _simulation(facts: MovieFacts, base: Config, from_file: bool, base_label: str) -> tuple[Any, dict[str, str]]:
    """``[simulation]`` at the movie's frames: a file's step and burn-in as written where its step
    still divides the frame interval at its cell size, else the stable step (``time_step``) and the
    burn-in (the file's, else ``BURN_IN_S``) rounded to it."""
    s = base.simulation
    n = facts.frame_interval_s / s.dt
    same_cells = math.isclose(facts.cell_size_m, base.grid.cell_size_m[0], rel_tol=1e-12)
    if from_file and same_cells and abs(n - round(n)) < 1e-6 * max(n, 1):
        dt, burn, origin = s.dt, s.burn_in_s, {"dt": base_label, "burn_in_s": base_label}
    else:
        dt = time_step(facts.frame_interval_s, facts.cell_size_m)
        burn = max(1, round((s.burn_in_s if from_file else BURN_IN_S) / dt)) * dt
        origin = {"dt": "default (the largest stable step at this cell size that divides the frame interval)",
                  "burn_in_s": f"{base_label} (rounded to the step)" if from_file else "default (0.1 ns)"}
    fixed = {} if from_file else {"components": "xz", "store_dtype": "float32"}
    return dataclasses.replace(s, dt=dt, burn_in_s=burn, frame_interval_s=facts.frame_interval_s,
                               num_frames=facts.num_frames, **fixed), origin


def material_burn_in(simulation: Any, material: str | Path) -> tuple[Any, str]:
    """``(simulation, origin)`` with the burn-in of the ``material`` file's ``[simulation] burn_in_s``,
    rounded to the step: how long its film takes to reach its thermal state is the material's (a
    perpendicular CoFeB-like film's soft blobs tilt over about 1 ns, docs/detect.md; permalloy's
    contrast is there after ``BURN_IN_S``)."""
    burn = material_source(material).simulation.burn_in_s
    return (dataclasses.replace(simulation, burn_in_s=max(1, round(burn / simulation.dt)) * simulation.dt),
            f"flag --material {material} ([simulation] burn_in_s, rounded to the step)")


def regime_config(facts: MovieFacts, *, material: str | Path = "permalloy", temperature: float | None = None,
                  model: Mapping[str, Any] | None = None, training: Mapping[str, Any] | None = None,
                  num_runs: int = 64, seed: int = 0, name: str = "detect") -> Config:
    """The config of ``build_regime`` without a file; ``temperature`` None keeps the material's."""
    return build_regime(facts, material=material, temperature=temperature, model=model, training=training,
                        num_runs=num_runs, seed=seed, name=name).config


# -- the movie against its regime's films ------------------------------------------------------

def movie_statistics(movies: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Background std of m_z (median temporal std) and the range of the temporal mean of m_x (1st, 99th
    percentiles); of a calibrated record ``p`` (``jaxmag.recording``), the same two."""
    out = {}
    if "z" in movies:
        out["background std m_z"] = float(np.median(np.asarray(movies["z"]).std(axis=-3)))
    if "x" in movies:
        mean = np.asarray(movies["x"]).mean(axis=-3)
        out["mean m_x p1"] = float(np.percentile(mean, 1))
        out["mean m_x p99"] = float(np.percentile(mean, 99))
    if "p" in movies:  # the calibrated record of a counts movie (jaxmag.recording), units of Ms
        record = np.asarray(movies["p"])
        out["background std of the record"] = float(np.median(record.std(axis=-3)))
        mean = record.mean(axis=-3)
        out["mean of the record p1"] = float(np.percentile(mean, 1))
        out["mean of the record p99"] = float(np.percentile(mean, 99))
    return out


def regime_warnings(movie_stats: Mapping[str, float], film_stats: Sequence[Mapping[str, float]], margin: float = 0.1) -> list[str]:
    """A warning per statistic of the movie outside ``[min, max]`` over the simulated films, widened by
    ``margin`` of the span (and of the value)."""
    warnings = []
    for name, value in movie_stats.items():
        vals = np.array([s[name] for s in film_stats])
        lo, hi = vals.min(), vals.max()
        pad = margin * max(hi - lo, abs(hi), abs(lo))
        if not lo - pad <= value <= hi + pad:
            warnings.append(
                f"the movie's {name} = {value:.4g} lies outside what the simulated regime produced "
                f"({lo:.4g} to {hi:.4g} over {len(vals)} noisy films): the regime (material, temperature, "
                "boundary, noise) may not match the movie; check regime.toml"
            )
    return warnings
