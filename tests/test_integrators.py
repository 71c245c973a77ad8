"""Integrators: energy decay at T = 0, unit norm, and the convergence order of every ``SOLVERS`` entry."""
import numpy as np
import jax
import jax.numpy as jnp
import pytest

from jaxmag.drivers import field_terms, trajectory
from jaxmag.energy import total_energy
from jaxmag.fields import effective_field
from jaxmag.fields.anisotropy import uniaxial_anisotropy
from jaxmag.fields.thermal import thermal
from jaxmag.grid import Grid
from jaxmag.integrators import SOLVERS, get_solver, stochastic_heun
from jaxmag.material import Material


@pytest.fixture(scope="module")
def film():
    grid = Grid(16, 8, 1, 4e-9, 4e-9, 3e-9, "open")
    material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=500.0, alpha=0.5, temperature=0.0)
    rng = np.random.default_rng(3)
    m0 = rng.normal(size=grid.vector_shape).astype(np.float32)
    m0 /= np.linalg.norm(m0, axis=-1, keepdims=True)
    return grid, material, jnp.asarray(m0)


@pytest.mark.parametrize("scheme", list(SOLVERS))
def test_energy_never_increases_at_high_damping(film, scheme):
    grid, material, m0 = film
    field_fn = effective_field(field_terms(grid))
    energy = total_energy(grid)
    init_fn, step_fn = SOLVERS[scheme].factory(field_fn, 5e-14)
    _, (E, norms) = jax.jit(
        lambda mat, m: trajectory(step_fn, init_fn(m), mat, num_frames=60, steps_per_frame=10,
                                  observe=lambda s: (energy(s.m, mat), jnp.linalg.norm(s.m, axis=-1)))
    )(material, m0)
    E = np.asarray(E)
    # float32 round-off in a sum of ~100 cell energies: allow 1e-6 relative jitter, no real rise.
    assert np.all(np.diff(E) <= 1e-6 * np.abs(E).max()), np.diff(E).max()
    assert E[-1] < E[0]
    np.testing.assert_allclose(np.asarray(norms), 1.0, atol=1e-5)


def test_unit_norm_float64_at_temperature():
    with jax.enable_x64(True):
        grid = Grid(8, 8, 1, 4e-9, 4e-9, 4e-9, "periodic")
        material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=500.0, alpha=0.02, temperature=300.0, dtype=jnp.float64)
        init_fn, step_fn = stochastic_heun(effective_field(field_terms(grid)), 1e-13, thermal=thermal(grid))
        m0 = jnp.zeros(grid.vector_shape, jnp.float64).at[..., 0].set(1.0)
        _, norms = trajectory(step_fn, init_fn(m0, jax.random.key(0)), material, num_frames=5, steps_per_frame=20,
                              observe=lambda s: jnp.linalg.norm(s.m, axis=-1))
        assert norms.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(norms), 1.0, atol=1e-12)


@pytest.mark.parametrize("scheme", list(SOLVERS))
def test_convergence_order(scheme):
    """Macrospin precession in a uniaxial field (no noise): error(dt)/error(dt/2) ≈ 2^order, the
    order the ``SOLVERS`` entry states. Steps n = 2^(10 − order) and 2n (the error well above
    round-off and well below the step), against a reference of 32n steps (at least 4096)."""
    spec = SOLVERS[scheme]
    n = 2 ** (10 - spec.order)
    steps, ref_steps = (n, 2 * n), max(4096, 32 * n)
    with jax.enable_x64(True):
        grid = Grid(1, 1, 1, 5e-9, 5e-9, 5e-9)
        material = Material.uniform(grid, Ms=8e5, A_ex=0.0, K_u=2e5, alpha=0.1, dtype=jnp.float64)
        field_fn = effective_field((uniaxial_anisotropy(grid),))
        m0 = jnp.asarray([[[[0.6, 0.8, 0.0]]]], jnp.float64)
        total = 2e-10

        def final(n):
            dt = total / n
            init_fn, step_fn = spec.factory(field_fn, dt)
            _, ms = trajectory(step_fn, init_fn(m0), material, num_frames=1, steps_per_frame=n)
            return np.asarray(ms[-1])

        ref = final(ref_steps)
        errors = [np.abs(final(n) - ref).max() for n in steps]
        measured = np.log2(errors[0] / errors[1])
        assert abs(measured - spec.order) < 0.3, measured


def test_solver_lookup_by_name():
    assert get_solver("heun") is stochastic_heun and get_solver(stochastic_heun) is stochastic_heun
    with pytest.raises(ValueError, match="unknown solver 'euler'; known solvers: "):
        get_solver("euler")


def test_energy_factors_come_from_the_term_registry(film):
    """E = −f Σ Ms m·B V with f = ½ (exchange, anisotropy, demag) and 1 (Zeeman); the sum is E_total."""
    from jaxmag.energy import energies
    from jaxmag.fields.terms import TERMS

    grid, material, m0 = film
    material = material.replace(B_ext=jnp.broadcast_to(jnp.asarray([0.0, 0.0, 0.01]), grid.vector_shape))
    out = energies(grid, m0, material)
    assert set(out) == {"E_exch", "E_anis", "E_Zeeman", "E_demag", "E_total"}
    zeeman = -grid.cell_volume * float(jnp.sum(material.Ms * m0[..., 2] * 0.01))
    np.testing.assert_allclose(float(out["E_Zeeman"]), zeeman, rtol=1e-5)
    np.testing.assert_allclose(float(out["E_total"]), float(total_energy(grid)(m0, material)), rtol=1e-6)
    assert {n: t.energy_factor for n, t in TERMS.items()} == {"exchange": 0.5, "anisotropy": 0.5, "zeeman": 1.0, "demag": 0.5}
