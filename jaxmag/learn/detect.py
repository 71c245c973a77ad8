"""From a researcher's movie to a defect map in one call: ``detect(movie, out) -> DetectionResult``.

Pipeline (docs/detect.md):

1. **Read and check** the movie (``jaxmag.io.movie``: OVF folder, TIFF, HDF5, npy); an OVF folder
   or jaxmag HDF5 file gives m_x and m_z, a single-component file the one it holds. Values
   must be unit-vector components (``max_abs`` 1.5 after ``rescale``).
2. **Regime** (``jaxmag.learn.regime``): grid, cell size, frame interval and count, boundary,
   temperature, material, defect sizes; written as ``regime.toml``, a normal jaxmag config.
3. **Clean films of the regime**: ``budget.films`` movies simulated once (``jaxmag.simulate``),
   split into training, validation and test films, cached by the hash of the simulation sections.
4. **Noise** (``estimate_noise_variances``) of the movie minus the estimator's floor on the clean
   films of the regime (signal that is rough in space and time reads as noise, ~3e-3 for m_z of
   4 nm cells). Gaussian or speckle: Gaussian noise reads the same on m_x and m_z, speckle
   ``x + x n`` reads ~``<m_z^2>`` times weaker on m_z.
5. **Inputs** (``"auto"``): the candidates the movie's components allow (``mean:x``; ``std:z``,
   ``latent_entropy:z``) are scored by the non-learned baseline on noisy validation films of the
   regime; the best is trained. The paper's guidance (mean m_x where in-plane contrast is strong,
   m_z measures otherwise) becomes a measurement on the user's own regime.
6. **Train** a U-Net on the regime with matched noise: every batch draws training films, an exact
   mirror (``_movie_mirrors``), a random shift on periodic films, a fresh noise draw and the measures,
   inside one jitted function (``jaxmag.learn.data.OnlineSource`` around ``pool_generator``).
   Validation and test use other films with fixed noise. A model of the same regime, inputs,
   noise and budget in the cache folder is reused.
7. **Predict** (``jaxmag.learn.predict``) and write ``probability.{npy,tif}``, ``mask.{npy,tif}``,
   ``baseline_mask.{npy,tif}``, ``overlay.png``, ``report.md`` and ``detect.json``.

The non-learned baseline (smoothed robust z-score thresholding, fitted on the validation films)
is ``jaxmag.learn.baseline``, fitted here on the regime's validation films; see ``Baseline``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.config import Config, config_hash, parse_input_spec
from jaxmag.io import outdir
from jaxmag.io.atomic import atomic_write, write_text
from jaxmag.io.movie import Movie, MovieError, movie_from_array, read_movie
from jaxmag.layout import measure_from_stored
from jaxmag.learn import baseline as robust_z_baseline
from jaxmag.learn import regime as rg

MAX_ABS = 1.5  # |values| (99.9th percentile) above this are not unit-vector components plus noise
DETECT_FILE = "detect.json"
CLEAN_BELOW = 1e-5  # a calibrated variance below this is called clean
CALIBRATION_FILMS = 4  # clean films of the regime the noise estimate is calibrated on


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much simulation and training a ``detect`` run spends (``BUDGETS``)."""

    films: int  # clean films simulated: training + validation + test
    val_films: int
    test_films: int
    epochs: int
    steps_per_epoch: int
    batch_size: int
    base_features: int
    depth: int
    learning_rate: float = 2e-3
    eval_batches: int = 2

    def model(self) -> dict:
        return {"base_features": self.base_features, "depth": self.depth, "dropout": 0.1}

    def training(self) -> dict:
        # cross-entropy + soft Dice: plain cross-entropy under-segments to "no defect" here
        return {"epochs": self.epochs, "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                "schedule": "cosine", "eval_every": 1, "recipe": "robust"}


BUDGETS = {
    "quick": Budget(films=24, val_films=4, test_films=4, epochs=20, steps_per_epoch=16, batch_size=8,
                    base_features=8, depth=2, learning_rate=3e-3),
    "standard": Budget(films=64, val_films=8, test_films=8, epochs=40, steps_per_epoch=32, batch_size=8,
                       base_features=16, depth=3, learning_rate=2e-3, eval_batches=4),
    "full": Budget(films=256, val_films=32, test_films=32, epochs=80, steps_per_epoch=64, batch_size=16,
                   base_features=32, depth=3, learning_rate=1e-3, eval_batches=8),
}
CANDIDATES = {"x": ("mean:x",), "z": ("std:z", "latent_entropy:z")}


@dataclasses.dataclass(frozen=True)
class DetectionResult:
    """What ``detect`` found and wrote.

    probability: (ny, nx) float32; mask, baseline_mask: (ny, nx) bool; inputs: (ny, nx, C) raw
    measure maps of the movie; input_names: the model's channels; config: the regime; facts:
    what the movie said (``regime.MovieFacts``); noise: the estimate and the trained condition;
    validation: Dice of the model and the baseline on the regime's simulated validation and
    test films; warnings: movie statistics outside the simulated regime; run_dir: the model's
    run folder; cached: the model was reused; files: written paths.
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


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# the non-learned baseline (jaxmag.learn.baseline) on one input map
# --------------------------------------------------------------------------------------------
def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of the defect class over all pixels of all images (1.0 when both are empty)."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    denom = p.sum() + t.sum()
    return 1.0 if denom == 0 else float(2 * (p & t).sum() / denom)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """``jaxmag.learn.baseline``'s smoothed robust z-score threshold, fitted once:
    ``|s - median(s)| / (1.4826 MAD(s)) > z`` per image, ``s`` the map smoothed with a Gaussian
    of ``sigma`` pixels (wrapped on periodic films). ``fit`` picks ``sigma`` and ``z`` on
    validation maps only (best Dice)."""

    sigma: float
    z: float
    periodic: bool

    @classmethod
    def fit(cls, maps: np.ndarray, labels: np.ndarray, periodic: bool) -> tuple["Baseline", float]:
        """``(baseline, validation Dice)`` from maps ``(N, ny, nx)`` and labels ``(N, ny, nx)``."""
        fitted = robust_z_baseline.fit(maps, labels, periodic=periodic)
        return cls(fitted.sigma, fitted.threshold, periodic), float(fitted.val_dice)

    def predict(self, maps: np.ndarray) -> np.ndarray:
        return np.asarray(robust_z_baseline.robust_z(maps, self.sigma, self.periodic)) > self.z


# --------------------------------------------------------------------------------------------
# films of the regime and the on-device batch generator
# --------------------------------------------------------------------------------------------
def simulate_films(config: Config, cache: Path | None, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Clean films of the regime: ``m (N, C, T, ny, nx)`` float32 (C = ``simulation.components``), labels ``(N, ny, nx)``.

    Cached in ``cache/films-<hash>.npz`` (hash of grid, material, defects, simulation, dataset)."""
    from jaxmag.assemble import simulate

    key = config_hash(config, "grid", "material", "defects", "simulation", "dataset")
    path = None if cache is None else cache / f"films-{key}.npz"
    if path is not None and path.is_file():
        with np.load(path) as f:
            return f["m"], f["labels"]
    data = simulate(config, progress=progress)
    m = np.ascontiguousarray(measure_from_stored(np.asarray(data.m, np.float32)))
    labels = (np.asarray(data.labels) > 0).astype(np.uint8)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            np.savez(f, m=m, labels=labels)
    return m, labels


def _movie_mirrors(components: str) -> tuple[np.ndarray, np.ndarray]:
    """Component signs of the two exact mirrors of a film magnetised along +x (no applied field).

    m is an axial vector: the mirror x -> -x maps m to (m_x, -m_y, -m_z); y -> -y maps it to
    (-m_x, m_y, -m_z), and with the global reversal m -> -m (the energy is even in m without a
    field and the thermal field is symmetric) to (m_x, -m_y, m_z): the film stays along +x.
    Returns the signs for a flip of columns (x) and of rows (y)."""
    fx = {"x": 1.0, "y": -1.0, "z": -1.0}
    fy = {"x": 1.0, "y": -1.0, "z": 1.0}
    return np.array([fx[c] for c in components]), np.array([fy[c] for c in components])


def pool_generator(
    movies: np.ndarray,
    labels: np.ndarray,
    components: str,
    inputs: Sequence[tuple[str, str]],
    noise_spec,
    measures_config,
    batch_size: int,
    *,
    periodic: bool,
    augment: bool = True,
) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
    """Jittable ``make_batch(key) -> (inputs (B, ny, nx, C), labels (B, ny, nx))`` from clean films.

    Per film of the batch: a film of the pool, a random exact mirror in x and y (``_movie_mirrors``)
    and, on periodic films, a random cyclic shift; then the noise (``jaxmag.noise.apply_noise``,
    a fresh draw per key) and the measures (``jaxmag.measures.measures_kernel`` with the regime's
    per-component options). ``movies``: ``(N, C, T, ny, nx)`` with components ``components``.
    (A pool-based sibling of ``jaxmag.learn.data.MovieSource``, which streams a dataset's movies.)"""
    from jaxmag.measures import measures_kernel
    from jaxmag.noise import apply_noise

    pool = jnp.asarray(movies, jnp.float32)
    pool_labels = jnp.asarray(labels > 0, jnp.int32)
    n, _, _, ny, nx = pool.shape
    measures = tuple(dict.fromkeys(m for m, _ in inputs))
    used = "".join(dict.fromkeys(c for _, c in inputs))
    for c in used:
        if c not in components:
            raise ValueError(f"input component {c!r} is not in the simulated components {components!r}")
    idx = [components.index(c) for c in used]
    sx, sy = (jnp.asarray(s[idx], jnp.float32)[:, None, None, None] for s in _movie_mirrors(components))
    opts = [measures_config.options(c).kwargs() for c in used]
    channel = [(m, used.index(c)) for m, c in inputs]
    B = int(batch_size)

    def one(key):
        k_pick, k_flip, k_shift = jax.random.split(key, 3)
        i = jax.random.randint(k_pick, (), 0, n)
        mv, lab = pool[i][jnp.asarray(idx)], pool_labels[i]  # (C', T, ny, nx)
        if augment:
            fx, fy = jax.random.bernoulli(k_flip, 0.5, (2,))
            mv = jnp.where(fx, jnp.flip(mv, -1) * sx, mv)
            lab = jnp.where(fx, jnp.flip(lab, -1), lab)
            mv = jnp.where(fy, jnp.flip(mv, -2) * sy, mv)
            lab = jnp.where(fy, jnp.flip(lab, -2), lab)
            if periodic:
                dy, dx = jax.random.randint(k_shift, (2,), 0, jnp.array([ny, nx]))
                mv, lab = jnp.roll(mv, (dy, dx), axis=(-2, -1)), jnp.roll(lab, (dy, dx), axis=(-2, -1))
        return mv, lab

    def make_batch(key):
        k_films, k_noise = jax.random.split(key)
        mv, lab = jax.vmap(one)(jax.random.split(k_films, B))  # (B, C', T, ny, nx)
        mv = apply_noise(mv, noise_spec, k_noise)
        per = [measures_kernel(mv[:, c], measures=measures, **o) for c, o in enumerate(opts)]
        x = jnp.stack([per[c][m] for m, c in channel], axis=-1)
        return x.astype(jnp.float32), lab

    return make_batch


class RegimeSource:
    """Training batches from the training films, validation and test sets from their own films (all ``OnlineSource``)."""

    def __init__(self, train, val, test):
        self._train, self._val, self._test = train, val, test
        self.input_names = train.input_names
        self.batch_size = train.batch_size
        self.steps_per_epoch = train.steps_per_epoch
        self.train_condition = train.train_condition
        self.norm_stats = train.norm_stats
        self.image_shape = train.image_shape
        self.indices = None

    def train_batches(self, epoch, key):
        return self._train.train_batches(epoch, key)

    def val_set(self):
        return self._val.val_set()

    def test_set(self):
        return self._test.test_set()

    def describe(self) -> dict:
        return {**self._train.describe(), "kind": "detect-regime"}


# --------------------------------------------------------------------------------------------
# noise
# --------------------------------------------------------------------------------------------
def _calibrated_variance(target: float, clean: np.ndarray, kind: str, key: jax.Array) -> float:
    """The variance ``v`` of ``kind`` noise for which the estimator reads ``target`` on ``clean`` films + noise(v).

    The estimator's reading grows monotonically with the noise but is not floor + v: the clean
    signal's residuals are heavy-tailed (edges, fast modes), so their share of the robust (MAD)
    moment changes with the noise. Bisection in log10(v) over [1e-6, 10], 14 steps (0.1 % in v);
    at most ``CALIBRATION_FILMS`` films are used."""
    from jaxmag.noise import NoiseSpec, apply_noise, estimate_noise_variance

    x = jnp.asarray(clean[:CALIBRATION_FILMS])

    def reading(v):
        return estimate_noise_variance(apply_noise(x, NoiseSpec(kind, float(v)), key), None, kind)

    lo, hi = -6.0, 1.0
    if not reading(10 ** lo) < target:
        return 0.0
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if reading(10 ** mid) < target else (lo, mid)
    return float(10 ** (0.5 * (lo + hi)))


def _condition(kind: str, variance: float) -> str:
    if not math.isfinite(variance) or variance < CLEAN_BELOW:
        return "clean"
    return f"{kind}:{float(f'{variance:.2g}'):g}"


def estimate_noise(movies: Mapping[str, Movie], films: np.ndarray, components: str, seed: int = 0) -> dict:
    """The movie's noise, calibrated on clean films of its regime.

    Per component: the estimator's raw reading on the movie (``estimate_noise_variances``), its floor
    on the clean films, and the variance that, added to the clean films, gives the movie's reading
    (``_calibrated_variance``). The kind: Gaussian noise reads alike on m_x and m_z, speckle ``x + x n``
    reads ~``<m_z^2>`` times weaker on m_z (where m_z ~ 0); a single component is taken as Gaussian.
    Returns ``per_component``, ``kind``, ``why`` and per component the ``condition`` to train with."""
    from jaxmag.noise import estimate_noise_variances

    key = jax.random.key(seed + 5)
    per = {}
    for c, mv in movies.items():
        raw = estimate_noise_variances(mv.data)
        rec = {"raw": raw}
        if c in components:
            clean = films[:, components.index(c)]
            rec["floor"] = estimate_noise_variances(clean)
            rec["gaussian"] = _calibrated_variance(raw["gaussian"], clean, "gaussian", key)
            rec["speckle"] = (_calibrated_variance(raw["speckle"], clean, "speckle", key)
                              if math.isfinite(raw["speckle"]) else math.nan)
        else:  # no simulated films of this component: floor unknown
            rec["floor"] = {"gaussian": 0.0, "speckle": 0.0}
            rec["gaussian"], rec["speckle"] = raw["gaussian"], raw["speckle"]
        per[c] = rec
    if "x" in per and "z" in per:
        gx, gz = per["x"]["gaussian"], per["z"]["gaussian"]
        if gx > CLEAN_BELOW and gz < 0.3 * gx:
            kind = "speckle"
            why = f"m_z reads {gz / gx:.2f} of m_x's Gaussian variance: speckle (x + x n is weak where m_z ~ 0)"
        else:
            kind = "gaussian"
            why = "Gaussian: the noise reads alike on m_x and m_z" + (f" (ratio z/x {gz / gx:.2f})" if gx > CLEAN_BELOW else "")
    else:
        kind = "gaussian"
        why = f"Gaussian assumed: one component (m_{next(iter(per))}) cannot tell speckle from Gaussian noise"
    if kind == "speckle":  # m_x carries the speckle signal; it applies to every component alike
        v = per["x"]["speckle"]
        conditions = {c: _condition("speckle", v) for c in per}
    else:
        conditions = {c: _condition("gaussian", per[c]["gaussian"]) for c in per}
    return {"per_component": per, "kind": kind, "why": why, "conditions": conditions}


# --------------------------------------------------------------------------------------------
# statistics of the movie vs the regime
# --------------------------------------------------------------------------------------------
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


def regime_warnings(movie_stats: dict, film_stats: Sequence[dict], margin: float = 0.1) -> list[str]:
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


# --------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------
OUTPUTS = ("probability.npy", "probability.tif", "mask.npy", "mask.tif", "baseline_mask.npy", "baseline_mask.tif",
           "overlay.png", "report.md", DETECT_FILE, "regime.toml")


def _eval_arrays(eval_set) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*eval_set.device_batches)
    return np.concatenate([np.asarray(a) for a in xs]), np.concatenate([np.asarray(a) for a in ys])


