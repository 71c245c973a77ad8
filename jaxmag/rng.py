"""Counter-based standard normal draws for the thermal field: Threefry-2x32 with 20 rounds.

``normal_draws(key, counter, shape, dtype)`` is a pure function of the run's key, a counter
(the integration step) and the position in ``shape``: whatever the batch size, device or
chunking, cell ``i`` of step ``n`` of a run gets the same number. That is what
``jax.random.normal(jax.random.fold_in(key, n), shape)`` guarantees too; this module exists
because that call costs several times more on CPU for the thermal field's sizes (it was about
a fifth of a 128 × 128 stochastic Heun step; ``scripts/bench_solver.py``).

The generator is the Threefry-2x32 block cipher of Salmon et al., "Parallel random numbers:
as easy as 1, 2, 3" (SC11), with 20 rounds, the count JAX uses (13 already pass BigCrush),
keyed by two 32-bit words drawn once from the run's key, over the counter pair
(position, step). Each output word gives one normal by the inverse error function of a
uniform on the symmetric lattice ``(2k + 1) / 2^24 - 1`` (float32: 23 bits, tails to 5.3 σ;
float64 takes two words for 52 bits). Samples are not the same numbers as ``jax.random``'s.

The float32 inverse error function is M. Giles' single-precision approximation ("Approximating
the erfinv function", GPU Computing Gems, 2011), the one XLA uses, but with its logarithm
written out (Cephes' ``logf``: exponent from the bits, a degree-8 polynomial for the
mantissa), because XLA:CPU's ``log1p`` does not vectorise: 25 % faster in the thermal draw,
and more accurate (largest relative error over the whole float32 lattice 2.9e-7 against
``lax.erf_inv``'s 5.8e-6, measured against float64 ``scipy.special.erfinv``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.fusion import materialized

THERMAL_GENERATOR = "threefry2x32-20 counter (position, step), erfinv normal (Giles, Cephes log)"
"""Names the thermal draws' algorithm in dataset files: runs drawn by another generator are
statistically the same but not the same numbers, so a dataset is never finished with a
different one (``jaxmag.io.dataset`` refuses to resume it)."""
LEGACY_THERMAL_GENERATOR = "jax.random.normal(fold_in(key, step))"
"""The generator of datasets written before the attribute existed (jaxmag before this module).
Datasets of the first counter-based version say ``"threefry2x32-20 counter (position, step),
erfinv normal"``: the same cipher, float32 normals through ``lax.erf_inv`` (equal to today's
to a few float32 ulps; 15 % of values differ in the last bits)."""

_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(key: tuple[jax.Array, jax.Array], x0: jax.Array, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32-20 of the counter words ``(x0, x1)`` (uint32 arrays) under ``key`` (two uint32)."""
    k0, k1 = key
    schedule = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0 = x0 + k0
    x1 = x1 + k1
    for r in range(20):
        x0 = x0 + x1
        x1 = _rotate_left(x1, _ROTATIONS[r % 8]) ^ x0
        if r % 4 == 3:
            s = r // 4 + 1
            x0 = x0 + schedule[s % 3]
            x1 = x1 + schedule[(s + 1) % 3] + np.uint32(s)
    return x0, x1


