"""The physics registries carry everything about their entries: every ``fields.terms.TERMS`` entry
has its material maps, a stiffness bound and a MuMax3 mapping that the ``.mx3`` export writes;
every ``integrators.SOLVERS`` entry its order, thermal support and MuMax3 solver. A new entry
without them fails here (the convergence order itself is measured in ``test_integrators.py``)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jaxmag.config import ConfigError, loads_config
from jaxmag.fields.terms import STANDARD_TERMS, TERMS, Mx3, Term
from jaxmag.grid import Grid
from jaxmag.integrators import SOLVERS, SolverSpec
from jaxmag.io.mx3 import LLG_PARAMS, mx3_script, parse_mx3, region_parameters
from jaxmag.material import Material

MATERIAL_FIELDS = tuple(f.name for f in dataclasses.fields(Material))
MUMAX3_SOLVERS = (-1, 1, 2, 3, 4, 5, 6)  # SetSolver: backward Euler, Euler, Heun, RK23, RK4, RK45, RKF56


@dataclasses.dataclass(frozen=True)
class Timing:
    """The config-like form ``mx3_script`` takes."""

    terms: tuple[str, ...]
    solver: str = "heun"
    dt: float = 1e-13
    burn_in_s: float = 0.0
    frame_interval_s: float = 1e-12
    num_frames: int = 2


@pytest.fixture(scope="module")
def film():
    grid = Grid(4, 3, 1, 4e-9, 4e-9, 4e-9, "open")
    material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=500.0, alpha=0.02, temperature=300.0,
                                B_ext=(0.0, 0.0, 0.01))
    Ms = np.asarray(material.Ms).copy()
    Ms[0, 0, 0] = 0.0  # one vacuum cell
    A = np.asarray(material.A_ex).copy()
    A[0, 1] = 2e-11  # a second region, so inter-region links exist
    m0 = np.zeros(grid.vector_shape)
    m0[..., 0] = 1.0
    return grid, material.replace(Ms=Ms, A_ex=A), m0


@pytest.mark.parametrize("name", list(TERMS))
def test_every_term_carries_maps_stiffness_and_mx3_mapping(name, film):
    grid, material, _ = film
    term = TERMS[name]
    assert isinstance(term, Term) and callable(term.factory) and term.energy_factor in (0.5, 1.0)
    assert term.maps and set(term.maps) <= set(MATERIAL_FIELDS), term.maps
    assert isinstance(term.mx3, Mx3), f"field term {name!r} has no .mx3 mapping"
    # the export must show the term: a map, a link or a switch, never nothing
    assert term.mx3.params or term.mx3.links or term.mx3.on or term.mx3.off, f"{name!r}'s .mx3 mapping is empty"
    assert set(term.mx3.params) <= set(term.maps), "a term writes only maps it reads"
    assert all(link.param in term.mx3.params.values() for link in term.mx3.links)
    bound = term.stiffness(grid, material)
    assert bound.shape == grid.shape and bound.dtype == np.float64
    assert np.all(np.isfinite(bound)) and np.all(bound >= 0) and bound[0, 0, 0] == 0.0  # nothing in vacuum
    assert np.all(bound[np.asarray(material.Ms) > 0] > 0)


def test_terms_name_distinct_energies_and_mumax3_parameters():
    assert len({t.energy_name for t in TERMS.values()}) == len(TERMS)
    written = list(LLG_PARAMS.values()) + [p for t in TERMS.values() for p in t.mx3.params.values()]
    assert len(set(written)) == len(written)
    assert set(STANDARD_TERMS) <= set(TERMS)
    # the standard run writes MuMax3's seven maps in Material field order
    assert tuple(region_parameters().values()) == ("Msat", "Aex", "Ku1", "AnisU", "alpha", "Temp", "B_ext")


@pytest.mark.parametrize("name", list(TERMS))
def test_export_writes_a_term_exactly_when_the_run_has_it(name, film):
    grid, material, m0 = film
    without = tuple(t for t in STANDARD_TERMS if t != name)
    on = mx3_script(grid, material, m0, Timing(STANDARD_TERMS), thermal_seed=1)
    off = mx3_script(grid, material, m0, Timing(without), thermal_seed=1)
    mx3 = TERMS[name].mx3
    parsed_on, parsed_off = parse_mx3(on), parse_mx3(off)
    for param in mx3.params.values():
        assert param in parsed_on.values and param not in parsed_off.values
    for link in mx3.links:
        assert f"{link.statement}(" in on and f"{link.statement}(" not in off
    lines_on, lines_off = set(on.splitlines()), set(off.splitlines())
    assert set(mx3.on) <= lines_on and not set(mx3.on) & lines_off
    assert set(mx3.off) <= lines_off and not set(mx3.off) & lines_on


@pytest.mark.parametrize("name", list(SOLVERS))
def test_every_solver_carries_order_thermal_flag_and_mx3_solver(name, film):
    spec = SOLVERS[name]
    assert isinstance(spec, SolverSpec) and callable(spec.factory)
    assert isinstance(spec.order, int) and spec.order >= 1 and isinstance(spec.thermal, bool)
    assert spec.mx3 in MUMAX3_SOLVERS, f"solver {name!r} has no MuMax3 SetSolver mapping"
    grid, material, m0 = film
    script = parse_mx3(mx3_script(grid, material, m0, Timing(STANDARD_TERMS, solver=name), thermal_seed=1))
    assert script.calls_named("SetSolver") == [(spec.mx3,)]


def test_config_terms_come_from_the_registry():
    assert loads_config("").simulation.terms == STANDARD_TERMS
    assert loads_config(f"[simulation]\nterms = {list(TERMS)!r}".replace("'", '"')).simulation.terms == tuple(TERMS)
    with pytest.raises(ConfigError, match=r"key 'simulation.demag' is gone: list the field terms instead"):
        loads_config("[simulation]\ndemag = false", source="old.toml")
    with pytest.raises(ConfigError, match=r"simulation.terms' must name each field term once"):
        loads_config('[simulation]\nterms = ["demag", "demag"]')
