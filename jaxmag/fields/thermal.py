"""Langevin thermal field (Brown 1963), MuMax3 convention (Leliaert et al. 2017).

B_therm = η sqrt(2 α k_B T / (γ Ms V Δt))   (tesla), η ~ N(0, 1) per component, cell and step.

This is the diffusion part of the stochastic LLG. ``thermal(grid)`` returns a ``ThermalFn``
``(m, material, key, step, dt) -> B_therm`` that the integrator calls once per step and holds
fixed in all its stages (Stratonovich-consistent); the integrator never knows the physics
behind it. The draw for step ``n`` is ``jaxmag.rng.normal_draws(key, n, ...)``, counter-based,
so a run is a pure function of its key, whatever the batch size or device.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxmag.constants import GAMMA_LL, KB
from jaxmag.grid import Grid
from jaxmag.material import Material
from jaxmag.rng import normal_draws

ThermalFn = Callable[[jax.Array, Material, jax.Array, jax.Array, float], jax.Array]
"""``(m, material, key, step, dt) -> B_therm`` (T, shape and dtype of ``m``) for integration step
``step``, a step of ``dt`` seconds. Like a ``FieldFn`` it sees ``m`` (here only for its shape and
dtype) and the material; the run's ``key`` and the step index choose the draw."""


def thermal_field_scale(grid: Grid, material: Material, dt: float) -> jax.Array:
    """Per-cell standard deviation of each component of B_therm, T; shape (nz, ny, nx)."""
    Ms = material.Ms
    safe_Ms = jnp.where(Ms > 0, Ms, 1.0)
    variance = 2.0 * material.alpha * KB * material.temperature / (GAMMA_LL * safe_Ms * grid.cell_volume * dt)
    return jnp.where(Ms > 0, jnp.sqrt(variance), 0.0)


def thermal_field(key: jax.Array, step: jax.Array, scale: jax.Array, dtype) -> jax.Array:
    """B_therm for integration step ``step``; ``scale`` from ``thermal_field_scale``."""
    eta = normal_draws(key, step, scale.shape + (3,), dtype)
    return eta * scale[..., None].astype(dtype)


def thermal(grid: Grid) -> ThermalFn:
    """The thermal field term for ``grid``: ``B(m, material, key, step, dt)`` in T."""

    def field(m: jax.Array, material: Material, key: jax.Array, step: jax.Array, dt: float) -> jax.Array:
        return thermal_field(key, step, thermal_field_scale(grid, material, dt), m.dtype)

    return field
