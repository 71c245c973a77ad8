"""Drivers: batching, differentiability, relaxation and input checks."""
import warnings

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from jaxmag.drivers import field_terms, movie_simulator, relax, stable_time_step, check_time_step, trajectory
from jaxmag.fields import effective_field
from jaxmag.grid import Grid
from jaxmag.integrators import rk4
from jaxmag.material import Material, validate_material


@pytest.fixture(scope="module")
def small():
    grid = Grid(8, 8, 1, 4e-9, 4e-9, 4e-9, "periodic")
    material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=500.0, alpha=0.02, temperature=300.0)
    sim = movie_simulator(grid, dt=1e-13, burn_in_steps=20, steps_per_frame=10, num_frames=4, components="xz")
    return grid, material, sim


def test_batched_run_equals_runs_one_by_one(small):
    grid, material, sim = small
    keys = jax.random.split(jax.random.key(7), 3)
    scales = jnp.asarray([0.5, 1.0, 2.0])
    materials = jax.vmap(lambda s: material.replace(K_u=material.K_u * s, A_ex=material.A_ex * s))(scales)
    m0 = jnp.zeros(grid.vector_shape).at[..., 0].set(1.0)
    batched = jax.jit(jax.vmap(sim, in_axes=(0, None, 0)))(materials, m0, keys)
    single = jax.jit(sim)
    assert batched.shape == (3, 4, 1, 8, 8, 2)
    for i in range(3):
        one = single(jax.tree.map(lambda x: x[i], materials), m0, keys[i])
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(one), atol=2e-6)
    # different keys give different noise
    assert not np.allclose(np.asarray(batched[0]), np.asarray(batched[1]))


def test_grad_wrt_anisotropy_matches_finite_differences():
    with jax.enable_x64(True):
        grid = Grid(4, 4, 1, 4e-9, 4e-9, 4e-9, "open")
        base = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=2e4, alpha=0.1, dtype=jnp.float64,
                                easy_axis=(1.0, 0.3, 0.0))
        field_fn = effective_field(field_terms(grid))
        init_fn, step_fn = rk4(field_fn, 1e-13)
        m0 = jnp.zeros(grid.vector_shape, jnp.float64).at[..., 0].set(0.8).at[..., 2].set(0.6)

        def objective(K_u):
            material = base.replace(K_u=K_u)
            final, _ = trajectory(step_fn, init_fn(m0), material, num_frames=1, steps_per_frame=60)
            return jnp.sum(final.m[..., 1])

        grad = jax.jit(jax.grad(objective))(base.K_u)
        objective = jax.jit(objective)
        h = 1.0  # J/m³ on K = 2e4
        cell = (0, 1, 2)
        bump = jnp.zeros_like(base.K_u).at[cell].set(h)
        fd = (objective(base.K_u + bump) - objective(base.K_u - bump)) / (2 * h)
        assert abs(float(fd)) > 1e-9
        np.testing.assert_allclose(float(grad[cell]), float(fd), rtol=1e-5)


def test_relax_reaches_torque_tolerance(small):
    grid, material, _ = small
    material = material.replace(temperature=jnp.zeros_like(material.temperature))
    m0 = jnp.zeros(grid.vector_shape).at[..., 0].set(1.0).at[..., 2].set(0.5)
    m, info = relax(grid, material, m0, torque_tol=1e-3)
    assert info["converged"] and info["max_torque_T"] <= 1e-3
    assert float(jnp.abs(m[..., 2]).max()) < 0.01  # thin film: m lies in-plane


def test_bad_input_raises_clear_errors(small):
    grid, material, _ = small
    with pytest.raises(ValueError, match="nx"):
        Grid(0, 4, 1, 1e-9, 1e-9, 1e-9)
    with pytest.raises(ValueError, match="metres"):
        Grid(4, 4, 1, 4.0, 4.0, 4.0)
    with pytest.raises(ValueError, match="Ms"):
        validate_material(material.replace(Ms=-material.Ms), grid)
    with pytest.raises(ValueError, match="temperature"):
        validate_material(material.replace(temperature=-material.temperature), grid)
    with pytest.raises(ValueError, match="K_u.*NaN"):
        validate_material(material.replace(K_u=material.K_u.at[0, 0, 0].set(jnp.nan)), grid)
    with pytest.raises(ValueError, match="A_ex has shape"):
        validate_material(material.replace(A_ex=material.A_ex[:, :4]), grid)
    with pytest.raises(ValueError, match="dt"):
        check_time_step(grid, material, -1e-13)
    with pytest.warns(RuntimeWarning, match="stability limit"):
        check_time_step(grid, material, 10 * stable_time_step(grid, material))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_time_step(grid, material, 1e-13)


