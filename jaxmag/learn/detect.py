"""From a researcher's movie to a defect map in one call: ``detect(movie, out) -> DetectionResult``.

``detect`` runs named stages (docs/detect.md), each a function of this module:

1. ``read_request``: read and check the movie (``jaxmag.io.movie``: OVF folder, TIFF, HDF5, npy; an
   OVF folder or jaxmag HDF5 file gives m_x and m_z, a single-component file the one it holds;
   values must be unit-vector components, ``max_abs`` after ``rescale``), build its regime
   (``jaxmag.learn.regime``: grid, cell size, frame interval and count, boundary, temperature,
   material, defect sizes, and the budget's model and training; or a ``regime`` file, such as a
   ``regime.toml`` written before, used as written, with the arguments given overriding it) and
   write it as ``regime.toml``, a normal jaxmag config headed by where each value came from.
   Every bad input is refused here, before anything is simulated.
2. ``regime_films``: ``budget.films`` clean films of the regime, simulated once (``jaxmag.simulate``)
   and split into training, validation and test films; ``calibrate_bins``: the latent-entropy
   ranges of a material other than permalloy, from its clean training films.
3. noise (``estimate_noise``): the movie's noise, calibrated on clean films of the regime.
4. ``choose_inputs`` (``"auto"``): the candidates the movie's components allow for the film's
   orientation (``candidate_inputs``: in-plane ``mean:x``, ``std:z``, ``latent_entropy:z``; a
   perpendicular film adds ``mean:z`` and the fluctuations of m_x) are scored by the non-learned
   baseline on noisy validation films of the regime; the best is trained. The paper's guidance (mean m_x where in-plane contrast is strong,
   m_z measures otherwise) becomes a measurement on the user's own regime.
5. ``train_model``: a U-Net on the regime's films with matched noise (``regime_source``: fresh noise,
   exact symmetries and shifts per batch, on the device); validation and test on other films with
   fixed noise; the baseline (``jaxmag.learn.baseline``) fitted on the validation films and scored
   on the test films.
6. ``apply_model``: the model and the baseline on the movie (``jaxmag.learn.predict``);
   ``check_regime``: the movie's statistics against the regime's noisy films.
7. ``jaxmag.learn.detect_report.write_detection``: ``probability.{npy,tif}``, ``mask.{npy,tif}``,
   ``baseline_mask.{npy,tif}``, ``overlay.png``, ``report.md`` and ``detect.json``.

The records (``DetectionResult``, ``Request``, ``Films``, ``TrainedModel``) and the stages that do
not depend on the signal live in ``jaxmag.learn.detect_stages``; a counts movie (``signal``) goes to
``jaxmag.learn.detect_counts``.

Caches (``cache``, default ``out/cache``): the regime is one config, hashed once
(``jaxmag.config.config_hash``): ``films-<hash>.npz`` holds its films (hashed without ``[measures]``,
``films_key``); ``inputs-<hash>-...json``
the baseline's scores of the candidate inputs; ``model-<hash>-<budget>-<inputs>-<noise>/`` the
trained run, reused when the same regime, budget, inputs and noise come again.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.assemble import measure_options
from jaxmag.channels import Channel
from jaxmag.config import load_config, parse_input_spec
from jaxmag.io import outdir
from jaxmag.io.atomic import write_text
from jaxmag.layout import measure_from_stored
from jaxmag.learn import baseline as robust_z
from jaxmag.learn import regime as rg
from jaxmag.learn.fit_regime import FIT_MATERIAL, fitted_material
from jaxmag.learn.budgets import Budget
from jaxmag.learn.detect_stages import (DetectionResult, Films, Request, TrainedModel, confidence_stage,
                                         load_members, movie_types, regime_films, request_budget, slug,
                                         source_rows, stage, trained_member, with_classes)
from jaxmag.learn.classes import class_names
from jaxmag.learn.detect_counts import detect_counts
from jaxmag.learn.detect_report import OUTPUTS, REGIME_FILE, regime_file_text, write_detection
from jaxmag.learn.noise_match import estimate_noise, strongest
from jaxmag.learn.orientation import calibrated_measures, candidate_inputs
from jaxmag.learn.sources.movies import MovieSource
from jaxmag.noise import NoiseSpec, apply_noise, parse_noise_spec



# --------------------------------------------------------------------------------------------
# the stages
# --------------------------------------------------------------------------------------------
def read_request(movie: Any, out: Path, *, component: str | None, dataset: str | None, rescale: str,
                 max_abs: float, material: str | Path | None, boundary: str | None, cell_size: float | None,
                 frame_interval: float | None, temperature: float | None, inputs: str, noise: str,
                 budget: str | Budget | None, cache: str | Path | None, threshold: float, seed: int | None,
                 force: bool, regime: str | Path | None = None, classes: str | None = None) -> Request:
    """Stage 1: read the movie, build its regime, check every choice, claim ``out`` and write ``regime.toml``.

    All bad input is refused here, before anything is simulated (``detect`` documents the arguments).
    None means "not given": the ``regime`` file's value, else the default."""
    if not 0 < threshold < 1:
        raise ValueError(f"--threshold must be in (0, 1), got {threshold}")
    file_config, file_name = (None, "") if regime is None else (load_config(regime), str(regime))
    budget_name, budget, budget_keys, budget_label = request_budget(budget, file_config, file_name)
    movies, description = rg.read_movies(movie, component=component, dataset=dataset, rescale=rescale, max_abs=max_abs)
    facts = rg.movie_facts(movies, cell_size_m=cell_size, frame_interval_s=frame_interval, boundary=boundary,
                           regime=file_config, regime_name=file_name,
                           easy_axis=rg.regime_easy_axis(material, file_config))
    built = with_classes(rg.build_regime(facts, regime=file_config, regime_name=file_name, material=material,
                                         temperature=temperature, seed=seed, budget_label=budget_label, **budget_keys),
                         classes)
    requested = None if inputs == "auto" else parse_input_spec(inputs)
    if requested is not None:
        missing = sorted({c for _, c in requested} - set(movies))
        if missing:
            raise ValueError(f"--inputs {inputs} needs component(s) {', '.join(missing)}; the movie holds {', '.join(movies)}")
    if noise != "auto":
        parse_noise_spec(noise)
    outdir.claim(out, OUTPUTS, "detect", force=force)  # files of the user's, or of another command, are refused
    write_text(out / REGIME_FILE, regime_file_text(built, facts, description))
    return Request(movies, description, facts, built.config, budget_name, budget, requested, noise, float(threshold),
                   int(built.config.dataset.seed), out / "cache" if cache is None else Path(cache), built.origin)


