"""Drawing measurement noise: one keying rule, one formula per kind.

The noise of run ``r``, component ``c`` (``"x"``, ``"y"``, ``"z"``) under a condition is drawn
with

    key = fold_in(fold_in(fold_in(key(seed), hash(condition name)), r), ord(c))

(``noise_key`` then ``component_keys``), so a run's noise does not depend on how runs are
chunked, which other conditions or components are computed, or whether it was drawn offline
(``jaxmag measures``) or on device (``jaxmag.learn.online``); ``add_measurement_noise`` applies
it. The draws are standard normal and the kind's ``NoiseModel.from_draws`` turns them into
noise (``apply_noise_draws``), so a path that brings its own draws (the movie source's pooled
training draws) uses the same formulas.
"""
from __future__ import annotations

import hashlib
from typing import Any

import jax
import jax.numpy as jnp

from jaxmag.noise.conditions import NoiseSpec
from jaxmag.noise.models import NOISE_MODELS, gaussian_from_draws, speckle_from_draws


def _standard_normal(key: jax.Array, x: jax.Array) -> jax.Array:
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    return jax.random.normal(key, x.shape, dtype)


def add_gaussian(x: jax.Array, variance: Any, key: jax.Array) -> jax.Array:
    """Additive noise ``x + n``, n ~ N(0, variance) per element; same shape and float dtype as x."""
    return gaussian_from_draws(x, variance, _standard_normal(key, x))


def add_speckle(x: jax.Array, variance: Any, key: jax.Array) -> jax.Array:
    """Multiplicative noise ``x + x n``, n ~ N(0, variance) per element; same shape and float dtype as x."""
    return speckle_from_draws(x, variance, _standard_normal(key, x))


def apply_noise(x: jax.Array, spec: NoiseSpec, key: jax.Array, level: Any = None) -> jax.Array:
    """Apply one condition (clean returns ``x`` unchanged). ``level`` (default ``spec.level``)
    may be a traced value, so conditions of one kind share a compiled kernel."""
    return apply_noise_draws(x, spec, None if spec.kind == "clean" else _standard_normal(key, x), level)


def apply_noise_draws(x: jax.Array, spec: NoiseSpec, draws: jax.Array | None, level: Any = None) -> jax.Array:
    """``apply_noise`` with the standard-normal draws given (shape of ``x``) instead of a key."""
    if spec.kind == "clean":
        return x
    return NOISE_MODELS[spec.kind].from_draws(x, spec.level if level is None else level, draws)


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
                          *, cond_hash: Any = None, level: Any = None) -> jax.Array:
    """Measurement noise of ``spec`` on ``movies (n, C, T, ny, nx)``, keyed per (run, component).

    ``run_index``: ``(n,)`` integer run indices; ``components``: the C letters. ``seed``,
    ``run_index``, ``cond_hash`` (default ``condition_hash(spec)``) and ``level`` (default
    ``spec.level``) may be traced; the kind is static. This is the one keying rule of the
    module docstring, used by the measures file and the online generator alike.
    """
    if spec.kind == "clean":
        return movies
    cond_hash = condition_hash(spec) if cond_hash is None else cond_hash
    keys = component_keys(condition_keys(seed, cond_hash, run_index), components)  # (n, C)
    add = lambda x, k: apply_noise(x, spec, k, level)  # noqa: E731
    return jax.vmap(jax.vmap(add))(movies, keys)
