"""The solver's step for fitted films: stochastic Heun needs a finer step than
``drivers.stable_time_step`` for stiff, weakly damped films (``heun_time_step``), and the fit
refines the regime's step by a whole factor where a parameter set it explores needs it
(``refinement``, ``refined_spec``, ``stable_spec``). Times in s."""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from jaxmag.grid import Grid
from jaxmag.material import Material
from jaxmag.simulate import MovieSpec


def heun_time_step(grid: Grid, material: Material, terms: Sequence[str]) -> float:
    """The largest step (s) at which stochastic Heun keeps the stiffest magnon of ``material`` stable.

    ``drivers.stable_time_step`` is 1/(γ B_max); but an undamped precession (imaginary eigenvalue
    i ω) is amplified by Heun whenever ω Δt > 0, and only the damping holds it: with eigenvalue
    ω (i − α) the amplification stays below 1 while (ω Δt)³ ≲ 8 α, i.e. ω Δt < 2 α^⅓. Measured: a
    film of A_ex = 2.3e-11 J/m, α = 0.01 at dt = 1e-13 s, below ``stable_time_step`` (1.9e-13 s),
    grows a checkerboard mode (docs/fit.md). The step is the smaller of the two, with a 0.8 margin."""
    from jaxmag.drivers import stable_time_step

    alpha = float(np.min(np.asarray(material.alpha)))
    return stable_time_step(grid, material, terms) * min(1.0, 0.8 * 2.0 * alpha ** (1.0 / 3.0))


def refinement(grid: Grid, spec: MovieSpec, material: Material) -> int:
    """The smallest integer k with ``spec.dt / k`` within ``heun_time_step`` of ``material``."""
    return max(1, math.ceil(spec.dt / heun_time_step(grid, material, spec.terms) - 1e-9))


def refined_spec(spec: MovieSpec, k: int) -> MovieSpec:
    """``spec`` at a step k times smaller; burn-in and frames keep their times."""
    if k == 1:
        return spec
    if spec.exposure.exposure_steps:
        raise ValueError(f"the fitted film needs a step {k} times smaller than dt = {spec.dt:g} s, which an exposure "
                       "plan of whole steps does not allow; give the regime a smaller [simulation] dt")
    return dataclasses.replace(spec, dt=spec.dt / k, burn_in_steps=spec.burn_in_steps * k,
                               steps_per_frame=spec.steps_per_frame * k)


def stable_spec(grid: Grid, spec: MovieSpec, material: Material, scale: np.ndarray = 1.0) -> MovieSpec:
    """``spec`` refined (``refinement``) for ``material`` with A_ex and K_u multiplied by ``scale``
    (a number or an (ny, nx) map)."""
    scale = np.asarray(scale, np.float64)
    stiff = material.replace(A_ex=np.asarray(material.A_ex) * scale, K_u=np.asarray(material.K_u) * scale)
    return refined_spec(spec, refinement(grid, spec, stiff))
