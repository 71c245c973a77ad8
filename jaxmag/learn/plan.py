"""``jaxmag plan``: which defects an instrument can see, with which measure, before the beamtime.

Stages, each resumable (``docs/plan.md``):

1. **films** → ``OUT/films.h5``: the config's films simulated once for the whole grid
   (``plan_films_config``: every component a probe sees, the largest frame count, sampled
   ``exposure_samples`` times per frame interval when the exposure is swept). The solver is the
   cost; everything after it is a view of these films.
2. **baseline** → ``OUT/points/<point>.json``: at every grid point (``jaxmag.plan_grid``), the
   validation and test films are recorded once through the point's instrument (the fixed records
   of ``jaxmag.learn.sources.recorded.fixed_record_maps``: the same draws a model of that point is
   tested on) and every measure of the record is scored by the non-learned baseline, fitted on the
   validation films. A point's file is written last, atomically; a rerun skips it.
3. **models** → ``OUT/models/<point>__<measure>/``: noise-matched U-Nets (``[model]``,
   ``[training]``; fresh shot and read noise every step, ``RecordedSource``) at the ``[plan]
   models`` points of the frontier (``frontier``), tested on the same fixed records. A finished
   model's ``result.json`` is reused; an interrupted one resumes from its checkpoint.
4. **report** → ``plan.json``, ``plan.csv``, ``report.md`` and the figures
   (``jaxmag.learn.plan_report``), rebuilt from the rows every time; the stage times add up over
   the runs into the folder (``timings.json``).

The films' split is the study's (``[training] split`` and ``seed``, ``jaxmag.learn.splits``), so
at zero blur, no detector and the z probe a plan's ``std``/``mean`` baseline rows are the clean
study's baseline of the same films.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.channels import PROBE_COMPONENT, Channel
from jaxmag.config import Config, config_hash, first_difference, load_config, stored_config
from jaxmag.io.atomic import atomic_write, write_text
from jaxmag.learn import baseline as robust_z
from jaxmag.noise import CLEAN
from jaxmag.plan_grid import (AXES, PlanPoint, check_plan, film_components, movie_variant, plan_points,
                              simulated_frames)

PERCENTILES = (0.1, 99.9)  # the latent entropy's fixed bins: this range of the clean record (docs/calibration.md)
RANGE_FILMS = 8  # training films whose optics-only record sets those bins
REPORT_KEYS = ("models", "target_dice", "map_axes")  # [plan] keys a finished folder may change


@dataclasses.dataclass(frozen=True)
class Films:
    """The simulated films in memory: ``m`` ``(N, T, C, ny, nx)`` float32 on cells, cell ``labels``
    (blob ids), the ``components`` of C, the ``indices`` of the split, ``samples`` per frame interval."""

    m: np.ndarray
    labels: np.ndarray
    components: str
    indices: dict
    samples: int


def plan_films_config(config: Config, points: list[PlanPoint]) -> Config:
    """The config of the films the whole grid reuses (module docstring, stage 1)."""
    p, s = config.plan, config.simulation
    return config.replace(simulation=dataclasses.replace(
        s, components=film_components(points), num_frames=simulated_frames(p, s.num_frames),
        frame_interval_s=s.frame_interval_s / p.samples_per_frame))


def check_config(config: Config, source: str = "the config") -> list[PlanPoint]:
    """The grid points of ``config``'s ``[plan]``; ``ValueError`` naming what is missing or wrong."""
    if not config.plan.enabled:
        raise ValueError(f"{source} has no [plan] section: add one listing the values to sweep, e.g. "
                         "[plan] psf_fwhm_m = [0, 10e-9] and photons_per_pixel = [1e3, 1e4] (docs/plan.md)")
    check_plan(config.plan, config.instrument, config.simulation.frame_interval_s, config.grid.cell_size_m[0],
               config.simulation.num_frames)
    points = plan_points(config.plan, config.instrument, config.simulation.num_frames)
    if config.plan.exposure_s:
        try:
            plan_films_config(config, points).simulation.steps
        except ValueError as exc:
            raise ValueError(f"[plan] exposure_samples = {config.plan.exposure_samples}: the frame interval "
                             f"split into that many samples must be whole time steps ({exc})") from None
    return points


def _check_out_dir(out: Path, config: Config) -> None:
    """Refuse a folder holding another config's plan (the [plan] keys of the report may change)."""
    stored = out / "config.toml"
    if stored.is_file():
        previous = stored_config(stored.read_text(), source=str(stored))
        strip = lambda c: c.replace(plan=dataclasses.replace(c.plan, **{k: getattr(config.plan, k) for k in REPORT_KEYS}))
        if config_hash(strip(previous)) != config_hash(config):
            key, was, now = first_difference(strip(previous).to_dict(), config.to_dict())
            raise ValueError(f"{out} holds the plan of another config ({key}: {was!r} there, {now!r} now; only "
                             f"[plan] {', '.join(REPORT_KEYS)} may change); choose another --out or delete the folder")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(stored) as fh:
        fh.write(config.to_toml())


