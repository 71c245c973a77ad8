"""Drivers: run an integrator over time (``trajectory``), make thermal movies for datasets
(``movie_simulator``), and relax to equilibrium (``relax``).

Everything returned here is a pure function of (material, m0, key) and composes with
``jax.jit``, ``jax.vmap`` (a batch of independent simulations, each with its own maps and key)
and ``jax.grad`` (``trajectory`` is a ``lax.scan``; ``relax`` uses a while loop and is therefore
not reverse-differentiable).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.constants import GAMMA_LL
from jaxmag.fields import FieldFn, effective_field
from jaxmag.fields.terms import STANDARD_TERMS, TERMS, check_term_names
from jaxmag.fields.thermal import thermal
from jaxmag.grid import Grid
from jaxmag.integrators import Solver, State, StepFn, get_solver, init_state, solver_spec
from jaxmag.llg import max_torque
from jaxmag.material import Material

_COMPONENT_INDEX = {"x": 0, "y": 1, "z": 2}


def field_terms(grid: Grid, terms: Sequence[str] = STANDARD_TERMS) -> tuple[FieldFn, ...]:
    """The ``FieldFn`` of each named term of ``fields.terms.TERMS`` for ``grid``, in order
    (default: exchange, uniaxial anisotropy, Zeeman and demag)."""
    return tuple(TERMS[name].factory(grid) for name in check_term_names(terms))


def _resolve_terms(grid: Grid, terms: Sequence[str | FieldFn] | None) -> tuple[FieldFn, ...]:
    """Names from the registry and ready ``FieldFn`` may be mixed; None means the standard set."""
    if terms is None:
        return field_terms(grid)
    if isinstance(terms, str):
        raise TypeError(f"terms must be a sequence of names or field functions, got the string {terms!r}")
    check_term_names([t for t in terms if isinstance(t, str)])
    return tuple(TERMS[t].factory(grid) if isinstance(t, str) else t for t in terms)


def stable_time_step(grid: Grid, material: Material, terms: Sequence[str] = STANDARD_TERMS) -> float:
    """Largest advisable fixed step (s) for explicit LLG integration: 1/(γ B_max).

    B_max is the largest over the magnetic cells of the sum of the ``terms``' stiffness bounds
    (``fields.terms.Term.stiffness``: exchange 2A/Ms · Σ 4/d² over the dimensions with more than
    one cell, anisotropy 2|K_u|/Ms, demag μ0 Ms, Zeeman |B_ext|), which bounds the spectral
    radius of the linearised field. Heun and RK4 are stable for |λ Δt| of order 1–2.8, so this
    has a safety margin. ``math.inf`` when the terms have no stiffness (e.g. a zero applied field).
    """
    Ms = np.asarray(material.Ms, dtype=np.float64)
    present = Ms > 0
    if not np.any(present):
        raise ValueError("Material.Ms is zero everywhere: nothing to simulate")
    B = sum(TERMS[name].stiffness(grid, material) for name in check_term_names(terms))
    B_max = float(np.max(np.broadcast_to(B, Ms.shape)[present]))
    return 1.0 / (GAMMA_LL * B_max) if B_max > 0 else math.inf


def check_time_step(grid: Grid, material: Material, dt: float, terms: Sequence[str] = STANDARD_TERMS) -> None:
    """Warn if ``dt`` exceeds ``stable_time_step`` of ``terms``; raise for non-positive or non-finite dt."""
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"time step dt must be a positive number of seconds, got {dt!r}")
    if isinstance(material.Ms, jax.core.Tracer):
        return
    limit = stable_time_step(grid, material, terms)
    if dt > limit:
        warnings.warn(
            f"dt = {dt:.3g} s exceeds the estimated stability limit {limit:.3g} s "
            "(1/(γ B_max)); the integration may blow up or be inaccurate",
            RuntimeWarning,
            stacklevel=3,
        )


def trajectory(
    step_fn: StepFn,
    state: State,
    material: Material,
    *,
    num_frames: int,
    steps_per_frame: int,
    observe: Callable[[State], jax.Array] = lambda s: s.m,
    exposure_steps: int = 0,
) -> tuple[State, jax.Array]:
    """Advance ``num_frames × steps_per_frame`` steps; return the final state and
    ``observe(state)`` after each block of ``steps_per_frame`` steps, stacked on axis 0.

    ``exposure_steps`` E (``1 <= E <= steps_per_frame``; 0: off, the default): each frame is
    instead the mean of ``observe`` over the states after each of the last E steps of its block
    (a detector's exposure, ``jaxmag.exposure``), summed in the scan carry, never stored per
    step. The running sum is in the observed dtype: in float32 its relative round-off stays
    below ~E·6e-8 (typically √E·6e-8).
    """

    def advance(s: State, _):
        return step_fn(s, material), None

    if not exposure_steps:  # a Python branch: the default program is the one without exposure

        def frame(s: State, _):
            s, _ = jax.lax.scan(advance, s, None, length=steps_per_frame)
            return s, observe(s)

        return jax.lax.scan(frame, state, None, length=num_frames)

    if not (isinstance(exposure_steps, (int, np.integer)) and 0 < exposure_steps <= steps_per_frame):
        raise ValueError(f"exposure_steps must be an integer in [0, steps_per_frame = {steps_per_frame}], "
                         f"got {exposure_steps!r}")
    E = int(exposure_steps)

    def expose(carry, _):
        s, total = carry
        s = step_fn(s, material)
        return (s, jax.tree.map(jnp.add, total, observe(s))), None

    def exposed_frame(s: State, _):
        s = run_steps(step_fn, s, material, int(steps_per_frame) - E)
        zero = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(observe, s))
        (s, total), _ = jax.lax.scan(expose, (s, zero), None, length=E)
        return s, jax.tree.map(lambda x: x / E, total)

    return jax.lax.scan(exposed_frame, state, None, length=num_frames)


def run_steps(step_fn: StepFn, state: State, material: Material, num_steps: int) -> State:
    """Advance ``num_steps`` steps without observing (burn-in)."""
    if num_steps == 0:
        return state
    state, _ = jax.lax.scan(lambda s, _: (step_fn(s, material), None), state, None, length=num_steps)
    return state


def movie_simulator(
    grid: Grid,
    *,
    dt: float,
    burn_in_steps: int,
    steps_per_frame: int,
    num_frames: int,
    components: str = "xz",
    terms: Sequence[str | FieldFn] | None = None,
    solver: str | Solver = "heun",
    cpu_chunk_cells: int | None = 16384,
    exposure_steps: int = 0,
    camera_window_steps: int = 0,
) -> Callable[[Material, jax.Array, jax.Array], jax.Array]:
    """A pure function ``simulate(material, m0, key) -> frames`` for thermal movies.

    ``solver`` (a name of ``integrators.SOLVERS`` or a solver factory; default stochastic Heun)
    at fixed ``dt`` (s) with the thermal field of ``fields.thermal``: ``burn_in_steps`` steps,
    then one frame every ``steps_per_frame`` steps. ``frames`` has shape (num_frames, nz, ny, nx,
    C) with C = len(components), the requested magnetisation components. ``terms``: names of
    ``fields.terms.TERMS`` and/or ``FieldFn`` (default: the standard four). The noise depends
    only on ``key``, so ``jax.vmap(simulate)`` over a batch equals running each one alone.

    Exposure (``jaxmag.exposure``; both 0 by default: instantaneous frames, the same program as
    without them): ``exposure_steps`` E >= 1 makes each frame the mean of m over the last E steps
    of its interval (``trajectory``); ``camera_window_steps`` W >= 1 is the camera-rate limit:
    burn-in, then the mean of m over W steps, broadcast to all ``num_frames`` frames (the
    residual fluctuation of a ms-s exposure is neglected). ``steps_per_frame`` is then not
    simulated (it may be 10¹⁰), and the cost is burn-in + W steps whatever ``num_frames``.

    ``cpu_chunk_cells``: under ``jax.vmap`` on a CPU, the batch is run in sequential chunks of
    about this many cells (``lax.map``): a 128² film's step then works in cache, 8x faster at
    batch 8 than one wide vmap, while small films still batch. Other backends (GPU) always run
    the whole batch at once. The result is bit-identical either way; ``None`` turns it off
    (it also turns off reverse-mode differentiation of ``vmap(simulate)``, which chunking lacks).
    """
    if not components or any(c not in _COMPONENT_INDEX for c in components):
        raise ValueError(f"components must be letters from 'xyz', got {components!r}")
    for name, value in (("burn_in_steps", burn_in_steps), ("steps_per_frame", steps_per_frame), ("num_frames", num_frames)):
        if not isinstance(value, (int, np.integer)) or value < 0 or (name != "burn_in_steps" and value == 0):
            raise ValueError(f"{name} must be a {'non-negative' if name == 'burn_in_steps' else 'positive'} integer, got {value!r}")
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
    for name, value in (("exposure_steps", exposure_steps), ("camera_window_steps", camera_window_steps)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer (0: off), got {value!r}")
    if exposure_steps and camera_window_steps:
        raise ValueError("exposure_steps and camera_window_steps exclude each other (jaxmag.exposure: one mode)")
    if exposure_steps > steps_per_frame:
        raise ValueError(f"exposure_steps = {exposure_steps} exceeds steps_per_frame = {steps_per_frame}: "
                         "an exposure longer than the frame interval would overlap the next frame")
    if isinstance(solver, str) and not solver_spec(solver).thermal:
        raise ValueError(f"solver {solver!r} takes no thermal field (integrators.SOLVERS); thermal movies need one that does")
    field_fn = effective_field(_resolve_terms(grid, terms))
    init_fn, step_fn = get_solver(solver)(field_fn, dt, thermal=thermal(grid))
    index = jnp.asarray([_COMPONENT_INDEX[c] for c in components])

    observe = lambda s: jnp.take(s.m, index, axis=-1)

    def simulate(material: Material, m0: jax.Array, key: jax.Array) -> jax.Array:
        state = run_steps(step_fn, init_fn(m0, key), material, int(burn_in_steps))
        if camera_window_steps:  # camera rate: one window, the same film in every frame
            W = int(camera_window_steps)
            _, film = trajectory(step_fn, state, material, num_frames=1, steps_per_frame=W, observe=observe,
                                 exposure_steps=W)
            return jnp.broadcast_to(film, (int(num_frames),) + film.shape[1:])
        _, frames = trajectory(
            step_fn,
            state,
            material,
            num_frames=int(num_frames),
            steps_per_frame=int(steps_per_frame),
            observe=observe,
            exposure_steps=int(exposure_steps),
        )
        return frames

    if cpu_chunk_cells is None:
        return simulate
    return cpu_chunked_vmap(simulate, max(1, int(cpu_chunk_cells) // grid.num_cells))


def cpu_chunked_vmap(fn: Callable, chunk: int) -> Callable:
    """``fn`` whose ``jax.vmap`` runs the batch ``chunk`` at a time (``lax.map``) on CPU, whole elsewhere.

    Each element of a batch is computed by the same program either way, so the results are
    bit-identical; only cache behaviour differs (a wide batch of large films streams through
    memory on every step, a chunk stays in cache).
    """
    wrapped = jax.custom_batching.custom_vmap(fn)

    @wrapped.def_vmap
    def rule(axis_size, in_batched, *args):
        args = tuple(
            jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x)), arg, batched)
            for arg, batched in zip(args, in_batched)
        )
        whole = jax.vmap(fn)
        if axis_size == 1:
            # one film: the unbatched program (a batch axis of 1 costs ~9 % on CPU, measured at 128²)
            out = fn(*jax.tree.map(lambda x: x[0], args))
            return jax.tree.map(lambda x: x[None], out), True
        if chunk >= axis_size:
            return whole(*args), True

        def chunked(*a):
            return jax.lax.map(lambda x: fn(*x), a, batch_size=chunk if chunk > 1 else None)

        return jax.lax.platform_dependent(*args, cpu=chunked, default=whole), True

    return wrapped


def relax(
    grid: Grid,
    material: Material,
    m0: jax.Array,
    *,
    terms: Sequence[str | FieldFn] | None = None,
    torque_tol: float = 1e-5,
    dt: float | None = None,
    max_steps: int = 200_000,
    check_every: int = 50,
    solver: str | Solver = "rk4",
) -> tuple[jax.Array, dict]:
    """Relax ``m0`` to a local energy minimum by damping-only LLG (precession off, as MuMax3's
    ``relax()``), ``solver`` (default RK4) at fixed step, until max |m × B| < ``torque_tol`` (T)
    or ``max_steps``. ``terms`` as for ``movie_simulator``. ``dt`` (s): default twice
    ``stable_time_step`` of the standard terms (damping-only steps tolerate more).

    Returns ``(m, info)`` with info = {"steps", "max_torque_T", "converged"}.
    """
    field_fn = effective_field(_resolve_terms(grid, terms))
    relax_material = material.replace(alpha=jnp.ones_like(material.alpha))
    if dt is None:
        dt = 2.0 * stable_time_step(grid, material)
    _, step_fn = get_solver(solver)(field_fn, dt, precession=False)

    @jax.jit
    def run(m):
        def torque(s):
            return max_torque(s.m, field_fn(s.m, relax_material))

        def cond(carry):
            s, tq = carry
            return (tq > torque_tol) & (s.step < max_steps)

        def body(carry):
            s, _ = carry
            s = run_steps(step_fn, s, relax_material, check_every)
            return s, torque(s)

        s0 = init_state(m)
        s, tq = jax.lax.while_loop(cond, body, (s0, torque(s0)))
        return s.m, s.step, tq

    m, steps, tq = run(m0)
    tq = float(tq)
    return m, {"steps": int(steps), "max_torque_T": tq, "converged": bool(tq <= torque_tol)}
