"""Noise models, condition names and keys, the background noise-level estimator, and the
registry: a kind registered here only (``toy_kind``) is taken by every path."""
from __future__ import annotations

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from jaxmag.config import NoiseConfig, loads_config
from jaxmag.noise import (
    CLEAN,
    NOISE_MODELS,
    NoiseModel,
    NoiseSpec,
    add_gaussian,
    add_measurement_noise,
    add_speckle,
    apply_noise,
    apply_noise_draws,
    estimate_noise_variance,
    estimate_noise_variances,
    noise_key,
    parse_noise_spec,
)


# ---------------------------------------------------------------------- specs and names
@pytest.mark.parametrize(
    "text,kind,variance,name",
    [
        ("gaussian:1e-2", "gaussian", 1e-2, "gaussian_1e-2"),
        ("speckle:0.1", "speckle", 0.1, "speckle_1e-1"),
        ("gaussian:0.25", "gaussian", 0.25, "gaussian_2.5e-1"),
        ("speckle:1", "speckle", 1.0, "speckle_1e0"),
        ("gaussian_1e-4", "gaussian", 1e-4, "gaussian_1e-4"),
        ("clean", "clean", 0.0, "clean"),
    ],
)
def test_parse_noise_spec_and_condition_names(text, kind, variance, name):
    spec = parse_noise_spec(text)
    assert (spec.kind, spec.level, spec.name) == (kind, variance, name)
    assert parse_noise_spec(spec.name) == spec  # names parse back to the same condition


@pytest.mark.parametrize("text", ["poisson:1e-2", "gaussian", "gaussian:", "gaussian:abc", "speckle:-1",
                                  "gaussian:0", "gaussian:nan", "1e-2"])
def test_bad_noise_specs_name_the_accepted_forms(text):
    with pytest.raises(ValueError, match=r"accepted forms are 'clean', 'gaussian:VARIANCE', 'speckle:VARIANCE' or 'shot:PHOTONS'"):
        parse_noise_spec(text)


def test_sweep_lists_levels_per_kind_in_registry_order():
    sweep = NoiseConfig(levels=(("speckle", (1e-3,)), ("gaussian", (1e-3, 1))))
    assert [s.name for s in sweep.specs()] == ["gaussian_1e-3", "gaussian_1e0", "speckle_1e-3"]
    assert sweep == NoiseConfig(levels=(("gaussian", (1e-3, 1.0)), ("speckle", (1e-3,))))
    assert NoiseConfig(levels=(("gaussian", (1e-2,)), ("speckle", ()))).kinds == ("gaussian",)


# ---------------------------------------------------------------------- noise statistics
def test_gaussian_noise_variance_within_three_standard_errors():
    x = jnp.linspace(-1, 1, 200 * 500, dtype=jnp.float32).reshape(200, 500)
    for variance in (1e-4, 1e-1):
        n = np.asarray(add_gaussian(x, variance, jax.random.key(3)) - x, np.float64)
        se = variance * math.sqrt(2 / (n.size - 1))
        assert abs(n.var(ddof=1) - variance) < 3 * se
        assert abs(n.mean()) < 3 * math.sqrt(variance / n.size)


def test_speckle_noise_scales_with_the_signal():
    variance = 0.05
    levels = np.array([-2.0, 0.5, 1.0, 0.0], np.float32)
    x = jnp.asarray(np.repeat(levels[:, None], 50000, axis=1))
    n = np.asarray(add_speckle(x, variance, jax.random.key(4)) - x, np.float64)
    assert (n[3] == 0).all()  # no signal, no speckle
    for row, level in enumerate(levels[:3]):
        rel = n[row] / level
        se = variance * math.sqrt(2 / (rel.size - 1))
        assert abs(rel.var(ddof=1) - variance) < 3 * se
    ratio = n[0].std() / n[1].std()
    assert ratio == pytest.approx(4.0, rel=0.03)  # std proportional to |x|