# --------------------------------------------------------------------------------------------
# films of the regime
# --------------------------------------------------------------------------------------------
def calibrate_bins(request: Request, films: Films, out: Path | None = None) -> Request:
    """The latent-entropy ranges the regime leaves empty (``orientation.uncalibrated_bins``: a material
    other than permalloy), from the regime's clean training films (``orientation.calibrated_measures``).

    The request's config, and so its hash (the key of the inputs and model caches), then holds
    them, and ``out/regime.toml`` is rewritten with them: ``--regime regime.toml`` reads them as
    written and builds the same config. The films do not depend on them (``films_key``)."""
    m, _ = films.part("train")
    measures, filled = calibrated_measures(request.config.measures, m, films.components,
                                           request.config.material.easy_axis)
    if not filled:
        return request
    config = request.config.replace(measures=measures)
    ranges = ", ".join(f"m_{c} [{lo:g}, {hi:g}]" for c, (lo, hi) in filled.items())
    origin = {**request.origin,
              "measures": f"default (latent-entropy ranges {ranges}: 0.1-99.9 % of the regime's clean training films)"}
    if out is not None:
        write_text(out / REGIME_FILE, regime_file_text(rg.Regime(config, origin), request.facts, request.description))
    return dataclasses.replace(request, config=config, origin=origin)


def regime_source(request: Request, films: Films, channels, spec: NoiseSpec, norm_stats: dict | None = None) -> MovieSource:
    """The data of a model of ``channels`` at ``spec``: a ``MovieSource`` on the regime's films.

    Every training batch draws training films, a random exact symmetry (``jaxmag.symmetry``) and a
    fresh noise draw, on the device. The validation and test sets are their own films, each under
    ``budget.eval_draws`` fixed noise draws: the films repeated, each copy with its own run index,
    which keys its draw. ``norm_stats``: given (the identity gives raw maps), else from the clean
    training maps."""
    b = request.budget
    rows, indices = source_rows(films, b)
    return MovieSource(films.m[rows], films.labels[rows], films.components, tuple(channels),
                       measure_options(request.config.measures), train_condition=spec.name, batch_size=b.batch_size,
                       indices=indices, noise_seed=request.config.noise.seed, periodic=films.periodic,
                       easy_axis=request.config.material.easy_axis, augment=True,
                       fresh_noise=True, norm_stats=norm_stats, steps_per_epoch=b.steps_per_epoch,
                       classes=request.config.model.classes, num_a=request.config.defects.num_a)


