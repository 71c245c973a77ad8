"""Heisenberg exchange with per-cell stiffness A_ex (J/m), six-neighbour finite differences.

B_exch,i = (2 / Ms_i) Σ_j A_ij (m_j − m_i) / d_ij²   (tesla)

where j runs over the face neighbours of cell i and A_ij is the harmonic mean
2 A_i A_j / (A_i + A_j) (MuMax3's default rule, ``engine/exchange.go``; zero if either cell is
vacuum or has A = 0). Missing neighbours at open edges contribute nothing, which is the free
(Neumann, ∂m/∂n = 0) boundary condition. In-plane periodic grids wrap around in x and y; z is
always open. The energy is E_exch = −½ Σ Ms m·B_exch V = Σ_links A_ij |m_i − m_j|² V / d².
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.fields import FieldFn
from jaxmag.grid import Grid
from jaxmag.material import Material


def harmonic_mean(a: jax.Array, b: jax.Array) -> jax.Array:
    """2ab/(a+b), defined as 0 where a + b = 0 (safe for grad); ``link_stiffness`` for two floats."""
    total = a + b
    safe = jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, 2.0 * a * b / safe, 0.0)


def _neighbour_sum(m: jax.Array, A: jax.Array, axis: int, n: int, d: float, periodic: bool) -> jax.Array:
    """Σ over the ±1 neighbours along ``axis`` (of the scalar shape) of A_ij (m_j − m_i) / d²."""
    if n == 1:
        return jnp.zeros_like(m)
    total = jnp.zeros_like(m)
    index = jnp.arange(n)
    for shift in (1, -1):
        m_nb = jnp.roll(m, -shift, axis=axis)  # value of neighbour i + shift
        A_nb = jnp.roll(A, -shift, axis=axis)
        link = harmonic_mean(A, A_nb)
        if not periodic:
            # The roll wraps the last cell onto the first: cut that link (free boundary).
            edge = (n - 1) if shift == 1 else 0
            keep = (index != edge).astype(m.dtype)
            link = link * jnp.expand_dims(keep, tuple(i for i in range(3) if i != axis))
        total = total + link[..., None] * (m_nb - m)
    return total / (d * d)


def exchange(grid: Grid) -> FieldFn:
    """Exchange field term for ``grid``; ``B(m, material)`` in T, shape (nz, ny, nx, 3)."""
    periodic = grid.periodic

    def field(m: jax.Array, material: Material) -> jax.Array:
        A = material.A_ex
        total = _neighbour_sum(m, A, 2, grid.nx, grid.dx, periodic)
        total = total + _neighbour_sum(m, A, 1, grid.ny, grid.dy, periodic)
        total = total + _neighbour_sum(m, A, 0, grid.nz, grid.dz, False)
        Ms = material.Ms
        inv_Ms = jnp.where(Ms > 0, 1.0 / jnp.where(Ms > 0, Ms, 1.0), 0.0)
        return 2.0 * inv_Ms[..., None] * total

    return field


def link_stiffness(A_i: float, A_j: float) -> float:
    """A_ij (J/m) of two face neighbours with stiffness A_i, A_j: the harmonic mean the field
    uses, in float64 (0 when A_i + A_j = 0). The ``.mx3`` export states it per region pair."""
    return 2.0 * A_i * A_j / (A_i + A_j) if A_i + A_j > 0 else 0.0


def exchange_stiffness(grid: Grid, material: Material) -> np.ndarray:
    """Per-cell stiffness (T, float64, (nz, ny, nx); 0 in vacuum): 2 A / Ms · Σ 4/d² over the
    dimensions with more than one cell, the scale of the linearised term's largest eigenvalue
    (the discrete Laplacian's is 4/d² per dimension)."""
    Ms = np.asarray(material.Ms, np.float64)
    A = np.asarray(material.A_ex, np.float64)
    inv_d2 = sum(4.0 / d**2 for d, n in zip(grid.cell_size, (grid.nx, grid.ny, grid.nz)) if n > 1)
    return np.divide(2.0 * A, Ms, out=np.zeros_like(Ms), where=Ms > 0) * inv_d2
