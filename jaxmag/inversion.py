"""Differentiable inversion: recover a per-cell anisotropy map K_u(x, y) from m(t).

Contract
--------
The forward model is the T = 0 LLG solver itself (``rk4`` + ``drivers.trajectory``, a
``lax.scan``), so the misfit between simulated and observed magnetisation movies is
differentiated with ``jax.grad`` through every time step. Everything here is a small pure
function; ``scripts/invert_defects.py`` and ``tests/test_inversion.py`` compose them:

* ``tilt_excitations(grid, tilts)``: E uniform initial states, each tilted away from the easy
  axis in its own direction (the "excitations" of the experiment).
* ``response_fn(grid, ...)``: ``simulate(material, m0s) -> frames`` with frames of shape
  (E, F, nz, ny, nx, 3), the E excitations vmapped.
* ``anisotropy_from_params(theta, K_ref)``: the log-scale parameterisation
  K_u = K_ref · exp(θ) (positive, and smooth in θ around the background θ = 0).
* ``total_variation(K, eps)``: smoothed isotropic TV of a map, the regulariser.
* ``inversion_loss(...)``: ``loss(theta) -> (scalar, metrics)`` = mean squared misfit of the
  movies + ``tv_weight`` · TV(K_u / K_contrast).
* ``make_optimizer`` / ``create_fit_state`` / ``fit_step`` / ``fit``: Optax L-BFGS (default)
  or Adam on θ, Flax-example style (``fit_step(state) -> (state, metrics)``, jitted; a Python
  loop over optimiser steps only, never over time steps).
* ``map_metrics(K_true, K_rec, K_background)``: Pearson r, RMS error (J/m³) and RMS error
  relative to the defect contrast max |K_true − K_background|.
* ``ExampleConfig`` / ``run_example``: the documented experiment (docs/inversion.md).

Array layout as everywhere in jaxmag: maps (nz, ny, nx), vectors (nz, ny, nx, 3), SI units
(K_u in J/m³, time in s). Use float64 (``jax.enable_x64``) for gradient checks.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmag.defects import DefectParams, generate_defects
from jaxmag.drivers import check_time_step, field_terms, trajectory
from jaxmag.fields.terms import STANDARD_TERMS
from jaxmag.fields import effective_field
from jaxmag.grid import Grid
from jaxmag.integrators import init_state, rk4
from jaxmag.material import Material
from jaxmag.pytree import pytree_dataclass

Simulate = Callable[[Material, jax.Array], jax.Array]
LossFn = Callable[[jax.Array], tuple[jax.Array, dict]]


def tilt_excitations(grid: Grid, tilts: Sequence[tuple[float, float, float]], dtype=None) -> jax.Array:
    """(E, nz, ny, nx, 3) uniform unit-vector initial states, one per direction in ``tilts``.

    A useful excitation has m neither parallel nor perpendicular to the easy axis u: the
    anisotropy torque m × B_anis ∝ K_u (m·u) (m × u) vanishes in both cases.
    """
    dirs = np.asarray(tilts, dtype=np.float64)
    if dirs.ndim != 2 or dirs.shape[1] != 3 or dirs.shape[0] == 0:
        raise ValueError(f"tilts must be a non-empty list of 3-vectors, got shape {dirs.shape}")
    norms = np.linalg.norm(dirs, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("tilt directions must be non-zero")
    dirs = dirs / norms
    dtype = dtype or jnp.zeros(()).dtype
    return jnp.broadcast_to(jnp.asarray(dirs, dtype)[:, None, None, None, :], (len(dirs),) + grid.vector_shape)


def response_fn(
    grid: Grid,
    *,
    dt: float,
    num_frames: int,
    steps_per_frame: int,
    terms: Sequence[str] = STANDARD_TERMS,
) -> Simulate:
    """``simulate(material, m0s) -> frames``: T = 0 RK4 of the field ``terms`` (names of
    ``fields.terms.TERMS``) from each of the E initial states ``m0s`` (E, nz, ny, nx, 3); frames
    (E, F, nz, ny, nx, 3), frame f taken after (f + 1) · ``steps_per_frame`` steps of ``dt`` (s).
    Differentiable in ``material``."""
    if not (num_frames > 0 and steps_per_frame > 0):
        raise ValueError("num_frames and steps_per_frame must be positive")
    field_fn = effective_field(field_terms(grid, terms))
    _, step_fn = rk4(field_fn, dt)

    def one(material: Material, m0: jax.Array) -> jax.Array:
        _, frames = trajectory(
            step_fn, init_state(m0), material, num_frames=num_frames, steps_per_frame=steps_per_frame
        )
        return frames

    def simulate(material: Material, m0s: jax.Array) -> jax.Array:
        return jax.vmap(one, in_axes=(None, 0))(material, m0s)

    return simulate


def anisotropy_from_params(theta: jax.Array, K_ref: float) -> jax.Array:
    """K_u = K_ref · exp(θ) in J/m³: positive, θ = 0 is the reference (background) value."""
    return K_ref * jnp.exp(theta)


def params_from_anisotropy(K_u: jax.Array, K_ref: float) -> jax.Array:
    """Inverse of ``anisotropy_from_params``."""
    return jnp.log(K_u / K_ref)


def total_variation(x: jax.Array, eps: float = 1e-3) -> jax.Array:
    """Smoothed isotropic total variation Σ sqrt(|∇x|² + eps²) − eps of a (nz, ny, nx) map,
    with one-sided differences in x and y (open edges). Differentiable everywhere."""
    gx = jnp.diff(x, axis=-1)[..., :-1, :]
    gy = jnp.diff(x, axis=-2)[..., :, :-1]
    return jnp.sum(jnp.sqrt(gx * gx + gy * gy + eps * eps) - eps)


def inversion_loss(
    simulate: Simulate,
    material: Material,
    m0s: jax.Array,
    observed: jax.Array,
    *,
    K_ref: float,
    K_contrast: float,
    tv_weight: float = 0.0,
) -> LossFn:
    """``loss(theta) -> (total, {"misfit", "tv"})``.

    misfit = mean over excitations, frames, cells and components of (m_sim − m_obs)²;
    tv = TV(K_u / K_contrast) / number of cells, added with weight ``tv_weight``. ``material``
    supplies every map except K_u, which comes from θ (shape ``grid.shape``).
    """

    def loss(theta: jax.Array) -> tuple[jax.Array, dict]:
        K_u = anisotropy_from_params(theta, K_ref)
        frames = simulate(material.replace(K_u=K_u), m0s)
        misfit = jnp.mean((frames - observed) ** 2)
        tv = total_variation(K_u / K_contrast) / K_u.size
        return misfit + tv_weight * tv, {"misfit": misfit, "tv": tv}

    return loss


@pytree_dataclass
class FitState:
    theta: jax.Array  # (nz, ny, nx) log-scale parameters of K_u
    opt_state: optax.OptState
    step: jax.Array  # int32


def make_optimizer(name: str, *, learning_rate: float = 0.05, num_steps: int = 100) -> optax.GradientTransformationExtraArgs:
    """``"lbfgs"`` (Optax L-BFGS with zoom line search; ``learning_rate`` unused) or ``"adam"``
    (``learning_rate`` on θ, cosine-decayed to 5 % over ``num_steps``).

    The misfit is ill-conditioned (exchange smooths the response to short-wavelength K_u
    changes), and L-BFGS's curvature model copes with that far better than Adam's diagonal
    scaling: see docs/inversion.md for the measured comparison.
    """
    if name == "lbfgs":
        return optax.lbfgs()
    if name == "adam":
        return optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps, alpha=0.05))
    raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {name!r}")


def create_fit_state(theta0: jax.Array, optimizer: optax.GradientTransformation) -> FitState:
    return FitState(theta=theta0, opt_state=optimizer.init(theta0), step=jnp.zeros((), jnp.int32))


def fit_step(
    state: FitState, objective: Callable[[jax.Array], jax.Array], optimizer: optax.GradientTransformationExtraArgs
) -> tuple[FitState, dict]:
    """One optimiser step on θ for a scalar ``objective(theta)``; metrics are the objective
    and its gradient norm at the θ the step starts from. With L-BFGS the value and gradient
    are taken from the previous line search when it has them (no extra solver run)."""
    if optax.tree.get(state.opt_state, "value") is not None:  # L-BFGS: reuse the line search's
        value, grad = optax.value_and_grad_from_state(objective)(state.theta, state=state.opt_state)
    else:
        value, grad = jax.value_and_grad(objective)(state.theta)
    updates, opt_state = optimizer.update(
        grad, state.opt_state, state.theta, value=value, grad=grad, value_fn=objective
    )
    theta = optax.apply_updates(state.theta, updates)
    metrics = {"objective": value, "grad_norm": jnp.sqrt(jnp.sum(grad * grad))}
    return dataclasses.replace(state, theta=theta, opt_state=opt_state, step=state.step + 1), metrics


def fit(
    loss_fn: LossFn,
    theta0: jax.Array,
    *,
    num_steps: int,
    optimizer: str = "lbfgs",
    learning_rate: float = 0.05,
    callback: Callable[[int, dict], None] | None = None,
) -> tuple[jax.Array, list[dict]]:
    """Minimise ``loss_fn`` over θ from ``theta0`` for ``num_steps`` optimiser steps.

    The objective is the loss divided by its value at ``theta0`` (so it starts at 1 and the
    line search sees a well-scaled function). Returns the final θ and per-step metrics as
    Python floats ("objective", "grad_norm"); ``callback(i, metrics)`` is called after each.
    """
    if num_steps <= 0:
        raise ValueError(f"num_steps must be positive, got {num_steps}")
    scale = loss_fn(theta0)[0]
    if not bool(jnp.isfinite(scale)) or float(scale) <= 0.0:
        raise ValueError(f"the loss at the initial guess must be finite and positive, got {float(scale)}")

    def objective(theta: jax.Array) -> jax.Array:
        return loss_fn(theta)[0] / scale

    opt = make_optimizer(optimizer, learning_rate=learning_rate, num_steps=num_steps)
    step = jax.jit(lambda s: fit_step(s, objective, opt))
    state = create_fit_state(theta0, opt)
    history: list[dict] = []
    for i in range(num_steps):
        state, metrics = step(state)
        metrics = {k: float(v) for k, v in metrics.items()}
        history.append(metrics)
        if callback is not None:
            callback(i, metrics)
    return state.theta, history


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def map_metrics(K_true: np.ndarray, K_rec: np.ndarray, K_background: float) -> dict:
    """Pearson r, RMS error (J/m³) and RMS error over the defect contrast max |K_true − K_bg|."""
    K_true = np.asarray(K_true, np.float64)
    K_rec = np.asarray(K_rec, np.float64)
    contrast = float(np.max(np.abs(K_true - K_background)))
    rms = float(np.sqrt(np.mean((K_rec - K_true) ** 2)))
    return {
        "pearson_r": pearson_r(K_true, K_rec),
        "rms_error_J_m3": rms,
        "defect_contrast_J_m3": contrast,
        "rms_error_rel_contrast": rms / contrast if contrast > 0 else float("nan"),
    }


# --------------------------------------------------------------------------------------------
# The worked example shared by scripts/invert_defects.py and the slow test.


@dataclasses.dataclass(frozen=True)
class ExampleConfig:
    """A T = 0 permalloy film (Ms = 800 kA/m, A_ex = 13 pJ/m, α = 0.05) of ``n × n × 1`` cells
    of 4 nm with in-plane easy axis x, background K_u = ``K_background`` and
    ``num_low`` + ``num_high`` defect blobs (``jaxmag.defects``) where K_u is multiplied by
    ``factor_low`` / ``factor_high``."""

    n: int = 16
    cell_m: float = 4e-9
    Ms: float = 8.0e5
    A_ex: float = 1.3e-11
    alpha: float = 0.05
    K_background: float = 5.0e4
    factor_low: float = 0.2
    factor_high: float = 3.0
    num_low: int = 2
    num_high: int = 2
    seed: int = 0
    tilt_deg: float = 40.0  # angle of each initial state from the easy axis
    dt: float = 2.5e-13
    num_frames: int = 8
    steps_per_frame: int = 25
    terms: tuple[str, ...] = STANDARD_TERMS  # field terms of the forward model
    noise_std: float = 0.0  # Gaussian noise added to every observed m component
    tv_weight: float = 0.0
    optimizer: str = "lbfgs"
    num_steps: int = 60
    learning_rate: float = 0.05  # Adam only


def example_tilts(tilt_deg: float) -> list[tuple[float, float, float]]:
    """Four excitations: m0 tilted by ``tilt_deg`` from the easy axis x towards ±y (in plane)
    and ±z (out of plane, where the demag field drives a fast precession)."""
    c, s = math.cos(math.radians(tilt_deg)), math.sin(math.radians(tilt_deg))
    return [(c, s, 0.0), (c, -s, 0.0), (c, 0.0, s), (c, 0.0, -s)]


def example_truth(config: ExampleConfig) -> np.ndarray:
    """The true (1, n, n) K_u map (J/m³): blobs from ``generate_defects`` (seeded), K_u only."""
    defect_config = DefectParams(
        num_a=config.num_low,
        num_b=config.num_high,
        factor_a=config.factor_low,
        factor_b=config.factor_high,
        size_min=max(4, config.n * config.n // 40),
        size_max=max(8, config.n * config.n // 20),
        min_gap=2,
        margin=2,
        angle_sigma_deg=0.0,
    )
    defects = generate_defects(defect_config, config.n, config.n, np.random.default_rng(config.seed))
    factor = np.concatenate([[1.0], defects.factors])[defects.labels]
    return (config.K_background * factor)[None].astype(np.float64)


def run_example(config: ExampleConfig, callback: Callable[[int, dict], None] | None = None) -> dict:
    """Simulate the observed movies with the true map, invert from the uniform background
    guess, and return {"metrics", "K_true", "K_recovered", "history", "runtime_s"}."""
    grid = Grid(config.n, config.n, 1, config.cell_m, config.cell_m, config.cell_m, "open")
    base = Material.uniform(grid, Ms=config.Ms, A_ex=config.A_ex, K_u=config.K_background, alpha=config.alpha)
    K_true = example_truth(config)
    check_time_step(grid, base.replace(K_u=jnp.asarray(K_true, base.K_u.dtype)), config.dt, config.terms)
    simulate = response_fn(
        grid, dt=config.dt, num_frames=config.num_frames, steps_per_frame=config.steps_per_frame, terms=config.terms
    )
    m0s = tilt_excitations(grid, example_tilts(config.tilt_deg), dtype=base.Ms.dtype)
    start = time.perf_counter()
    observed = jax.jit(simulate)(base.replace(K_u=jnp.asarray(K_true, base.K_u.dtype)), m0s)
    if config.noise_std > 0:
        noise = jax.random.normal(jax.random.key(config.seed + 1), observed.shape, observed.dtype)
        observed = observed + config.noise_std * noise
    loss = inversion_loss(
        simulate,
        base,
        m0s,
        observed,
        K_ref=config.K_background,
        K_contrast=float(np.max(np.abs(K_true - config.K_background))),
        tv_weight=config.tv_weight,
    )
    theta, history = fit(
        loss,
        jnp.zeros(grid.shape, base.Ms.dtype),
        num_steps=config.num_steps,
        optimizer=config.optimizer,
        learning_rate=config.learning_rate,
        callback=callback,
    )
    K_rec = np.asarray(anisotropy_from_params(theta, config.K_background))
    runtime = time.perf_counter() - start
    total, terms = loss(theta)
    metrics = map_metrics(K_true, K_rec, config.K_background)
    metrics.update(
        final_loss=float(total),
        final_misfit=float(terms["misfit"]),
        initial_misfit=float(loss(jnp.zeros(grid.shape, base.Ms.dtype))[1]["misfit"]),
        runtime_s=runtime,
        dtype=str(base.Ms.dtype),
    )
    return {"metrics": metrics, "K_true": K_true, "K_recovered": K_rec, "history": history}
