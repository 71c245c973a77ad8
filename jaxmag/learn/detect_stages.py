"""What both ``detect`` paths share: their records and the stages that do not depend on the signal.

``jaxmag.learn.detect`` (magnetisation movies) and ``jaxmag.learn.detect_counts`` (what a
microscope recorded) both build a ``Request``, simulate the regime's ``Films`` once
(``regime_films``, cached by ``films_key``), train a ``TrainedModel`` whose ``eval.json`` holds the
model's and the baseline's Dice (``evaluation``), and return a ``DetectionResult``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from jaxmag.assemble import simulate
from jaxmag.channels import Channel
from jaxmag.config import Config, config_hash
from jaxmag.io.atomic import atomic_write
from jaxmag.io.movie import Movie
from jaxmag.learn import baseline as robust_z
from jaxmag.learn import regime as rg
from jaxmag.learn.budgets import Budget, budget_by_name, budget_of
from jaxmag.learn.metrics import dice


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
    regime came from (``regime.Regime.origin``); pixel_size_m: the detector pixel of a counts
    movie (``jaxmag.learn.detect_counts``; the maps are then on its pixels, not on cells);
    uncertainty, confidence: the ensemble's per-pixel spread and its calibration on the regime's
    films (``jaxmag.learn.confidence``).
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
    pixel_size_m: float | None = None  # the detector pixel of a counts movie (None: the cell)
    uncertainty: np.ndarray | None = None  # (ny, nx): the ensemble's spread over members and views
    types: np.ndarray | None = None  # (ny, nx) uint8 class of each pixel (typed models; 0 background)
    class_names: tuple[str, ...] = ("background", "defect")
    confidence: dict = dataclasses.field(default_factory=dict)  # jaxmag.learn.confidence.calibrate_members


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


def request_budget(budget: str | Budget | None, regime: Config | None, regime_name: str) -> tuple[str, Budget, dict, str]:
    """``(name, budget, its config keywords for build_regime, origin label)``: the budget given, else
    the file's (``budget_of``: the file's sections stay as written), else quick."""
    if budget is None and regime is not None:
        name, b = budget_of(regime)
        return name, b, {}, f"file {regime_name}"
    name, b = budget_by_name("quick" if budget is None else budget)
    label = f"default (the {name} budget)" if budget is None else f"flag --budget {name}"
    return name, b, {"model": b.model(), "training": b.training(), "num_runs": b.films}, label


def films_key(config: Config) -> str:
    """The hash of what the films depend on: the regime's config without ``[measures]`` (the
    latent-entropy bins, which ``calibrate_bins`` may fill from the films themselves) and with
    only the exposure of ``[instrument]`` (the optics and detector act on the films afterwards)."""
    from jaxmag.config import MeasuresConfig
    from jaxmag.instrument import Instrument

    # the films depend on the instrument only through the exposure (applied in the solver)
    i = config.instrument
    exposure = Instrument(enabled=False, exposure_s=i.exposure_s, camera_window_s=i.camera_window_s) if i.enabled else i
    return config_hash(config.replace(measures=MeasuresConfig(), instrument=exposure))


def simulate_films(config: Config, cache: Path | None, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Clean films of the regime: ``m (N, T, C, ny, nx)`` float32, the stored layout (C = ``simulation.components``),
    labels ``(N, ny, nx)`` uint8 blob ids (0 background, then the "a" and "b" blobs; caches written
    before typed classes hold 0/1, which a binary scheme reads alike and a typed regime, hashed
    apart, never meets). Cached in ``cache/films-<films_key(config)>.npz``."""
    path = None if cache is None else cache / f"films-{films_key(config)}.npz"
    if path is not None and path.is_file():
        with np.load(path) as f:
            return f["m"], f["labels"]
    data = simulate(config, progress=progress)
    m = np.asarray(data.m, np.float32)
    labels = np.asarray(data.labels).astype(np.uint8)  # blob ids: the sources read them as their class scheme
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


def slug(text: str) -> str:
    return text.replace(":", "_").replace(",", "+")


