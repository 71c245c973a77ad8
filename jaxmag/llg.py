"""The Landau–Lifshitz–Gilbert right-hand side, in MuMax3's Landau–Lifshitz form.

dm/dt = −γ / (1 + α²) [ m × B + α m × (m × B) ]

with γ = ``GAMMA_LL`` (rad/(T s)), B the total field in tesla and α the per-cell damping.
Knows nothing about which terms make up B or how time is stepped.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmag.constants import GAMMA_LL


def llg_torque(m: jax.Array, B: jax.Array, alpha: jax.Array, *, precession: bool = True) -> jax.Array:
    """dm/dt in 1/s; ``m``, ``B`` (…, 3), ``alpha`` (…). ``precession=False`` keeps only damping
    (used by ``relax``, as MuMax3 does)."""
    alpha = alpha[..., None]
    mxB = jnp.cross(m, B)
    damping = alpha * jnp.cross(m, mxB)
    if precession:
        return (-GAMMA_LL / (1.0 + alpha * alpha)) * (mxB + damping)
    return (-GAMMA_LL / (1.0 + alpha * alpha)) * damping


def dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """a·b over the last axis (of size 3), ``(…, 3) -> (…)``.

    Written out per component: XLA's CPU reduction over a minor axis of size 3 runs about 25x
    slower than these three fused multiplies (measured on 128² films); same summation order
    as ``jnp.sum(a * b, axis=-1)``.
    """
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def normalize(m: jax.Array) -> jax.Array:
    """Unit vectors along the last axis; zero vectors (vacuum cells) stay zero."""
    norm2 = dot(m, m)[..., None]
    safe = jnp.where(norm2 > 0, norm2, 1.0)
    return jnp.where(norm2 > 0, m * jax.lax.rsqrt(safe), 0.0)


def max_torque(m: jax.Array, B: jax.Array) -> jax.Array:
    """max over cells of |m × B| in tesla: the relaxation criterion."""
    mxB = jnp.cross(m, B)
    return jnp.sqrt(jnp.max(dot(mxB, mxB)))
