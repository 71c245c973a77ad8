"""The noise kinds: one ``NoiseModel`` record each, registered in ``NOISE_MODELS``.

A record carries everything about its kind, so nothing elsewhere lists the kinds again:

* ``from_draws(x, level, n)``: the formula in standard-normal draws n ~ N(0, 1) of the shape of
  x (``formula`` writes it for people, e.g. ``"x + x n"`` with n of the kind's level); every path (measures file, online generator, fine-tuning, pooled training draws) applies
  noise through it (``jaxmag.noise.draw``), so a kind is drawn the same way everywhere;
* its parameter: ``level_name`` (the CLI form ``KIND:LEVEL`` names it, e.g. ``gaussian:VARIANCE``),
  ``level_symbol`` and ``level_unit`` (for reports), and the open interval ``level_range`` of
  accepted values;
* ``estimator``: how ``jaxmag.noise.estimate`` reads the level from a movie's background residuals
  (``NoiseEstimator``), or None, in which case estimating that kind raises a ``ValueError``
  naming it;
* ``signal_dependent``: whether the noise amplitude follows the signal (speckle ``x + x n`` is
  weak where x ~ 0); ``jaxmag.learn.noise_match`` tells kinds apart by it.

Adding a kind is a formula, an estimator (or None) and one ``NoiseModel`` line in
``NOISE_MODELS``; ``tests/test_noise.py`` registers a toy kind to prove it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

_MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): MAD of a normal sample -> its std

Moments = tuple[float, ...]
"""What an estimator keeps of the background residuals at one spatial lag (``NoiseEstimator``)."""


class NoiseEstimateUndefined(ValueError):
    """The data contradict a kind's hypothesis (e.g. speckle residuals larger than the signal)."""


@dataclasses.dataclass(frozen=True)
class NoiseEstimator:
    """How a kind's level is read from a movie (``jaxmag.noise.estimate``).

    ``moments(r, q)``: the statistics kept at one spatial lag k of the float64 space-time mixed
    differences ``r`` over background pixel pairs and the sums ``q`` of y² at their four corners;
    ``level(lag1, lag2)``: the level from the moments at lags 1 and 2 (it may raise
    ``NoiseEstimateUndefined``). ``bracket``: the levels of the weakest and the strongest noise
    worth telling apart (``jaxmag.learn.noise_match`` calibrates between them, log-spaced; a
    descending pair means the noise weakens as the level grows, as for a photon count);
    ``negligible``: a level this weak or weaker is called clean.
    """

    moments: Callable[[np.ndarray, np.ndarray], Moments]
    level: Callable[[Moments, Moments], float]
    bracket: tuple[float, float] = (1e-6, 10.0)
    negligible: float = 1e-5

    @property
    def grows_with_level(self) -> bool:
        """True when a larger level means stronger noise (a variance)."""
        return self.bracket[0] < self.bracket[1]

    def is_negligible(self, level: float) -> bool:
        """A NaN, or a level at least as weak as ``negligible``, reads as clean."""
        if not math.isfinite(level):
            return True
        return level < self.negligible if self.grows_with_level else level > self.negligible


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """One noise kind (module docstring)."""

    name: str
    from_draws: Callable[[jax.Array, Any, jax.Array], jax.Array]
    formula: str
    level_name: str = "variance"
    level_symbol: str = "σ²"
    level_unit: str = ""
    level_range: tuple[float, float] = (0.0, math.inf)  # open interval
    estimator: NoiseEstimator | None = None
    signal_dependent: bool = False

    def accepts(self, level: float) -> bool:
        lo, hi = self.level_range
        return math.isfinite(level) and lo < level < hi

    def range_text(self) -> str:
        """``"a positive number"`` for (0, inf); ``"a number in (lo, hi)"`` otherwise."""
        lo, hi = self.level_range
        if lo == 0 and hi == math.inf:
            return "a positive number"
        return f"a number in ({lo:g}, {hi:g})"

    def require_estimator(self) -> NoiseEstimator:
        """The estimator, or a ``ValueError`` naming the kind that has none."""
        if self.estimator is None:
            raise ValueError(f"noise kind {self.name!r} has no estimator: its level cannot be read from a movie")
        return self.estimator


# --------------------------------------------------------------------------------------------
# residual moments shared by the estimators
# --------------------------------------------------------------------------------------------
def robust_moments(r: np.ndarray, q: np.ndarray) -> Moments:
    """((1.4826 MAD(r))², mean q): a second moment robust to sparse outliers (an unmasked defect,
    a passing wall)."""
    return float((_MAD_TO_SIGMA * np.median(np.abs(r - np.median(r)))) ** 2), float(np.mean(q))


