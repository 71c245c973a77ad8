"""Langevin thermal field (Brown 1963), MuMax3 convention (Leliaert et al. 2017).

B_therm = η sqrt(2 α k_B T / (γ Ms V Δt))   (tesla), η ~ N(0, 1) per component, cell and step.

The field is white in time: one draw per integration step, held fixed in both Heun stages
(Stratonovich-consistent). The draw for step ``n`` uses ``jax.random.fold_in(key, n)`` so a run
is a pure function of its key, whatever the batch size or device.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmag.constants import GAMMA_LL, KB
from jaxmag.grid import Grid
from jaxmag.material import Material


def thermal_field_scale(grid: Grid, material: Material, dt: float) -> jax.Array:
    """Per-cell standard deviation of each component of B_therm, T; shape (nz, ny, nx)."""
    Ms = material.Ms
    safe_Ms = jnp.where(Ms > 0, Ms, 1.0)
    variance = 2.0 * material.alpha * KB * material.temperature / (GAMMA_LL * safe_Ms * grid.cell_volume * dt)
    return jnp.where(Ms > 0, jnp.sqrt(variance), 0.0)


def thermal_field(key: jax.Array, step: jax.Array, scale: jax.Array, dtype) -> jax.Array:
    """B_therm for integration step ``step``; ``scale`` from ``thermal_field_scale``."""
    eta = jax.random.normal(jax.random.fold_in(key, step), scale.shape + (3,), dtype=dtype)
    return eta * scale[..., None].astype(dtype)
