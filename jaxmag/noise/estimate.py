"""Reading a noise level from the defect-free background of a movie.

``estimate_noise_variance(movie, mask, kind)`` hands the background residuals of the movie to
the kind's ``NoiseEstimator`` (``jaxmag.noise.models``) and refuses, by name, a kind that has
none; ``estimate_noise_variances`` reads every kind that has one, from one pass over the
residuals. The estimator and its assumptions: ``estimate_noise_variance`` and
``docs/measures.md``.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.noise.models import NOISE_MODELS, Moments, NoiseEstimateUndefined, NoiseEstimator, noise_model


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


def _checked(movie: Any, background_mask: Any) -> tuple[jax.Array, jax.Array]:
    """The movie (float32 unless float64) and the (ny, nx) bool mask, checked at the boundary."""
    from jaxmag.measures import check_movie  # the same boundary checks as the measures

    y = check_movie(movie)
    if y.dtype != jnp.float64:
        y = y.astype(jnp.float32)
    ny, nx = y.shape[-2:]
    if ny < 3 or nx < 3:
        raise ValueError(f"movie frames must be at least 3 x 3 pixels, got {ny} x {nx}")
    if background_mask is None:
        return y, jnp.ones((ny, nx), bool)
    mask = jnp.asarray(np.asarray(background_mask)).astype(bool)
    if mask.shape != (ny, nx):
        raise ValueError(f"background_mask must have shape (ny, nx) = {(ny, nx)}, got {tuple(mask.shape)}")
    return y, mask


def _lag_moments(y: jax.Array, mask: jax.Array, estimators: Sequence[NoiseEstimator]) -> list[list[Moments]]:
    """Per lag k = 1, 2, each estimator's moments of the background residuals (computed once per
    distinct moment function; one lag's residuals are held at a time)."""
    out = []
    for lag in (1, 2):
        r, q, w = (np.asarray(a) for a in _mixed_differences(y, mask, lag))
        r, q = r[w].astype(np.float64), q[w].astype(np.float64)
        if r.size == 0:
            raise ValueError(f"background_mask leaves no pair of background pixels {lag} apart to estimate the noise from")
        cache: dict = {}
        for e in estimators:
            if e.moments not in cache:
                cache[e.moments] = e.moments(r, q)
        out.append([cache[e.moments] for e in estimators])
    return out


def estimate_noise_variance(movie: Any, background_mask: Any = None, kind: str = "gaussian") -> float:
    """Estimate the level (sigma^2 for Gaussian and speckle noise) of ``kind`` from the background of a movie.

    ``movie``: (..., T, ny, nx), T >= 2, ny, nx >= 3 (leading axes are pooled).
    ``background_mask``: (ny, nx) bool, True on defect-free pixels; None uses the whole frame.
    Returns the level >= 0 (Gaussian: in squared movie units; speckle: dimensionless). A kind
    that is not registered, or has no estimator, raises ``ValueError`` naming it.

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
    estimator = noise_model(kind).require_estimator()
    y, mask = _checked(movie, background_mask)
    (lag1,), (lag2,) = _lag_moments(y, mask, [estimator])
    return estimator.level(lag1, lag2)


def estimate_noise_variances(movie: Any, background_mask: Any = None) -> dict[str, float]:
    """``{kind: level}`` for every registered kind with an estimator (``{"gaussian": sigma^2,
    "speckle": sigma^2}`` today): the estimate under each hypothesis, in registry order.

    A hypothesis the data contradict (``NoiseEstimateUndefined``, e.g. speckle residuals larger
    than the signal) gives NaN.
    """
    kinds = [k for k, m in NOISE_MODELS.items() if m.estimator is not None]
    estimators = [NOISE_MODELS[k].estimator for k in kinds]
    y, mask = _checked(movie, background_mask)
    lag1, lag2 = _lag_moments(y, mask, estimators)
    out = {}
    for kind, estimator, m1, m2 in zip(kinds, estimators, lag1, lag2):
        try:
            out[kind] = estimator.level(m1, m2)
        except NoiseEstimateUndefined:
            out[kind] = math.nan
    return out
