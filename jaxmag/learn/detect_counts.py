"""``detect`` on what a microscope recorded: a photon-count movie to a defect map.

``detect_counts(movie, out, probe=..., pixel_size=..., psf_fwhm=..., exposure=...)`` is the
recorded-movie path of ``jaxmag detect`` (``--signal counts``, the default for integer TIFF and
HDF5 data). Its stages, beside the magnetisation path's (``jaxmag.learn.detect``):

1. ``read_counts_request``: the counts movie (``jaxmag.io.movie``, ``signal="counts"``), its pixel
   size and frame interval (flags, else OME/ImageJ/HDF5 metadata), the optics the user names
   (probe, PSF, pixels, exposure), and the regime on **physics cells**: the simulation cell is the
   largest cell no larger than the material's (4 nm for permalloy, below its exchange length) that
   divides the pixel, so the film keeps its thermal physics whatever the detector's pixel.
2. the regime's films (``detect.regime_films``), with the exposure applied in the solver.
3. ``calibrate``: the films through the optics, and the detector read from the movie against them
   (``jaxmag.learn.counts.estimate_recording``: gain, offset, read noise, photons, contrast, each
   with its uncertainty); the regime's ``[instrument]`` becomes that equivalent instrument.
4. inputs (``mean:p``, ``std:p``, ``latent_entropy:p``: the measures of the calibrated record)
   scored by the baseline on recorded validation films; a U-Net trained on films recorded with
   fresh shot and read noise every step (``jaxmag.learn.sources.recorded.RecordedSource``).
5. the model and the baseline on the movie's calibrated record, at the detector's pixels; where
   the regime's own test Dice stays below ``RESOLVABLE_DICE``, the report says the defects are
   not resolvable with this instrument instead of presenting a mask as a finding.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxmag.channels import PROBE_COMPONENT
from jaxmag.learn.classes import class_names
from jaxmag.config import Config, load_config, parse_input_spec
from jaxmag.instrument import Instrument, probe_direction
from jaxmag.io import outdir
from jaxmag.io.atomic import write_text
from jaxmag.io.movie import Movie, movie_from_array, read_movie
from jaxmag.learn import baseline as robust_z
from jaxmag.learn import regime as rg
from jaxmag.learn.counts import RecordingEstimate, estimate_recording
from jaxmag.learn.detect_stages import (DetectionResult, Films, Request, confidence_stage,
                                         load_members, movie_types, regime_films, request_budget, slug,
                                         source_rows, stage, trained_member, with_classes)
from jaxmag.learn.detect_report import OUTPUTS, REGIME_FILE, regime_file_text, write_detection
from jaxmag.recording import RecordingPlan, calibrate_counts, recording_plan, record_signal

RESOLVABLE_DICE = 0.3  # the regime's test Dice below which defects of this size are called unresolvable
MIN_CELL_M = 1e-9  # no micromagnetic cell below 1 nm (the continuum breaks down)
MAX_CELLS_PER_SIDE = 256  # CPU-sized simulations; a larger grid asks the user to crop or give --cell-size
CANDIDATES = ("mean", "std", "latent_entropy")
FILM_MEMBERS = 8  # films through the optics for the calibration


@dataclasses.dataclass(frozen=True)
class CountsRequest:
    """A checked counts request: the magnetisation path's ``Request`` (its ``movies`` hold the raw
    counts as component ``p``) plus the counts, the optics and the pixel."""

    request: Request
    counts: np.ndarray  # (T, ny_pix, nx_pix) float32, ADU
    optics: Instrument  # the user's probe, PSF, pixels and exposure; no detector yet
    pixel_m: float
    pixel_origin: str


def physics_cell(pixel_m: float, material_cell_m: float) -> float:
    """The largest cell ``<= material_cell_m`` that divides ``pixel_m`` (``pixel / k``, k integer)."""
    if not (math.isfinite(pixel_m) and pixel_m >= MIN_CELL_M):
        raise rg.RegimeError(f"a pixel of {pixel_m:g} m is smaller than any micromagnetic cell ({MIN_CELL_M:g} m): "
                             "give --pixel-size in metres, e.g. 4e-9")
    k = max(1, math.ceil(pixel_m / material_cell_m - 1e-9))
    return pixel_m / k


def _pixel_size(movie: Movie, flag: float | None) -> tuple[float, str]:
    if flag is not None:
        return float(flag), "flag --pixel-size"
    stored = getattr(movie, "pixel_size_m", None)
    if stored:
        return float(stored), "movie (metadata)"
    raise rg.RegimeError(f"{movie.source}: the movie does not store its pixel size; pass --pixel-size M "
                         "(the detector pixel in metres, e.g. 8e-9)")


def _frame_interval(movie: Movie, flag: float | None, optics: Instrument) -> tuple[float, str]:
    if flag is not None:
        interval, label = float(flag), "--frame-interval"
    elif getattr(movie, "frame_interval_s", None):
        interval, label = float(movie.frame_interval_s), "movie (metadata)"
    else:
        raise rg.RegimeError(f"{movie.source}: the movie does not store its frame interval; pass --frame-interval S")
    if optics.camera_rate:
        if interval < optics.exposure_s:
            raise rg.RegimeError(f"the exposure {optics.exposure_s:g} s is longer than the frame interval {interval:g} s")
    else:
        rg.check_frame_interval(interval)
    return interval, label


def counts_boundary(counts: np.ndarray, flag: str | None) -> tuple[str, str, str]:
    """``(boundary, origin, evidence)``: the flag, else the temporal std of the outer ring of pixels
    against the interior (open edges fluctuate more: they miss exchange neighbours), open above 1.06."""
    if flag in ("open", "periodic"):
        return flag, "--boundary", ""
    if flag not in (None, "auto"):
        raise rg.RegimeError(f"--boundary must be open, periodic or auto, got {flag!r}")
    std = counts.std(axis=0)
    ring = np.ones(std.shape, bool)
    ring[2:-2, 2:-2] = False
    ratio = float(np.median(std[ring]) / max(np.median(std[~ring]), 1e-12))
    return ("open" if ratio > 1.06 else "periodic"), "movie (auto)", f"std of counts: outer ring / interior = {ratio:.3f} (open above 1.06)"


def read_counts_request(movie: Any, out: Path, *, dataset: str | None, probe: str, pixel_size: float | None,
                        psf_fwhm: float | None, psf_image: str | Path | None = None, exposure: float | None,
                        cell_size: float | None,
                        frame_interval: float | None, boundary: str | None, material: str | Path | None,
                        temperature: float | None, inputs: str, budget: str | None, cache: str | Path | None,
                        threshold: float, seed: int | None, force: bool, regime: str | Path | None = None,
                        full_scale: float | None = None, classes: str | None = None) -> CountsRequest:
    """Stage 1 (module docstring): every bad input is refused here, before anything is simulated."""
    if not 0 < threshold < 1:
        raise ValueError(f"--threshold must be in (0, 1), got {threshold}")
    file_config, file_name = (None, "") if regime is None else (load_config(regime), str(regime))
    if isinstance(movie, Movie):
        mv = movie
    elif isinstance(movie, (str, Path)):
        if not Path(movie).exists():
            raise FileNotFoundError(f"movie not found: {movie}")
        mv = read_movie(Path(movie), component="z", dataset=dataset, signal="counts",
                        **({} if full_scale is None else {"full_scale": full_scale}))
    else:
        mv = movie_from_array(np.asarray(movie), component="z", source="array", signal="counts")
    counts = np.asarray(mv.data, np.float32)
    T, ny_pix, nx_pix = counts.shape
    if T < rg.MIN_FRAMES:
        raise rg.RegimeError(f"{mv.source}: {T} frames are too few for the temporal measures; detect needs at least {rg.MIN_FRAMES}")
    base_optics = file_config.instrument if file_config is not None and file_config.instrument.enabled else Instrument()
    pixel_m, pixel_origin = _pixel_size(mv, pixel_size if pixel_size is not None else (base_optics.pixel or None))
    optics = dataclasses.replace(
        base_optics, enabled=True, probe=probe if probe is not None else base_optics.probe,
        psf_fwhm_m=float(psf_fwhm) if psf_fwhm is not None else 0.0 if psf_image else base_optics.psf_fwhm_m,
        psf_image=str(Path(psf_image).resolve()) if psf_image else base_optics.psf_image,
        psf_pixel_m=pixel_m if psf_image else base_optics.psf_pixel_m, pixel_size_m=pixel_m,
        exposure_s=float(exposure) if exposure is not None else base_optics.exposure_s, photons_per_pixel=0.0)
    interval, interval_origin = _frame_interval(mv, frame_interval, optics)
    src = rg.material_source("permalloy" if material is None else material) if file_config is None else file_config
    cell = float(cell_size) if cell_size is not None else physics_cell(pixel_m, float(src.grid.cell_size_m[0]))
    ratio = pixel_m / cell
    if ratio < 1 - 1e-9:
        raise rg.RegimeError(f"--cell-size {cell:g} m is larger than the pixels of {pixel_m:g} m: the cell is the physics' resolution")
    ny, nx = (int(math.ceil(n * ratio - 1e-6)) for n in (ny_pix, nx_pix))
    if max(ny, nx) > MAX_CELLS_PER_SIDE:
        raise rg.RegimeError(f"pixels of {pixel_m * 1e9:.3g} nm are {ratio:.3g} cells of {cell * 1e9:.3g} nm: the "
                             f"{ny_pix} x {nx_pix}-pixel frame needs {ny} x {nx} cells, more than {MAX_CELLS_PER_SIDE} a side; "
                             "crop the movie or give a larger --cell-size")
    from jaxmag.instrument import optics_operators

    try:  # the optics on the cells, checked before anything is simulated (a PSF wider than the frame, ...)
        optics_operators((ny, nx), (cell, cell), optics, periodic=True)
    except ValueError as exc:
        raise rg.RegimeError(f"the instrument does not fit the movie: {exc}") from None
    bnd, bnd_origin, evidence = counts_boundary(counts, boundary if boundary is not None or file_config is None
                                                else file_config.grid.boundary)
    facts = rg.MovieFacts(T, ny, nx, "xz", cell, interval, bnd,
                          {"grid": f"movie ({ny_pix} x {nx_pix} pixels of {pixel_m * 1e9:.4g} nm, {pixel_origin})",
                           "num_frames": "movie", "cell_size_m": "--cell-size" if cell_size is not None else
                           "default (the largest cell <= the material's that divides the pixel)",
                           "frame_interval_s": interval_origin, "boundary": bnd_origin}, evidence)
    budget_name, b, budget_keys, budget_label = request_budget(budget, file_config, file_name)
    built = with_classes(rg.build_regime(facts, regime=None, material=material, temperature=temperature, seed=seed,
                                         budget_label=budget_label, **budget_keys), classes)
    needed = "".join(a for a, k in zip("xyz", probe_direction(optics.probe)) if k != 0)
    comps = "".join(c for c in "xyz" if c in needed + "xz")
    config = built.config.replace(instrument=optics,
                                  simulation=dataclasses.replace(built.config.simulation, components=comps))
    if inputs != "auto":
        chans = parse_input_spec(inputs)
        if any(c != PROBE_COMPONENT for _, c in chans):
            raise ValueError(f"--inputs {inputs}: a counts movie has one signal, component p (e.g. std:p)")
    origin = {**built.origin, "instrument": f"flags (probe {optics.probe}; pixel {pixel_origin}); detector from the movie"}
    outdir.claim(out, OUTPUTS, "detect", force=force)
    request = Request({PROBE_COMPONENT: dataclasses.replace(mv, component=PROBE_COMPONENT) if hasattr(mv, "component") else mv},
                      mv.source, facts, config, budget_name, b, None if inputs == "auto" else parse_input_spec(inputs),
                      "detector", float(threshold), int(config.dataset.seed),
                      out / "cache" if cache is None else Path(cache), origin)
    write_text(out / REGIME_FILE, regime_file_text(rg.Regime(config, origin), facts, mv.source))
    return CountsRequest(request, counts, optics, pixel_m, pixel_origin)


def _plan(config: Config, films: Films, instrument: Instrument, calibration=None) -> RecordingPlan:
    g = config.grid
    return recording_plan(instrument, (g.ny, g.nx), (g.cell_size_m[1], g.cell_size_m[0]), films.components,
                          films.periodic, calibration)


def calibrate(creq: CountsRequest, films: Films) -> tuple[Request, RecordingPlan, RecordingEstimate]:
    """Stage 3: the detector read from the movie against the films through the optics; the request's
    config then holds the equivalent instrument and the record's latent-entropy range."""
    import jax

    req = creq.request
    optics_plan = _plan(req.config, films, creq.optics)
    held = films.m[films.parts["val"].start:][:FILM_MEMBERS]
    optical = np.asarray(record_signal(jax.random.key(0), held, optics_plan))
    estimate = estimate_recording(creq.counts, optical, seed=req.seed)
    instrument = estimate.instrument(creq.optics)
    train, _ = films.part("train")
    clean = np.asarray(record_signal(jax.random.key(0), train[:FILM_MEMBERS], optics_plan))
    lo, hi = (float(v) for v in np.percentile(clean, [0.1, 99.9]))
    measures = dataclasses.replace(req.config.measures, fixed_range_p=(lo, hi if hi > lo else lo + 1e-3))
    config = req.config.replace(instrument=instrument, measures=measures)
    plan = _plan(config, films, instrument, estimate.calibration)
    return dataclasses.replace(req, config=config), plan, estimate


