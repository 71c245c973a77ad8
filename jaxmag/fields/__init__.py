"""Effective-field terms: one module per physical term, each a factory returning a ``FieldFn``.

A ``FieldFn`` maps ``(m, material) -> B`` with ``m`` of shape ``(nz, ny, nx, 3)`` (unit
vectors, zero in vacuum cells) and ``B`` in tesla of the same shape. The effective field is
the sum of a tuple of terms (``effective_field``); ``terms.TERMS`` registers each term by name
with everything about it (energy factor, material maps, stiffness bound, MuMax3 mapping); each
term's module holds its field and its stiffness. The thermal field is not a ``FieldFn``: it depends on a random key and
the time step, so it is a ``ThermalFn`` handed to the integrator beside the deterministic field
(``thermal.py``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax

from jaxmag.material import Material

FieldFn = Callable[[jax.Array, Material], jax.Array]


def effective_field(terms: Sequence[FieldFn]) -> FieldFn:
    """Sum of field terms, itself a ``FieldFn``."""
    terms = tuple(terms)
    if not terms:
        raise ValueError("effective_field needs at least one field term")

    def field(m: jax.Array, material: Material) -> jax.Array:
        total = terms[0](m, material)
        for term in terms[1:]:
            total = total + term(m, material)
        return total

    return field