def _key_words(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Two uint32 words from a ``jax.random`` key (typed or raw, any implementation)."""
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    words = jax.random.bits(key, (2,), jnp.uint32)
    return words[0], words[1]


# Cephes logf: log(1 + x) = x - x^2 / 2 + x^3 P(x) for x in [sqrt(1/2) - 1, sqrt(2) - 1].
_LOG_POLY = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
             -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)
# Giles' single-precision erfinv: x P(w - 2.5) for w = -log(1 - x^2) < 5, else x Q(sqrt(w) - 3).
_ERFINV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 2.1858087e-04,
                   -1.25372503e-03, -4.17768164e-03, 2.46640727e-01, 1.50140941)
_ERFINV_TAIL = (-2.00214257e-04, 1.00950558e-04, 1.34934322e-03, -3.67342844e-03, 5.73950773e-03,
                -7.6224613e-03, 9.43887047e-03, 1.00167406, 2.83297682)


def _horner(coefficients: tuple[float, ...], x: jax.Array) -> jax.Array:
    out = jnp.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        out = out * x + np.float32(c)
    return out


def _log_float32(y: jax.Array) -> jax.Array:
    """Natural log of positive normal float32 ``y``, from its exponent bits and a polynomial."""
    bits = jax.lax.bitcast_convert_type(y, jnp.int32)
    exponent = ((bits >> 23) & 0xFF) - 126
    mantissa = jax.lax.bitcast_convert_type((bits & 0x007FFFFF) | 0x3F000000, jnp.float32)  # [1/2, 1)
    low = mantissa < np.float32(0.70710677)
    exponent = jnp.where(low, exponent - 1, exponent).astype(jnp.float32)
    x = jnp.where(low, mantissa + mantissa, mantissa) - np.float32(1.0)
    z = x * x
    r = x * z * _horner(_LOG_POLY, x) + np.float32(-2.12194440e-4) * exponent - np.float32(0.5) * z
    return x + r + np.float32(0.693359375) * exponent


@jax.jit  # one compiled unit even when called eagerly: the same rounding (FMA contraction) as in a jitted step
def _erf_inv_float32(x: jax.Array) -> jax.Array:
    """erfinv of float32 ``x`` in (-1, 1), vectorisable on CPU (see the module docstring)."""
    w = -_log_float32((np.float32(1.0) - x) * (np.float32(1.0) + x))
    central = _horner(_ERFINV_CENTRAL, w - np.float32(2.5))
    tail = _horner(_ERFINV_TAIL, jnp.sqrt(w) - np.float32(3.0))
    return jnp.where(w < np.float32(5.0), central, tail) * x


def _unit_to_normal(mantissa: jax.Array, bits: int, dtype) -> jax.Array:
    """Integers k in [0, 2^bits) -> sqrt(2) erfinv((2k + 1) / 2^bits - 1), symmetric about 0."""
    scale = np.asarray(2.0 ** (1 - bits), dtype)
    v = mantissa.astype(dtype) * scale + (scale * np.asarray(0.5, dtype) - np.asarray(1.0, dtype))
    erf_inv = _erf_inv_float32 if jnp.dtype(dtype) == jnp.float32 else jax.lax.erf_inv
    return np.asarray(np.sqrt(2.0), dtype) * erf_inv(v)


def normal_draws(key: jax.Array, counter: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Independent N(0, 1) draws of ``shape`` for ``(key, counter)``; float32 or float64.

    ``counter`` is a non-negative integer below 2^32 (the step index); the flat position in
    ``shape`` is the other counter word, so ``shape`` may hold up to 2^32 values (2^31 for float64).
    """
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise TypeError(f"normal_draws makes float32 or float64 values, not {dtype}")
    size = int(np.prod(shape, dtype=np.int64))
    words_per_value = 2 if dtype == jnp.float64 else 1
    blocks = -(-size * words_per_value // 2)
    if blocks > 2**32:
        raise ValueError(f"normal_draws: {size} values exceed one counter word")
    position = jnp.arange(blocks, dtype=jnp.uint32)
    step = jnp.broadcast_to(jnp.asarray(counter).astype(jnp.uint32), position.shape)
    a, b = threefry2x32(_key_words(key), position, step)
    if dtype == jnp.float64:
        mantissa = ((a.astype(jnp.uint64) << np.uint64(20)) | (b >> np.uint32(12)).astype(jnp.uint64))
        values = _unit_to_normal(mantissa, 52, dtype)
    else:
        # Each word through the cipher once and each half of the normals made on its own
        # (jaxmag.fusion): fused through the concatenation, every value would run the whole
        # cipher for its one word, and the transform would not vectorise.
        a, b = materialized((a, b), counter)
        halves = materialized(tuple(_unit_to_normal(w >> np.uint32(8), 24, dtype) for w in (a, b)), counter)
        values = jnp.concatenate(halves)
    return values[:size].reshape(shape)
