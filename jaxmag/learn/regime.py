"""From a researcher's movie to the simulation regime that matches it (the config ``jaxmag detect`` trains on).

Contract
--------
``read_movies(movie, component=None, ...) -> ({component: Movie}, description)`` reads a movie
(``jaxmag.io.movie``): m_x and m_z of an OVF folder or jaxmag HDF5 file, else the one component
it holds; values must be unit-vector components (``max_abs`` after ``rescale``).

``movie_facts(movies, cell_size_m=None, frame_interval_s=None, boundary=None) -> MovieFacts``
reads what the movie itself says: its size and frame count, the cell size and frame times from
OVF headers (or the flags, for TIFF/HDF5/npy, which store neither), and the film's boundary
(``"auto"``: open edges show in the movie, see ``guess_boundary``). Every value records where
it came from (``"OVF header"``, ``"--frame-interval"``, ``"default"``, ``"movie"``), for the report.

``regime_config(facts, material=..., temperature=..., budget=...) -> Config`` builds a normal
jaxmag config: the movie's grid, cell size, boundary, frame interval and frame count; the
material (permalloy of ``configs/paper.toml``, or the ``[material]`` and ``[defects]`` tables of a
config file); the defect blobs of the paper's film scaled to the cell size (same physical area)
and capped so four blobs fit the grid; a Heun step that divides the frame interval and respects
the ``dx**2`` stability scaling; the ``[model]`` and ``[training]`` of a budget
(``jaxmag.learn.detect.BUDGETS``). ``jaxmag simulate`` and ``jaxmag train`` accept it unchanged.

``movie_statistics(movies)`` and ``regime_warnings(movie_stats, film_stats)`` check afterwards
that the movie lies within what its regime's (noisy) films produce: a statistic outside their
range says the material, temperature, boundary or history of the movie differs from the regime.

Errors (``ValueError`` subclasses, one line each, naming the fix): a movie too short for the
measures (``MIN_FRAMES``), a TIFF/HDF5/npy movie without ``--frame-interval``, OVF frame times
that are not evenly spaced, frames smaller than the U-Net's minimum side.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from jaxmag.config import Config, load_config
from jaxmag.io.movie import Movie, MovieError, movie_from_array, read_movie

MAX_ABS = 1.5  # |values| (99.9th percentile) above this are not unit-vector components plus noise
MIN_FRAMES = 8  # below this the temporal std and latent entropy of a pixel are mostly noise
DEFAULT_CELL_SIZE = 4e-9  # m: the paper's cells
PAPER_CELL = 4e-9
PAPER_BLOB_AREA = (24, 40)  # cells of 4 nm (configs/paper.toml [defects] size_min, size_max)
MAX_DEFECT_FRACTION = 0.12  # the four blobs cover at most this much of the grid (paper: ~10 %)
DT_MAX_4NM = 1e-13  # s: configs/paper.toml's step at 4 nm cells (stable limit ~1.7e-13 s)
BURN_IN_S = 1e-10  # s before the first simulated frame: the defects' contrast is there by then (docs/dataset.md)
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


def guess_boundary(movies: Mapping[str, Movie]) -> tuple[str, str]:
    """``("open" | "periodic", evidence)`` from the movie itself.

    Open edges of an in-plane film pull m away from the easy axis (edge domains: the temporal mean
    of m_x drops from about 0.98 inside to about 0.5 at x-normal edges of a 48 x 48 permalloy film)
    and let m_z fluctuate more (about 15 % more temporal std in the outer cells). A periodic film
    has no edges: the outer cells look like the inner ones. With m_x the test is its edge deficit,
    ``1 - mean m_x`` in the outer two columns against the interior (open when the difference is
    above 0.05); with m_z only, the ratio of temporal std in the outer ring to the interior
    (open above 1.06).
    """
    if "x" in movies:
        mean = movies["x"].data.mean(axis=0)
        edge = np.median(np.concatenate([mean[:, :2].ravel(), mean[:, -2:].ravel()]))
        inner = np.median(mean[2:-2, 2:-2])
        diff = float(inner - edge)
        verdict = "open" if diff > 0.05 else "periodic"
        return verdict, f"mean m_x: interior {inner:.3f}, outer two columns {edge:.3f} (open if the drop exceeds 0.05)"
    comp = next(iter(movies))
    std = movies[comp].data.std(axis=0)
    ring = np.ones(std.shape, bool)
    ring[2:-2, 2:-2] = False
    ratio = float(np.median(std[ring]) / max(np.median(std[~ring]), 1e-12))
    verdict = "open" if ratio > 1.06 else "periodic"
    return verdict, f"std m_{comp}: outer ring / interior = {ratio:.3f} (open above 1.06)"


def movie_facts(
    movies: Mapping[str, Movie],
    *,
    cell_size_m: float | None = None,
    frame_interval_s: float | None = None,
    boundary: str | None = None,
) -> MovieFacts:
    """The movie's size, cell size, frame interval and boundary (module docstring)."""
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
    origin: dict[str, str] = {"grid": "movie", "num_frames": "movie"}
    if cell_size_m is not None:
        cell, origin["cell_size_m"] = float(cell_size_m), "--cell-size"
    elif first.cell_size_m is not None:
        dx, dy, _ = first.cell_size_m
        if not math.isclose(dx, dy, rel_tol=1e-3):
            raise RegimeError(f"{first.source}: cells of {dx:g} x {dy:g} m are not square; jaxmag's defects assume square cells")
        cell, origin["cell_size_m"] = float(dx), "OVF header"
    else:
        cell, origin["cell_size_m"] = DEFAULT_CELL_SIZE, "default (the movie does not store it; pass --cell-size)"
    if not 1e-10 <= cell <= 1e-7:
        raise RegimeError(f"cell size {cell:g} m is not a micromagnetic cell (0.1-100 nm); give --cell-size in metres, e.g. 4e-9")
    if frame_interval_s is not None:
        interval, origin["frame_interval_s"] = float(frame_interval_s), "--frame-interval"
    elif first.times_s is not None and len(first.times_s) == T and np.all(np.isfinite(first.times_s)):
        steps = np.diff(np.asarray(first.times_s, np.float64))
        interval = float(np.median(steps))
        if not interval > 0 or np.max(np.abs(steps - interval)) > 0.01 * interval:
            raise RegimeError(
                f"{first.source}: the frame times in the OVF headers are not evenly spaced "
                f"(steps {steps.min():.3g} to {steps.max():.3g} s); pass --frame-interval to override"
            )
        origin["frame_interval_s"] = "OVF header"
    else:
        raise RegimeError(
            f"{first.source}: the movie does not store its frame times; pass --frame-interval SECONDS "
            "(the time between two frames, e.g. 1e-11 for 10 ps)"
        )
    if not 1e-14 <= interval <= 1e-8:
        raise RegimeError(f"frame interval {interval:g} s is outside 0.01 ps - 10 ns; give --frame-interval in seconds")
    evidence = ""
    if boundary in (None, "auto"):
        boundary, evidence = guess_boundary(movies)
        origin["boundary"] = "movie (auto)"
    elif boundary in ("open", "periodic"):
        origin["boundary"] = "--boundary"
    else:
        raise RegimeError(f"--boundary must be open, periodic or auto, got {boundary!r}")
    return MovieFacts(T, ny, nx, "".join(movies), cell, interval, boundary, origin, evidence)


