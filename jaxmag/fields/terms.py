"""The registry of effective-field terms: name, factory and energy factor, in one table.

``TERMS[name]`` is a ``Term``: ``factory(grid) -> FieldFn`` and the MuMax3 energy factor ``f`` of
E = −f Σ_cells Ms m·B V (½ for self-interactions, whose field is linear in m; 1 for the Zeeman
energy of a fixed applied field). ``drivers.field_terms`` and ``energy.energy_terms`` both read
this table, so a new term (say DMI) is one file in ``fields/`` plus one line in ``TERMS``.

The thermal field is not in the table: it is the diffusion part of the stochastic LLG and goes
to the integrator as its own argument (``fields.thermal.thermal``).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from jaxmag.fields import FieldFn
from jaxmag.fields.anisotropy import uniaxial_anisotropy
from jaxmag.fields.demag import demag
from jaxmag.fields.exchange import exchange
from jaxmag.fields.zeeman import zeeman
from jaxmag.grid import Grid


@dataclasses.dataclass(frozen=True)
class Term:
    """One deterministic field term: ``factory(grid) -> FieldFn`` (B in T) and its energy."""

    factory: Callable[[Grid], FieldFn]
    energy_factor: float  # f in E = −f Σ Ms m·B V
    energy_name: str  # key in energy.energies(), e.g. "E_exch" (J)


TERMS: dict[str, Term] = {
    "exchange": Term(exchange, 0.5, "E_exch"),
    "anisotropy": Term(uniaxial_anisotropy, 0.5, "E_anis"),
    "zeeman": Term(zeeman, 1.0, "E_Zeeman"),
    "demag": Term(demag, 0.5, "E_demag"),
}

STANDARD_TERMS: tuple[str, ...] = ("exchange", "anisotropy", "zeeman", "demag")
"""The terms of a jaxmag film simulation, in summation order."""


def check_term_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or ``ValueError`` naming an unknown or repeated term."""
    if isinstance(names, str):
        raise TypeError(f"terms must be a sequence of names such as {STANDARD_TERMS}, got the string {names!r}")
    names = tuple(names)
    for name in names:
        if name not in TERMS:
            raise ValueError(f"unknown field term {name!r}; known terms: {', '.join(TERMS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"field terms repeat a name: {names}")
    return names


def without_demag(names: Sequence[str], demag: bool | None) -> tuple[str, ...]:
    """Apply the deprecated ``demag=`` switch to a tuple of names (``None``: unchanged)."""
    names = tuple(names)
    if demag is None or demag:
        return names if demag is None or "demag" in names else names + ("demag",)
    return tuple(n for n in names if n != "demag")
