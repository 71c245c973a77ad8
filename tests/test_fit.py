"""jaxmag.fit_stats, jaxmag.fit and ``jaxmag fit-regime``: the statistics, their derivative under
common random numbers, a fit that recovers a known anisotropy, the named warnings and the files."""
from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag import fit
from jaxmag import fit_stats as fs
from jaxmag.grid import Grid
from jaxmag.material import Material
from jaxmag.simulate import MovieSpec


def _uniform_m0(grid, dtype=jnp.float32):
    return jnp.broadcast_to(jnp.asarray([1.0, 0.0, 0.0], dtype), grid.vector_shape)


def test_covariances_of_a_uniform_mode_are_its_variance():
    # every pixel carries the same a(t): every pair covariance is the temporal variance of a
    rng = np.random.default_rng(3)
    a = rng.normal(size=(40,))
    m = np.broadcast_to(a[:, None, None, None], (40, 8, 8, 1)).astype(np.float64)
    with jax.enable_x64(True):
        s = np.asarray(fs.film_statistics(jnp.asarray(m), offsets=((0, 1), (0, 3), (1, 2)), periodic=False,
                                          mean_lags=(2,)))
    d = a - a.mean()
    assert s[0] == pytest.approx(a.mean())
    assert s[1] == pytest.approx(np.mean(d * d)) and s[2] == pytest.approx(np.mean(d * d))
    assert s[3] == pytest.approx(np.mean(d[:-1] * d[1:]))
    assert s[4] == pytest.approx(np.mean(d[:-2] * d[2:]))
    assert fs.statistic_names("z", ((0, 1), (0, 3), (1, 2)), (2,))[1] == "cov m_z lag 0 dist 1"


def test_white_noise_does_not_enter_the_pair_covariances():
    # independent per-pixel noise: each cross-pixel covariance is zero within its sampling error
    rng = np.random.default_rng(0)
    F, n, var = 200, 32, 3e-3
    noise = rng.normal(scale=math.sqrt(var), size=(F, n, n, 2))
    s = np.asarray(fs.film_statistics(jnp.asarray(noise, jnp.float32), periodic=True))
    K = len(fs.DEFAULT_OFFSETS)
    covs = np.concatenate([s[1:1 + K], s[2 + K:2 + 2 * K]])
    se = var / math.sqrt(F * n * n)  # sampling error of one covariance
    assert np.all(np.abs(covs) < 6 * se), covs / se
    # while a pixel's own variance would read the noise: the statistics exclude it by construction
    assert np.mean(noise[..., 0] ** 2) == pytest.approx(var, rel=0.05)


def test_region_statistics_separate_regions():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(10, 8, 8, 1)).astype(np.float32)
    m[:, :, 4:] *= 3.0  # the right half fluctuates 9x more
    labels = np.zeros((8, 8), int)
    labels[:, :4], labels[:, 4:] = 1, 2
    w = fs.region_weights(jnp.asarray(labels), 2)
    s = np.asarray(fs.region_statistics(jnp.asarray(m), w, ((0, 0),)))  # d = 0: the variance
    assert s[1, 1] / s[0, 1] == pytest.approx(9.0, rel=0.4)


def test_bad_movies_are_refused():
    with pytest.raises(ValueError, match="shape"):
        fs.check_movie(jnp.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="frames"):
        fs.check_movie(jnp.zeros((3, 16, 16, 2)))
    with pytest.raises(ValueError, match="NaN"):
        fs.check_movie(jnp.full((10, 16, 16, 2), jnp.nan))
    with pytest.raises(ValueError, match="K_u"):
        fit.check_names(["K_u", "Ms"])
    grid = Grid(8, 8, 1, 4e-9, 4e-9, 4e-9, "periodic")
    spec = MovieSpec(dt=1e-13, burn_in_steps=10, steps_per_frame=10, num_frames=8, components="xz")
    base = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=1e5, alpha=0.05, temperature=300.0)
    with pytest.raises(ValueError, match="shape"):
        fit.fit_film(np.zeros((5, 8, 8, 2)), grid, spec, base, _uniform_m0(grid))
    with pytest.raises(ValueError, match="no regions"):
        fit.fit_defects(np.zeros((8, 8, 8, 2)), grid, spec, base, _uniform_m0(grid), np.zeros((8, 8), int))