def test_noise_is_deterministic_given_the_key():
    x = jnp.ones((4, 8, 8), jnp.float32)
    k1, k2 = jax.random.key(0), jax.random.key(1)
    for add in (add_gaussian, add_speckle):
        np.testing.assert_array_equal(add(x, 0.1, k1), add(x, 0.1, k1))
        assert not np.array_equal(add(x, 0.1, k1), add(x, 0.1, k2))
    spec = parse_noise_spec("speckle:1e-1")
    np.testing.assert_array_equal(apply_noise(x, spec, k1), add_speckle(x, 0.1, k1))
    assert apply_noise(x, CLEAN, k1) is x


def test_noise_keys_depend_on_seed_run_and_condition_only():
    data = lambda k: np.asarray(jax.random.key_data(k))
    base = data(noise_key(0, 3, "gaussian_1e-2"))
    assert np.array_equal(base, data(noise_key(0, 3, NoiseSpec("gaussian", 1e-2))))
    for other in (noise_key(1, 3, "gaussian_1e-2"), noise_key(0, 4, "gaussian_1e-2"), noise_key(0, 3, "speckle_1e-2")):
        assert not np.array_equal(base, data(other))
    batch = data(noise_key(0, np.arange(6), "gaussian_1e-2"))  # vectorised == one by one
    assert np.array_equal(batch[3], base)
    # Stable across processes (no salted hash()).
    code = ("import jax, numpy as np; from jaxmag.noise import noise_key; "
            "print(np.asarray(jax.random.key_data(noise_key(0, 3, 'gaussian_1e-2'))).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(base.tolist())


# ---------------------------------------------------------------------- estimator
@pytest.fixture(scope="module")
def synthetic_movie():
    """(T, ny, nx) background that fluctuates strongly and independently from frame to frame (but is
    smooth in space, as exchange makes it), over a static pattern, plus a defect disc of white
    uniform signal that only the mask excludes. Returns (movie, background mask)."""
    rng = np.random.default_rng(11)
    T, ny, nx = 100, 64, 64
    static = gaussian_filter(rng.standard_normal((ny, nx)), 6, mode="wrap")
    static = 0.6 + 0.2 * static / static.std()
    fluct = gaussian_filter(rng.standard_normal((T, ny, nx)), (0, 6, 6), mode="wrap")
    x = static + 0.3 * fluct / fluct.std()
    yy, xx = np.mgrid[:ny, :nx]
    defect = (yy - 20) ** 2 + (xx - 30) ** 2 < 36
    x[:, defect] = rng.uniform(-1, 1, (T, defect.sum()))
    return jnp.asarray(x, jnp.float32), ~defect


@pytest.mark.parametrize("kind,variance", [("gaussian", 1e-3), ("gaussian", 1e-1), ("speckle", 1e-2), ("speckle", 1.0)])
def test_estimator_recovers_the_variance_within_10_percent(synthetic_movie, kind, variance):
    x, background = synthetic_movie
    add = add_gaussian if kind == "gaussian" else add_speckle
    y = add(x, variance, jax.random.key(5))
    estimate = estimate_noise_variance(y, background, kind=kind)
    assert estimate == pytest.approx(variance, rel=0.10)
    # A plain temporal estimator confuses the signal's own fluctuation with noise.
    naive = float(jnp.var(jnp.diff(y, axis=0)[:, background])) / 2
    if kind == "gaussian":
        naive_rel = naive / variance - 1
    else:
        naive_rel = naive / (variance * float(jnp.mean(x[:, background] ** 2))) - 1
    assert naive_rel > 0.5 or variance >= 1e-1


def test_estimator_on_clean_data_and_both_hypotheses(synthetic_movie):
    x, background = synthetic_movie
    floor = estimate_noise_variances(x, background)
    assert floor["gaussian"] < 1e-4 and floor["speckle"] < 2e-4  # the signal adds almost nothing
    # Without the mask the robust (MAD) Gaussian estimate is still close despite the defect.
    y = add_gaussian(x, 1e-2, jax.random.key(6))
    assert estimate_noise_variance(y) == pytest.approx(1e-2, rel=0.10)


def test_estimator_rejects_bad_input(synthetic_movie):
    x, background = synthetic_movie
    with pytest.raises(ValueError, match="background_mask must have shape"):
        estimate_noise_variance(x, background[:10])
    with pytest.raises(ValueError, match="no pair of background pixels"):
        estimate_noise_variance(x, np.eye(64, dtype=bool))
    with pytest.raises(ValueError, match="unknown noise kind 'poisson': registered kinds are 'gaussian', 'speckle'"):
        estimate_noise_variance(x, kind="poisson")
    with pytest.raises(ValueError, match="non-finite"):
        estimate_noise_variance(x.at[3, 4, 5].set(jnp.nan))


# ---------------------------------------------------------------------- the registry
@pytest.fixture
def toy_kind(monkeypatch):
    """A kind registered for one test only: additive noise of amplitude a in (0, 2), ``x + a n``,
    with no estimator."""
    toy = NoiseModel("toy", lambda x, a, n: x + a * n, "x + a n", level_name="amplitude", level_symbol="a",
                     level_range=(0.0, 2.0))
    monkeypatch.setitem(NOISE_MODELS, "toy", toy)
    return toy


def test_a_registered_kind_is_parsed_configured_and_drawn(toy_kind):
    spec = parse_noise_spec("toy:0.5")
    assert spec == NoiseSpec("toy", 0.5) and spec.name == "toy_5e-1" and parse_noise_spec(spec.name) == spec
    with pytest.raises(ValueError, match=r"'toy:AMPLITUDE'.*AMPLITUDE a number in \(0, 2\)"):
        parse_noise_spec("toy:3")
    config = loads_config("[noise]\ngaussian = [1e-2]\ntoy = [0.5, 1.0]")
    assert [s.name for s in config.noise.specs()] == ["gaussian_1e-2", "toy_5e-1", "toy_1e0"]
    assert loads_config(config.to_toml()) == config
    with pytest.raises(ValueError, match=r"key 'noise\.toy' levels must each be a number in \(0, 2\)"):
        loads_config("[noise]\ntoy = [3.0]")
    x = jnp.linspace(-1, 1, 2 * 8 * 4 * 4, dtype=jnp.float32).reshape(1, 2, 8, 4, 4)
    draws = jax.random.normal(jax.random.key(0), x.shape)
    np.testing.assert_array_equal(apply_noise_draws(x, spec, draws), x + 0.5 * draws)
    noisy = add_measurement_noise(x, spec, 3, jnp.arange(1), "xz")
    assert noisy.shape == x.shape and not np.allclose(noisy, x)


def test_a_kind_without_estimator_is_refused_by_name(toy_kind, synthetic_movie):
    x, background = synthetic_movie
    with pytest.raises(ValueError, match="noise kind 'toy' has no estimator"):
        estimate_noise_variance(x, background, kind="toy")
    assert list(estimate_noise_variances(x[:4], background)) == ["gaussian", "speckle"]  # the kinds it can read


def test_every_kind_with_an_estimator_is_read(monkeypatch, synthetic_movie):
    x, background = synthetic_movie
    y = add_gaussian(x[:20], 1e-2, jax.random.key(6))
    before = estimate_noise_variances(y, background)
    monkeypatch.setitem(NOISE_MODELS, "twin", NoiseModel("twin", NOISE_MODELS["gaussian"].from_draws, "x + n",
                                                         estimator=NOISE_MODELS["gaussian"].estimator))
    after = estimate_noise_variances(y, background)
    assert after == {**before, "twin": before["gaussian"]}
    assert estimate_noise_variance(y, background, "twin") == before["gaussian"]


def test_shot_noise_is_a_photon_count_whose_variance_follows_the_signal():
    from jaxmag.noise import NOISE_MODELS, apply_noise, parse_noise_spec

    spec = parse_noise_spec("shot:2e4")
    assert spec.name == "shot_2e4" and NOISE_MODELS["shot"].level_name == "photons"
    x = jnp.concatenate([jnp.zeros(100_000), jnp.full(100_000, 0.6)])
    y = np.asarray(apply_noise(x, spec, jax.random.key(2)))
    assert np.var(y[:100_000]) == pytest.approx(1 / 2e4, rel=0.02)  # Poisson: N photons read back as x
    assert np.var(y[100_000:]) == pytest.approx(1.6 / 2e4, rel=0.02)  # N (1 + x) photons
    weaker = np.asarray(apply_noise(x, parse_noise_spec("shot:2e6"), jax.random.key(2)))
    assert np.var(weaker[:100_000]) < np.var(y[:100_000]) / 50  # more photons, less noise
