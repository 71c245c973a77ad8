"""One noise path: the measures file (offline) and the online generator draw the same noise.

Both go through ``jaxmag.noise.add_measurement_noise`` with one keying rule, so the channels of
run r under a condition are the same function of (noise seed, condition, r, component) whether
``jaxmag measures`` wrote them or ``jaxmag.learn.online`` computed them on device.
"""
from __future__ import annotations

import h5py
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag.assemble import assemble, compute_measures_file
from jaxmag.channels import parse_channels
from jaxmag.config import Config, MeasuresConfig, NoiseConfig
from jaxmag.learn.online import channels_fn
from jaxmag.noise import parse_noise_spec

N, T, NY, NX = 3, 8, 5, 6
RUNS = np.array([40, 41, 42])  # global run indices (a part file): the keys must use them
CHANNELS = parse_channels("std:z,mean:x,latent_entropy:z")


def make_config() -> Config:
    return Config().replace(measures=MeasuresConfig(num_states=3, binning="fixed", fixed_range_x=(0.5, 1.0)),
                            noise=NoiseConfig(seed=5))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("paths") / "data.h5"
    rng = np.random.default_rng(3)
    m = (rng.standard_normal((N, T, 2, NY, NX)) * 0.2).astype(np.float32)
    m[:, :, 0] += 0.8
    with h5py.File(path, "w") as f:
        f["m"] = m
        f["labels"] = np.zeros((N, NY, NX), np.uint8)
        f["done"] = np.ones(N, bool)
        f["run_index"] = RUNS
        f.attrs["components"] = "xz"
        f.attrs["config"] = make_config().to_toml()
        f.attrs["seed"] = 0
    return path, m


@pytest.mark.parametrize("condition", ["gaussian:1e-2", "speckle:1e-1"])
def test_measures_file_and_online_generator_draw_the_same_noise(dataset, tmp_path, condition):
    path, m = dataset
    spec = parse_noise_spec(condition)
    out = compute_measures_file(path, tmp_path / "measures.h5", [condition], chunk=2, progress=False)
    with h5py.File(out, "r") as f:
        offline = np.stack([f[f"{spec.name}/{mm}/{c}"][...] for mm, c in CHANNELS], axis=-1)
        clean = np.stack([f[f"clean/{mm}/{c}"][...] for mm, c in CHANNELS], axis=-1)
    online = channels_fn(assemble(make_config()), CHANNELS, spec)
    # the channels need z then x: the online movies hold the components in that order
    movies = jnp.asarray(np.moveaxis(m[:, :, ::-1], 2, 1))  # (N, C = "zx", T, ny, nx)
    got = np.asarray(online(movies, jnp.asarray(RUNS, jnp.uint32)))
    np.testing.assert_allclose(got, offline, rtol=2e-6, atol=2e-7)
    assert not np.allclose(offline[..., 0], clean[..., 0], atol=1e-3)  # the noise is really there
    # the noise of another run is another draw
    shifted = np.asarray(online(movies, jnp.asarray(RUNS + 1, jnp.uint32)))
    assert not np.allclose(shifted[..., 0], offline[..., 0], atol=1e-4)
