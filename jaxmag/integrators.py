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
precession=True) -> (init_fn, step_fn)``; ``SOLVERS`` names them for configuration files.
``State`` carries m, time (s), step index and the run's random key.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Callable

import jax
import jax.numpy as jnp

from jaxmag.fields import FieldFn
from jaxmag.fusion import materialized
from jaxmag.grid import Grid
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


def _legacy_arguments(name: str, args: tuple) -> tuple[FieldFn, float]:
    """Accept the old ``solver(grid, field_fn, dt)`` call (grid unused), with a warning."""
    if args and isinstance(args[0], Grid):
        warnings.warn(
            f"{name}(grid, field_fn, dt) is deprecated: call {name}(field_fn, dt, thermal=...); "
            "the solver no longer needs the grid",
            DeprecationWarning,
            stacklevel=3,
        )
        args = args[1:]
    if len(args) != 2:
        raise TypeError(f"{name}(field_fn, dt, *, thermal=None, precession=True) takes 2 positional arguments")
    return args[0], args[1]


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


def _heun(field_fn: FieldFn, dt: float, thermal: ThermalFn | None, precession: bool) -> tuple[InitFn, StepFn]:
    def step_fn(state: State, material: Material) -> State:
        m = state.m
        rhs = _step_rhs(field_fn, dt, thermal, precession, state, material)
        k1 = rhs(m)
        m1 = materialized(normalize(m + dt * k1), state.step)
        k2 = rhs(m1)
        m_new = normalize(m + (0.5 * dt) * (k1 + k2))
        return dataclasses.replace(state, m=m_new, t=state.t + dt, step=state.step + 1)

    return init_state, step_fn


def stochastic_heun(*args, thermal: ThermalFn | bool | None = None, precession: bool = True) -> tuple[InitFn, StepFn]:
    """Stochastic Heun scheme ``stochastic_heun(field_fn, dt, *, thermal=None)``, fixed ``dt`` (s).

    ``thermal``: a ``ThermalFn`` (``fields.thermal.thermal(grid)``) or None for deterministic
    Heun. Deprecated form: ``stochastic_heun(grid, field_fn, dt, thermal=True)``, where
    ``thermal=True`` (its default) builds ``thermal(grid)``.
    """
    legacy = bool(args) and isinstance(args[0], Grid)
    field_fn, dt = _legacy_arguments("stochastic_heun", args)
    if legacy and (thermal is None or thermal is True):
        from jaxmag.fields.thermal import thermal as thermal_term  # only for the deprecated form

        thermal = thermal_term(args[0])
    elif thermal is True:
        raise TypeError("thermal=True needs a grid: pass thermal=jaxmag.fields.thermal.thermal(grid)")
    if thermal is False:
        thermal = None
    return _heun(field_fn, dt, thermal, precession)


def _rk4(field_fn: FieldFn, dt: float, thermal: ThermalFn | None, precession: bool) -> tuple[InitFn, StepFn]:
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


def rk4(*args, thermal: ThermalFn | None = None, precession: bool = True) -> tuple[InitFn, StepFn]:
    """Classical RK4 ``rk4(field_fn, dt, *, thermal=None, precession=True)`` at fixed ``dt`` (s);
    renormalises each step. ``precession=False`` keeps only the damping term (``relax``).
    Deprecated form: ``rk4(grid, field_fn, dt)`` (the grid was never used)."""
    field_fn, dt = _legacy_arguments("rk4", args)
    return _rk4(field_fn, dt, thermal, precession)


SOLVERS: dict[str, Solver] = {"heun": stochastic_heun, "rk4": rk4}
"""Solver factories by the name a configuration file uses."""


def get_solver(solver: str | Solver) -> Solver:
    """A solver factory from its name in ``SOLVERS`` (or the factory itself)."""
    if callable(solver):
        return solver
    try:
        return SOLVERS[solver]
    except KeyError:
        raise ValueError(f"unknown solver {solver!r}; known solvers: {', '.join(SOLVERS)}") from None