def test_statistics_derivative_matches_crn_finite_differences():
    """The forward-mode derivative of one film's statistics with respect to each log-parameter
    equals central finite differences at the same thermal key (common random numbers), float64."""
    with jax.enable_x64(True):
        grid = Grid(8, 8, 1, 4e-9, 4e-9, 4e-9, "periodic")
        # exchange and anisotropy only: the same solver and thermal field, a quicker compile than with demag
        spec = MovieSpec(dt=1e-13, burn_in_steps=20, steps_per_frame=10, num_frames=6, components="xz",
                         terms=("exchange", "anisotropy"))
        base = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=1e5, alpha=0.05, temperature=300.0,
                                dtype=jnp.float64)
        model = fit.film_model(grid, spec, base, _uniform_m0(grid, jnp.float64), fit.PARAMETERS, np.ones((8, 8)),
                               offsets=((0, 1), (0, 2), (1, 1)), mean_lags=(1, 2))
        key = jax.random.key(7)
        theta = jnp.asarray([0.1, -0.2, 0.05])
        _, J = fit.pathwise_jacobian(model, theta, key[None])
        J = np.asarray(J[0])
        h = 1e-5
        shifts = jnp.concatenate([jnp.eye(3) * h, -jnp.eye(3) * h])
        values = np.asarray(jax.jit(jax.vmap(model, in_axes=(0, None)))(theta + shifts, key))
        for i in range(3):
            fd = (values[i] - values[3 + i]) / (2 * h)
            scale = np.max(np.abs(fd)) + 1e-30
            np.testing.assert_allclose(J[:, i] / scale, fd / scale, atol=1e-5)


def _tiny_problem(K_true=2e5, temperature=300.0):
    # An exchange-weak, anisotropy-dominated 16 x 16 film: K_u sets every cell's thermal spread
    # (k_B T / (K_u V)), so a short movie pins it; A_ex and alpha stay at their true values.
    grid = Grid(16, 16, 1, 4e-9, 4e-9, 4e-9, "periodic")
    spec = MovieSpec(dt=1e-13, burn_in_steps=2000, steps_per_frame=50, num_frames=12, components="xz")
    truth = Material.uniform(grid, Ms=8e5, A_ex=1e-12, K_u=K_true, alpha=0.1, temperature=temperature)
    sim = jax.jit(fit.simulator(grid, spec, "xz"))
    movie = np.asarray(sim(truth, _uniform_m0(grid), jax.random.key(2024)))
    return grid, spec, movie


def test_fit_recovers_a_known_anisotropy():
    grid, spec, movie = _tiny_problem(K_true=2e5)
    start = Material.uniform(grid, Ms=8e5, A_ex=1e-12, K_u=1e5, alpha=0.1, temperature=300.0)
    res = fit.fit_film(movie, grid, spec, start, _uniform_m0(grid), names=["K_u"], weights=np.ones((16, 16)),
                       films_per_step=4, num_check=3, max_iter=3, seed=1)
    K, s = res.values[0], res.std_log[0]
    assert abs(math.log(K / 2e5)) < 0.2, (K, s)
    assert abs(math.log(K / 2e5)) < 3 * s + 0.03, (K, s)
    assert res.chi2_after < res.chi2_before
    assert not any(w.startswith("fit did not converge: statistic") for w in res.warnings), res.warnings


def test_a_movie_outside_the_family_gets_the_named_warning():
    # four times the temperature the fit is told: no anisotropy reproduces the spread of every statistic
    grid, spec, movie = _tiny_problem(K_true=2e5, temperature=1200.0)
    start = Material.uniform(grid, Ms=8e5, A_ex=1e-12, K_u=2e5, alpha=0.1, temperature=300.0)
    res = fit.fit_film(movie, grid, spec, start, _uniform_m0(grid), names=["alpha"], weights=np.ones((16, 16)),
                       films_per_step=3, num_check=3, max_iter=1, seed=1)
    assert any("fit did not converge: statistic" in w and "outside the films' spread" in w for w in res.warnings)