# --------------------------------------------------------------------------------------------
# the stages after the noise
# --------------------------------------------------------------------------------------------
def training_condition(request: Request, estimate: Mapping, channels) -> NoiseSpec:
    """The noise a model of ``channels`` trains at: ``--noise``, else the strongest estimated condition
    of its components (one condition per model)."""
    if request.noise != "auto":
        return parse_noise_spec(request.noise)
    specs = [parse_noise_spec(estimate["conditions"][c]) for c in dict.fromkeys(c for _, c in channels)]
    return strongest(specs)


def choose_inputs(request: Request, films: Films, estimate: Mapping) -> tuple[tuple[Channel, ...], dict[str, float]]:
    """Stage 4: the model's channels and the baseline's validation Dice of each candidate.

    ``--inputs`` is taken as given; with ``"auto"`` the candidates of the movie's components
    (``candidate_inputs``) are scored by the baseline fitted on noisy validation films of the regime
    (cached in ``cache/inputs-<regime hash>-<budget>-<conditions>.json``) and the best wins."""
    if request.inputs is not None:
        return request.inputs, {}
    names = candidate_inputs("".join(request.movies), request.config.material.easy_axis)
    if not names:
        raise ValueError(f"no input measure for component(s) {', '.join(request.movies)}: give x or z (or --inputs)")
    if len(names) == 1:
        return parse_input_spec(names[0]), {}
    conditions = {c: training_condition(request, estimate, ((None, c),)).name for c in request.movies}
    path = request.cache / (f"inputs-{request.key}-{request.budget.key()}-"
                            + "-".join(conditions[c] for c in sorted(conditions)).replace(":", "_") + ".json")
    if path.is_file():
        scores = json.loads(path.read_text())
    else:
        scores = {}
        for name in names:
            first = parse_input_spec(name)[:1]
            val = regime_source(request, films, first, training_condition(request, estimate, first),
                                {"channels": [name], "mean": [0.0], "std": [1.0]}).val_set()
            x, y = val.examples(len(val))
            scores[name] = robust_z.fit(x[..., 0], y, periodic=films.periodic).val_dice
        request.cache.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(scores, indent=1) + "\n")
    return parse_input_spec(max(scores, key=scores.get)), scores


def train_model(request: Request, films: Films, channels: tuple[Channel, ...], spec: NoiseSpec,
                progress: bool = True, member: int = 0) -> TrainedModel:
    """Stage 5: the U-Net of ``channels`` at ``spec`` trained on the regime's films (or reused from
    ``cache/model-<regime hash>-<budget>-<inputs>-<noise>/``, ``-m<k>`` for ensemble ``member`` k,
    trained with its own seed), and the baseline on its first channel, fitted on the validation
    films and scored on the test films (``eval.json``)."""
    inputs = ",".join(c.name for c in channels)
    base = request.cache / f"model-{request.key}-{request.budget.key()}-{slug(inputs)}-{slug(spec.name)}"
    return trained_member(base, request.config, lambda: regime_source(request, films, channels, spec), films.periodic,
                          member, progress)


def apply_model(request: Request, films: Films, models: list[TrainedModel], channels, spec: NoiseSpec):
    """Stage 6: ``(probability, uncertainty, calibration, types, raw input maps (ny, nx, C), baseline
    mask, input names)`` on the movie: the ensemble of ``models`` over the film's mirror views
    (``detect_stages.confidence_stage``) and the class of each masked pixel (``movie_types``)."""
    from jaxmag.learn.predict import measure_maps, run_components

    members = load_members(models)
    info = {**members[0].info, "config": request.config}
    raw = measure_maps({c: request.movies[c] for c in run_components(info)}, info)
    proba, uncertainty, record = confidence_stage(
        members, lambda: regime_source(request, films, channels, spec), raw, request.config,
        channels, films.components, films.periodic)
    types = movie_types(members, raw, proba >= request.threshold, models[0])
    return (proba, uncertainty, record, types, raw, models[0].baseline.predict(raw[None, ..., 0])[0],
            tuple(info["inputs"]))


