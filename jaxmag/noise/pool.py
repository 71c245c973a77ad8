"""Fresh noise for training batches: the keys of each draw and an epoch's pool of draws.

The measures file's noise follows the one keying rule of ``jaxmag.noise`` (seed, condition,
run index, component); training sources draw *fresh* noise with the same rule under a seed
that changes every step, or from a pool of standard-normal fields drawn once per epoch. Both
are pure functions of the keys below, so a resumed run draws exactly what an uninterrupted one
would.

* ``movie_noise_keys(seed, cond_hash, run_index, components)``: the per-run, per-component keys.
* ``noise_pool(epoch_key, shape)`` and ``pooled_draws(pool, key)``: an epoch's pool of
  standard-normal fields and one step's draws from it (a random cyclic shift in time and a
  random sign per sample: the exact law of i.i.d. N(0, 1) draws).
* ``stream_key``, ``stream_bits`` and ``key_from_bits``: the keys of a numbered stream of a seed
  (validation, test, calibration) and a key rebuilt on the device from its two 32-bit words, which
  multi-process ``jit`` needs (no host array enters the call).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmag.noise.draw import component_keys, condition_keys
from jaxmag.rng import normal_draws

POOL_STREAM = 0xFFFFFFFF
"""``fold_in(epoch_key, POOL_STREAM)`` keys an epoch's noise pool; steps fold in their index
``s < steps_per_epoch``, which never reaches it."""


def movie_noise_keys(seed, cond_hash, run_index, components: str) -> jax.Array:
    """Noise keys ``(B, C)`` of the one keying rule (``jaxmag.noise``): per run
    ``condition_keys(seed, hash(condition), run_index)``, the component letter folded in."""
    return component_keys(condition_keys(seed, cond_hash, run_index), components)


def noise_pool(epoch_key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """An epoch's pool of standard-normal fields ``shape = (B, C, T, ny, nx)`` (``jaxmag.rng``'s
    counter-based draws, a pure function of the epoch key)."""
    return normal_draws(jax.random.fold_in(epoch_key, POOL_STREAM), 0, shape)


def pooled_draws(pool: jax.Array, key: jax.Array) -> jax.Array:
    """One step's noise draws from an epoch's ``pool (B, C, T, ny, nx)``: sample b takes field b
    under a random cyclic shift in time and a random sign, both drawn from ``key``.

    A shift and a sign change map i.i.d. N(0, 1) values to i.i.d. N(0, 1) values, so every
    sample's noise has exactly the condition's law, and a film, seen once an epoch, meets a
    new pool every epoch. What is shared: the films of one epoch in one batch slot get shifted
    copies of one field (independent of the films, not of each other). It saves the draws, which
    cost more than the U-Net step on CPU at the quick size (``docs/training.md``); the shift is a
    gather of whole frames because shifts in y and x cost several times more on CPU.
    """
    B, _, T = pool.shape[:3]
    k_shift, k_sign = jax.random.split(key)
    shift = jax.random.randint(k_shift, (B,), 0, T)
    frames = (jnp.arange(T)[None, :] + shift[:, None]) % T
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (B,)), 1.0, -1.0).astype(pool.dtype)
    return sign[:, None, None, None, None] * jnp.take_along_axis(pool, frames[:, None, :, None, None], axis=2)


def stream_key(seed: int, stream: int, step=None) -> jax.Array:
    """``fold_in(key(seed), stream)``, then ``step`` folded in unless it is ``None``."""
    key = jax.random.fold_in(jax.random.key(seed), stream)
    return key if step is None else jax.random.fold_in(key, step)


def stream_bits(seed: int, stream: int) -> tuple[jax.Array, jax.Array]:
    """The two uint32 words of ``stream_key(seed, stream)`` (for ``key_from_bits``)."""
    data = jax.random.key_data(stream_key(seed, stream))
    return data[0], data[1]


def key_from_bits(a, b, step=None) -> jax.Array:
    """A typed key from its two uint32 words ``(a, b)``, then ``step`` folded in unless ``None``."""
    key = jax.random.wrap_key_data(jnp.stack([jnp.asarray(a, jnp.uint32), jnp.asarray(b, jnp.uint32)]))
    return key if step is None else jax.random.fold_in(key, step)
