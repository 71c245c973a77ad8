"""Summary statistics of a magnetisation movie that identify the film's material and ignore white noise.

Contract
--------
Pure ``jax.numpy`` functions of a movie ``m`` of shape (F, ny, nx, C) or (B, F, ny, nx, C)
(frames, rows, columns, components m_x, m_z, ... as unit-vector components, dimensionless),
differentiable, so that ``jaxmag.fit`` can take their Jacobian through the solver.

Every fluctuation statistic is a covariance between two *different* pixels: with
δ = m − (per-pixel temporal mean),

    cov(τ, d) = ⟨ δ_c(r, t) · δ_c(r + d·e, t + τ) ⟩,    e ∈ {x̂, ŷ} (both averaged),

averaged over frames t, pixels r and both directions. Independent per-pixel measurement noise
(additive Gaussian or multiplicative speckle, ``jaxmag.noise``) has zero mean and no correlation
between two pixels, so it adds nothing to the expectation of any cov(τ, d) with d ≥ 1 — unlike a
pixel's own variance or lag-τ autocovariance, which the noise (and the temporal-mean subtraction,
by −σ²/F) biases. The temporal mean ⟨m_c⟩ (the tilt with respect to the easy axis) is unbiased by
zero-mean noise too, and so is the autocovariance at frame lags τ ≥ 1 of the region-mean time
series m̄_c(t) (``mean_mode_covariances``; in a periodic film the uniform mode).

What each one reads (docs/fit.md): cov(0, d) against d is the spatial correlation of the
fluctuations, whose length is √(A_ex / K_eff) (exchange); the far-distance covariance and ⟨m_x⟩
(m_x = √(1 − m_y² − m_z²)) carry the long-wavelength, anisotropy-bound modes (K_u); cov(τ, 1)
against τ is their decay and precession in time, ∝ 1/(α γ B_eff) (damping); the region-mean
autocovariance at lags of 5-40 frames is the uniform mode's precession, ω ≈ γ √(B_K μ0 Ms), and
decay, ≈ α γ μ0 Ms / 2 (K_u and α).

``offsets`` are (τ frames, d pixels) pairs; ``DEFAULT_OFFSETS`` is what the fit uses. ``weights``
(ny, nx) (or (R, ny, nx) for R regions) select the pixels: a pair (r, r + d e) counts with
weight w(r)·w(r + d e), so a pair counts only when both pixels lie in the region. With
``periodic`` the pairs wrap around the edges (a periodic film), else they stop at the edges.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

# (frame lag τ, pixel distance d): the spatial correlation at lag 0 (exchange and the
# long-wavelength anisotropy modes), and its decay over 1-4 frames at neighbouring pixels (damping).
DEFAULT_OFFSETS: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 4), (0, 8), (1, 1), (2, 1), (4, 1))


def check_movie(m: jax.Array, offsets: Sequence[tuple[int, int]] = DEFAULT_OFFSETS, mean_lags: Sequence[int] = ()) -> None:
    """Raise ``ValueError`` when ``m`` cannot give the statistics (shape, size, non-finite values)."""
    if m.ndim not in (4, 5):
        raise ValueError(f"a movie must have shape (F, ny, nx, C) or (B, F, ny, nx, C), got {tuple(m.shape)}")
    F, ny, nx = m.shape[-4:-1]
    tau = max([t for t, _ in offsets] + list(mean_lags))
    d = max(dd for _, dd in offsets)
    if F < tau + 2:
        raise ValueError(f"the movie has {F} frames; its statistics need at least {tau + 2} (frame lags up to {tau})")
    if min(ny, nx) <= d:
        raise ValueError(f"frames of {ny} x {nx} pixels are too small for pixel distances up to {d}")
    if not isinstance(m, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(m))):
        raise ValueError("the movie contains NaN or inf values")


def statistic_names(components: str, offsets: Sequence[tuple[int, int]] = DEFAULT_OFFSETS,
                    mean_lags: Sequence[int] = ()) -> list[str]:
    """The names of ``film_statistics``' entries, in order: ``mean m_x``, ``cov m_z lag 1 dist 1``,
    ``mean-mode cov m_x lag 10`` ..."""
    names = []
    for c in components:
        names.append(f"mean m_{c}")
        names += [f"cov m_{c} lag {t} dist {d}" for t, d in offsets]
        names += [f"mean-mode cov m_{c} lag {t}" for t in mean_lags]
    return names


def default_mean_lags(num_frames: int) -> tuple[int, ...]:
    """Frame lags of the region-mean autocovariance that a movie of ``num_frames`` frames supports:
    those of (5, 10, 20, 40) up to half its length (a lag needs many frame pairs)."""
    return tuple(t for t in (5, 10, 20, 40) if t <= num_frames // 2)


def _shift(a: jax.Array, d: int, axis: int, periodic: bool) -> tuple[jax.Array, jax.Array]:
    """``(a[r], a[r + d])`` along ``axis`` (negative, counted from the end): wrapped, or cropped to the overlap."""
    if periodic:
        return a, jnp.roll(a, -d, axis=axis)
    n = a.shape[axis]
    return jax.lax.slice_in_dim(a, 0, n - d, axis=axis), jax.lax.slice_in_dim(a, d, n, axis=axis)


def lagged_covariances(m: jax.Array, weights: jax.Array, offsets: Sequence[tuple[int, int]] = DEFAULT_OFFSETS,
                       *, periodic: bool = False) -> jax.Array:
    """cov(τ, d) of each component over each region (module docstring), shape (..., R, len(offsets), C).

    m: (..., F, ny, nx, C); weights: (R, ny, nx) non-negative pixel weights (1 inside the region)."""
    delta = m - jnp.mean(m, axis=-4, keepdims=True)
    F = m.shape[-4]
    out = []
    for tau, d in offsets:
        a = jax.lax.slice_in_dim(delta, 0, F - tau, axis=-4)
        b = jax.lax.slice_in_dim(delta, tau, F, axis=-4)
        num = 0.0
        den = 0.0
        for axis in (-3, -2):  # rows (y) then columns (x), as (..., F, ny, nx, C)
            a0, _ = _shift(a, d, axis, periodic)
            _, b1 = _shift(b, d, axis, periodic)
            w0, w1 = _shift(weights, d, axis + 1, periodic)  # weights (R, ny, nx): the same axes, one fewer
            pair = w0 * w1  # (R, ny', nx')
            prod = jnp.mean(a0 * b1, axis=-4)  # (..., ny', nx', C), the mean over frames
            num = num + jnp.einsum("...yxc,ryx->...rc", prod, pair)
            den = den + jnp.sum(pair, axis=(-2, -1))
        out.append(num / jnp.maximum(den, 1e-30)[:, None])
    return jnp.stack(out, axis=-2)


def region_means(m: jax.Array, weights: jax.Array) -> jax.Array:
    """The weighted temporal and spatial mean of each component in each region: (..., R, C)."""
    mean_t = jnp.mean(m, axis=-4)  # (..., ny, nx, C)
    num = jnp.einsum("...yxc,ryx->...rc", mean_t, weights)
    return num / jnp.maximum(jnp.sum(weights, axis=(-2, -1)), 1e-30)[:, None]


def mean_mode_covariances(m: jax.Array, weights: jax.Array, lags: Sequence[int]) -> jax.Array:
    """Autocovariance at frame lag τ ≥ 1 of the region-mean time series m̄_c(t), (..., R, len(lags), C).

    In a periodic film the film mean is the uniform (k = 0) mode, the one bound only by the
    anisotropy: it precesses at ω ≈ γ √(B_K μ0 Ms) and decays at ≈ α γ (B_K + μ0 Ms / 2), so these
    lags read K_u and α. Per-pixel white noise enters m̄ with variance σ²/N, at lag 0 only."""
    num = jnp.einsum("...tyxc,ryx->...rtc", m, weights)
    bar = num / jnp.maximum(jnp.sum(weights, axis=(-2, -1)), 1e-30)[:, None, None]  # (..., R, F, C)
    bar = bar - jnp.mean(bar, axis=-2, keepdims=True)
    F = m.shape[-4]
    covs = [jnp.mean(bar[..., : F - t, :] * bar[..., t:, :], axis=-2) for t in lags]
    return jnp.stack(covs, axis=-2)


def region_statistics(m: jax.Array, weights: jax.Array, offsets: Sequence[tuple[int, int]] = DEFAULT_OFFSETS,
                      *, periodic: bool = False, mean_lags: Sequence[int] = ()) -> jax.Array:
    """The statistics of each region, (..., R, S) with S = C · (1 + len(offsets) + len(mean_lags)) in
    the order of ``statistic_names`` (per component: its mean, cov(τ, d) for each offset, then the
    region-mean autocovariance at each of ``mean_lags``)."""
    parts = [region_means(m, weights)[..., None, :],  # (..., R, 1, C)
             lagged_covariances(m, weights, offsets, periodic=periodic)]  # (..., R, K, C)
    if mean_lags:
        parts.append(mean_mode_covariances(m, weights, mean_lags))
    both = jnp.concatenate(parts, axis=-2)  # (..., R, 1 + K + L, C)
    both = jnp.swapaxes(both, -1, -2)  # (..., R, C, 1 + K)
    return both.reshape(both.shape[:-2] + (-1,))


def film_statistics(m: jax.Array, weights: jax.Array | None = None,
                    offsets: Sequence[tuple[int, int]] = DEFAULT_OFFSETS, *, periodic: bool = False,
                    mean_lags: Sequence[int] = ()) -> jax.Array:
    """The statistics of the film over the pixels ``weights`` (ny, nx) (default all): (..., S)."""
    ny, nx = m.shape[-3:-1]
    w = jnp.ones((ny, nx), m.dtype) if weights is None else jnp.asarray(weights, m.dtype)
    return region_statistics(m, w[None], offsets, periodic=periodic, mean_lags=mean_lags)[..., 0, :]


def region_weights(labels: jax.Array, num_regions: int, dtype=jnp.float32) -> jax.Array:
    """(R, ny, nx) indicator weights of regions 1..R of a (ny, nx) integer label map (0 is background)."""
    return (labels[None] == jnp.arange(1, num_regions + 1)[:, None, None]).astype(dtype)