def detect(
    movie: Any,
    out: str | Path,
    *,
    component: str | None = None,
    dataset: str | None = None,
    rescale: str = "none",
    max_abs: float = MAX_ABS,
    material: str | Path = "permalloy",
    boundary: str | None = "auto",
    cell_size: float | None = None,
    frame_interval: float | None = None,
    temperature: float = 300.0,
    inputs: str = "auto",
    noise: str = "auto",
    budget: str | Budget = "quick",
    cache: str | Path | None = None,
    threshold: float = 0.5,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> DetectionResult:
    """Defect map of ``movie`` with a U-Net trained on the movie's own regime and noise (module docstring).

    Args:
        movie: an OVF folder, ``.tif``, ``.h5``, ``.npy`` path, a ``Movie``, ``{component: Movie or array}``
            or an array ``(T, ny, nx)`` (of ``component``, default z).
        out: output folder; files in it that another command or the user wrote are refused.
        component, dataset, rescale, max_abs: how to read the movie (``jaxmag.io.movie``).
        material: ``"permalloy"`` or a config file whose ``[material]`` and ``[defects]`` are used.
        boundary: ``"open"``, ``"periodic"`` or ``"auto"`` (``regime.guess_boundary``).
        cell_size, frame_interval: m and s; needed where the format does not store them.
        temperature: K.
        inputs: ``"auto"`` or one model's channels, e.g. ``"std:z"`` or ``"mean:x,std:z"``.
        noise: ``"auto"`` (estimated) or a condition (``"clean"``, ``"gaussian:3e-3"``, ``"speckle:1e-2"``).
        budget: ``"quick"``, ``"standard"``, ``"full"`` or a ``Budget``.
        cache: folder of simulated films and trained models (default ``out/cache``).
        threshold: probability of the mask.
        force: replace files in ``out`` that jaxmag did not write (``jaxmag.io.outdir``).
    """
    from jaxmag.learn.data import OnlineSource
    from jaxmag.learn.evaluation import load_trained
    from jaxmag.learn.loop import RUN_FILE, train_and_evaluate
    from jaxmag.learn.predict import measure_maps, predict_probability
    from jaxmag.noise import parse_noise_spec

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    out = Path(out)
    if not 0 < threshold < 1:
        raise ValueError(f"--threshold must be in (0, 1), got {threshold}")
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ValueError(f"--budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
        budget_name, budget = budget, BUDGETS[budget]
    else:
        budget_name = "custom"
    if budget.films < budget.val_films + budget.test_films + 2:
        raise ValueError("the budget needs at least 2 training films besides the validation and test films")
    movies, description = read_movies(movie, component=component, dataset=dataset, rescale=rescale, max_abs=max_abs)
    facts = rg.movie_facts(movies, cell_size_m=cell_size, frame_interval_s=frame_interval, boundary=boundary)
    config = rg.regime_config(facts, material=material, temperature=temperature, model=budget.model(),
                              training=budget.training(), num_runs=budget.films, seed=seed)
    requested = None if inputs == "auto" else parse_input_spec(inputs)
    if requested is not None:
        missing = sorted({c for _, c in requested} - set(movies))
        if missing:
            raise ValueError(f"--inputs {inputs} needs component(s) {', '.join(missing)}; the movie holds {', '.join(movies)}")
    if noise != "auto":
        parse_noise_spec(noise)  # fail before simulating
    outdir.claim(out, OUTPUTS, "detect", force=force)  # files of the user's, or of another command, are refused
    cache = out / "cache" if cache is None else Path(cache)
    write_text(out / "regime.toml", rg.regime_header(facts, material, description) + config.to_toml())
    times["read"] = time.perf_counter() - t0

    # clean films of the regime
    t1 = time.perf_counter()
    films, labels = simulate_films(config, cache, progress)
    components = config.simulation.components
    times["simulate"] = time.perf_counter() - t1
    n_val, n_test = budget.val_films, budget.test_films
    parts = {
        "train": slice(0, budget.films - n_val - n_test),
        "val": slice(budget.films - n_val - n_test, budget.films - n_test),
        "test": slice(budget.films - n_test, budget.films),
    }

    # noise
    estimate = estimate_noise(movies, films[parts["val"].start:], components, seed)
    periodic = config.grid.boundary == "periodic"

    def condition_for(channels) -> str:
        if noise != "auto":
            return parse_noise_spec(noise).name
        specs = [parse_noise_spec(estimate["conditions"][c]) for c in dict.fromkeys(c for _, c in channels)]
        return max(specs, key=lambda sp: sp.variance).name  # one condition per model: the strongest of its components

    def source_for(part: str, channels, spec, stats=None):
        make_batch = pool_generator(films[parts[part]], labels[parts[part]], components, channels, spec,
                                    config.measures, budget.batch_size, periodic=periodic, augment=True)
        return OnlineSource(make_batch, tuple(f"{m}:{c}" for m, c in channels), batch_size=budget.batch_size,
                            steps_per_epoch=budget.steps_per_epoch, num_val_batches=budget.eval_batches,
                            num_test_batches=budget.eval_batches, seed=seed + 17, norm_stats=stats,
                            train_condition=spec.name)

    # inputs: the baseline on the validation films decides among the candidates
    t1 = time.perf_counter()
    if requested is None:
        names = [n for c in movies for n in CANDIDATES.get(c, ())]
        if not names:
            raise ValueError(f"no input measure for component(s) {', '.join(movies)}: give x or z (or --inputs)")
    else:
        names = [",".join(f"{m}:{c}" for m, c in requested)]
    scores = {}
    if len(names) > 1:
        conditions = {c: condition_for(((None, c),)) for c in movies}
        films_key = config_hash(config, "grid", "material", "defects", "simulation", "dataset", "measures")
        sel = cache / (f"inputs-{films_key}-v{n_val}b{budget.eval_batches}x{budget.batch_size}-"
                       + "-".join(conditions[c] for c in sorted(conditions)).replace(":", "_") + ".json")
        if sel.is_file():
            scores = json.loads(sel.read_text())
        else:
            for name in names:
                first = parse_input_spec(name)[:1]
                val = source_for("val", first, parse_noise_spec(condition_for(first)),
                                 {"channels": [name], "mean": [0.0], "std": [1.0]})
                x, y = _eval_arrays(val.val_set())
                scores[name] = Baseline.fit(x[..., 0], y, periodic)[1]
            cache.mkdir(parents=True, exist_ok=True)
            write_text(sel, json.dumps(scores, indent=1) + "\n")
        chosen = max(scores, key=scores.get)
    else:
        chosen = names[0]
    channels = parse_input_spec(chosen)
    spec = parse_noise_spec(condition_for(channels))
    estimate["trained"] = spec.name
    times["inputs"] = time.perf_counter() - t1

    # the model (cached or trained) and the baseline on its first channel, fitted on the validation
    # films and scored on the test films
    t1 = time.perf_counter()
    key = config_hash(config) + "-" + chosen.replace(":", "_").replace(",", "+") + "-" + spec.name.replace(":", "_")
    run_dir = cache / f"model-{key}"
    cached = (run_dir / RUN_FILE).is_file() and (run_dir / "checkpoints" / "best").exists() and (run_dir / "eval.json").is_file()
    if not cached:
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)  # an interrupted earlier training: start over
        train_src = source_for("train", channels, spec)
        val_src = source_for("val", channels, spec, train_src.norm_stats)
        test_src = source_for("test", channels, spec, train_src.norm_stats)
        result = train_and_evaluate(config, RegimeSource(train_src, val_src, test_src), run_dir, progress=progress)
        xv, yv = _eval_arrays(val_src.val_set())
        xt, yt = _eval_arrays(test_src.test_set())
        baseline, base_val = Baseline.fit(xv[..., 0], yv, periodic)
        record = {
            "model": {"val_dice": float(result["best_val_dice"]), "test_dice": float(result["test"]["dice"]),
                      "best_epoch": int(result["best_epoch"])},
            "baseline": {"val_dice": base_val, "test_dice": dice(baseline.predict(xt[..., 0]), yt),
                         "sigma_px": baseline.sigma, "z": baseline.z},
            "test_images": int(yt.shape[0]),
        }
        write_text(run_dir / "eval.json", json.dumps(record, indent=1) + "\n")
    record = json.loads((run_dir / "eval.json").read_text())
    baseline = Baseline(float(record["baseline"]["sigma_px"]), float(record["baseline"]["z"]), periodic)
    times["train"] = time.perf_counter() - t1
    validation = {"inputs_scored_by_baseline": scores, **record, "val_films": n_val, "test_films": n_test}

    # predict
    t1 = time.perf_counter()
    model, info = load_trained(run_dir)
    raw = measure_maps({c: movies[c] for c in dict.fromkeys(c for _, c in channels)}, info)
    proba, _, _ = predict_probability(model, info, raw)
    mask = proba >= threshold
    base_mask = baseline.predict(raw[None, ..., 0])[0]

    # the movie vs the regime's films, with the trained noise
    noisy = _noisy_films(films[parts["test"]], spec, seed)
    film_stats = [movie_statistics({c: noisy[i, components.index(c)] for c in movies if c in components})
                  for i in range(noisy.shape[0])]
    stats = movie_statistics({c: m.data for c, m in movies.items()})
    warnings = regime_warnings(stats, film_stats)
    times["predict"] = time.perf_counter() - t1
    times["total"] = time.perf_counter() - t0

    result = DetectionResult(
        probability=proba, mask=mask, baseline_mask=base_mask, inputs=raw, input_names=tuple(info["inputs"]),
        config=config, facts=facts, noise=estimate, validation=validation, warnings=tuple(warnings),
        run_dir=run_dir, cached=bool(cached), files={}, seconds=times,
    )
    files = write_detection(result, out, budget_name=budget_name, movie=description, stats=stats,
                            film_stats=film_stats, threshold=threshold)
    return dataclasses.replace(result, files=files)


def _noisy_films(films: np.ndarray, spec, seed: int) -> np.ndarray:
    from jaxmag.noise import apply_noise

    return np.asarray(apply_noise(jnp.asarray(films), spec, jax.random.key(seed + 99)))


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------
def write_detection(result: DetectionResult, out: Path, *, budget_name: str, movie: str, stats: dict,
                    film_stats: Sequence[dict], threshold: float) -> dict:
    """Write the maps, the overlay, ``report.md`` and ``detect.json``; returns ``{name: path}``."""
    import tifffile

    out = Path(out)
    files = {
        "probability": out / "probability.npy",
        "mask": out / "mask.npy",
        "baseline_mask": out / "baseline_mask.npy",
        "overlay": out / "overlay.png",
        "report": out / "report.md",
        "json": out / DETECT_FILE,
        "regime": out / "regime.toml",
    }
    arrays = {"probability": result.probability.astype(np.float32), "mask": result.mask.astype(np.uint8),
              "baseline_mask": result.baseline_mask.astype(np.uint8)}
    for name, a in arrays.items():
        with atomic_write(out / f"{name}.npy", "wb") as f:
            np.save(f, a)
        with atomic_write(out / f"{name}.tif", "wb") as f:
            tifffile.imwrite(f, a)
    with atomic_write(files["overlay"], "wb") as f:
        plot_overlay(f, result)
    record = {
        "movie": movie,
        "facts": result.facts.to_dict(),
        "budget": budget_name,
        "inputs": list(result.input_names),
        "noise": result.noise,
        "validation": result.validation,
        "defect_fraction": float(result.mask.mean()),
        "baseline_defect_fraction": float(result.baseline_mask.mean()),
        "threshold": threshold,
        "statistics": {"movie": stats, "films": list(film_stats)},
        "warnings": list(result.warnings),
        "run_dir": str(result.run_dir),
        "cached": result.cached,
        "seconds": result.seconds,
    }
    write_text(files["json"], json.dumps(record, indent=1, default=float) + "\n")
    write_text(files["report"], report_markdown(result, budget_name=budget_name, movie=movie, stats=stats,
                                                film_stats=film_stats))
    return files


def plot_overlay(path, result: DetectionResult) -> None:
    """Three panels at ~8 screen pixels per cell: the input map with the U-Net's mask outlined, the
    probability, the input map with the baseline's mask outlined; colour bars on each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = result.inputs[..., 0]
    ny, nx = img.shape
    size = max(3.5, min(7.0, nx / 12))
    fig, axes = plt.subplots(1, 3, figsize=(3 * size + 1.5, size * ny / nx + 0.6), constrained_layout=True)
    lo, hi = np.percentile(img, [1, 99])
    name = result.input_names[0]
    panels = (
        (img, "gray", (lo, hi), result.mask, "tab:red", f"{name} + U-Net mask ({result.mask.mean():.1%})"),
        (result.probability, "magma", (0.0, 1.0), None, None, "defect probability"),
        (img, "gray", (lo, hi), result.baseline_mask, "tab:cyan", f"{name} + baseline mask ({result.baseline_mask.mean():.1%})"),
    )
    for ax, (data, cmap, (vmin, vmax), mask, colour, title) in zip(axes, panels):
        im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if mask is not None and mask.any() and not mask.all():
            ax.contour(mask.astype(float), levels=[0.5], colors=colour, linewidths=1.8)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.85)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def report_markdown(result: DetectionResult, *, budget_name: str, movie: str, stats: dict, film_stats: Sequence[dict]) -> str:
    f, c, n, v = result.facts, result.config, result.noise, result.validation
    o = f.origin
    lines = [
        "# jaxmag detect",
        "",
        f"Movie: `{movie}`: {f.num_frames} frames of {f.ny} x {f.nx} pixels, components {', '.join(f.components)}.",
        "",
        "## Regime (`regime.toml`)",
        "",
        "| | value | from |",
        "|---|---|---|",
        f"| grid | {f.ny} x {f.nx} cells, one layer | {o['grid']} |",
        f"| cell size | {f.cell_size_m * 1e9:.3g} nm | {o['cell_size_m']} |",
        f"| frame interval | {f.frame_interval_s * 1e12:.4g} ps, {f.num_frames} frames | {o['frame_interval_s']} |",
        f"| boundary | {f.boundary} | {o['boundary']}{': ' + f.boundary_evidence if f.boundary_evidence else ''} |",
        f"| temperature | {c.material.temperature:g} K | --temperature |",
        f"| material | Ms {c.material.Ms:g} A/m, A_ex {c.material.A_ex:g} J/m, K_u {c.material.K_u:g} J/m³, alpha {c.material.alpha:g} | --material |",
        f"| defects | {c.defects.num_a} x {c.defects.factor_a:g} and {c.defects.num_b} x {c.defects.factor_b:g} (A_ex, K_u), "
        f"{c.defects.size_min}-{c.defects.size_max} cells each | the paper's areas at this cell size |",
        f"| time step | {c.simulation.dt * 1e15:.4g} fs, burn-in {c.simulation.burn_in_s * 1e12:.4g} ps | stability at this cell size |",
        "",
        "## Noise",
        "",
        "The estimator (`jaxmag.noise.estimate_noise_variances`) reads a floor on clean films too; the "
        "calibrated σ² is the noise that, added to clean films of the regime, gives the movie's reading.",
        "",
        "| component | estimator on the movie (Gaussian / speckle) | on clean films of the regime | calibrated Gaussian σ² | calibrated speckle σ² |",
        "|---|---|---|---|---|",
    ]
    for comp, p in n["per_component"].items():
        lines.append(f"| m_{comp} | {p['raw']['gaussian']:.3g} / {p['raw']['speckle']:.3g} | "
                     f"{p['floor']['gaussian']:.3g} / {p['floor']['speckle']:.3g} | {p['gaussian']:.3g} | {p['speckle']:.3g} |")
    lines += [
        "",
        f"Kind: {n['why']}. Model trained at `{n['trained']}`.",
        "",
        f"## Model ({budget_name} budget{', cached' if result.cached else ''})",
        "",
        f"Inputs: `{', '.join(result.input_names)}`. Baseline validation Dice of each candidate: "
        + ", ".join(f"`{k}` {s:.3f}" for k, s in v["inputs_scored_by_baseline"].items()) + ".",
        "",
        f"Dice on simulated films of this regime at `{n['trained']}` (validation: {v['val_films']} films, "
        f"test: {v['test_films']} other films, {v['test_images']} noisy mirrored images):",
        "",
        "| | validation Dice | test Dice |",
        "|---|---|---|",
        f"| U-Net | {v['model']['val_dice']:.3f} | {v['model']['test_dice']:.3f} |",
        f"| baseline (robust z > {v['baseline']['z']:g}, smoothing {v['baseline']['sigma_px']:g} px) | "
        f"{v['baseline']['val_dice']:.3f} | {v['baseline']['test_dice']:.3f} |",
        "",
    ]
    if v["model"]["test_dice"] <= v["baseline"]["test_dice"]:
        lines += ["The U-Net does **not** beat the baseline on this regime: trust `baseline_mask` as much, or "
                  "rerun with a larger `--budget`.", ""]
    lines += [
        "## This movie",
        "",
        f"Defect fraction: U-Net {result.mask.mean():.3f}, baseline {result.baseline_mask.mean():.3f}. "
        "Files: `probability.npy/.tif`, `mask.npy/.tif`, `baseline_mask.npy/.tif`, `overlay.png`.",
        "",
        "![overlay](overlay.png)",
        "",
        "| statistic | movie | simulated films (noisy) |",
        "|---|---|---|",
    ]
    for name, value in stats.items():
        vals = [s[name] for s in film_stats]
        lines.append(f"| {name} | {value:.4g} | {min(vals):.4g} to {max(vals):.4g} |")
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in result.warnings] or ["None: the movie's statistics lie within the simulated regime's."]
    s = result.seconds
    lines += ["", f"Wall time: {s.get('total', 0):.0f} s (simulate {s.get('simulate', 0):.0f} s, choose inputs "
              f"{s.get('inputs', 0):.0f} s, train {s.get('train', 0):.0f} s{' (cached model)' if result.cached else ''}, "
              f"predict {s.get('predict', 0):.0f} s).", ""]
    return "\n".join(lines)
