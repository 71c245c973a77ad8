"""Where a new piece goes (docs/architecture.md), proved: a toy noise model, a toy measure and a
toy field term are registered inside this test only, and each runs end to end without any other
module knowing of it.

- the noise kind: through the config, the measures file, the background estimator and a movie-source
  training batch;
- the measure: through the measures file and its reader;
- the field term: through the config, the stability bound, a thermal trajectory and the ``.mx3`` export.
"""
from __future__ import annotations

import math

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag import constants, drivers
from jaxmag.assemble import compute_measures_file, measure_options
from jaxmag.config import Config, MeasuresConfig, NoiseConfig, loads_config
from jaxmag.fields import terms as field_terms
from jaxmag.grid import Grid
from jaxmag.io.measures_file import MeasuresFile
from jaxmag.io.mx3 import mx3_script
from jaxmag.learn.sources.movies import MovieSource
from jaxmag.material import Material
from jaxmag.measures import MEASURE_FUNCTIONS
from jaxmag.noise import NOISE_MODELS, estimate_noise_variance, parse_noise_spec
from jaxmag.noise import models as noise_models

N, T, NY, NX = 4, 12, 8, 8


# ---------------------------------------------------------------------------------------------
# the toys: each is one function plus one registry entry


def clipped_from_draws(x, level, draws):
    """A detector that saturates: additive Gaussian noise, then clipped to [-1, 1]."""
    return jnp.clip(x + jnp.sqrt(jnp.asarray(level, draws.dtype)) * draws, -1.0, 1.0)


TOY_NOISE = noise_models.NoiseModel(
    "clipped", clipped_from_draws, "clip(x + n, -1, 1)", level_unit="squared units of x",
    estimator=noise_models.NoiseEstimator(noise_models.robust_moments, noise_models.gaussian_level))


def peak_to_peak(x, options):
    """max - min over the frames: ``(..., T, ny, nx) -> (..., ny, nx)``."""
    return x.max(axis=-3) - x.min(axis=-3)


def shape_anisotropy(grid):
    """A local thin-film shape anisotropy, B = -mu0 Ms m_z z (T)."""
    def field(m, material):
        return (-constants.MU0 * material.Ms)[..., None] * m * jnp.array([0.0, 0.0, 1.0], m.dtype)
    return field


TOY_TERM = field_terms.Term(
    shape_anisotropy, 0.5, "E_shape", ("Ms",),
    lambda grid, material: constants.MU0 * np.abs(np.asarray(material.Ms, np.float64)),
    field_terms.Mx3(on=("// toy shape anisotropy: a local -mu0 Ms m_z field",)))


@pytest.fixture
def toys(monkeypatch):
    monkeypatch.setitem(NOISE_MODELS, "clipped", TOY_NOISE)
    monkeypatch.setitem(MEASURE_FUNCTIONS, "peak_to_peak", peak_to_peak)
    monkeypatch.setitem(field_terms.TERMS, "shape", TOY_TERM)


def _movies(seed=0):
    rng = np.random.default_rng(seed)
    m = (rng.standard_normal((N, T, 2, NY, NX)) * 0.15).astype(np.float32)
    m[:, :, 0] += 0.85
    labels = np.zeros((N, NY, NX), np.uint8)
    labels[:, 2:4, 2:4] = 1
    return m, labels


def _config():
    return Config().replace(measures=MeasuresConfig(num_states=3, binning="fixed", fixed_range_x=(0.5, 1.0)),
                            noise=NoiseConfig(seed=5))


@pytest.fixture
def dataset(tmp_path):
    m, labels = _movies()
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:  # a dataset as jaxmag writes it, small enough to build here
        f["m"] = m
        f["labels"] = labels
        f["done"] = np.ones(N, bool)
        f["run_index"] = np.arange(N)
        f.attrs["components"] = "xz"
        f.attrs["config"] = _config().to_toml()
        f.attrs["seed"] = 0
    return path, m


# ---------------------------------------------------------------------------------------------
# a noise model