def mean_square_moments(r: np.ndarray, q: np.ndarray) -> Moments:
    """(mean r², mean q): plain moments, for heteroscedastic residuals."""
    return float(np.mean(r * r)), float(np.mean(q))


# --------------------------------------------------------------------------------------------
# Gaussian (additive): y = x + sigma n
# --------------------------------------------------------------------------------------------
def gaussian_from_draws(x: jax.Array, variance: Any, draws: jax.Array) -> jax.Array:
    """Additive noise ``x + sigma n`` from standard-normal ``draws`` n (shape of x)."""
    return x + jnp.sqrt(jnp.asarray(variance, draws.dtype)) * draws


def gaussian_level(lag1: Moments, lag2: Moments) -> float:
    """White noise enters r_k with variance 4 sigma²: sigma² = (4 M_1 - M_2) / 12."""
    return max(0.0, (4 * lag1[0] - lag2[0]) / 12.0)


# --------------------------------------------------------------------------------------------
# speckle (multiplicative): y = x + x sigma n
# --------------------------------------------------------------------------------------------
def speckle_from_draws(x: jax.Array, variance: Any, draws: jax.Array) -> jax.Array:
    """Multiplicative noise ``x + x sigma n`` from standard-normal ``draws`` n (shape of x)."""
    return x + x * (jnp.sqrt(jnp.asarray(variance, draws.dtype)) * draws)


def speckle_level(lag1: Moments, lag2: Moments) -> float:
    """E[r_k²] = sigma² X_k + V(k) and E[q_k] = (1 + sigma²) X_k: with a = (4 R_1 - R_2) / (4 Q_1 - Q_2),
    sigma² = a / (1 - a)."""
    (m1, q1), (m2, q2) = lag1, lag2
    a = (4 * m1 - m2) / (4 * q1 - q2)
    if not a < 1:
        raise NoiseEstimateUndefined("speckle estimate undefined: the background residuals exceed the signal level "
                                     "(is this Gaussian noise on a signal near zero?)")
    return max(0.0, a / (1 - a))


# --------------------------------------------------------------------------------------------
# shot (photon counting): y = x + sqrt((1 + x) / N) n
# --------------------------------------------------------------------------------------------
def shot_from_draws(x: jax.Array, photons: Any, draws: jax.Array) -> jax.Array:
    """Photon shot noise of a full-contrast detector in units of x: the intensity is N (1 + x) photons
    per pixel and frame (N at x = 0), read back as x; Poisson's variance N (1 + x) becomes
    (1 + x) / N, drawn as its normal limit (exact to the skewness 1 / sqrt(N (1 + x)), below 0.03
    for N (1 + x) > 1000). For a detector of contrast c < 1 the same noise is N c² photons' worth;
    ``[instrument]`` (``jaxmag.instrument``) records the exact Poisson–Gaussian counts."""
    n = jnp.asarray(photons, draws.dtype)
    return x + jnp.sqrt(jnp.maximum(1.0 + x, 0.0) / n) * draws


NOISE_MODELS: dict[str, NoiseModel] = {
    m.name: m
    for m in (
        NoiseModel("gaussian", gaussian_from_draws, "x + n", level_unit="squared units of x",
                   estimator=NoiseEstimator(robust_moments, gaussian_level)),
        NoiseModel("speckle", speckle_from_draws, "x + x n", level_unit="dimensionless",
                   estimator=NoiseEstimator(mean_square_moments, speckle_level), signal_dependent=True),
        # a level of its own kind, photons (the noise weakens as it grows); read from a counts movie
        # by jaxmag.detector and jaxmag.learn.counts, not from a magnetisation movie's residuals
        NoiseModel("shot", shot_from_draws, "x + sqrt((1 + x) / N) n", level_name="photons", level_symbol="N",
                   level_unit="photons per pixel and frame at x = 0 (full contrast)", signal_dependent=True),
    )
}
"""kind -> ``NoiseModel``; the order is the order kinds are listed in (CLI forms, estimates)."""


def noise_model(kind: str) -> NoiseModel:
    """The registered model of ``kind``; a ``ValueError`` naming the registered kinds otherwise."""
    try:
        return NOISE_MODELS[kind]
    except KeyError:
        raise ValueError(f"unknown noise kind {kind!r}: registered kinds are {', '.join(map(repr, NOISE_MODELS))}") from None