def evaluation(result: Mapping, source, periodic: bool) -> dict:
    """``eval.json``: the model's Dice from training, the baseline fitted on the validation films and
    scored on the test films. Dice is of "any defect" (labels > 0) for every class scheme; a typed
    source (``jaxmag.learn.classes``) adds ``typed``: the model's and the typed baseline's per-class
    Dice and confusion matrices on the test films (the baseline's class signs chosen on the
    validation films, ``baseline.fit_types``)."""
    val, test = source.val_set(), source.test_set()
    xv, yv = val.examples(len(val))
    xt, yt = test.examples(len(test))
    fit = robust_z.fit(xv[..., 0], yv, periodic=periodic)
    record = {
        "model": {"val_dice": float(result["best_val_dice"]), "test_dice": float(result["test"]["dice"]),
                  "best_epoch": int(result["best_epoch"])},
        "baseline": {"val_dice": float(fit.val_dice), "test_dice": dice(fit.predict(xt[..., 0]), yt > 0),
                     "sigma_px": fit.sigma, "z": fit.threshold, "val_images": fit.num_val},
        "test_images": int(yt.shape[0]),
    }
    if getattr(source, "classes", "binary") != "binary":
        typed = robust_z.fit_types(fit, xv[..., :1], yv)
        base = robust_z.typed_score(typed.predict(xt[..., :1]), yt, len(result["test"]["class_dice"]))
        epochs = [r for r in result.get("history", []) if "val_class_dice" in r]
        best = next((r for r in epochs if r.get("epoch") == result["best_epoch"]), epochs[-1] if epochs else {})
        model_val = [float(v) for v in best.get("val_class_dice", [])]
        # how the movie's defects are typed: the U-Net's classes, or the sign of the input map's
        # contrast (the typed baseline's rule), whichever types the validation films better
        by_contrast = bool(model_val) and np.mean(typed.val_class_dice[1:]) > np.mean(model_val[1:])
        record["typed"] = {
            "model": {"class_dice": [float(v) for v in result["test"]["class_dice"]], "confusion": result["test"]["confusion"],
                      "val_class_dice": model_val},
            "baseline": {"class_dice": [float(v) for v in base["class_dice"]], "confusion": base["confusion"],
                         "signs": list(typed.signs), "val_class_dice": [float(v) for v in typed.val_class_dice]},
            "typing": "contrast" if by_contrast else "model",
        }
    return record


