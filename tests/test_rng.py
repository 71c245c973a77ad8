"""The thermal field's counter-based normal generator (jaxmag.rng): the cipher against its
published known answers, the law of the draws, and the purity that batch invariance needs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag.rng import normal_draws, threefry2x32

# Known-answer vectors of Threefry-2x32-20 from Random123's kat_vectors (key, counter, result).
KAT = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key, counter, expected", KAT)
def test_threefry_known_answers(key, counter, expected):
    k = tuple(jnp.uint32(w) for w in key)
    out = jax.jit(threefry2x32)(k, jnp.array([counter[0]], jnp.uint32), jnp.array([counter[1]], jnp.uint32))
    assert (int(out[0][0]), int(out[1][0])) == expected


def test_float32_draws_are_standard_normal():
    z = np.asarray(normal_draws(jax.random.key(3), 7, (1000, 1000)), np.float64).ravel()
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(np.mean(z**4) - 3) < 5 * np.sqrt(96 / n)
    # Kolmogorov–Smirnov distance to the normal CDF, against the 0.1 % critical value.
    from math import erf

    xs = np.sort(z[:200_000])
    cdf = 0.5 * (1 + np.vectorize(erf)(xs / np.sqrt(2)))
    m = xs.size
    ks = max(np.max(np.arange(1, m + 1) / m - cdf), np.max(cdf - np.arange(m) / m))
    assert ks < 1.95 / np.sqrt(m)
    # the lattice is symmetric and the tails reach past 5 sigma but stay finite
    assert np.isfinite(z).all() and 4.5 < np.abs(z).max() < 5.5


def test_float64_draws_are_standard_normal():
    with jax.enable_x64(True):
        z = np.asarray(normal_draws(jax.random.key(4), 0, (400_000,), jnp.float64))
    assert z.dtype == np.float64
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)
    assert len(np.unique(z)) == z.size  # 52-bit lattice: no repeats at this size


def test_draws_are_a_pure_function_of_key_counter_and_position():
    keys = jax.random.split(jax.random.key(0), 4)
    batched = jax.jit(jax.vmap(lambda k, c: normal_draws(k, c, (3, 5, 3))))(keys, jnp.arange(4))
    for i in range(4):
        alone = normal_draws(keys[i], i, (3, 5, 3))
        np.testing.assert_array_equal(batched[i], alone)
    # the flat position is the counter: a reshape of the same count gives the same numbers
    np.testing.assert_array_equal(normal_draws(keys[0], 2, (45,)), normal_draws(keys[0], 2, (3, 5, 3)).ravel())
    # raw key data and typed keys give the same draws
    np.testing.assert_array_equal(normal_draws(jax.random.key_data(keys[1]), 5, (9,)), normal_draws(keys[1], 5, (9,)))


def test_steps_and_keys_give_uncorrelated_draws():
    key = jax.random.key(11)
    a = np.asarray(normal_draws(key, 0, (200_000,)))
    b = np.asarray(normal_draws(key, 1, (200_000,)))
    c = np.asarray(normal_draws(jax.random.key(12), 0, (200_000,)))
    for x, y in ((a, b), (a, c), (a[:-1], a[1:])):
        assert abs(np.corrcoef(x, y)[0, 1]) < 5 / np.sqrt(x.size)


def test_rejects_integer_dtype():
    with pytest.raises(TypeError, match="float32 or float64"):
        normal_draws(jax.random.key(0), 0, (3,), jnp.int32)


def test_float32_inverse_error_function_is_accurate_over_the_lattice():
    """The float32 transform against the exact inverse normal CDF (float64 Newton polish of
    erf), on every 64th point of the 2^24-point lattice plus both tails."""
    from math import erf, sqrt, pi

    from jaxmag.rng import _unit_to_normal

    k = np.concatenate([np.arange(0, 2**24, 64), np.arange(0, 512), np.arange(2**24 - 512, 2**24)]).astype(np.uint32)
    z = np.asarray(jax.jit(lambda w: _unit_to_normal(w, 24, jnp.float32))(jnp.asarray(k)), np.float64)
    p = (2.0 * k.astype(np.float64) + 1.0) / 2**24 - 1.0  # erf(z / sqrt 2) must equal p
    exact = z.copy()
    verf = np.vectorize(erf)
    for _ in range(3):
        residual = verf(exact / sqrt(2.0)) - p
        exact -= residual / (sqrt(2.0 / pi) * np.exp(-exact * exact / 2.0))
    rel = np.abs(z - exact) / np.abs(exact)
    assert rel.max() < 1e-6, f"largest relative error {rel.max():.2e} at k = {k[np.argmax(rel)]}"
    assert z.max() == -z.min() and 5.4 < z.max() < 5.5  # symmetric lattice, tails to 5.42 sigma