def load_films(path: Path, films_config: Config) -> Films:
    """The finished films file of ``films_config`` (``plan_films_config``) in memory, with the study's split."""
    from jaxmag.io.dataset import read_labels, read_movies
    from jaxmag.learn.splits import split_indices

    n, components = films_config.dataset.num_runs, films_config.simulation.components
    m = np.asarray(read_movies(path, np.arange(n), components), np.float32)
    indices = split_indices(n, tuple(films_config.training.split), films_config.training.seed)
    return Films(m, read_labels(path, np.arange(n)), components, indices, films_config.plan.samples_per_frame)


def point_movies(films: Films, point: PlanPoint, frame_interval_s: float) -> np.ndarray:
    return movie_variant(films.m, int(point["num_frames"]), float(point["exposure_s"]), frame_interval_s, films.samples)


def point_setup(config: Config, films: Films, movies: np.ndarray, point: PlanPoint):
    """``(recording plan, config)`` at ``point``: its instrument on the films' grid, and the config
    whose ``[instrument]`` it is, with the latent entropy's fixed bins over ``PERCENTILES`` of the
    training films' optics-only record (the record without detector noise)."""
    from jaxmag.recording import record_signal, recording_plan

    g = config.grid
    periodic = g.boundary == "periodic"
    plan = recording_plan(point.instrument, (g.ny, g.nx), tuple(g.cell_size_m[:2]), films.components, periodic)
    optics = recording_plan(dataclasses.replace(point.instrument, photons_per_pixel=0.0), (g.ny, g.nx),
                            tuple(g.cell_size_m[:2]), films.components, periodic)
    rows = films.indices["train"][:RANGE_FILMS]
    clean = np.asarray(record_signal(jax.random.key(0), jnp.asarray(movies[rows]), optics))
    lo, hi = (float(v) for v in np.percentile(clean, PERCENTILES))
    hi = hi if hi > lo else lo + 1e-6
    measures = dataclasses.replace(config.measures, fixed_range_p=(lo, hi))
    return plan, config.replace(measures=measures, instrument=point.instrument,
                                simulation=dataclasses.replace(config.simulation, num_frames=movies.shape[1]))


def record_kernel(config: Config, plan) -> Callable:
    """``(movies (B, T, C, ny, nx), rows (B,)) -> raw maps (B, ny_pix, nx_pix, len(measures))``: the
    fixed records of those films at one point, jitted once for its validation and test films."""
    from jaxmag.learn.sources.recorded import fixed_record_maps

    measures = tuple(config.plan.measures)
    kw = dict(plan=plan, spec=CLEAN, measures=measures, options=(config.measures.options(PROBE_COMPONENT),),
              channels=tuple(Channel(m, PROBE_COMPONENT) for m in measures))
    return jax.jit(lambda mv, rows: fixed_record_maps(config.noise.seed, mv, rows, **kw))


