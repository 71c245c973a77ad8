"""Reference problems with known answers, shared by tests, scripts and the MuMax3 exporter.

* muMAG standard problem 4 (``sp4_*``): a permalloy bar 500 × 125 × 3 nm on 128 × 32 × 1 cells,
  relaxed from the s-state, then switched by field 1, μ0H = (−24.6, 4.3, 0) mT, for 1 ns.
  Reference: MuMax3 engine table in ``shared/fixtures/mumax3/sp4``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.drivers import field_terms, relax, trajectory
from jaxmag.fields import effective_field
from jaxmag.grid import Grid
from jaxmag.integrators import rk4
from jaxmag.material import Material

SP4_FIELD_T = (-24.6e-3, 4.3e-3, 0.0)


def sp4_grid() -> Grid:
    return Grid(128, 32, 1, 500e-9 / 128, 125e-9 / 32, 3e-9, "open")


def sp4_material(grid: Grid, dtype=None) -> Material:
    return Material.uniform(grid, Ms=8.0e5, A_ex=1.3e-11, K_u=0.0, alpha=0.02, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class SP4Result:
    t_s: np.ndarray  # (F,) frame times, s
    m_avg: np.ndarray  # (F, 3) spatially averaged m
    m_relaxed: np.ndarray  # (nz, ny, nx, 3)
    relax_info: dict

    def first_mx_zero_crossing_s(self) -> float:
        return first_zero_crossing(self.t_s, self.m_avg[:, 0])


def first_zero_crossing(t: np.ndarray, y: np.ndarray) -> float:
    """Time of the first sign change of ``y`` from positive to negative, linearly interpolated."""
    idx = np.nonzero((y[:-1] > 0) & (y[1:] <= 0))[0]
    if len(idx) == 0:
        raise ValueError("the series never crosses zero")
    i = idx[0]
    return float(t[i] + (t[i + 1] - t[i]) * y[i] / (y[i] - y[i + 1]))


def run_sp4(
    *,
    dt: float = 1e-13,
    duration_s: float = 1e-9,
    frame_interval_s: float = 1e-11,
    relax_torque_tol: float = 1e-4,
    dtype=jnp.float32,
    progress: Callable[[str], None] | None = None,
) -> SP4Result:
    """Relax the s-state (from uniform (1, 0.1, 0)), then apply field 1; RK4 at fixed ``dt``."""
    grid = sp4_grid()
    material = sp4_material(grid, dtype=dtype)
    m0 = jnp.broadcast_to(jnp.asarray([1.0, 0.1, 0.0], dtype), grid.vector_shape)
    terms = field_terms(grid)
    if progress:
        progress("relaxing the s-state")
    m_relaxed, info = relax(grid, material, m0, terms=terms, torque_tol=relax_torque_tol)
    field_material = material.replace(B_ext=jnp.broadcast_to(jnp.asarray(SP4_FIELD_T, dtype), grid.vector_shape))
    steps_per_frame = int(round(frame_interval_s / dt))
    num_frames = int(round(duration_s / frame_interval_s))
    init_fn, step_fn = rk4(effective_field(terms), dt)
    if progress:
        progress(f"switching: {num_frames} frames × {steps_per_frame} RK4 steps of {dt:g} s")

    @jax.jit
    def run(m):
        _, avg = trajectory(step_fn, init_fn(m), field_material, num_frames=num_frames,
                            steps_per_frame=steps_per_frame, observe=lambda s: jnp.mean(s.m, axis=(0, 1, 2)))
        return avg

    avg = np.asarray(run(m_relaxed), dtype=np.float64)
    m_start = np.asarray(jnp.mean(m_relaxed, axis=(0, 1, 2)), dtype=np.float64)
    t = np.arange(num_frames + 1) * steps_per_frame * dt
    return SP4Result(t, np.vstack([m_start, avg]), np.asarray(m_relaxed), info)
