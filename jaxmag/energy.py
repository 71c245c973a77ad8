"""Energies (J) derived generically from the field terms (MuMax3's convention):

E = −f Σ_cells Ms m·B V, with f = ½ for self-interactions (exchange, anisotropy, demag) and
f = 1 for the Zeeman energy of a fixed applied field. The energy densities are then
ε_exch = A|∇m|², ε_anis = −K_u (m·u)² (up to a constant), ε_demag = −½ μ0 Ms m·H_demag.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmag.fields import FieldFn
from jaxmag.fields.anisotropy import uniaxial_anisotropy
from jaxmag.fields.exchange import exchange
from jaxmag.fields.zeeman import zeeman
from jaxmag.grid import Grid
from jaxmag.material import Material


def energy_from_field(grid: Grid, term: FieldFn, factor: float) -> callable:
    """``E(m, material)`` in J for a field term: −factor Σ Ms m·B V."""

    def energy(m: jax.Array, material: Material) -> jax.Array:
        B = term(m, material)
        return -factor * grid.cell_volume * jnp.sum(material.Ms * jnp.sum(m * B, axis=-1))

    return energy


def energy_terms(grid: Grid, *, demag: bool = True) -> dict[str, callable]:
    """Named energy functions ``E_exch``, ``E_anis``, ``E_Zeeman`` (and ``E_demag``) in J."""
    terms = {
        "E_exch": energy_from_field(grid, exchange(grid), 0.5),
        "E_anis": energy_from_field(grid, uniaxial_anisotropy(grid), 0.5),
        "E_Zeeman": energy_from_field(grid, zeeman(grid), 1.0),
    }
    if demag:
        from jaxmag.fields.demag import demag as demag_term

        terms["E_demag"] = energy_from_field(grid, demag_term(grid), 0.5)
    return terms


def energies(grid: Grid, m: jax.Array, material: Material, *, demag: bool = True) -> dict[str, jax.Array]:
    """All energy terms and their sum ``E_total`` (J) for state ``m``."""
    out = {name: fn(m, material) for name, fn in energy_terms(grid, demag=demag).items()}
    out["E_total"] = sum(out.values())
    return out


def total_energy(grid: Grid, *, demag: bool = True) -> callable:
    """``E_total(m, material)`` in J as one function (jit/grad friendly)."""
    fns = tuple(energy_terms(grid, demag=demag).values())

    def energy(m: jax.Array, material: Material) -> jax.Array:
        return sum(fn(m, material) for fn in fns)

    return energy
