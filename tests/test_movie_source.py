"""MovieSource: on-device noise + symmetry + measures equal a NumPy reference, exact symmetries,
exact resume, and clear errors."""
import json

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag.config import MeasuresConfig, loads_config
from jaxmag.learn.data import MovieSource, augment_movies, movie_measure_maps
from jaxmag.learn.splits import epoch_permutation
from jaxmag.noise import condition_hash

N, T, NY, NX = 24, 6, 8, 8
OPTS = MeasuresConfig()


def _write_movies(path, components="xz", n=N):
    rng = np.random.default_rng(0)
    labels = np.zeros((n, NY, NX), np.uint8)
    labels[:, 2:5, 3:6] = 1
    m = rng.normal(0, 0.05, (n, T, len(components), NY, NX)).astype(np.float32)
    m[:, :, 0] += 0.9                                   # m_x near 1
    m += (labels[:, None, None] * rng.normal(0, 0.2, (n, T, 1, NY, NX))).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["m"] = m
        f["labels"] = labels
        f["done"] = np.ones(n, bool)
        f["run_index"] = np.arange(n, dtype=np.int64) + 100
        f.attrs["components"] = components
    return path


@pytest.fixture(scope="module")
def movies(tmp_path_factory):
    return _write_movies(tmp_path_factory.mktemp("mv") / "data.h5")


def _source(path, **kw):
    kw = {"train_condition": "gaussian:1e-2", "batch_size": 4, "seed": 1, "noise_seed": 5, **kw}
    return MovieSource(path, (("mean", "z"), ("std", "x")), OPTS, **kw)


def test_batch_equals_numpy_reference(movies):
    src = _source(movies)
    key = jax.random.key(7)
    x, y = next(iter(src.train_batches(0, key)))
    # host reference, step by step
    with h5py.File(movies) as f:
        m_all, lab_all, run_index = f["m"][...], f["labels"][...] > 0, f["run_index"][...]
    idx = src.indices["train"][epoch_permutation(src.indices["train"].size, key)[:4]]
    k_flip, k_shift, k_noise = jax.random.split(jax.random.fold_in(key, 0), 3)
    flips = np.asarray(jax.random.bernoulli(k_flip, 0.5, (4, 2)))
    shifts = np.asarray(jax.random.randint(k_shift, (4, 2), 0, jnp.array([NY, NX])))
    seed = jax.random.bits(k_noise, (), jnp.uint32)
    ref_x, ref_y = [], []
    for b, i in enumerate(idx):
        mv, lab = m_all[i].astype(np.float64), lab_all[i]        # (T, C, ny, nx)
        fy, fx = flips[b]
        if fy:
            mv, lab = mv[..., ::-1, :], lab[::-1, :]
        if fx:
            mv, lab = mv[..., ::-1], lab[:, ::-1]
        if fy ^ fx:
            mv = mv * np.array([1, -1])[None, :, None, None]     # components x, z: z flips
        mv = np.roll(mv, tuple(shifts[b]), axis=(-2, -1))
        lab = np.roll(lab, tuple(shifts[b]), axis=(0, 1))
        base = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), condition_hash("gaussian_1e-2")), run_index[i])
        noise = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(base, ord(c)), (T, NY, NX))) for c in "xz"], 1)
        mv = mv + 0.1 * noise
        ref_x.append(np.stack([mv[:, 1].mean(0), mv[:, 0].std(0)], -1))
        ref_y.append(lab)
    ref_x = (np.array(ref_x) - np.array(src.norm_stats["mean"])) / np.array(src.norm_stats["std"])
    np.testing.assert_allclose(np.asarray(x), ref_x, atol=2e-4)
    np.testing.assert_array_equal(np.asarray(y), np.array(ref_y))
    # fresh noise: the next step's batch of the same films differs; the fixed sets never do
    np.testing.assert_array_equal(src.val_set().inputs, _source(movies).val_set().inputs)


def test_symmetries_map_measures_exactly():
    rng = np.random.default_rng(3)
    mv = jnp.asarray(rng.normal(0, 1, (1, T, 2, NY, NX)), jnp.float32)
    lab = jnp.asarray(rng.integers(0, 2, (1, NY, NX)), jnp.int32)
    from jaxmag.channels import Channel
    from jaxmag.noise import CLEAN

    chans = (Channel("mean", "x"), Channel("mean", "z"), Channel("std", "z"), Channel("latent_entropy", "z"))
    maps = lambda m: np.asarray(movie_measure_maps(  # noqa: E731
        m, CLEAN, 0, jnp.zeros(1, jnp.uint32), components="xz", measures=("mean", "std", "latent_entropy"),
        options=(OPTS.options("x"), OPTS.options("z")), channels=chans))[0]
    base = maps(mv)
    # a cyclic shift moves every map, exactly
    sh, _ = augment_movies(mv, lab, jnp.zeros((1, 2), bool), jnp.array([[3, 5]]), "xz")
    np.testing.assert_array_equal(maps(sh), np.roll(base, (3, 5), axis=(0, 1)))
    # a mirror flips the maps and the sign of mean m_z; std is unchanged
    fl, flab = augment_movies(mv, lab, jnp.array([[False, True]]), None, "xz")
    out = maps(fl)
    np.testing.assert_array_equal(np.asarray(flab)[0], np.asarray(lab)[0][:, ::-1])
    np.testing.assert_array_equal(out[..., 0], base[:, ::-1, 0])
    np.testing.assert_array_equal(out[..., 1], -base[:, ::-1, 1])
    np.testing.assert_array_equal(out[..., 2], base[:, ::-1, 2])
    both, _ = augment_movies(mv, lab, jnp.array([[True, True]]), None, "xz")   # two mirrors: no sign flip
    np.testing.assert_array_equal(maps(both)[..., 1], base[::-1, ::-1, 1])


def test_streaming_equals_resident_and_errors(movies, tmp_path):
    key = jax.random.key(2)
    a = [np.asarray(v) for v in next(iter(_source(movies).train_batches(3, key)))]
    b = [np.asarray(v) for v in next(iter(_source(movies, stream=True, device_budget_bytes=1).train_batches(3, key)))]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="stream=True"):
        _source(movies, device_budget_bytes=1000)
    with pytest.raises(ValueError, match="components x, z only.*simulate with y"):
        MovieSource(movies, (("std", "y"),), OPTS, batch_size=4)
    with pytest.raises(ValueError, match="cannot make the training condition 'speckle:-1'"):
        _source(movies, train_condition="speckle:-1")


def test_resume_is_bit_identical(movies, tmp_path):
    from jaxmag.learn.loop import train_and_evaluate

    config = loads_config("[model]\nbase_features = 4\ndepth = 2\n[training]\nepochs = 3\nbatch_size = 4\nlearning_rate = 1e-2\nseed = 1\n")
    full = train_and_evaluate(config, _source(movies), tmp_path / "full", progress=False, evaluate_test=False)

    def interrupt(epoch, record):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, _source(movies), tmp_path / "cut", progress=False, on_epoch_end=interrupt, evaluate_test=False)
    resumed = train_and_evaluate(config, _source(movies), tmp_path / "cut", resume=True, progress=False, evaluate_test=False)
    assert [r["loss"] for r in resumed["history"]] == [r["loss"] for r in full["history"]]
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["source"]["kind"] == "movies"
