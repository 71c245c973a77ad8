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
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

THERMAL_GENERATOR = "threefry2x32-20 counter (position, step), erfinv normal"
"""Names the thermal draws' algorithm in dataset files: runs drawn by another generator are
statistically the same but not the same numbers, so a dataset is never finished with a
different one (``jaxmag.io.dataset`` refuses to resume it)."""
LEGACY_THERMAL_GENERATOR = "jax.random.normal(fold_in(key, step))"
"""The generator of datasets written before the attribute existed (jaxmag before this module)."""

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


def _unit_to_normal(mantissa: jax.Array, bits: int, dtype) -> jax.Array:
    """Integers k in [0, 2^bits) -> sqrt(2) erfinv((2k + 1) / 2^bits - 1), symmetric about 0."""
    scale = np.asarray(2.0 ** (1 - bits), dtype)
    v = mantissa.astype(dtype) * scale + (scale * np.asarray(0.5, dtype) - np.asarray(1.0, dtype))
    return np.asarray(np.sqrt(2.0), dtype) * jax.lax.erf_inv(v)


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
        values = _unit_to_normal(jnp.concatenate([a, b]) >> np.uint32(8), 24, dtype)
    return values[:size].reshape(shape)
