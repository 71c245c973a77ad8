"""Time integrators as ``(init_fn, step_fn)`` pairs; they know the LLG right-hand side only
through a deterministic ``FieldFn`` (the drift) and an optional ``ThermalFn`` (the diffusion),
both passed in, and never which physical terms those sum.

* ``stochastic_heun``: fixed-step Heun. With a thermal term, the field of step ``n`` is drawn
  once (the term uses ``fold_in(key, n)``) and held in predictor and corrector, which makes the
  scheme converge to the Stratonovich solution (the physical interpretation of Brown's
  equation); m is renormalised after each stage, as in MuMax3's Heun solver (``SetSolver(2)``).
* ``rk4``: classical fourth-order Runge–Kutta at fixed step, for T = 0 dynamics (standard
  problem 4) and relaxation. With a thermal term the draw is likewise held over the step
  (Wong–Zakai: still Stratonovich-consistent, at twice Heun's cost per step).

Every solver factory has the signature ``solver(field_fn, dt, *, thermal=None,
precession=True) -> (init_fn, step_fn)``. ``SOLVERS`` names them for configuration files, each
entry a ``SolverSpec`` with everything about its scheme: the factory, its convergence order (which
``tests/test_integrators.py`` measures for every entry), whether it takes a thermal term, and its
MuMax3 ``SetSolver`` number (which the ``.mx3`` export writes). ``State`` carries m, time (s),
step index and the run's random key.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from jaxmag.fields import FieldFn
from jaxmag.fusion import materialized
from jaxmag.llg import llg_torque, normalize
from jaxmag.material import Material
from jaxmag.pytree import pytree_dataclass

InitFn = Callable[..., "State"]
StepFn = Callable[["State", Material], "State"]
ThermalFn = Callable[[jax.Array, Material, jax.Array, jax.Array, float], jax.Array]  # see fields.thermal
Solver = Callable[..., tuple[InitFn, StepFn]]


@pytree_dataclass
class State:
    m: jax.Array  # (nz, ny, nx, 3), unit vectors (zero in vacuum)
    t: jax.Array  # s
    step: jax.Array  # int32 step counter, also the thermal noise index
    key: jax.Array  # the run's jax.random key (constant; thermal draws are keyed by (key, step))


def init_state(m: jax.Array, key: jax.Array | None = None) -> State:
    if key is None:
        key = jax.random.key(0)
    return State(m=normalize(m), t=jnp.zeros((), m.dtype), step=jnp.zeros((), jnp.int32), key=key)


def _step_rhs(field_fn: FieldFn, dt: float, thermal: ThermalFn | None, precession: bool, state: State,
              material: Material) -> Callable[[jax.Array], jax.Array]:
    """dm/dt (1/s) of any stage of the step from ``state``: the drift field plus the step's
    thermal draw, held fixed over all stages (drawn once here)."""
    B_fixed = 0.0 if thermal is None else thermal(state.m, material, state.key, state.step, dt)

    def rhs(m_: jax.Array) -> jax.Array:
        # B, the torque and (in the callers) the stage inputs made once (jaxmag.fusion): XLA:CPU
        # would recompute them in every consumer (each torque component, each exchange neighbour
        # copy, each component of a normalisation).
        B = materialized(field_fn(m_, material) + B_fixed, state.step)
        return materialized(llg_torque(m_, B, material.alpha, precession=precession), state.step)

    return rhs


def stochastic_heun(field_fn: FieldFn, dt: float, *, thermal: ThermalFn | None = None,
                    precession: bool = True) -> tuple[InitFn, StepFn]:
    """Stochastic Heun scheme at fixed ``dt`` (s). ``thermal``: a ``ThermalFn``
    (``fields.thermal.thermal(grid)``), or None for deterministic Heun."""

    def step_fn(state: State, material: Material) -> State:
        m = state.m
        rhs = _step_rhs(field_fn, dt, thermal, precession, state, material)
        k1 = rhs(m)
        m1 = materialized(normalize(m + dt * k1), state.step)
        k2 = rhs(m1)
        m_new = normalize(m + (0.5 * dt) * (k1 + k2))
        return dataclasses.replace(state, m=m_new, t=state.t + dt, step=state.step + 1)

    return init_state, step_fn


def rk4(field_fn: FieldFn, dt: float, *, thermal: ThermalFn | None = None,
        precession: bool = True) -> tuple[InitFn, StepFn]:
    """Classical RK4 at fixed ``dt`` (s); renormalises each step. ``precession=False`` keeps only
    the damping term (``relax``)."""

    def step_fn(state: State, material: Material) -> State:
        m = state.m
        rhs = _step_rhs(field_fn, dt, thermal, precession, state, material)

        def stage(m_: jax.Array) -> jax.Array:
            return rhs(materialized(m_, state.step))

        k1 = rhs(m)
        k2 = stage(m + (0.5 * dt) * k1)
        k3 = stage(m + (0.5 * dt) * k2)
        k4 = stage(m + dt * k3)
        m_new = normalize(m + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4))
        return dataclasses.replace(state, m=m_new, t=state.t + dt, step=state.step + 1)

    return init_state, step_fn


@dataclasses.dataclass(frozen=True)
class SolverSpec:
    """A registered scheme: its factory and what the rest of jaxmag needs to know about it."""

    factory: Solver
    order: int  # deterministic (T = 0) global error ∝ dt^order
    thermal: bool  # takes a ThermalFn, drawn once per step and held over the stages (Stratonovich)
    mx3: int  # MuMax3's SetSolver number of the same scheme at fixed step


SOLVERS: dict[str, SolverSpec] = {
    "heun": SolverSpec(stochastic_heun, order=2, thermal=True, mx3=2),
    "rk4": SolverSpec(rk4, order=4, thermal=True, mx3=4),
}
"""The schemes by the name a configuration file uses."""


def solver_spec(name: str) -> SolverSpec:
    """The ``SOLVERS`` entry ``name``, or ``ValueError`` naming the known ones."""
    try:
        return SOLVERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(SOLVERS)}") from None


def get_solver(solver: str | Solver) -> Solver:
    """A solver factory from its name in ``SOLVERS`` (or the factory itself)."""
    return solver if callable(solver) else solver_spec(solver).factory
