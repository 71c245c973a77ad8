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

Caches (``cache``, default ``out/cache``): the regime is one config, hashed once
(``jaxmag.config.config_hash``): ``films-<hash>.npz`` holds its films (hashed without ``[measures]``,
``films_key``); ``inputs-<hash>-...json``
the baseline's scores of the candidate inputs; ``model-<hash>-<budget>-<inputs>-<noise>/`` the
trained run, reused when the same regime, budget, inputs and noise come again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.assemble import measure_options, simulate
from jaxmag.channels import Channel
from jaxmag.config import Config, config_hash, load_config, parse_input_spec
from jaxmag.io import outdir
from jaxmag.io.atomic import atomic_write, write_text
from jaxmag.io.movie import Movie
from jaxmag.layout import measure_from_stored
from jaxmag.learn import baseline as robust_z
from jaxmag.learn import regime as rg
from jaxmag.learn.budgets import Budget, budget_by_name, budget_of
from jaxmag.learn.detect_report import OUTPUTS, REGIME_FILE, regime_file_text, write_detection
from jaxmag.learn.metrics import dice
from jaxmag.learn.noise_match import estimate_noise, strongest
from jaxmag.learn.orientation import calibrated_measures, candidate_inputs
from jaxmag.learn.sources.movies import MovieSource
from jaxmag.noise import NoiseSpec, apply_noise, parse_noise_spec



@dataclasses.dataclass(frozen=True)
class DetectionResult:
    """What ``detect`` found and wrote.

    probability: (ny, nx) float32; mask, baseline_mask: (ny, nx) bool; inputs: (ny, nx, C) raw
    measure maps of the movie; input_names: the model's channels; config: the regime; facts:
    what the movie said (``regime.MovieFacts``); noise: the estimate and the trained condition;
    validation: Dice of the model and the baseline on the regime's simulated validation and
    test films; warnings: movie statistics outside the simulated regime; run_dir: the model's
    run folder; cached: the model was reused; files: written paths; seconds: per stage; movie:
    where the movie came from; budget: its name; threshold: of the mask; statistics: the movie's
    and the noisy test films' (``regime.movie_statistics``); origin: where each value of the
    regime came from (``regime.Regime.origin``).
    """

    probability: np.ndarray
    mask: np.ndarray
    baseline_mask: np.ndarray
    inputs: np.ndarray
    input_names: tuple[str, ...]
    config: Config
    facts: rg.MovieFacts
    noise: dict
    validation: dict
    warnings: tuple[str, ...]
    run_dir: Path
    cached: bool
    files: dict
    seconds: dict
    movie: str = ""
    budget: str = ""
    threshold: float = 0.5
    statistics: dict = dataclasses.field(default_factory=dict)
    origin: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Request:
    """A checked request (``read_request``): the movie, its regime and what the user chose."""

    movies: Mapping[str, Movie]
    description: str  # where the movie came from
    facts: rg.MovieFacts
    config: Config  # the regime
    budget_name: str
    budget: Budget
    inputs: tuple[Channel, ...] | None  # None: "auto"
    noise: str  # "auto" or a condition
    threshold: float
    seed: int
    cache: Path
    origin: Mapping[str, str] = dataclasses.field(default_factory=dict)  # regime.Regime.origin

    @property
    def key(self) -> str:
        """The regime's one hash: of its config (films, inputs and model caches)."""
        return config_hash(self.config)


@dataclasses.dataclass(frozen=True)
class Films:
    """Clean films of the regime: ``m (N, T, C, ny, nx)`` float32 (stored layout) with components
    ``components``, ``labels (N, ny, nx)`` uint8, and the ``parts`` (``train``, ``val``, ``test``) as slices of N."""

    m: np.ndarray
    labels: np.ndarray
    components: str
    parts: Mapping[str, slice]
    periodic: bool

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.m[self.parts[name]], self.labels[self.parts[name]]


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """The run folder of the model, whether it was reused, the baseline fitted beside it and
    ``record`` (``eval.json``: the model's and the baseline's validation and test Dice)."""

    run_dir: Path
    cached: bool
    baseline: robust_z.BaselineFit
    record: dict