def test_a_registered_noise_kind_runs_through_config_measures_estimate_and_training(toys, dataset, tmp_path):
    path, m = dataset
    assert [s.name for s in loads_config("[noise]\nclipped = [1e-2]\n").noise.specs()] == ["clipped_1e-2"]
    spec = parse_noise_spec("clipped:1e-2")

    out = compute_measures_file(path, tmp_path / "measures.h5", [spec], measures=("mean", "std"), progress=False)
    stored = MeasuresFile(out)
    noisy = stored.read(stored.resolve_condition("clipped:1e-2"), (("mean", "x"),))
    clean = stored.read("clean", (("mean", "x"),))
    assert np.all(np.isfinite(noisy)) and not np.allclose(noisy, clean, atol=1e-3)
    assert noisy.max() <= 1.0  # the clipping happened: each frame was clipped before the mean

    frames = np.asarray(clipped_from_draws(jnp.zeros((40, 24, 24)), 1e-2, jax.random.normal(jax.random.key(1), (40, 24, 24))))
    assert estimate_noise_variance(frames, kind="clipped") == pytest.approx(1e-2, rel=0.1)

    source = MovieSource(m, (np.asarray(stored.labels()) > 0).astype(np.uint8), "xz", (("std", "z"), ("mean", "x")),
                         measure_options(_config().measures), train_condition="clipped:1e-2", batch_size=2,
                         indices={"train": np.arange(2), "val": np.array([2]), "test": np.array([3])})
    x, y = next(iter(source.train_batches(0, jax.random.key(0))))
    assert x.shape == (2, NY, NX, 2) and y.shape == (2, NY, NX) and bool(jnp.all(jnp.isfinite(x)))
    assert source.train_condition == "clipped_1e-2"


def test_a_noise_kind_without_estimator_is_refused_by_name(monkeypatch):
    monkeypatch.setitem(NOISE_MODELS, "unread", noise_models.NoiseModel("unread", clipped_from_draws, "clip"))
    with pytest.raises(ValueError, match="'unread' has no estimator"):
        estimate_noise_variance(np.zeros((4, 8, 8)), kind="unread")


# ---------------------------------------------------------------------------------------------
# a measure


def test_a_registered_measure_runs_through_the_measures_file(toys, dataset, tmp_path):
    path, m = dataset
    out = compute_measures_file(path, tmp_path / "measures.h5", [], measures=("mean", "peak_to_peak"), progress=False)
    stored = MeasuresFile(out)
    assert stored.layout["clean"]["peak_to_peak"] == ["x", "z"]
    got = stored.read("clean", (("peak_to_peak", "z"),))[..., 0]
    np.testing.assert_allclose(got, np.ptp(m[:, :, 1], axis=1), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# a field term


def test_a_registered_field_term_runs_through_config_trajectory_and_mx3(toys):
    config = loads_config('[simulation]\nterms = ["exchange", "anisotropy", "shape"]\n')
    assert config.simulation.terms == ("exchange", "anisotropy", "shape")

    grid = Grid(8, 8, 1, 4e-9, 4e-9, 4e-9, boundary="periodic")
    material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=500.0, alpha=0.5, temperature=0.0)
    with_shape = ("exchange", "anisotropy", "shape")
    assert drivers.stable_time_step(grid, material, with_shape) < drivers.stable_time_step(grid, material, with_shape[:2])

    # a film tilted out of plane relaxes into the plane only with the shape term (damped, no noise)
    tilt = math.radians(30)
    m0 = jnp.zeros(grid.vector_shape).at[..., 0].set(math.cos(tilt)).at[..., 2].set(math.sin(tilt))
    mz = {}
    for name, names in (("with", with_shape), ("without", with_shape[:2])):
        simulate = drivers.movie_simulator(grid, dt=1e-13, burn_in_steps=0, steps_per_frame=100, num_frames=3,
                                           components="z", terms=names)
        mz[name] = float(jnp.mean(jax.jit(simulate)(material, m0, jax.random.key(0))[-1]))
    assert mz["with"] < 0.5 * math.sin(tilt) and mz["without"] > 0.9 * math.sin(tilt)

    class Run:  # the run's time stepping, as a MovieSpec carries it
        dt, burn_in_s, frame_interval_s, num_frames, terms, solver = 1e-13, 0.0, 1e-11, 2, with_shape, "heun"

    script = mx3_script(grid, material, m0, Run, thermal_seed=0)
    assert "// toy shape anisotropy" in script and "EnableDemag = false" in script
