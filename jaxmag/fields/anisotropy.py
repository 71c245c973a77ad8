"""First-order uniaxial anisotropy with per-cell constant K_u (J/m³) and easy axis u.

Energy density ε = −K_u (m·u)², so B_anis = (2 K_u / Ms) (m·u) u in tesla (MuMax3's ``Ku1``,
``AnisU``; ``engine/anisotropy.go``). K_u < 0 gives an easy plane normal to u.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.fields import FieldFn
from jaxmag.grid import Grid
from jaxmag.material import Material


def uniaxial_anisotropy(grid: Grid | None = None) -> FieldFn:
    """Uniaxial anisotropy term; ``grid`` is accepted for a uniform factory signature."""

    def field(m: jax.Array, material: Material) -> jax.Array:
        u = material.easy_axis
        Ms = material.Ms
        inv_Ms = jnp.where(Ms > 0, 1.0 / jnp.where(Ms > 0, Ms, 1.0), 0.0)
        # per component, not jnp.sum(m * u, axis=-1): XLA's CPU reduction over a size-3
        # minor axis is ~25x slower (see llg.dot)
        m_dot_u = m[..., 0] * u[..., 0] + m[..., 1] * u[..., 1] + m[..., 2] * u[..., 2]
        return (2.0 * material.K_u * inv_Ms * m_dot_u)[..., None] * u

    return field


def anisotropy_stiffness(grid: Grid, material: Material) -> np.ndarray:
    """Per-cell stiffness (T, float64, (nz, ny, nx); 0 in vacuum): 2 |K_u| / Ms, the largest
    eigenvalue of the linearised term."""
    Ms = np.asarray(material.Ms, np.float64)
    K = np.abs(np.asarray(material.K_u, np.float64))
    return np.divide(2.0 * K, Ms, out=np.zeros_like(Ms), where=Ms > 0)