def record_maps(kernel: Callable, films: Films, movies: np.ndarray, plan, part: str,
                chunk: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Raw maps ``(n, ny_pix, nx_pix, len(measures))`` of a split's fixed records (``record_kernel``)
    and their pixel labels. Chunks of ``chunk`` films, the last padded, so one compile serves all."""
    from jaxmag.recording import pixel_labels

    idx = films.indices[part]
    padded = np.concatenate([idx, np.repeat(idx[-1:], -idx.size % chunk)])
    maps = [np.asarray(kernel(jnp.asarray(movies[padded[i:i + chunk]]), jnp.asarray(padded[i:i + chunk], jnp.int32)))
            for i in range(0, padded.size, chunk)]
    labels = np.asarray(pixel_labels(films.labels[idx] > 0, plan))
    return np.concatenate(maps)[:idx.size], labels


def baseline_rows(config: Config, films: Films, point: PlanPoint) -> list[dict]:
    """The baseline's rows of every measure at ``point`` (module docstring, stage 2)."""
    movies = point_movies(films, point, config.simulation.frame_interval_s)
    plan, cfg = point_setup(config, films, movies, point)
    kernel = record_kernel(cfg, plan)
    xv, yv = record_maps(kernel, films, movies, plan, "val")
    xt, yt = record_maps(kernel, films, movies, plan, "test")
    periodic = config.grid.boundary == "periodic"
    rows = []
    for i, measure in enumerate(config.plan.measures):
        fit = robust_z.fit(xv[..., i], yv, periodic=periodic)
        score = robust_z.score(fit.predict(xt[..., i]), yt)  # each test film an independent simulation seed
        rows.append({"point": point.id, **point.columns(), "measure": measure, "method": "baseline",
                     "dice": score["dice"], "dice_se": score["dice_per_image_se"], "val_dice": fit.val_dice,
                     "test_films": int(yt.shape[0]), "train_s": None})
    return rows


def frontier(rows: list[dict], target: float, budget: int, spread_over: str | None = None) -> list[tuple[str, str]]:
    """The ``(point, measure)`` pairs where a model is trained: the baseline below ``target`` (where
    learning can matter), closest to it first, one measure per point, at most ``budget`` pairs.
    With ``spread_over`` (an axis, e.g. the PSF FWHM) every value of it gets its best pair first, so
    that no group of the recommendation is judged by the baseline alone while the budget lasts."""
    below = sorted((r for r in rows if r["method"] == "baseline" and r["dice"] < target), key=lambda r: -r["dice"])
    chosen, points = [], set()

    def take(candidates):
        for r in candidates:
            if len(chosen) >= budget:
                return
            if r["point"] not in points:
                chosen.append((r["point"], r["measure"]))
                points.add(r["point"])

    if spread_over is not None:
        firsts = {}
        for r in below:
            firsts.setdefault(r[spread_over], r)
        take(list(firsts.values()))
    take(below)
    return chosen


def model_row(config: Config, films: Films, point: PlanPoint, measure: str, out: Path, progress: bool) -> dict:
    """Train (or reuse, or resume) the noise-matched model of ``(point, measure)``; its row."""
    from jaxmag.learn.loop import train_and_evaluate
    from jaxmag.learn.sources.recorded import RecordedSource

    folder = out / "models" / f"{point.id}__{measure}"
    result_file = folder / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    movies = point_movies(films, point, config.simulation.frame_interval_s)
    plan, cfg = point_setup(config, films, movies, point)
    t = cfg.training
    source = RecordedSource(movies, films.labels, plan, ((measure, PROBE_COMPONENT),),
                            {PROBE_COMPONENT: cfg.measures.options(PROBE_COMPONENT)}, batch_size=t.batch_size,
                            indices=films.indices, noise_seed=config.noise.seed, seed=t.seed, augment=True,
                            easy_axis=cfg.material.easy_axis, steps_per_epoch=config.plan.steps_per_epoch or None)
    run = folder / "run"
    resume = (run / "checkpoints").is_dir()
    if run.exists() and not resume:
        shutil.rmtree(run)  # a run that never saved a checkpoint: nothing to resume
    t0 = time.perf_counter()
    result = train_and_evaluate(cfg, source, run, resume=resume, progress=progress)
    test = result["test"]
    row = {"point": point.id, **point.columns(), "measure": measure, "method": "model", "dice": float(test["dice"]),
           "dice_se": float(test.get("dice_per_image_se", float("nan"))), "val_dice": float(result["best_val_dice"]),
           "test_films": int(test["num_images"]), "train_s": time.perf_counter() - t0}
    write_text(result_file, json.dumps(row, indent=1))
    return row


def run_plan(config: Config | str | Path, out: str | Path, *, progress: bool = True,
             log: Callable[[str], None] = print) -> dict:
    """Run (or resume) the plan of ``config`` into ``out``; returns ``{"rows", "report", "timings"}``."""
    from jaxmag.assemble import simulate
    from jaxmag.io.dataset import open_dataset
    from jaxmag.learn.plan_report import write_plan_report, write_table

    source = str(config) if not isinstance(config, Config) else "the config"
    config = load_config(config) if not isinstance(config, Config) else config
    points = check_config(config, source)
    out = Path(out)
    _check_out_dir(out, config)
    films_config = plan_films_config(config, points)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    path = out / "films.h5"
    d = films_config.simulation
    log(f"plan: {len(points)} grid points × {len(config.plan.measures)} measures; films: "
        f"{films_config.dataset.num_runs} of {config.grid.nx}×{config.grid.ny} cells, {d.num_frames} frames of "
        f"{d.frame_interval_s:g} s, components {d.components}")
    t0 = time.perf_counter()
    complete = path.exists() and open_dataset(path).complete
    # an existing file is resumed, which also refuses one of other physics; a complete one returns at once
    simulate(films_config, out=path, resume=path.exists(), progress=progress and not complete)
    timings["simulate_s"] = time.perf_counter() - t0
    films = load_films(path, films_config)

    t0 = time.perf_counter()
    rows: list[dict] = []
    todo = sum(not (out / "points" / f"{p.id}.json").is_file() for p in points)
    done_now = 0
    for k, point in enumerate(points):
        f = out / "points" / f"{point.id}.json"
        if f.is_file():
            rows += json.loads(f.read_text())
            continue
        t1 = time.perf_counter()
        point_rows = baseline_rows(config, films, point)
        (out / "points").mkdir(exist_ok=True)
        write_text(f, json.dumps(point_rows, indent=1))
        rows += point_rows
        done_now += 1
        eta = (time.perf_counter() - t0) / done_now * (todo - done_now)
        best = max(point_rows, key=lambda r: r["dice"])
        if progress:
            log(f"baseline: point {k + 1}/{len(points)} ({point.id}) best {best['measure']} Dice {best['dice']:.3f}, "
                f"{time.perf_counter() - t1:.1f} s, ETA {eta:.0f} s")
    timings["baseline_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    axes = config.plan.maps()
    chosen = frontier(rows, config.plan.target_dice, config.plan.models, axes[0] if axes else None)
    by_id = {p.id: p for p in points}
    for k, (pid, measure) in enumerate(chosen):
        log(f"models: {k + 1}/{len(chosen)}: {measure}:p at {pid}")
        rows.append(model_row(config, films, by_id[pid], measure, out, progress))
        r = rows[-1]
        log(f"models: {measure}:p at {pid}: U-Net Dice {r['dice']:.3f} (baseline "
            f"{next(b['dice'] for b in rows if b['point'] == pid and b['measure'] == measure):.3f})")
    timings["models_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - start
    spent = accumulate_timings(out / "timings.json", timings)

    meta = plan_meta(config, films_config, films, spent, len(chosen))
    write_table(out, rows, meta)
    report = write_plan_report(out, config.plan, rows, meta)
    log(f"plan: {out / 'plan.csv'}, {report}")
    return {"rows": rows, "report": report, "timings": timings}


def correlation_times(films: Films, sample_s: float, num_films: int = 4, stride: int = 4) -> dict[str, float]:
    """The median over pixels (every ``stride``-th cell) of the first ``num_films`` training films of
    each component's 1/e autocorrelation time, s (``jaxmag.compare.autocorrelation_time``; the movie's
    duration where the correlation stays above 1/e: a lower bound; None for identical frames, the
    camera-rate limit). An exposure much shorter than this leaves the fluctuations; a longer one
    averages them away."""
    from jaxmag.compare import autocorrelation_time

    m = films.m[films.indices["train"][:num_films], :, :, ::stride, ::stride]  # (n, T, C, y, x)
    out = {}
    for i, c in enumerate(films.components):
        series = np.moveaxis(m[:, :, i], 1, -1).reshape(-1, m.shape[1])
        # identical frames (camera-rate films: every frame the same thermal average) have none
        out[c] = None if np.ptp(series, axis=1).max() == 0 else float(
            np.median([autocorrelation_time(x, sample_s) for x in series]))
    return out


def accumulate_timings(path: Path, timings: dict[str, float]) -> dict[str, float]:
    """Add this run's stage times (s) to those of the folder's earlier runs (``timings.json``, written
    atomically): a resumed plan reports what the whole plan cost, not the last run's share."""
    try:
        spent = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        spent = {}  # a damaged record of earlier runs: count from here
    spent = {k: float(spent.get(k, 0.0)) + v for k, v in timings.items()}
    write_text(path, json.dumps(spent, indent=1))
    return spent


def plan_meta(config: Config, films_config: Config, films: Films, timings: dict, models: int) -> dict:
    """What the report says of the setup besides the rows (``docs/plan.md``)."""
    g, m = config.grid, config.material
    return {
        "name": config.name, "films": int(films.m.shape[0]),
        "split": {k: int(v.size) for k, v in films.indices.items()},
        "grid": [g.ny, g.nx], "cell_m": float(g.cell_size_m[0]), "boundary": g.boundary,
        "frame_interval_s": config.simulation.frame_interval_s, "temperature_K": m.temperature,
        "material": dataclasses.asdict(m), "defects": dataclasses.asdict(config.defects),
        "instrument": dataclasses.asdict(config.instrument),
        "simulated": {"frames": films_config.simulation.num_frames, "components": films.components,
                      "samples_per_frame": films.samples},
        "correlation_time_s": correlation_times(films, films_config.simulation.frame_interval_s),
        "swept": {a: list(config.plan.values(a)) for a in config.plan.swept()},
        "axes_units": {a: AXES[a].unit for a in AXES},
        "timings": timings, "models_trained": models, "config_hash": config_hash(config),
    }
