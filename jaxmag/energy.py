"""Energies (J) derived generically from the field terms (MuMax3's convention):

E = −f Σ_cells Ms m·B V, with the factor f of each term from the registry ``fields.terms.TERMS``
(½ for self-interactions: exchange, anisotropy, demag; 1 for the Zeeman energy of a fixed
applied field). The energy densities are then ε_exch = A|∇m|², ε_anis = −K_u (m·u)² (up to a
constant), ε_demag = −½ μ0 Ms m·H_demag.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from jaxmag.fields import FieldFn
from jaxmag.fields.terms import STANDARD_TERMS, TERMS, check_term_names
from jaxmag.grid import Grid
from jaxmag.llg import dot
from jaxmag.material import Material

EnergyFn = Callable[[jax.Array, Material], jax.Array]


def energy_from_field(grid: Grid, term: FieldFn, factor: float) -> EnergyFn:
    """``E(m, material)`` in J for a field term: −factor Σ Ms m·B V."""

    def energy(m: jax.Array, material: Material) -> jax.Array:
        B = term(m, material)
        return -factor * grid.cell_volume * jnp.sum(material.Ms * dot(m, B))

    return energy


def energy_terms(grid: Grid, terms: Sequence[str] = STANDARD_TERMS) -> dict[str, EnergyFn]:
    """Named energy functions (``E_exch``, ``E_anis``, ``E_Zeeman``, ``E_demag``, …) in J, one per
    named term of ``fields.terms.TERMS``."""
    out = {}
    for name in check_term_names(terms):
        term = TERMS[name]
        out[term.energy_name] = energy_from_field(grid, term.factory(grid), term.energy_factor)
    return out


def energies(grid: Grid, m: jax.Array, material: Material, terms: Sequence[str] = STANDARD_TERMS) -> dict[str, jax.Array]:
    """All energy terms and their sum ``E_total`` (J) for state ``m``."""
    fns = energy_terms(grid, terms)
    out = {name: fn(m, material) for name, fn in fns.items()}
    out["E_total"] = sum(out.values())
    return out


def total_energy(grid: Grid, terms: Sequence[str] = STANDARD_TERMS) -> EnergyFn:
    """``E_total(m, material)`` in J as one function (jit/grad friendly)."""
    fns = tuple(energy_terms(grid, terms).values())

    def energy(m: jax.Array, material: Material) -> jax.Array:
        return sum(fn(m, material) for fn in fns)

    return energy