def test_background_weights_leave_out_a_defect():
    rng = np.random.default_rng(5)
    m = rng.normal(scale=0.01, size=(30, 16, 16, 2))
    m[:, 4:8, 4:8] = rng.normal(scale=0.01, size=(30, 1, 1, 2)) * 8  # a blob fluctuating together, 8x stronger
    w = fit.background_weights(m)
    assert w[4:8, 4:8].sum() == 0 and w[12:, 12:].all()
    labels = np.zeros((16, 16), int)
    labels[0, 0] = 1
    w = fit.background_weights(m, labels=labels, grow=0)
    assert w[0, 0] == 0 and w.sum() == 255


def test_cli_writes_a_regime_whose_material_loads(tmp_path, capsys):
    from jaxmag.cli import main
    from jaxmag.config import load_config

    grid = Grid(32, 32, 1, 4e-9, 4e-9, 4e-9, "periodic")
    spec = MovieSpec(dt=1e-13, burn_in_steps=1000, steps_per_frame=100, num_frames=8, components="z")
    truth = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=500.0, alpha=0.02, temperature=300.0)
    movie = np.asarray(jax.jit(fit.simulator(grid, spec, "z"))(truth, _uniform_m0(grid), jax.random.key(11)))
    np.save(tmp_path / "movie.npy", movie[..., 0])
    out = tmp_path / "fit"
    rc = main(["fit-regime", str(tmp_path / "movie.npy"), "--out", str(out), "--frame-interval", "1e-11",
               "--boundary", "periodic", "--fit", "A_ex", "--films-per-step", "3", "--steps", "1",
               "--check-films", "2", "--no-progress"])
    assert rc == 0
    config = load_config(out / "regime.toml")
    record = json.loads((out / "fit.json").read_text())
    assert record["fit"]["names"] == ["A_ex"]
    assert config.material.A_ex == pytest.approx(record["fit"]["values"][0])
    assert config.material.K_u == 500.0 and config.material.temperature == 300.0
    assert "A_ex =" in capsys.readouterr().out
    assert main(["fit-regime", str(tmp_path / "movie.npy"), "--out", str(tmp_path / "f2"), "--frame-interval", "1e-11",
                 "--fit", "K_u,Ms", "--no-progress"]) != 0
    assert "K_u, A_ex, alpha" in capsys.readouterr().err


def test_detect_refuses_material_fit_for_a_counts_movie(tmp_path, capsys):
    from jaxmag.cli import main

    counts = np.random.default_rng(0).poisson(1000, (12, 32, 32)).astype(np.uint16)
    import tifffile

    tifffile.imwrite(tmp_path / "counts.tif", counts)
    rc = main(["detect", str(tmp_path / "counts.tif"), "--material", "fit", "--pixel-size", "4e-9",
               "--frame-interval", "1e-11", "--out", str(tmp_path / "det"), "--no-progress"])
    assert rc == 2 and "--material fit fits magnetisation movies" in capsys.readouterr().err


@pytest.mark.slow
def test_detect_material_fit_fits_the_film_then_detects_in_it(tmp_path):
    """``detect --material fit``: the fitted regime.toml in OUT/fit, whose [material] the detection's
    regime holds; the fit's warnings among detect's."""
    from jaxmag.config import load_config
    from jaxmag.learn.detect import detect

    grid = Grid(32, 32, 1, 4e-9, 4e-9, 4e-9, "periodic")
    spec = MovieSpec(dt=1e-13, burn_in_steps=1000, steps_per_frame=50, num_frames=24, components="xz")
    truth = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=500.0, alpha=0.02, temperature=300.0)
    movie = np.asarray(jax.jit(fit.simulator(grid, spec, "xz"))(truth, _uniform_m0(grid), jax.random.key(5)))
    movies = {c: movie[..., i] for i, c in enumerate("xz")}
    res = detect(movies, tmp_path / "det", frame_interval=5e-12, cell_size=4e-9, boundary="periodic",
                 material="fit", progress=False)
    fitted = load_config(tmp_path / "det" / "fit" / "regime.toml").material
    assert res.config.material.A_ex == pytest.approx(fitted.A_ex) and res.config.material.K_u == pytest.approx(fitted.K_u)
    record = json.loads((tmp_path / "det" / "fit" / "fit.json").read_text())
    assert all(any(w in d for d in res.warnings) for w in record["fit"]["warnings"])
