"""Measurement-noise models, noise conditions and a background noise-level estimator.

Noise models (applied to every frame independently, before measures are computed):
  - Gaussian (additive):       y = x + n,
  - speckle (multiplicative):  y = x + x n,
with n ~ N(0, sigma^2) i.i.d. over every array element; ``variance`` is sigma^2 (dimensionless
for speckle, in the squared units of x for Gaussian noise). The draws are a pure function of the
key: same key, same noise, whatever the batch or device.

The models live in one registry, ``NOISE_MODELS`` (kind -> ``noisy(x, variance, draws)``, a
formula in standard-normal draws); adding a kind is one function and one line there, and every
path (measures file, online generator, fine-tuning, the movie source's pooled training draws)
picks it up through ``apply_noise`` (keyed draws) or ``apply_noise_draws`` (given draws).

A noise *condition* is a ``NoiseSpec``; its ``name`` (``"clean"``, ``"gaussian_1e-2"``,
``"speckle_2.5e-1"``) names HDF5 groups. One keying rule for every path: the noise of run ``r``,
component ``c`` (``"x"``, ``"y"``, ``"z"``) under a condition is drawn with

    key = fold_in(fold_in(fold_in(key(seed), hash(condition name)), r), ord(c))

(``noise_key`` then ``component_keys``), so a run's noise does not depend on how runs are
chunked, which other conditions or components are computed, or whether it was drawn offline
(``jaxmag measures``) or on device (``jaxmag.learn.online``); ``add_measurement_noise`` applies it.

``estimate_noise_variance`` recovers sigma^2 from the defect-free background of a noisy movie;
its estimator and assumptions are documented on the function and in ``docs/measures.md``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import re
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.params import require

_ACCEPTED = "'clean', 'gaussian:VARIANCE' or 'speckle:VARIANCE' (VARIANCE a positive number, e.g. gaussian:1e-2)"
_MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): MAD of a normal sample -> its std


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """One noise condition: ``kind`` in ("clean", "gaussian", "speckle") and ``variance`` sigma^2."""

    kind: Literal["clean", "gaussian", "speckle"]
    variance: float = 0.0

    def __post_init__(self) -> None:
        if self.kind == "clean":
            if self.variance != 0:
                raise ValueError(f"a clean condition has variance 0, got {self.variance!r}")
        elif self.kind not in NOISE_MODELS:
            raise ValueError(f"unknown noise kind {self.kind!r}: accepted forms are {_ACCEPTED}")
        elif not (math.isfinite(self.variance) and self.variance > 0):
            raise ValueError(f"noise variance must be a positive finite number, got {self.variance!r}")

    @property
    def name(self) -> str:
        """Condition name used for HDF5 groups, e.g. ``"gaussian_1e-2"``; ``"clean"`` without noise."""
        return "clean" if self.kind == "clean" else condition_name(self.kind, self.variance)


CLEAN = NoiseSpec("clean")


def format_variance(variance: float) -> str:
    """Canonical short form of a variance: 0.01 -> ``"1e-2"``, 0.25 -> ``"2.5e-1"``, 1.0 -> ``"1e0"``."""
    mantissa, exponent = f"{float(variance):.12e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def condition_name(kind: str, variance: float) -> str:
    """``condition_name("gaussian", 1e-2) == "gaussian_1e-2"``."""
    return f"{kind}_{format_variance(variance)}"


@dataclasses.dataclass(frozen=True)
class NoiseSweep:
    """The noise conditions of a job (the ``[noise]`` section): every kind in ``types`` at every
    variance in ``variances``; ``seed`` keys the measurement noise (module docstring)."""

    types: tuple[str, ...] = ("gaussian", "speckle")
    variances: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    seed: int = 1

    def __post_init__(self) -> None:
        for t in self.types:
            require(t in NOISE_MODELS, "types", f"entries must be one of {', '.join(map(repr, NOISE_MODELS))}, got {t!r}")
        require(all(v > 0 for v in self.variances), "variances", "must be positive")

    def specs(self) -> tuple[NoiseSpec, ...]:
        """Every (type, variance) condition, types outer: gaussian_1e-4, ..., speckle_1e0."""
        return tuple(NoiseSpec(kind, float(v)) for kind in self.types for v in self.variances)  # type: ignore[arg-type]


def parse_noise_spec(text: str) -> NoiseSpec:
    """Parse ``"clean"``, ``"gaussian:1e-2"`` or ``"speckle:0.1"`` (the condition names
    ``"gaussian_1e-2"`` are accepted too). Raises ``ValueError`` naming the accepted forms."""
    text = text.strip()
    if text == "clean":
        return CLEAN
    match = re.match(r"^(%s)[:_](.+)$" % "|".join(map(re.escape, NOISE_MODELS)), text)
    if match is None:
        raise ValueError(f"invalid noise spec {text!r}: accepted forms are {_ACCEPTED}")
    try:
        variance = float(match.group(2))
    except ValueError:
        raise ValueError(f"invalid noise spec {text!r}: accepted forms are {_ACCEPTED}") from None
    if not (math.isfinite(variance) and variance > 0):
        raise ValueError(f"invalid noise spec {text!r}: the variance must be positive and finite; "
                         f"accepted forms are {_ACCEPTED}")
    return NoiseSpec(match.group(1), variance)  # type: ignore[arg-type]


def noise_specs_from_config(sweep: NoiseSweep) -> tuple[NoiseSpec, ...]:
    """``sweep.specs()``: every (type, variance) condition of a ``[noise]`` section, types outer."""
    return sweep.specs()


# --------------------------------------------------------------------------------------------
# Drawing noise
# --------------------------------------------------------------------------------------------
def gaussian_from_draws(x: jax.Array, variance: Any, draws: jax.Array) -> jax.Array:
    """Additive noise ``x + sigma n`` from standard-normal ``draws`` n (shape of x)."""
    return x + jnp.sqrt(jnp.asarray(variance, draws.dtype)) * draws


def speckle_from_draws(x: jax.Array, variance: Any, draws: jax.Array) -> jax.Array:
    """Multiplicative noise ``x + x sigma n`` from standard-normal ``draws`` n (shape of x)."""
    return x + x * (jnp.sqrt(jnp.asarray(variance, draws.dtype)) * draws)


NOISE_MODELS: dict[str, Callable[[jax.Array, Any, jax.Array], jax.Array]] = {
    "gaussian": gaussian_from_draws,
    "speckle": speckle_from_draws,
}
"""kind -> ``noisy(x, variance, standard_normal_draws)``: each model is a formula in n ~ N(0, 1)."""
NOISE_KINDS = tuple(NOISE_MODELS)


def _standard_normal(key: jax.Array, x: jax.Array) -> jax.Array:
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    return jax.random.normal(key, x.shape, dtype)


def add_gaussian(x: jax.Array, variance: Any, key: jax.Array) -> jax.Array:
    """Additive noise ``x + n``, n ~ N(0, variance) per element; same shape and float dtype as x."""
    return gaussian_from_draws(x, variance, _standard_normal(key, x))


def add_speckle(x: jax.Array, variance: Any, key: jax.Array) -> jax.Array:
    """Multiplicative noise ``x + x n``, n ~ N(0, variance) per element; same shape and float dtype as x."""
    return speckle_from_draws(x, variance, _standard_normal(key, x))


def apply_noise(x: jax.Array, spec: NoiseSpec, key: jax.Array, variance: Any = None) -> jax.Array:
    """Apply one condition (clean returns ``x`` unchanged). ``variance`` (default
    ``spec.variance``) may be a traced value, so conditions of one kind share a compiled kernel."""
    return apply_noise_draws(x, spec, None if spec.kind == "clean" else _standard_normal(key, x), variance)


def apply_noise_draws(x: jax.Array, spec: NoiseSpec, draws: jax.Array | None, variance: Any = None) -> jax.Array:
    """``apply_noise`` with the standard-normal draws given (shape of ``x``) instead of a key."""
    if spec.kind == "clean":
        return x
    return NOISE_MODELS[spec.kind](x, spec.variance if variance is None else variance, draws)


def condition_hash(condition: str | NoiseSpec) -> int:
    """Stable 31-bit hash of a condition name (Python's ``hash`` is salted per process)."""
    name = condition.name if isinstance(condition, NoiseSpec) else str(condition)
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") & 0x7FFFFFFF


def condition_keys(seed: Any, cond_hash: Any, run_index: Any) -> jax.Array:
    """``noise_key`` with the condition already hashed; traceable in all arguments."""
    base = jax.random.fold_in(jax.random.key(seed), cond_hash)
    index = jnp.asarray(run_index, jnp.uint32)
    if index.ndim == 0:
        return jax.random.fold_in(base, index)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(index.ravel()).reshape(index.shape)


def noise_key(seed: int, run_index: Any, condition: str | NoiseSpec) -> jax.Array:
    """Key for the noise of one run under one condition: ``fold_in(fold_in(key(seed), hash(name)), run)``.

    ``run_index`` may be an integer array (then a batch of keys, vectorised); the result does not
    depend on chunking because each run's key depends on its own index only.
    """
    return condition_keys(seed, condition_hash(condition), run_index)


def component_keys(run_keys: jax.Array, components: str) -> jax.Array:
    """``(n,)`` run keys -> ``(n, C)`` keys, the component letter folded in (``ord("x")`` ...).

    Folding the letter, not the position, keeps z's noise the same whether or not x is stored.
    """
    letters = jnp.array([ord(c) for c in components], jnp.uint32)
    return jax.vmap(lambda k: jax.vmap(lambda c: jax.random.fold_in(k, c))(letters))(run_keys)


def add_measurement_noise(movies: jax.Array, spec: NoiseSpec, seed: Any, run_index: jax.Array, components: str,
                          *, cond_hash: Any = None, variance: Any = None) -> jax.Array:
    """Measurement noise of ``spec`` on ``movies (n, C, T, ny, nx)``, keyed per (run, component).

    ``run_index``: ``(n,)`` integer run indices; ``components``: the C letters. ``seed``,
    ``run_index``, ``cond_hash`` (default ``condition_hash(spec)``) and ``variance`` (default
    ``spec.variance``) may be traced; the kind is static. This is the one keying rule of the
    module docstring, used by the measures file and the online generator alike.
    """
    if spec.kind == "clean":
        return movies
    cond_hash = condition_hash(spec) if cond_hash is None else cond_hash
    keys = component_keys(condition_keys(seed, cond_hash, run_index), components)  # (n, C)
    add = lambda x, k: apply_noise(x, spec, k, variance)  # noqa: E731
    return jax.vmap(jax.vmap(add))(movies, keys)


# --------------------------------------------------------------------------------------------
# Estimating the noise level
# --------------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnums=2)
def _mixed_differences(y: jax.Array, mask: jax.Array, lag: int):
    """Space-time mixed differences of ``y`` (..., T, ny, nx) at spatial lag ``lag`` (pixels).

    Returns, flattened over both in-plane directions: r = Δ_t (y_p - y_q), q = the sum of y^2
    at the four corners (p, q at t and t+1), and w = True where p and q are both background.
    """
    dt = y[..., 1:, :, :] - y[..., :-1, :, :]
    sq = y * y
    sq_t = sq[..., 1:, :, :] + sq[..., :-1, :, :]
    k = lag
    r_x, q_x = dt[..., :, k:] - dt[..., :, :-k], sq_t[..., :, k:] + sq_t[..., :, :-k]
    r_y, q_y = dt[..., k:, :] - dt[..., :-k, :], sq_t[..., k:, :] + sq_t[..., :-k, :]
    w_x = jnp.broadcast_to(mask[:, k:] & mask[:, :-k], r_x.shape)
    w_y = jnp.broadcast_to(mask[k:, :] & mask[:-k, :], r_y.shape)
    flat = lambda *a: jnp.concatenate([v.ravel() for v in a])
    return flat(r_x, r_y), flat(q_x, q_y), flat(w_x, w_y)


def _residual_moments(y: jax.Array, mask: jax.Array, lag: int, kind: str) -> tuple[float, float]:
    """(second moment of r, mean of q) over background pairs; robust (MAD) moment for Gaussian."""
    r, q, w = (np.asarray(a) for a in _mixed_differences(y, mask, lag))
    r, q = r[w].astype(np.float64), q[w].astype(np.float64)
    if r.size == 0:
        raise ValueError(f"background_mask leaves no pair of background pixels {lag} apart to estimate the noise from")
    if kind == "gaussian":
        return float((_MAD_TO_SIGMA * np.median(np.abs(r - np.median(r)))) ** 2), float(np.mean(q))
    return float(np.mean(r * r)), float(np.mean(q))


def estimate_noise_variance(
    movie: Any,
    background_mask: Any = None,
    kind: Literal["gaussian", "speckle"] = "gaussian",
) -> float:
    """Estimate sigma^2 of Gaussian or speckle noise from the background of a movie.

    ``movie``: (..., T, ny, nx), T >= 2, ny, nx >= 3 (leading axes are pooled).
    ``background_mask``: (ny, nx) bool, True on defect-free pixels; None uses the whole frame.
    Returns sigma^2 >= 0 (Gaussian: in squared movie units; speckle: dimensionless).

    Estimator (docs/measures.md): the space-time mixed difference
    r_k = (y[t+1, p] - y[t, p]) - (y[t+1, p+k] - y[t, p+k]) over background pixel pairs k = 1, 2
    apart, horizontally and vertically. White noise enters every r_k with the same weight
    (Gaussian: Var = 4 sigma^2), while the signal enters only through V(k), its temporal
    increments' variation between pixels k apart: zero for a static pattern, small for
    fluctuations shared by neighbours (exchange coupling). Since V(2) <= 4 V(1) for any
    stationary signal, the extrapolation (4 M_1 - M_2) / 3 of the lag-k moments M_k removes V
    exactly when V grows quadratically in k (smooth signals) and never adds bias otherwise:
      - Gaussian: M_k = (1.4826 MAD(r_k))^2, robust to sparse outliers (unmasked defects, a passing
        wall); sigma^2 = (4 M_1 - M_2) / 12.
      - speckle: E[r_k^2] = sigma^2 X_k + V(k) and E[q_k] = (1 + sigma^2) X_k, where q_k sums y^2 over
        the four corners and X_k that of x^2; with a = (4 R_1 - R_2) / (4 Q_1 - Q_2) (moments, since
        speckle residuals are heteroscedastic) sigma^2 = a / (1 - a).
    Assumptions: noise independent across pixels and frames; the signal is smooth in time or in
    space on the pixel scale. Signal that is rough in both adds a floor: run the estimator on a
    clean movie to measure it.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be 'gaussian' or 'speckle', got {kind!r}")
    from jaxmag.measures import check_movie  # the same boundary checks as the measures

    y = check_movie(movie)
    if y.dtype != jnp.float64:
        y = y.astype(jnp.float32)
    ny, nx = y.shape[-2:]
    if ny < 3 or nx < 3:
        raise ValueError(f"movie frames must be at least 3 x 3 pixels, got {ny} x {nx}")
    if background_mask is None:
        mask = jnp.ones((ny, nx), bool)
    else:
        mask = jnp.asarray(np.asarray(background_mask)).astype(bool)
        if mask.shape != (ny, nx):
            raise ValueError(f"background_mask must have shape (ny, nx) = {(ny, nx)}, got {tuple(mask.shape)}")
    (m1, q1), (m2, q2) = (_residual_moments(y, mask, k, kind) for k in (1, 2))
    if kind == "gaussian":
        return max(0.0, (4 * m1 - m2) / 12.0)
    a = (4 * m1 - m2) / (4 * q1 - q2)
    if not a < 1:
        raise ValueError("speckle estimate undefined: the background residuals exceed the signal level "
                         "(is this Gaussian noise on a signal near zero?)")
    return max(0.0, a / (1 - a))


def estimate_noise_variances(movie: Any, background_mask: Any = None) -> dict[str, float]:
    """``{"gaussian": sigma^2, "speckle": sigma^2}``: the estimate under each hypothesis.

    A hypothesis the data contradict (speckle residuals larger than the signal) gives NaN.
    """
    out = {"gaussian": estimate_noise_variance(movie, background_mask, "gaussian")}
    try:
        out["speckle"] = estimate_noise_variance(movie, background_mask, "speckle")
    except ValueError as exc:
        if "speckle estimate undefined" not in str(exc):
            raise
        out["speckle"] = math.nan
    return out
