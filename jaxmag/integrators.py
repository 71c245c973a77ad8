"""Time integrators as ``(init_fn, step_fn)`` pairs; they know the LLG right-hand side only
through a ``FieldFn`` and never which physical terms it sums.

* ``stochastic_heun``: fixed-step Heun for the stochastic LLG. The thermal field of step ``n`` is
  drawn once (``fold_in(key, n)``) and used in predictor and corrector, which makes the scheme
  converge to the Stratonovich solution (the physical interpretation of Brown's equation); m is
  renormalised after each stage, as in MuMax3's Heun solver (``SetSolver(2)``).
* ``rk4``: classical fourth-order Runge–Kutta at fixed step, for T = 0 dynamics (standard
  problem 4) and relaxation.

``State`` carries m, time (s), step index and the run's random key.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from jaxmag.fields import FieldFn
from jaxmag.fields.thermal import thermal_field, thermal_field_scale
from jaxmag.grid import Grid
from jaxmag.llg import llg_torque, normalize
from jaxmag.material import Material
from jaxmag.pytree import pytree_dataclass

InitFn = Callable[..., "State"]
StepFn = Callable[["State", Material], "State"]


@pytree_dataclass
class State:
    m: jax.Array  # (nz, ny, nx, 3), unit vectors (zero in vacuum)
    t: jax.Array  # s
    step: jax.Array  # int32 step counter, also the thermal noise index
    key: jax.Array  # the run's jax.random key (constant; noise uses fold_in(key, step))


def init_state(m: jax.Array, key: jax.Array | None = None) -> State:
    if key is None:
        key = jax.random.key(0)
    return State(m=normalize(m), t=jnp.zeros((), m.dtype), step=jnp.zeros((), jnp.int32), key=key)


def stochastic_heun(grid: Grid, field_fn: FieldFn, dt: float, *, thermal: bool = True) -> tuple[InitFn, StepFn]:
    """Stochastic Heun scheme with fixed ``dt`` (s). ``thermal=False`` drops the Langevin field
    (plain deterministic Heun)."""

    def step_fn(state: State, material: Material) -> State:
        m = state.m
        B_fixed = 0.0
        if thermal:
            scale = thermal_field_scale(grid, material, dt)
            B_fixed = thermal_field(state.key, state.step, scale, m.dtype)

        def rhs(m_: jax.Array) -> jax.Array:
            return llg_torque(m_, field_fn(m_, material) + B_fixed, material.alpha)

        k1 = rhs(m)
        m1 = normalize(m + dt * k1)
        k2 = rhs(m1)
        m_new = normalize(m + (0.5 * dt) * (k1 + k2))
        return dataclasses.replace(state, m=m_new, t=state.t + dt, step=state.step + 1)

    return init_state, step_fn


def rk4(grid: Grid, field_fn: FieldFn, dt: float, *, precession: bool = True) -> tuple[InitFn, StepFn]:
    """Classical RK4 at fixed ``dt`` (s) for deterministic (T = 0) LLG; renormalises each step."""

    def step_fn(state: State, material: Material) -> State:
        def rhs(m_: jax.Array) -> jax.Array:
            return llg_torque(m_, field_fn(m_, material), material.alpha, precession=precession)

        m = state.m
        k1 = rhs(m)
        k2 = rhs(m + (0.5 * dt) * k1)
        k3 = rhs(m + (0.5 * dt) * k2)
        k4 = rhs(m + dt * k3)
        m_new = normalize(m + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4))
        return dataclasses.replace(state, m=m_new, t=state.t + dt, step=state.step + 1)

    return init_state, step_fn
