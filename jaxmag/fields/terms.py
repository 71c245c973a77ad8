"""The registry of effective-field terms: each entry carries everything about its term.

``TERMS[name]`` is a ``Term``:

* ``factory(grid) -> FieldFn`` (B in T);
* the MuMax3 energy factor ``f`` of E = −f Σ_cells Ms m·B V (½ for self-interactions, whose field
  is linear in m; 1 for the Zeeman energy of a fixed applied field) and the energy's name;
* ``maps``: the ``Material`` maps the field reads;
* ``stiffness(grid, material)``: a per-cell bound (T) on the linearised field, which
  ``drivers.stable_time_step`` sums over the terms of a run;
* ``mx3``: how the term appears in a MuMax3 script (``Mx3``), which ``io.mx3`` writes.

``drivers.field_terms``, ``energy.energy_terms``, ``drivers.stable_time_step``, the config's
``[simulation] terms`` and the ``.mx3`` export all read this table, so a new term (say DMI) is one
file in ``fields/`` plus one entry here (and a ``Material`` map if it needs a new parameter).

The thermal field is not in the table: it is the diffusion part of the stochastic LLG and goes
to the integrator as its own argument (``fields.thermal.thermal``).
"""
from __future__ import annotations

import dataclasses
import types
from typing import Callable, Mapping, Sequence

import numpy as np

from jaxmag.fields import FieldFn
from jaxmag.fields.anisotropy import anisotropy_stiffness, uniaxial_anisotropy
from jaxmag.fields.demag import demag, demag_stiffness
from jaxmag.fields.exchange import exchange, exchange_stiffness, link_stiffness
from jaxmag.fields.zeeman import zeeman, zeeman_stiffness
from jaxmag.grid import Grid
from jaxmag.material import Material

StiffnessFn = Callable[[Grid, Material], np.ndarray]
"""``(grid, material) -> (nz, ny, nx)`` float64 bound (T) on |B| of the linearised term; 0 in vacuum."""


@dataclasses.dataclass(frozen=True)
class Mx3Link:
    """An inter-region coupling statement: ``statement(i, j, rule(p_i, p_j))`` for every pair of
    magnetic regions i < j that share a cell face, ``p`` the regions' values of the MuMax3
    parameter ``param`` (e.g. ``ext_InterExchange`` of ``Aex`` with the harmonic mean)."""

    statement: str
    param: str
    rule: Callable[[float, float], float]


@dataclasses.dataclass(frozen=True)
class Mx3:
    """How a term appears in a MuMax3 script.

    ``params``: ``Material`` map -> MuMax3 region parameter, written per region when the term is
    on (MuMax3 defaults them to zero, which leaves the term out when it is off); ``links``:
    inter-region statements when on; ``on``/``off``: script lines when the term is on / off (for
    what MuMax3 switches rather than parametrises, e.g. ``EnableDemag = false``).
    """

    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    links: tuple[Mx3Link, ...] = ()
    on: tuple[str, ...] = ()
    off: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", types.MappingProxyType(dict(self.params)))


@dataclasses.dataclass(frozen=True)
class Term:
    """One deterministic field term (module docstring)."""

    factory: Callable[[Grid], FieldFn]
    energy_factor: float  # f in E = −f Σ Ms m·B V
    energy_name: str  # key in energy.energies(), e.g. "E_exch" (J)
    maps: tuple[str, ...]  # the Material maps the field reads
    stiffness: StiffnessFn
    mx3: Mx3


TERMS: dict[str, Term] = {
    "exchange": Term(exchange, 0.5, "E_exch", ("Ms", "A_ex"), exchange_stiffness,
                     Mx3({"A_ex": "Aex"}, links=(Mx3Link("ext_InterExchange", "Aex", link_stiffness),))),
    "anisotropy": Term(uniaxial_anisotropy, 0.5, "E_anis", ("Ms", "K_u", "easy_axis"), anisotropy_stiffness,
                       Mx3({"K_u": "Ku1", "easy_axis": "AnisU"})),
    "zeeman": Term(zeeman, 1.0, "E_Zeeman", ("Ms", "B_ext"), zeeman_stiffness, Mx3({"B_ext": "B_ext"})),
    "demag": Term(demag, 0.5, "E_demag", ("Ms",), demag_stiffness, Mx3(off=("EnableDemag = false",))),
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
