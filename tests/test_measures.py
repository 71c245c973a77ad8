"""Temporal measures: analytic latent-entropy cases (docs/measures.md), numpy cross-checks, bad input."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag.config import MeasuresConfig
from jaxmag.measures import (
    compute_measures,
    latent_entropy,
    measures_kernel,
    temporal_mean,
    temporal_std,
    transition_counts,
)


def H2(p: float) -> float:
    return -p * math.log(p) - (1 - p) * math.log(1 - p)


def as_movie(series) -> np.ndarray:
    """(..., T) series -> (..., T, 1, 1) movie: one pixel per series."""
    return np.asarray(series, np.float32)[..., None, None]


def reference_states(x: np.ndarray, K: int, binning: str, fixed_range=(-1.0, 1.0)) -> np.ndarray:
    """Per-pixel binning of a (T,) series, written from the definition."""
    if binning == "minmax":
        lo, hi = x.min(), x.max()
        if hi == lo:
            return np.zeros(x.shape, int)
        return np.clip(np.floor((x - lo) / (hi - lo) * K), 0, K - 1).astype(int)
    if binning == "fixed":
        lo, hi = fixed_range
        return np.clip(np.floor((np.clip(x, lo, hi) - lo) / (hi - lo) * K), 0, K - 1).astype(int)
    edges = np.sort(x)[[(k * x.size) // K for k in range(1, K)]]
    return (x[:, None] >= edges[None, :]).sum(1)


def reference_entropy(x, num_states=4, binning="minmax", lag=1, weighting="frequency", normalize=False, fixed_range=(-1.0, 1.0)):
    """Latent entropy of one (T,) series, a direct transcription of the definition."""
    K = num_states
    s = reference_states(np.asarray(x, np.float64), K, binning, fixed_range)
    N = np.zeros((K, K))
    for t in range(s.size - lag):
        N[s[t + lag], s[t]] += 1
    col = N.sum(0)
    H = np.zeros(K)
    for j in range(K):
        for i in range(K):
            if N[i, j] > 0:
                H[j] -= N[i, j] / col[j] * math.log(N[i, j] / col[j])
    if weighting == "frequency":
        S = float((col / col.sum() * H).sum())
    else:
        S = float(H[col > 0].mean())
    return S / math.log(K) if normalize else S


# ---------------------------------------------------------------------- analytic cases
@pytest.mark.parametrize("binning", ["minmax", "fixed", "quantile"])
def test_constant_series_has_zero_entropy_for_every_binning(binning):
    movie = np.stack([np.full(50, 0.3), np.full(50, -7.0), np.full(50, 5.0)])  # inside/outside fixed range
    S = latent_entropy(as_movie(movie), num_states=4, binning=binning)
    np.testing.assert_array_equal(np.asarray(S), 0.0)


@pytest.mark.parametrize("K", [3, 8])
def test_deterministic_cycle_has_zero_entropy(K):
    states = np.arange(203) % K
    S = latent_entropy(as_movie(states), num_states=K)
    assert float(S.squeeze()) == pytest.approx(0.0, abs=1e-7)
    # Binning on a fixed range with values at bin centres gives the same states.
    centres = -1 + (states + 0.5) * 2 / K
    assert float(latent_entropy(as_movie(centres), num_states=K, binning="fixed").squeeze()) == pytest.approx(0.0, abs=1e-7)


def test_alternating_series_has_zero_entropy_unlike_a_histogram_entropy():
    x = np.where(np.arange(100) % 2 == 0, 1.0, -1.0)
    for binning in ("minmax", "fixed", "quantile"):
        assert float(latent_entropy(as_movie(x), binning=binning).squeeze()) == pytest.approx(0.0, abs=1e-7)
    p = np.bincount(reference_states(x, 4, "minmax"), minlength=4) / x.size
    assert -np.sum(p[p > 0] * np.log(p[p > 0])) == pytest.approx(math.log(2))


@pytest.mark.parametrize("K", [pytest.param(2, marks=pytest.mark.slow), 4])
def test_iid_uniform_long_series_reaches_ln_K(K):
    rng = np.random.default_rng(K)
    states = rng.integers(0, K, size=(4, 20000))
    S = np.asarray(latent_entropy(as_movie(states), num_states=K)).ravel()
    np.testing.assert_allclose(S, math.log(K), atol=3e-3)
    Sn = np.asarray(latent_entropy(as_movie(states), num_states=K, normalize=True)).ravel()
    np.testing.assert_allclose(Sn, 1.0, atol=3e-3 / math.log(K))


def markov_chain(a: float, b: float, T: int, num: int, rng) -> np.ndarray:
    """(num, T) two-state chains with P(0->1) = a, P(1->0) = b, started from the stationary law."""
    u = rng.random((num, T))
    s = np.zeros((num, T), int)
    s[:, 0] = u[:, 0] < a / (a + b)
    for t in range(1, T):
        flip = np.where(s[:, t - 1] == 0, u[:, t] < a, u[:, t] < b)
        s[:, t] = np.where(flip, 1 - s[:, t - 1], s[:, t - 1])
    return s


def test_two_state_markov_chain_matches_its_entropy_rate():
    a, b = 0.1, 0.3
    frequency = (b * H2(a) + a * H2(b)) / (a + b)
    uniform = (H2(a) + H2(b)) / 2
    assert frequency == pytest.approx(0.396528, abs=1e-6)
    assert uniform == pytest.approx(0.467974, abs=1e-6)
    chains = markov_chain(a, b, 40000, 4, np.random.default_rng(7))
    S = np.asarray(latent_entropy(as_movie(chains), num_states=2)).ravel()
    Su = np.asarray(latent_entropy(as_movie(chains), num_states=2, weighting="uniform")).ravel()
    np.testing.assert_allclose(S, frequency, atol=0.01)
    np.testing.assert_allclose(Su, uniform, atol=0.01)


def test_six_state_example():
    S = latent_entropy(as_movie([0, 0, 1, 0, 1, 1]), num_states=2)
    expected = 3 / 5 * H2(1 / 3) + 2 / 5 * math.log(2)
    assert expected == pytest.approx(0.659167, abs=1e-6)
    assert float(S.squeeze()) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "K,expected",
    [pytest.param(2, 0.683, marks=pytest.mark.slow), (4, 1.323), pytest.param(8, 1.746, marks=pytest.mark.slow)],
)
def test_short_series_bias_at_T_100(K, expected):
    rng = np.random.default_rng(100 + K)
    states = rng.integers(0, K, size=(100, 48, 48))  # 2304 series of T = 100
    S = np.asarray(latent_entropy(states.astype(np.float32), num_states=K))
    assert S.mean() == pytest.approx(expected, abs=0.006)
    assert S.mean() < math.log(K) - 0.009  # biased low, as the plug-in estimator must be


@pytest.mark.parametrize(
    "binning,weighting,K",
    [("minmax", "frequency", 2), ("fixed", "uniform", 5), ("quantile", "frequency", 5),
     pytest.param("minmax", "uniform", 7, marks=pytest.mark.slow),
     pytest.param("quantile", "uniform", 2, marks=pytest.mark.slow)],
)
def test_bounds_on_random_data(binning, weighting, K):
    x = np.random.default_rng(1).standard_normal((2, 30, 5, 6)).astype(np.float32)
    S = np.asarray(latent_entropy(x, num_states=K, binning=binning, weighting=weighting))
    assert S.shape == (2, 5, 6)
    assert (S >= 0).all() and (S <= math.log(K) + 1e-6).all()
    assert S.max() > 0.5 * math.log(K)  # random data is far from predictable


# ---------------------------------------------------------------------- cross-checks
@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(num_states=3, lag=2),
        dict(binning="fixed", fixed_range=(-0.5, 1.5), weighting="uniform"),
        dict(binning="quantile", num_states=5, normalize=True),
        pytest.param(dict(binning="quantile", weighting="uniform", lag=3), marks=pytest.mark.slow),
        dict(num_states=6, lag=16),  # more codes than one packed word, more pairs than one block
    ],
)
def test_latent_entropy_matches_the_reference_implementation(options):
    rng = np.random.default_rng(3)
    # Coarse values force ties; an AR(1) part makes the transitions structured.
    x = np.round(rng.standard_normal((2, 40, 3, 4)) * 2) / 2
    x[1] = np.cumsum(rng.standard_normal((40, 3, 4)) * 0.3, axis=0)
    S = np.asarray(latent_entropy(x.astype(np.float32), **options))
    ref = np.array([[[reference_entropy(x[b, :, i, j], **options) for j in range(4)] for i in range(3)] for b in range(2)])
    np.testing.assert_allclose(S, ref, atol=2e-6)


def test_transition_counts_match_direct_counting_and_quantile_marginal_is_uniform():
    x = np.random.default_rng(4).standard_normal((100, 3, 5)).astype(np.float32)
    N = np.asarray(transition_counts(x, num_states=4, lag=2))
    assert N.shape == (4, 4, 3, 5)
    for i, j in [(0, 0), (2, 1), (2, 4)]:
        s = reference_states(x[:, i, j], 4, "minmax")
        direct = np.zeros((4, 4))
        np.add.at(direct, (s[2:], s[:-2]), 1)
        np.testing.assert_array_equal(N[:, :, i, j], direct)
    Nq = np.asarray(transition_counts(x, num_states=4, binning="quantile"))
    s_all = np.stack([reference_states(x[:, i, j], 4, "quantile") for i in range(3) for j in range(5)])
    assert (np.stack([np.bincount(s, minlength=4) for s in s_all]) == 25).all()
    assert (Nq.sum(axis=(0, 1)) == 99).all()


def test_mean_and_std_match_numpy():
    x = np.random.default_rng(5).standard_normal((3, 2, 50, 7, 9)).astype(np.float32) * 0.5 + 0.3
    out = compute_measures(x, ddof=1)
    np.testing.assert_allclose(out["mean"], x.mean(axis=-3), atol=1e-6)
    np.testing.assert_allclose(out["std"], x.std(axis=-3, ddof=1), atol=1e-6)
    np.testing.assert_allclose(temporal_mean(x), x.mean(axis=-3), atol=1e-6)
    np.testing.assert_allclose(temporal_std(x), x.std(axis=-3), atol=1e-6)
    assert out["latent_entropy"].shape == (3, 2, 7, 9)
    # Batched equals per-movie: leading axes are independent.
    single = compute_measures(x[1, 0], ddof=1)
    for name in out:
        np.testing.assert_allclose(out[name][1, 0], single[name], atol=1e-6)


def test_config_convenience_and_half_precision_input():
    x = np.random.default_rng(6).standard_normal((20, 4, 4)).astype(np.float16)
    conf = MeasuresConfig(num_states=3, binning="quantile", ddof=1)
    out = compute_measures(x, measures=("std", "latent_entropy"), options=conf.options())
    assert set(out) == {"std", "latent_entropy"}
    assert out["std"].dtype == jnp.float32
    ref = latent_entropy(x.astype(np.float32), num_states=3, binning="quantile")
    np.testing.assert_allclose(out["latent_entropy"], ref, atol=1e-7)


def test_kernel_composes_with_jit_and_vmap_without_recompiling():
    x = jnp.asarray(np.random.default_rng(8).standard_normal((3, 20, 4, 5)), jnp.float32)
    vmapped = jax.vmap(lambda m: measures_kernel(m)["latent_entropy"])(x)
    np.testing.assert_allclose(vmapped, compute_measures(x)["latent_entropy"], atol=1e-7)
    measures_kernel(x)
    size = measures_kernel._cache_size()
    measures_kernel(x + 1.0)
    assert measures_kernel._cache_size() == size


# ---------------------------------------------------------------------- bad input
def test_nonfinite_values_are_reported_with_count_and_first_index():
    x = np.zeros((2, 10, 3, 4), np.float32)
    x[1, 4, 2, 1] = np.nan
    x[1, 6, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 non-finite value\(s\).*first at index \(1, 4, 2, 1\)"):
        compute_measures(x)


@pytest.mark.parametrize(
    "shape,kwargs,message",
    [
        ((1, 4, 4), {}, "T >= 2"),
        ((5, 4), {}, r"shape \(\.\.\., T, ny, nx\)"),
        ((10, 2, 2), {"num_states": 1}, "num_states"),
        ((10, 2, 2), {"lag": 10}, "lag must be smaller"),
        ((10, 2, 2), {"lag": 0}, "lag must be an integer >= 1"),
        ((10, 2, 2), {"binning": "kmeans"}, "binning must be one of"),
        ((10, 2, 2), {"weighting": "x"}, "weighting must be one of"),
        ((10, 2, 2), {"fixed_range": (1.0, -1.0)}, "fixed_range"),
        ((10, 2, 2), {"measures": ("median",)}, "unknown measure"),
    ],
)
def test_bad_input_raises_clear_errors(shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute_measures(np.zeros(shape, np.float32), **kwargs)