def check_regime(request: Request, films: Films, spec: NoiseSpec) -> tuple[dict, list[str]]:
    """The movie's statistics against the regime's test films with the trained noise:
    ``({"movie": ..., "films": [...]}, warnings)`` (``regime.movie_statistics``, ``regime.regime_warnings``)."""
    m, _ = films.part("test")
    noisy = np.asarray(apply_noise(jnp.asarray(measure_from_stored(m)), spec, jax.random.key(request.seed + 99)))
    comps = [c for c in request.movies if c in films.components]
    film_stats = [rg.movie_statistics({c: noisy[i, films.components.index(c)] for c in comps}) for i in range(noisy.shape[0])]
    stats = rg.movie_statistics({c: mv.data for c, mv in request.movies.items()})
    return {"movie": stats, "films": film_stats}, rg.regime_warnings(stats, film_stats)


# --------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------
def movie_signal(movie: Any, dataset: str | None, signal: str | None, optics: Mapping[str, Any]) -> str:
    """``"counts"`` or ``"magnetisation"``: ``signal`` as given, else ``default_signal`` of a file (counts
    for integer TIFF and HDF5 data), else magnetisation. ``optics``: the instrument flags given
    (flag name -> value or None), refused on a magnetisation movie."""
    if signal is None:
        from jaxmag.io.movie import default_signal

        signal = default_signal(Path(movie), dataset) if isinstance(movie, (str, Path)) and Path(movie).exists() \
            else "magnetisation"
    if signal not in ("counts", "magnetisation"):
        raise ValueError(f"--signal must be counts or magnetisation, got {signal!r}")
    given = [name for name, value in optics.items() if value is not None]
    if signal == "magnetisation" and given:
        raise ValueError(f"{', '.join(given)} describe a recorded (counts) movie; this one is read as magnetisation: "
                         "pass --signal counts")
    return signal


