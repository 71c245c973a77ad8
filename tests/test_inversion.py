"""Inversion: loss gradients through the solver, optimiser progress, metrics, and (slow) the
documented K_u recovery example reaching Pearson r >= 0.9."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag.fields.terms import STANDARD_TERMS
from jaxmag.grid import Grid
from jaxmag.inversion import (
    ExampleConfig,
    anisotropy_from_params,
    example_tilts,
    example_truth,
    fit,
    inversion_loss,
    map_metrics,
    params_from_anisotropy,
    pearson_r,
    response_fn,
    run_example,
    tilt_excitations,
    total_variation,
)
from jaxmag.material import Material

K_BG = 5e4
NO_DEMAG = ("exchange", "anisotropy", "zeeman")


def tiny_problem(n=4, num_frames=2, steps_per_frame=10, terms=STANDARD_TERMS, tv_weight=0.0):
    grid = Grid(n, n, 1, 4e-9, 4e-9, 4e-9, "open")
    base = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=K_BG, alpha=0.05)
    K_true = jnp.full(grid.shape, K_BG).at[0, 1, 2].set(3 * K_BG).at[0, 2, 1].set(0.2 * K_BG)
    simulate = response_fn(grid, dt=2.5e-13, num_frames=num_frames, steps_per_frame=steps_per_frame, terms=terms)
    m0s = tilt_excitations(grid, example_tilts(40.0))
    observed = simulate(base.replace(K_u=K_true), m0s)
    loss = inversion_loss(simulate, base, m0s, observed, K_ref=K_BG, K_contrast=1e5, tv_weight=tv_weight)
    return grid, base, K_true, loss


def test_loss_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        grid, _, K_true, loss = tiny_problem(tv_weight=1e-6)
        theta = 0.1 * jnp.sin(jnp.arange(grid.num_cells, dtype=jnp.float64)).reshape(grid.shape)
        value = jax.jit(lambda t: loss(t)[0])
        grad = jax.jit(jax.grad(value))(theta)
        assert np.all(np.isfinite(np.asarray(grad)))
        h = 1e-5
        for cell in [(0, 1, 2), (0, 2, 1), (0, 3, 3)]:
            bump = jnp.zeros_like(theta).at[cell].set(h)
            fd = (value(theta + bump) - value(theta - bump)) / (2 * h)
            assert abs(float(fd)) > 0
            np.testing.assert_allclose(float(grad[cell]), float(fd), rtol=1e-5)
        # the true map is a zero-misfit stationary point (only the TV term remains)
        _, terms = loss(params_from_anisotropy(K_true, K_BG))
        assert float(terms["misfit"]) < 1e-28


@pytest.mark.slow  # ~25-45 s on 2 busy CPUs: the line search compiles the solver's gradient twice
def test_a_few_lbfgs_steps_reduce_the_misfit_and_move_towards_the_truth():
    with jax.enable_x64(True):
        grid, _, K_true, loss = tiny_problem(terms=NO_DEMAG)
        theta0 = jnp.zeros(grid.shape)
        theta, history = fit(loss, theta0, num_steps=5, optimizer="lbfgs")
        assert history[0]["objective"] == pytest.approx(1.0)
        final = float(loss(theta)[0] / loss(theta0)[0])
        assert final < 0.05
        K = np.asarray(anisotropy_from_params(theta, K_BG))
        assert K[0, 1, 2] > 2 * K_BG and K[0, 2, 1] < 0.7 * K_BG  # the defects' signs are found
        rms0 = np.sqrt(np.mean((K_BG - np.asarray(K_true)) ** 2))
        assert np.sqrt(np.mean((K - np.asarray(K_true)) ** 2)) < 0.5 * rms0


def test_a_few_adam_steps_reduce_the_loss_and_find_the_defect_signs():
    with jax.enable_x64(True):
        grid, _, _, loss = tiny_problem(num_frames=1, steps_per_frame=10, terms=NO_DEMAG)
        theta0 = jnp.zeros(grid.shape)
        theta, history = fit(loss, theta0, num_steps=4, optimizer="adam", learning_rate=0.05)
        assert history[-1]["objective"] < history[0]["objective"]
        assert float(loss(theta)[0]) < 0.8 * float(loss(theta0)[0])
        assert theta[0, 1, 2] > 0 > theta[0, 2, 1]  # high-K cell up, low-K cell down
        with pytest.raises(ValueError, match="optimizer"):
            fit(loss, jnp.zeros(grid.shape), num_steps=1, optimizer="sgd")


def test_metrics_and_helpers():
    rng = np.random.default_rng(0)
    K = K_BG * (1 + rng.random((1, 6, 6)))
    m = map_metrics(K, K, K_BG)
    assert m["pearson_r"] == pytest.approx(1.0) and m["rms_error_J_m3"] == 0.0
    m = map_metrics(K, K + 100.0, K_BG)
    assert m["pearson_r"] == pytest.approx(1.0)
    assert m["rms_error_J_m3"] == pytest.approx(100.0)
    assert m["rms_error_rel_contrast"] == pytest.approx(100.0 / np.max(K - K_BG))
    assert pearson_r(K, -K) == pytest.approx(-1.0)
    assert float(total_variation(jnp.ones((1, 5, 5)))) == 0.0
    step = jnp.zeros((1, 5, 5)).at[..., 2:].set(1.0)  # one vertical edge crossed by 4 rows
    assert float(total_variation(step, eps=1e-9)) == pytest.approx(4.0, rel=1e-6)
    theta = jnp.asarray([[[-1.0, 0.0, 2.0]]])
    np.testing.assert_allclose(params_from_anisotropy(anisotropy_from_params(theta, K_BG), K_BG), theta, atol=1e-6)
    grid = Grid(3, 2, 1, 4e-9, 4e-9, 4e-9)
    m0s = tilt_excitations(grid, [(1, 1, 0), (0, 0, 2)])
    assert m0s.shape == (2, 1, 2, 3, 3)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(m0s), axis=-1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="non-zero"):
        tilt_excitations(grid, [(0, 0, 0)])
    truth = example_truth(ExampleConfig())
    assert truth.shape == (1, 16, 16)
    assert set(np.unique(truth)) == {0.2 * K_BG, K_BG, 3 * K_BG}


@pytest.mark.slow
def test_example_recovers_anisotropy_map():
    with jax.enable_x64(True):
        result = run_example(ExampleConfig())
    metrics = result["metrics"]
    assert metrics["pearson_r"] >= 0.9, metrics
    assert metrics["rms_error_rel_contrast"] < 0.15, metrics
    assert metrics["final_misfit"] < 1e-3 * metrics["initial_misfit"], metrics