def _source(req: Request, films: Films, plan: RecordingPlan, channels, norm_stats=None):
    from jaxmag.learn.sources.recorded import RecordedSource

    b = req.budget
    rows, indices = source_rows(films, b)
    return RecordedSource(films.m[rows], films.labels[rows], plan, tuple(tuple(c) for c in channels),
                          {PROBE_COMPONENT: req.config.measures.options(PROBE_COMPONENT)}, batch_size=b.batch_size,
                          indices=indices, noise_seed=req.config.noise.seed, easy_axis=req.config.material.easy_axis,
                          norm_stats=norm_stats, steps_per_epoch=b.steps_per_epoch,
                          classes=req.config.model.classes, num_a=req.config.defects.num_a)


def choose_counts_inputs(req: Request, films: Films, plan: RecordingPlan):
    """The model's channels: ``--inputs``, else the candidate of ``CANDIDATES`` on ``p`` with the best
    baseline validation Dice on the recorded validation films (cached per regime)."""
    if req.inputs is not None:
        return req.inputs, {}
    path = req.cache / f"inputs-{req.key}-{req.budget.key()}-counts.json"
    if path.is_file():
        scores = json.loads(path.read_text())
    else:
        names = [f"{m}:{PROBE_COMPONENT}" for m in CANDIDATES]
        src = _source(req, films, plan, parse_input_spec(",".join(names)),
                      {"channels": names, "mean": [0.0] * len(names), "std": [1.0] * len(names)})
        x, y = src.raw_maps("val")
        scores = {n: robust_z.fit(x[..., i], y, periodic=films.periodic).val_dice for i, n in enumerate(names)}
        req.cache.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(scores, indent=1) + "\n")
    return parse_input_spec(max(scores, key=scores.get)), scores