# --------------------------------------------------------------------------------------------
# the stages
# --------------------------------------------------------------------------------------------
def _request_budget(budget: str | Budget | None, regime: Config | None, regime_name: str) -> tuple[str, Budget, dict, str]:
    """``(name, budget, its config keywords for build_regime, origin label)``: the budget given, else
    the file's (``budget_of``: the file's sections stay as written), else quick."""
    if budget is None and regime is not None:
        name, b = budget_of(regime)
        return name, b, {}, f"file {regime_name}"
    name, b = budget_by_name("quick" if budget is None else budget)
    label = f"default (the {name} budget)" if budget is None else f"flag --budget {name}"
    return name, b, {"model": b.model(), "training": b.training(), "num_runs": b.films}, label


def read_request(movie: Any, out: Path, *, component: str | None, dataset: str | None, rescale: str,
                 max_abs: float, material: str | Path | None, boundary: str | None, cell_size: float | None,
                 frame_interval: float | None, temperature: float | None, inputs: str, noise: str,
                 budget: str | Budget | None, cache: str | Path | None, threshold: float, seed: int | None,
                 force: bool, regime: str | Path | None = None) -> Request:
    """Stage 1: read the movie, build its regime, check every choice, claim ``out`` and write ``regime.toml``.

    All bad input is refused here, before anything is simulated (``detect`` documents the arguments).
    None means "not given": the ``regime`` file's value, else the default."""
    if not 0 < threshold < 1:
        raise ValueError(f"--threshold must be in (0, 1), got {threshold}")
    file_config, file_name = (None, "") if regime is None else (load_config(regime), str(regime))
    budget_name, budget, budget_keys, budget_label = _request_budget(budget, file_config, file_name)
    movies, description = rg.read_movies(movie, component=component, dataset=dataset, rescale=rescale, max_abs=max_abs)
    facts = rg.movie_facts(movies, cell_size_m=cell_size, frame_interval_s=frame_interval, boundary=boundary,
                           regime=file_config, regime_name=file_name,
                           easy_axis=rg.regime_easy_axis(material, file_config))
    built = rg.build_regime(facts, regime=file_config, regime_name=file_name, material=material, temperature=temperature,
                            seed=seed, budget_label=budget_label, **budget_keys)
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
def films_key(config: Config) -> str:
    """The hash of what the films depend on: the regime's config without ``[measures]`` (the
    latent-entropy bins, which ``calibrate_bins`` may fill from the films themselves)."""
    from jaxmag.config import MeasuresConfig

    return config_hash(config.replace(measures=MeasuresConfig()))