def test_terms_by_name_and_solver_choice(small):
    """Named terms equal the same ``FieldFn`` passed ready-made; the solver is an argument (RK4
    holds the thermal draw over its four stages)."""
    grid, material, sim = small
    m0 = jnp.zeros(grid.vector_shape).at[..., 0].set(1.0)
    key = jax.random.key(2)
    kw = dict(dt=1e-13, burn_in_steps=0, steps_per_frame=5, num_frames=2, components="xyz")
    named = movie_simulator(grid, terms=("exchange", "anisotropy", "zeeman"), **kw)
    ready = movie_simulator(grid, terms=field_terms(grid, ("exchange", "anisotropy", "zeeman")), **kw)
    np.testing.assert_array_equal(np.asarray(named(material, m0, key)), np.asarray(ready(material, m0, key)))
    heun = movie_simulator(grid, **kw)(material, m0, key)
    rk = movie_simulator(grid, solver="rk4", **kw)(material, m0, key)
    np.testing.assert_allclose(np.asarray(rk), np.asarray(heun), atol=5e-3)  # same noise, 2nd vs 4th order drift
    assert not np.array_equal(np.asarray(rk), np.asarray(heun))
    with pytest.raises(ValueError, match="unknown field term"):
        movie_simulator(grid, terms=("exchange", "dmi"), **kw)


def test_stable_time_step_sums_the_terms_stiffness(small):
    """1/(γ B_max) with B_max the largest per-cell sum of the terms' bounds: the standard terms give
    2A/Ms Σ4/d² + 2|K|/Ms + μ0 Ms + |B_ext|; leaving demag out raises the limit."""
    from jaxmag.constants import GAMMA_LL, MU0

    grid, material, _ = small
    material = material.replace(B_ext=jnp.broadcast_to(jnp.asarray([0.0, 0.0, 0.05]), grid.vector_shape))
    Ms, A, K = 8e5, 1.3e-11, 500.0
    B_max = 2 * A / Ms * (4 / 4e-9**2 + 4 / 4e-9**2) + 2 * K / Ms + MU0 * Ms + 0.05
    assert stable_time_step(grid, material) == pytest.approx(1 / (GAMMA_LL * B_max), rel=1e-6)
    no_demag = stable_time_step(grid, material, ("exchange", "anisotropy", "zeeman"))
    assert no_demag == pytest.approx(1 / (GAMMA_LL * (B_max - MU0 * Ms)), rel=1e-6)


def test_cpu_chunked_batch_is_bit_identical(small):
    """On CPU a vmapped movie runs in chunks (lax.map) of cpu_chunk_cells: same bits as one wide vmap."""
    grid, material, _ = small
    kw = dict(dt=1e-13, burn_in_steps=3, steps_per_frame=2, num_frames=2, components="xz")
    keys = jax.random.split(jax.random.key(5), 3)
    m0 = jnp.zeros(grid.vector_shape).at[..., 0].set(1.0)
    wide = jax.jit(jax.vmap(movie_simulator(grid, cpu_chunk_cells=None, **kw), in_axes=(None, None, 0)))
    chunked = jax.jit(jax.vmap(movie_simulator(grid, cpu_chunk_cells=2 * grid.num_cells, **kw), in_axes=(None, None, 0)))
    np.testing.assert_array_equal(np.asarray(chunked(material, m0, keys)), np.asarray(wide(material, m0, keys)))


def test_cpu_batch_of_one_runs_the_unbatched_program(small):
    """A vmapped batch of one film runs the film's own program on CPU: the same bits as no vmap."""
    grid, material, _ = small
    sim = movie_simulator(grid, dt=1e-13, burn_in_steps=3, steps_per_frame=2, num_frames=2, components="xz")
    key = jax.random.key(9)
    m0 = jnp.zeros(grid.vector_shape).at[..., 0].set(1.0)
    batched = jax.jit(jax.vmap(sim, in_axes=(None, None, 0)))(material, m0, key[None])
    alone = jax.jit(sim)(material, m0, key)
    assert batched.shape == (1,) + alone.shape
    np.testing.assert_array_equal(np.asarray(batched[0]), np.asarray(alone))
    # the traced film program carries no batch axis of 1 (it costs ~9 % at 128² on CPU)
    from jaxmag.drivers import cpu_chunked_vmap

    jaxpr = str(jax.make_jaxpr(jax.vmap(cpu_chunked_vmap(lambda x: jnp.sin(x) * 2.0, 4)))(jnp.ones((1, 5))))
    assert "f32[5]" in jaxpr and "sin" in jaxpr
    assert not any("sin" in line and "f32[1,5]" in line for line in jaxpr.splitlines())