def detect(
    movie: Any,
    out: str | Path,
    *,
    component: str | None = None,
    dataset: str | None = None,
    rescale: str = "none",
    max_abs: float = rg.MAX_ABS,
    regime: str | Path | None = None,
    material: str | Path | None = None,
    boundary: str | None = None,
    cell_size: float | None = None,
    frame_interval: float | None = None,
    temperature: float | None = None,
    inputs: str = "auto",
    noise: str = "auto",
    budget: str | Budget | None = None,
    cache: str | Path | None = None,
    threshold: float = 0.5,
    seed: int | None = None,
    force: bool = False,
    progress: bool = True,
    signal: str | None = None,
    classes: str | None = None,
    probe: str | None = None,
    pixel_size: float | None = None,
    psf_fwhm: float | None = None,
    exposure: float | None = None,
    psf_image: str | Path | None = None,
) -> DetectionResult:
    """Defect map of ``movie`` with a U-Net trained on the movie's own regime and noise (module docstring).

    Args:
        movie: an OVF folder, ``.tif``, ``.h5``, ``.npy`` path, a ``Movie``, ``{component: Movie or array}``
            or an array ``(T, ny, nx)`` (of ``component``, default z).
        out: output folder; files in it that another command or the user wrote are refused.
        component, dataset, rescale, max_abs: how to read the movie (``jaxmag.io.movie``).
        regime: a config file (e.g. an edited ``regime.toml`` of ``detect``) used as written; the
            arguments below that are not None override it, the others default to it.
        material: ``"permalloy"``, a config file whose ``[material]`` and ``[defects]`` are used, or
            ``"fit"``: fitted to the movie first (``jaxmag.learn.fit_regime.fitted_material``, written
            to ``out/fit``; magnetisation movies only).
        boundary: ``"open"``, ``"periodic"`` or ``"auto"`` (``regime.guess_boundary``, the default).
        cell_size, frame_interval: m and s; needed where neither the format nor a regime file stores them.
        temperature: K (default: the material's, 300 K for permalloy).
        inputs: ``"auto"`` or one model's channels, e.g. ``"std:z"`` or ``"mean:x,std:z"``.
        noise: ``"auto"`` (estimated) or a condition (``"clean"``, ``"gaussian:3e-3"``, ``"speckle:1e-2"``).
        budget: ``"quick"`` (default), ``"standard"``, ``"full"`` or a ``Budget`` (a file's: ``budget_of``).
        cache: folder of simulated films and trained models (default ``out/cache``).
        threshold: probability of the mask.
        seed: of the simulated films (default 0).
        force: replace files in ``out`` that jaxmag did not write (``jaxmag.io.outdir``).
        classes: ``"binary"`` or ``"typed"`` (one class per defect group of ``[defects]``, named
            softer or harder from its factor: ``jaxmag.learn.classes``); default: the regime
            file's, else binary.
        signal: ``"magnetisation"`` (unit-vector components) or ``"counts"`` (what a microscope
            recorded: ``jaxmag.learn.detect_counts``, which ``probe``, ``pixel_size`` (m),
            ``psf_fwhm`` (m) and ``exposure`` (s) describe); default: counts for integer TIFF and
            HDF5 data, magnetisation otherwise (``jaxmag.io.movie.default_signal``).
    """
    optics = {"--probe": probe, "--pixel-size": pixel_size, "--psf-fwhm": psf_fwhm, "--psf-image": psf_image,
              "--exposure": exposure}
    kind = movie_signal(movie, dataset, signal, optics)
    fit_warnings: list[str] = []
    if material == FIT_MATERIAL:  # the film's own material first (docs/fit.md), then the detection in it
        if kind == "counts":
            raise ValueError("--material fit fits magnetisation movies; a counts movie's fit through the instrument "
                             "is not built: give --material permalloy or a config")
        material, fitted = fitted_material(movie, Path(out) / "fit", progress=progress, component=component, dataset=dataset,
                                      rescale=rescale, max_abs=max_abs, regime=regime, boundary=boundary,
                                      cell_size=cell_size, frame_interval=frame_interval, temperature=temperature,
                                      force=force)
        fit_warnings = [f"material fit ({Path(out) / 'fit' / 'fit.json'}): {w}" for w in fitted.warnings]
    if kind == "counts":
        return detect_counts(movie, out, probe=probe or "z", pixel_size=pixel_size, psf_fwhm=psf_fwhm,
                             psf_image=psf_image, exposure=exposure,
                             dataset=dataset, regime=regime, material=material, boundary=boundary, cell_size=cell_size,
                             frame_interval=frame_interval, temperature=temperature, inputs=inputs, budget=budget,
                             cache=cache, threshold=threshold, seed=seed, force=force, progress=progress,
                             classes=classes)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with stage(seconds, "read"):
        request = read_request(
            movie, Path(out), component=component, dataset=dataset, rescale=rescale, max_abs=max_abs,
            regime=regime, material=material, boundary=boundary, cell_size=cell_size, frame_interval=frame_interval,
            temperature=temperature, inputs=inputs, noise=noise, budget=budget, cache=cache, threshold=threshold,
            seed=seed, force=force, classes=classes)
    with stage(seconds, "simulate"):
        films = regime_films(request, progress)
        request = calibrate_bins(request, films, Path(out))
    with stage(seconds, "noise"):
        held_out = measure_from_stored(films.m[films.parts["val"].start:])  # calibrated on films the model never trains on
        estimate = estimate_noise(request.movies, held_out, films.components, request.seed)
    with stage(seconds, "inputs"):
        channels, scores = choose_inputs(request, films, estimate)
        spec = training_condition(request, estimate, channels)
    with stage(seconds, "train"):
        models = [train_model(request, films, channels, spec, progress, member=k) for k in range(request.budget.ensemble)]
        model = models[0]
    with stage(seconds, "predict"):
        proba, uncertainty, confidence, types, raw, base_mask, input_names = apply_model(request, films, models, channels,
                                                                                         spec)
        statistics, warnings = check_regime(request, films, spec)
    seconds["total"] = time.perf_counter() - t0
    b = request.budget
    result = DetectionResult(
        probability=proba, mask=proba >= request.threshold, baseline_mask=base_mask, inputs=raw,
        input_names=input_names, config=request.config, facts=request.facts, noise={**estimate, "trained": spec.name},
        validation={"inputs_scored_by_baseline": scores, **model.record, "val_films": b.val_films, "test_films": b.test_films},
        warnings=tuple(fit_warnings + list(warnings)), run_dir=model.run_dir, cached=model.cached, files={}, seconds=seconds,
        movie=request.description, budget=request.budget_name, threshold=request.threshold, statistics=statistics,
        origin=request.origin, uncertainty=uncertainty, confidence=confidence, types=types,
        class_names=class_names(request.config.model.classes, request.config.defects),
    )
    return dataclasses.replace(result, files=write_detection(result, Path(out)))