def simulate_films(config: Config, cache: Path | None, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Clean films of the regime: ``m (N, T, C, ny, nx)`` float32, the stored layout (C = ``simulation.components``),
    labels ``(N, ny, nx)`` uint8. Cached in ``cache/films-<films_key(config)>.npz``."""
    path = None if cache is None else cache / f"films-{films_key(config)}.npz"
    if path is not None and path.is_file():
        with np.load(path) as f:
            return f["m"], f["labels"]
    data = simulate(config, progress=progress)
    m = np.asarray(data.m, np.float32)
    labels = (np.asarray(data.labels) > 0).astype(np.uint8)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            np.savez(f, m=m, labels=labels)
    return m, labels


def regime_films(request: Request, progress: bool = True) -> Films:
    """Stage 2: the regime's clean films (``simulate_films``), the last ``val_films + test_films`` held out."""
    b = request.budget
    m, labels = simulate_films(request.config, request.cache, progress)
    n_train = b.films - b.val_films - b.test_films
    parts = {"train": slice(0, n_train), "val": slice(n_train, n_train + b.val_films),
             "test": slice(n_train + b.val_films, b.films)}
    return Films(m, labels, request.config.simulation.components, parts, request.config.grid.boundary == "periodic")


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
    ids = np.arange(films.m.shape[0])
    rows = np.concatenate([ids[films.parts["train"]], *(np.repeat(ids[films.parts[p]], b.eval_draws) for p in ("val", "test"))])
    n_train, n_val = films.parts["train"].stop, b.val_films * b.eval_draws
    indices = {"train": np.arange(n_train), "val": np.arange(n_train, n_train + n_val),
               "test": np.arange(n_train + n_val, rows.size)}
    return MovieSource(films.m[rows], films.labels[rows], films.components, tuple(channels),
                       measure_options(request.config.measures), train_condition=spec.name, batch_size=b.batch_size,
                       indices=indices, noise_seed=request.config.noise.seed, periodic=films.periodic,
                       easy_axis=request.config.material.easy_axis, augment=True,
                       fresh_noise=True, norm_stats=norm_stats, steps_per_epoch=b.steps_per_epoch)


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


def _slug(text: str) -> str:
    return text.replace(":", "_").replace(",", "+")


def train_model(request: Request, films: Films, channels: tuple[Channel, ...], spec: NoiseSpec,
                progress: bool = True) -> TrainedModel:
    """Stage 5: the U-Net of ``channels`` at ``spec`` trained on the regime's films (or reused from
    ``cache/model-<regime hash>-<budget>-<inputs>-<noise>/``), and the baseline on its first channel,
    fitted on the validation films and scored on the test films (``eval.json``)."""
    from jaxmag.learn.loop import RUN_FILE, train_and_evaluate

    inputs = ",".join(c.name for c in channels)
    run_dir = request.cache / f"model-{request.key}-{request.budget.key()}-{_slug(inputs)}-{_slug(spec.name)}"
    cached = (run_dir / RUN_FILE).is_file() and (run_dir / "checkpoints" / "best").exists() and (run_dir / "eval.json").is_file()
    if not cached:
        if run_dir.exists():
            shutil.rmtree(run_dir)  # an interrupted earlier training: start over
        source = regime_source(request, films, channels, spec)
        result = train_and_evaluate(request.config, source, run_dir, progress=progress)
        write_text(run_dir / "eval.json", json.dumps(_evaluation(result, source, films.periodic), indent=1) + "\n")
    record = json.loads((run_dir / "eval.json").read_text())
    b = record["baseline"]
    baseline = robust_z.BaselineFit(float(b["sigma_px"]), float(b["z"]), films.periodic, float(b["val_dice"]),
                                    int(b.get("val_images", 0)))
    return TrainedModel(run_dir, bool(cached), baseline, record)


def _evaluation(result: Mapping, source, periodic: bool) -> dict:
    """``eval.json``: the model's Dice from training, the baseline fitted on the validation films and scored on the test films."""
    val, test = source.val_set(), source.test_set()
    xv, yv = val.examples(len(val))
    xt, yt = test.examples(len(test))
    fit = robust_z.fit(xv[..., 0], yv, periodic=periodic)
    return {
        "model": {"val_dice": float(result["best_val_dice"]), "test_dice": float(result["test"]["dice"]),
                  "best_epoch": int(result["best_epoch"])},
        "baseline": {"val_dice": float(fit.val_dice), "test_dice": dice(fit.predict(xt[..., 0]), yt),
                     "sigma_px": fit.sigma, "z": fit.threshold, "val_images": fit.num_val},
        "test_images": int(yt.shape[0]),
    }


def apply_model(request: Request, model: TrainedModel) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Stage 6: ``(probability, raw input maps (ny, nx, C), baseline mask, input names)`` on the movie."""
    from jaxmag.learn.evaluation import load_trained
    from jaxmag.learn.predict import measure_maps, predict_probability, run_components

    net, info = load_trained(model.run_dir)
    raw = measure_maps({c: request.movies[c] for c in run_components(info)}, info)
    proba, _, _ = predict_probability(net, info, raw)
    return proba, raw, model.baseline.predict(raw[None, ..., 0])[0], tuple(info["inputs"])


def check_regime(request: Request, films: Films, spec: NoiseSpec) -> tuple[dict, list[str]]:
    """The movie's statistics against the regime's test films with the trained noise:
    ``({"movie": ..., "films": [...]}, warnings)`` (``regime.movie_statistics``, ``regime.regime_warnings``)."""
    m, _ = films.part("test")
    noisy = np.asarray(apply_noise(jnp.asarray(measure_from_stored(m)), spec, jax.random.key(request.seed + 99)))
    comps = [c for c in request.movies if c in films.components]
    film_stats = [rg.movie_statistics({c: noisy[i, films.components.index(c)] for c in comps}) for i in range(noisy.shape[0])]
    stats = rg.movie_statistics({c: mv.data for c, mv in request.movies.items()})
    return {"movie": stats, "films": film_stats}, rg.regime_warnings(stats, film_stats)


@contextlib.contextmanager
def _stage(seconds: dict, name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------
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
) -> DetectionResult:
    """Defect map of ``movie`` with a U-Net trained on the movie's own regime and noise (module docstring).

    Args:
        movie: an OVF folder, ``.tif``, ``.h5``, ``.npy`` path, a ``Movie``, ``{component: Movie or array}``
            or an array ``(T, ny, nx)`` (of ``component``, default z).
        out: output folder; files in it that another command or the user wrote are refused.
        component, dataset, rescale, max_abs: how to read the movie (``jaxmag.io.movie``).
        regime: a config file (e.g. an edited ``regime.toml`` of ``detect``) used as written; the
            arguments below that are not None override it, the others default to it.
        material: ``"permalloy"`` or a config file whose ``[material]`` and ``[defects]`` are used.
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
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with _stage(seconds, "read"):
        request = read_request(
            movie, Path(out), component=component, dataset=dataset, rescale=rescale, max_abs=max_abs,
            regime=regime, material=material, boundary=boundary, cell_size=cell_size, frame_interval=frame_interval,
            temperature=temperature, inputs=inputs, noise=noise, budget=budget, cache=cache, threshold=threshold,
            seed=seed, force=force)
    with _stage(seconds, "simulate"):
        films = regime_films(request, progress)
        request = calibrate_bins(request, films, Path(out))
    with _stage(seconds, "noise"):
        held_out = measure_from_stored(films.m[films.parts["val"].start:])  # calibrated on films the model never trains on
        estimate = estimate_noise(request.movies, held_out, films.components, request.seed)
    with _stage(seconds, "inputs"):
        channels, scores = choose_inputs(request, films, estimate)
        spec = training_condition(request, estimate, channels)
    with _stage(seconds, "train"):
        model = train_model(request, films, channels, spec, progress)
    with _stage(seconds, "predict"):
        proba, raw, base_mask, input_names = apply_model(request, model)
        statistics, warnings = check_regime(request, films, spec)
    seconds["total"] = time.perf_counter() - t0
    b = request.budget
    result = DetectionResult(
        probability=proba, mask=proba >= request.threshold, baseline_mask=base_mask, inputs=raw,
        input_names=input_names, config=request.config, facts=request.facts, noise={**estimate, "trained": spec.name},
        validation={"inputs_scored_by_baseline": scores, **model.record, "val_films": b.val_films, "test_films": b.test_films},
        warnings=tuple(warnings), run_dir=model.run_dir, cached=model.cached, files={}, seconds=seconds,
        movie=request.description, budget=request.budget_name, threshold=request.threshold, statistics=statistics,
        origin=request.origin,
    )
    return dataclasses.replace(result, files=write_detection(result, Path(out)))