def train_counts_model(req: Request, films: Films, plan: RecordingPlan, channels, progress: bool, member: int = 0):
    """The U-Net on recorded films (cached in ``cache/model-<regime hash>-<budget>-<inputs>-detector``,
    ``-m<k>`` for ensemble ``member`` k, trained with its own seed)."""
    base = req.cache / f"model-{req.key}-{req.budget.key()}-{slug(','.join(c.name for c in channels))}-detector"
    return trained_member(base, req.config, lambda: _source(req, films, plan, channels), films.periodic, member, progress)


def detect_counts(movie: Any, out: str | Path, *, probe: str = "z", pixel_size: float | None = None,
                  psf_fwhm: float | None = None, psf_image: str | Path | None = None, exposure: float | None = None,
                  dataset: str | None = None,
                  regime: str | Path | None = None, material: str | Path | None = None, boundary: str | None = None,
                  cell_size: float | None = None, frame_interval: float | None = None, temperature: float | None = None,
                  inputs: str = "auto", budget: str | None = None, cache: str | Path | None = None,
                  threshold: float = 0.5, seed: int | None = None, force: bool = False, progress: bool = True,
                  full_scale: float | None = None, classes: str | None = None) -> DetectionResult:
    """Defect map of a counts movie (module docstring). Arguments as ``jaxmag.learn.detect.detect``, plus
    ``probe`` (``x``, ``y``, ``z``, ``grazing:DEG`` or ``kx,ky,kz``), ``pixel_size`` (m; else the
    movie's metadata), ``psf_fwhm`` (m, default 0), ``exposure`` (s, default instantaneous frames)."""
    import jax

    from jaxmag.learn.predict import measure_maps

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    out = Path(out)
    with stage(seconds, "read"):
        creq = read_counts_request(movie, out, dataset=dataset, probe=probe, pixel_size=pixel_size, psf_fwhm=psf_fwhm,
                                   psf_image=psf_image,
                                   exposure=exposure, cell_size=cell_size, frame_interval=frame_interval,
                                   boundary=boundary, material=material, temperature=temperature, inputs=inputs,
                                   budget=budget, cache=cache, threshold=threshold, seed=seed, force=force,
                                   regime=regime, full_scale=full_scale, classes=classes)
    with stage(seconds, "simulate"):
        films = regime_films(creq.request, progress)
    with stage(seconds, "noise"):
        req, plan, estimate = calibrate(creq, films)
        write_text(out / REGIME_FILE, regime_file_text(rg.Regime(req.config, req.origin), req.facts, req.description))
    with stage(seconds, "inputs"):
        channels, scores = choose_counts_inputs(req, films, plan)
    with stage(seconds, "train"):
        models = [train_counts_model(req, films, plan, channels, progress, member=k) for k in range(req.budget.ensemble)]
        model = models[0]
    with stage(seconds, "predict"):
        record = calibrate_counts(creq.counts.astype(np.float64), estimate.calibration).astype(np.float32)
        members = load_members(models)
        info = {**members[0].info, "config": req.config}
        raw = measure_maps({PROBE_COMPONENT: Movie(record, PROBE_COMPONENT, req.description)}, info)
        proba, uncertainty, confidence = confidence_stage(
            members, lambda: _source(req, films, plan, channels), raw, req.config, channels,
            films.components, films.periodic)
        base_mask = model.baseline.predict(raw[None, ..., 0])[0]
        types = movie_types(members, raw, proba >= req.threshold, model)
        test, _ = films.part("test")
        recorded = np.asarray(record_signal(jax.random.key(req.seed + 99), test, plan))
        film_stats = [rg.movie_statistics({PROBE_COMPONENT: r}) for r in recorded]
        stats = rg.movie_statistics({PROBE_COMPONENT: record})
        warnings = rg.regime_warnings(stats, film_stats)
    v = model.record
    resolvable = max(v["model"]["test_dice"], v["baseline"]["test_dice"]) >= RESOLVABLE_DICE
    if not resolvable:
        warnings.insert(0, f"defects of this size are not resolvable with this instrument: on simulated films of the "
                           f"regime recorded by it, the U-Net's test Dice is {v['model']['test_dice']:.2f} and the "
                           f"baseline's {v['baseline']['test_dice']:.2f} (below {RESOLVABLE_DICE}); the masks are not a finding")
    if creq.optics.camera_rate:
        warnings.append("camera-rate frames: each is the film's thermal average plus detector noise; static contrast "
                        "(mean:p) survives, the fluctuation measures (std, latent entropy) carry only noise")
    seconds["total"] = time.perf_counter() - t0
    b = req.budget
    noise = {"kind": "detector", "why": "Poisson-Gaussian detector read from the movie (jaxmag.learn.counts)",
             "trained": "detector: fresh shot and read noise every step", "recording": estimate.to_dict(),
             "conditions": {PROBE_COMPONENT: "detector"}}
    result = DetectionResult(
        probability=proba, mask=proba >= req.threshold, baseline_mask=base_mask, inputs=raw,
        input_names=tuple(info["inputs"]), config=req.config, facts=req.facts, noise=noise,
        validation={"inputs_scored_by_baseline": scores, **v, "val_films": b.val_films, "test_films": b.test_films,
                    "resolvable": resolvable},
        warnings=tuple(warnings), run_dir=model.run_dir, cached=model.cached, files={}, seconds=seconds,
        movie=req.description, budget=req.budget_name, threshold=req.threshold,
        statistics={"movie": stats, "films": film_stats}, origin=req.origin, pixel_size_m=creq.pixel_m,
        uncertainty=uncertainty, confidence=confidence, types=types,
        class_names=class_names(req.config.model.classes, req.config.defects))
    return dataclasses.replace(result, files=write_detection(result, out))