@contextlib.contextmanager
def stage(seconds: dict, name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - t0


def member_dir(base: Path, k: int) -> Path:
    """The run folder of ensemble member ``k``: ``base`` itself for member 0 (a single model's cache
    stays valid), ``base-m<k>`` for the others."""
    return base if k == 0 else base.with_name(f"{base.name}-m{k}")


def eval_maps(source, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw maps ``(N, ny, nx, C)`` and labels of a source's fixed validation or test images (its
    normalised inputs mapped back with its statistics)."""
    es = source.val_set() if part == "val" else source.test_set()
    stats = source.norm_stats
    raw = es.inputs * np.asarray(stats["std"], np.float32) + np.asarray(stats["mean"], np.float32)
    return raw.astype(np.float32), np.asarray(es.labels)


def load_members(models: list[TrainedModel]) -> list:
    """The ensemble's models loaded once (``jaxmag.learn.confidence.Member``), for its probability and types."""
    from jaxmag.learn.confidence import Member
    from jaxmag.learn.evaluation import load_trained

    return [Member(*load_trained(m.run_dir)) for m in models]


def confidence_stage(members, make_source, raw: np.ndarray, config: Config, channels, components: str,
                     periodic: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(probability, uncertainty, calibration)`` of the movie's raw maps from the ensemble
    ``members`` (``load_members``, ``jaxmag.learn.confidence``). The calibration on the regime's
    validation and test films (``make_source()`` builds their source) is cached in the first
    member's folder."""
    import json

    from jaxmag.io.atomic import write_text
    from jaxmag.learn.confidence import calibrate_members, movie_probability, views_of

    views = views_of(config, [c.name for c in channels], components, periodic)
    path = Path(members[0].info["run_dir"]) / f"confidence-{len(members)}.json"
    if path.is_file():
        record = json.loads(path.read_text())
    else:
        source = make_source()
        record = calibrate_members(members, eval_maps(source, "val"), eval_maps(source, "test"), views)
        write_text(path, json.dumps(record, indent=1) + "\n")
    probability, uncertainty = movie_probability(members, raw, views, record["temperature"])
    return probability, uncertainty, record


def movie_types(members, raw: np.ndarray, mask: np.ndarray, model: TrainedModel) -> np.ndarray | None:
    """``(ny, nx)`` uint8 class of each masked pixel of the ensemble ``members`` (``load_members``),
    0 elsewhere; None for binary models (``model``: member 0, whose ``eval.json`` holds the typing). The typing
    chosen on the validation films (``evaluation``: ``typed.typing``): the most probable defect class
    of the members' mean class probabilities (``predict_class_probability``), or the side of the
    smoothed robust z of the input map that the typed baseline's signs give each class."""
    from jaxmag.learn.predict import predict_class_probability

    typed = model.record.get("typed")
    if typed is None:
        return None
    if typed.get("typing") == "contrast":
        b = model.baseline
        z = robust_z.signed_z(raw[None, ..., :1], b.sigma, b.periodic).reshape(raw.shape[:2] + (-1,))
        side = np.tensordot(z, np.asarray(typed["baseline"]["signs"], np.float64), axes=([-1], [0]))
        return np.where(mask, np.where(side > 0, 1, 2), 0).astype(np.uint8)
    p = np.mean([predict_class_probability(m.model, m.info, raw)[0] for m in members], axis=0)
    return np.where(mask, 1 + np.argmax(p[..., 1:], axis=-1), 0).astype(np.uint8)


def trained_member(run_dir: Path, config: Config, make_source, periodic: bool, member: int = 0,
                   progress: bool = True) -> TrainedModel:
    """Ensemble member ``member`` in ``member_dir(run_dir, member)``: reused where a finished run is
    there, else trained on ``make_source()`` with the member's seed (``confidence.member_config``),
    its ``eval.json`` holding the model's and the baseline's Dice (``evaluation``); an interrupted
    earlier training there is started over."""
    import json
    import shutil

    from jaxmag.io.atomic import write_text
    from jaxmag.learn.confidence import member_config
    from jaxmag.learn.loop import RUN_FILE, train_and_evaluate

    run_dir = member_dir(run_dir, member)
    cached = (run_dir / RUN_FILE).is_file() and (run_dir / "checkpoints" / "best").exists() and (run_dir / "eval.json").is_file()
    if not cached:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        source = make_source()
        result = train_and_evaluate(member_config(config, member), source, run_dir, progress=progress)
        write_text(run_dir / "eval.json", json.dumps(evaluation(result, source, periodic), indent=1) + "\n")
    record = json.loads((run_dir / "eval.json").read_text())
    b = record["baseline"]
    baseline = robust_z.BaselineFit(float(b["sigma_px"]), float(b["z"]), periodic, float(b["val_dice"]),
                                    int(b.get("val_images", 0)))
    return TrainedModel(run_dir, bool(cached), baseline, record)


def with_classes(regime: "rg.Regime", classes: str | None) -> "rg.Regime":
    """The regime with ``[model] classes`` set to ``classes`` (``jaxmag.learn.classes``: ``binary`` or
    ``typed``, one class per defect group); None keeps the file's, else binary."""
    if classes is None:
        return regime
    from jaxmag.learn.classes import class_scheme

    name = class_scheme(classes).name
    config = regime.config.replace(model=dataclasses.replace(regime.config.model, classes=name))
    origin = dict(regime.origin)
    if name != "binary":
        origin["model"] = f"{origin.get('model', 'default')}; --classes {name}"
    return rg.Regime(config, origin)


def source_rows(films: Films, budget: Budget) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(rows, indices)`` of a regime's data source: every training film once, then the validation and
    test films each repeated ``budget.eval_draws`` times (each copy its own row, so its own fixed noise
    draw), and the split as indices into ``rows``."""
    ids = np.arange(films.m.shape[0])
    rows = np.concatenate([ids[films.parts["train"]],
                           *(np.repeat(ids[films.parts[p]], budget.eval_draws) for p in ("val", "test"))])
    n_train, n_val = films.parts["train"].stop, budget.val_films * budget.eval_draws
    indices = {"train": np.arange(n_train), "val": np.arange(n_train, n_train + n_val),
               "test": np.arange(n_train + n_val, rows.size)}
    return rows, indices