def material_source(material: str | Path) -> Config:
    """The config whose ``[material]`` and ``[defects]`` a regime uses: ``"permalloy"`` or a TOML file."""
    if str(material) == "permalloy":
        return load_config(REPO_CONFIGS / "paper.toml")
    path = Path(material)
    if path.suffix.lower() != ".toml":
        raise RegimeError(f"--material must be 'permalloy' or a jaxmag config file (.toml), got {material!r}")
    return load_config(path)


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


def regime_config(
    facts: MovieFacts,
    *,
    material: str | Path = "permalloy",
    temperature: float | None = 300.0,
    model: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    num_runs: int = 64,
    seed: int = 0,
    name: str = "detect",
) -> Config:
    """The jaxmag config of the movie's regime (module docstring); ``model``/``training`` override those sections."""
    src = material_source(material)
    mat = src.material if temperature is None else dataclasses.replace(src.material, temperature=float(temperature))
    d = src.defects
    size_min, size_max = defect_sizes(facts.cell_size_m, facts.ny, facts.nx, d.num_a + d.num_b)
    defects = dataclasses.replace(d, size_min=size_min, size_max=size_max,
                                  min_gap=max(1, min(d.min_gap, round(d.min_gap * PAPER_CELL / facts.cell_size_m))))
    dt = time_step(facts.frame_interval_s, facts.cell_size_m)
    burn = max(1, round(BURN_IN_S / dt)) * dt
    cell = float(facts.cell_size_m)
    grid = dataclasses.replace(src.grid, nx=facts.nx, ny=facts.ny, nz=1, cell_size_m=(cell, cell, cell),
                               boundary=facts.boundary, pbc_images=2)
    simulation = dataclasses.replace(src.simulation, dt=dt, burn_in_s=burn, frame_interval_s=facts.frame_interval_s,
                                     num_frames=facts.num_frames, components="xz", store_dtype="float32")
    model_cfg = dataclasses.replace(src.model, **dict(model or {}))
    training_cfg = dataclasses.replace(src.training, **dict(training or {}))
    check_min_side(facts.ny, facts.nx, model_cfg.depth)
    from jaxmag.config import config_from_dict

    config = src.replace(
        name=name,
        grid=grid,
        material=mat,
        defects=defects,
        simulation=simulation,
        dataset=dataclasses.replace(src.dataset, num_runs=int(num_runs), batch_size=8, seed=int(seed)),
        model=model_cfg,
        training=training_cfg,
    )
    return config_from_dict(config.to_dict(), source="detect regime")  # the same validation as a file


def regime_header(facts: MovieFacts, material: str | Path, movie_source: str) -> str:
    """Comment lines for the top of the written config: where each value came from."""
    o = facts.origin
    lines = [
        "# Simulation regime of a movie, written by `jaxmag detect` (docs/detect.md).",
        f"# movie: {movie_source}",
        f"# grid {facts.ny} x {facts.nx}, {facts.num_frames} frames: {o['grid']}",
        f"# cell size {facts.cell_size_m:g} m: {o['cell_size_m']}",
        f"# frame interval {facts.frame_interval_s:g} s: {o['frame_interval_s']}",
        f"# boundary {facts.boundary}: {o['boundary']}" + (f" ({facts.boundary_evidence})" if facts.boundary_evidence else ""),
        f"# material and defect factors: {material}; defect areas scaled to the cell size (jaxmag.learn.regime)",
        "# Edit and rerun: jaxmag detect MOVIE --out DIR --material THIS_FILE, or jaxmag simulate THIS_FILE --out d.h5",
    ]
    return "\n".join(lines) + "\n"


# -- the movie against its regime's films ------------------------------------------------------

def movie_statistics(movies: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Background std of m_z (median temporal std) and the range of the temporal mean of m_x (1st, 99th percentiles)."""
    out = {}
    if "z" in movies:
        out["background std m_z"] = float(np.median(np.asarray(movies["z"]).std(axis=-3)))
    if "x" in movies:
        mean = np.asarray(movies["x"]).mean(axis=-3)
        out["mean m_x p1"] = float(np.percentile(mean, 1))
        out["mean m_x p99"] = float(np.percentile(mean, 99))
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
