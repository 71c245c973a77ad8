"""MovieSource: on-device noise + symmetry + measures equal a NumPy reference, exact symmetries,
exact resume, and clear errors."""
import json

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag.config import MeasuresConfig, loads_config
from jaxmag.assemble import measure_options
from jaxmag.learn.sources.movies import MovieSource, movie_measure_maps
from jaxmag.symmetry import augment_movies, mirror_signs, move_channel_pixels
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
    return MovieSource.from_dataset(path, (("mean", "z"), ("std", "x")), measure_options(OPTS), **kw)


@pytest.mark.parametrize("condition", ["gaussian:1e-2", "speckle:1e-1"])
def test_batch_equals_numpy_reference(movies, condition):
    # Gaussian fresh noise on mean/std inputs is drawn from the maps' exact sampling
    # distribution (jaxmag.channels.sampled_noisy_movie_maps); speckle from the epoch's noise
    # pool, each sample's field shifted in time and signed (jaxmag.noise_pool.pooled_draws).
    # The mirrors' component signs act on the movie, the pixel moves on the maps.
    src = _source(movies, train_condition=condition)
    key = jax.random.key(7)
    x, y = next(iter(src.train_batches(0, key)))
    # host reference, step by step
    with h5py.File(movies) as f:
        m_all, lab_all, run_index = f["m"][...], f["labels"][...] > 0, f["run_index"][...]
    idx = src.indices["train"][epoch_permutation(src.indices["train"].size, key)[:4]]
    k_flip, k_shift, k_noise = jax.random.split(jax.random.fold_in(key, 0), 3)
    flips = np.asarray(jax.random.bernoulli(k_flip, 0.5, (4, 2)))
    shifts = np.asarray(jax.random.randint(k_shift, (4, 2), 0, jnp.array([NY, NX])))
    if condition.startswith("speckle"):
        from jaxmag.rng import normal_draws

        pool = np.asarray(normal_draws(jax.random.fold_in(key, 0xFFFFFFFF), 0, (4, 2, T, NY, NX)))
        k_t, k_sign = jax.random.split(k_noise)
        t_shift = np.asarray(jax.random.randint(k_t, (4,), 0, T))
        signs = np.where(np.asarray(jax.random.bernoulli(k_sign, 0.5, (4,))), 1.0, -1.0)
    else:
        seed = jax.random.bits(k_noise, (), jnp.uint32)
    ref_x, ref_y = [], []
    for b, i in enumerate(idx):
        mv, lab = m_all[i].astype(np.float64), lab_all[i]        # (T, C, ny, nx)
        fy, fx = flips[b]
        if fy ^ fx:
            mv = mv * np.array([1, -1])[None, :, None, None]     # components x, z: z flips
        if condition.startswith("speckle"):
            field = np.roll(pool[b], -t_shift[b], axis=1) * signs[b]   # (C, T, ny, nx): frame t + shift
            mv = mv + mv * np.sqrt(0.1) * np.swapaxes(field, 0, 1)
            maps = np.stack([mv[:, 1].mean(0), mv[:, 0].std(0)], -1)
        else:  # mean(y) = mean(x) + s z0; |P y|^2 = (|P x| + s z1)^2 + s^2 chi2(T - 2)
            base = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), condition_hash("gaussian_1e-2")), run_index[i])
            keys = {c: jax.random.fold_in(base, ord(c)) for c in "xz"}

            def draws(c):
                k0, k1, k2 = jax.random.split(keys[c], 3)
                return (np.asarray(jax.random.normal(k0, (NY, NX))), np.asarray(jax.random.normal(k1, (NY, NX))),
                        2 * np.asarray(jax.random.gamma(k2, (T - 2) / 2, (NY, NX))))
            z0, _, _ = draws("z")
            _, z1, chi2 = draws("x")
            mean_z = mv[:, 1].mean(0) + np.sqrt(1e-2 / T) * z0
            a_x = np.sqrt(((mv[:, 0] - mv[:, 0].mean(0)) ** 2).sum(0))
            std_x = np.sqrt(((a_x + 0.1 * z1) ** 2 + 1e-2 * chi2) / T)
            maps = np.stack([mean_z, std_x], -1)
        if fy:
            maps, lab = maps[::-1], lab[::-1]
        if fx:
            maps, lab = maps[:, ::-1], lab[:, ::-1]
        ref_x.append(np.roll(maps, tuple(shifts[b]), axis=(0, 1)))
        ref_y.append(np.roll(lab, tuple(shifts[b]), axis=(0, 1)))
    ref_x = (np.array(ref_x) - np.array(src.norm_stats["mean"])) / np.array(src.norm_stats["std"])
    np.testing.assert_allclose(np.asarray(x), ref_x, atol=2e-4)
    np.testing.assert_array_equal(np.asarray(y), np.array(ref_y))
    # fresh noise: the next step's batch of the same films differs; the fixed sets never do
    np.testing.assert_array_equal(src.val_set().inputs, _source(movies, train_condition=condition).val_set().inputs)


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
    # the movie source's order (signs on the movie, maps, pixel moves on the maps) is the same
    flips, shifts = jnp.array([[True, False], [False, True], [True, True], [False, False]]), jnp.array([[1, 2], [0, 3], [5, 7], [2, 0]])
    mv4, lab4 = jnp.repeat(mv, 4, axis=0), jnp.repeat(lab, 4, axis=0)
    moved, moved_lab = augment_movies(mv4, lab4, flips, shifts, "xz")
    many = lambda m: np.asarray(movie_measure_maps(  # noqa: E731
        m, CLEAN, 0, jnp.zeros(4, jnp.uint32), components="xz", measures=("mean", "std", "latent_entropy"),
        options=(OPTS.options("x"), OPTS.options("z")), channels=chans))
    fast, fast_lab = move_channel_pixels(jnp.asarray(many(mv4 * mirror_signs(flips, "xz", mv4.dtype))), lab4, flips, shifts)
    np.testing.assert_array_equal(np.asarray(fast), many(moved))
    np.testing.assert_array_equal(np.asarray(fast_lab), np.asarray(moved_lab))


def test_streaming_equals_resident_and_errors(movies, tmp_path):
    key = jax.random.key(2)
    a = [np.asarray(v) for v in next(iter(_source(movies).train_batches(3, key)))]
    b = [np.asarray(v) for v in next(iter(_source(movies, stream=True, device_budget_bytes=1).train_batches(3, key)))]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="stream=True"):
        _source(movies, device_budget_bytes=1000)
    with pytest.raises(ValueError, match="components x, z only.*simulate with y"):
        MovieSource.from_dataset(movies, (("std", "y"),), measure_options(OPTS), batch_size=4)
    with pytest.raises(ValueError, match="cannot make the training condition 'speckle:-1'"):
        _source(movies, train_condition="speckle:-1")


def test_arrays_equal_the_dataset_and_take_a_given_split(movies):
    # the source on arrays (as detect builds it) makes the batches of the dataset's source; a split
    # given as index arrays, more steps than the training films fill, open films, streamed sets
    with h5py.File(movies) as f:
        m, labels, run_index = f["m"][...], f["labels"][...], f["run_index"][...]
    split = {"train": np.arange(8), "val": np.arange(8, 12), "test": np.arange(12, 16)}
    kw = {"train_condition": "speckle:1e-1", "batch_size": 4, "noise_seed": 5, "indices": split, "periodic": False}
    from_file = MovieSource.from_dataset(movies, (("std", "z"),), measure_options(OPTS), **kw)
    src = MovieSource(m, labels, "xz", (("std", "z"),), measure_options(OPTS), run_index=run_index,
                      steps_per_epoch=5, **kw)
    assert src.components == "z" and src.symmetries.periodic is False and src.steps_per_epoch == 5
    key = jax.random.key(4)
    a, b = next(iter(from_file.train_batches(0, key))), next(iter(src.train_batches(0, key)))
    np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
    order = src.epoch_order(key)
    assert order.size == 24 and set(order[:8]) == set(order[8:16]) == set(range(8))
    assert len(list(src.train_batches(0, key))) == 5
    np.testing.assert_array_equal(src.val_set().inputs, from_file.val_set().inputs)
    streamed = MovieSource.from_dataset(movies, (("std", "z"),), measure_options(OPTS), stream=True, **kw)
    np.testing.assert_array_equal(streamed.test_set("gaussian:1e-2").inputs, src.test_set("gaussian:1e-2").inputs)
    with pytest.raises(ValueError, match="labels must be"):
        MovieSource(m, labels[:3], "xz", (("std", "z"),), measure_options(OPTS), batch_size=4)
    with pytest.raises(ValueError, match="do not fit the 24 samples"):
        MovieSource(m, labels, "xz", (("std", "z"),), measure_options(OPTS), batch_size=4,
                    indices={**split, "test": np.array([30])})


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


def _ks(a, b):
    """Two-sample Kolmogorov-Smirnov statistic."""
    grid = np.sort(np.r_[a, b])
    return np.abs(np.searchsorted(np.sort(a), grid, side="right") - np.searchsorted(np.sort(b), grid, side="right")).max() / a.size


def test_sampled_maps_have_the_distribution_of_frame_by_frame_noise():
    """sampled_noisy_movie_maps vs noisy_movie_maps over many noise draws of one movie: the
    mean and std maps agree in mean, spread and (Kolmogorov-Smirnov) distribution per pixel."""
    from jaxmag.channels import noisy_movie_maps, sampled_noisy_movie_maps
    from jaxmag.measures import MeasureOptions
    from jaxmag.noise import NoiseSpec

    rng = np.random.default_rng(3)
    T_, draws = 12, 4000
    movie = rng.normal(0, 0.05, (1, 1, T_, 2, 3)).astype(np.float32)
    movie[0, 0, :, 0, 0] = 0.0                                # a constant pixel: |P x| = 0
    movie[0, 0, :, 1, 2] += np.linspace(-0.3, 0.3, T_)        # a strong signal: |P x| >> noise
    spec = NoiseSpec("gaussian", 4e-3)
    opts = (MeasureOptions(ddof=1),)
    runs = jnp.arange(draws, dtype=jnp.uint32)
    x = jnp.broadcast_to(jnp.asarray(movie), (draws,) + movie.shape[1:])
    frame = jax.jit(lambda: noisy_movie_maps(x, spec, 11, runs, "z", ("mean", "std"), opts))()
    fast = jax.jit(lambda: sampled_noisy_movie_maps(x, spec, 12, runs, "z", ("mean", "std"), opts))()
    limit = 1.63 * np.sqrt(2 / draws)                         # KS at the 1 % level
    for m in ("mean", "std"):
        a, b = np.asarray(frame[m])[:, 0], np.asarray(fast[m])[:, 0]      # (draws, 2, 3)
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 5 * a.std(0) / np.sqrt(draws)), m
        np.testing.assert_allclose(a.std(0), b.std(0), rtol=0.1, err_msg=m)
        for j in np.ndindex(2, 3):
            assert _ks(a[:, j[0], j[1]], b[:, j[0], j[1]]) < limit, (m, j)
    # the check has teeth: leaving out the chi-square part is caught
    a_x = np.sqrt(((movie[0, 0] - movie[0, 0].mean(0)) ** 2).sum(0))
    z1 = rng.standard_normal((draws, 2, 3))
    wrong = np.abs(a_x + np.sqrt(4e-3) * z1) / np.sqrt(T_ - 1)
    a = np.asarray(frame["std"])[:, 0]
    assert max(_ks(a[:, j[0], j[1]], wrong[:, j[0], j[1]]) for j in np.ndindex(2, 3)) > limit
    # other kinds and measures take the frame-by-frame path, realisation for realisation
    speck = NoiseSpec("speckle", 1e-2)
    np.testing.assert_array_equal(
        np.asarray(sampled_noisy_movie_maps(x[:4], speck, 1, runs[:4], "z", ("std",), opts)["std"]),
        np.asarray(noisy_movie_maps(x[:4], speck, 1, runs[:4], "z", ("std",), opts)["std"]))


def test_cli_train_on_the_movies_with_a_movie_recipe(movies, tmp_path, capsys):
    from jaxmag.cli import main

    cfg = tmp_path / "robust.toml"
    cfg.write_text('[model]\nbase_features = 4\ndepth = 2\n[training]\nrecipe = "robust"\nepochs = 1\nbatch_size = 4\n')
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--data", str(movies), "--measure", "std", "--component", "x",
                 "--train-noise", "gaussian:1e-2", "--out", str(out), "--no-progress"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["source"]["kind"] == "movies" and info["train_condition"] == "gaussian_1e-2"
    assert info["input_norm"] == "per_image"  # the robust recipe's U-Net standardises each map
    assert info["model"]["dropout"] == 0.0     # and trains without dropout (the config says 0.1)
    assert "test Dice on gaussian:1e-2" in capsys.readouterr().out  # printed as KIND:LEVEL
    # the robust recipe chose its decision threshold on the validation split and loads with it
    from jaxmag.learn.evaluation import load_trained

    decision = json.loads((out / "decision.json").read_text())
    assert decision["best_epoch"] == 1 and decision["val_dice"] >= decision["val_dice_argmax"]
    shifted, info = load_trained(out)
    raw, raw_info = load_trained(out, slot="latest")  # same epoch, no decision applied
    assert info["decision_bias"] == decision["decision_bias"] and raw_info["decision_bias"] == 0.0
    np.testing.assert_allclose(np.asarray(raw.head.bias[...]) - np.asarray(shifted.head.bias[...]),
                               [-decision["decision_bias"] / 2, decision["decision_bias"] / 2], atol=1e-6)
    assert json.loads((out / "eval_gaussian_1e-2.json").read_text())["decision_bias"] == decision["decision_bias"]
    assert shifted.input_norm == "per_image"
    # a run.json from before the option (no input_norm) loads as the plain model it was
    legacy = {k: v for k, v in info.items() if k in json.loads((out / "run.json").read_text()) and k != "input_norm"}
    (out / "run.json").write_text(json.dumps(legacy))
    assert load_trained(out)[0].input_norm == "none"
    # the paper recipe needs a measures file; a movie recipe without a dataset names the fix
    assert main(["train", str(cfg), "--measures", str(tmp_path / "m.h5"), "--measure", "std", "--component", "x",
                 "--out", str(tmp_path / "r2")]) == 2
    assert "pass --data DATASET.h5" in capsys.readouterr().err


def test_pooled_draws_are_shifted_signed_fields_of_the_pool():
    # every sample's draws are its slot's pool field shifted cyclically in time and signed: a
    # permutation and sign of i.i.d. N(0, 1) values, so exactly the noise law; steps differ
    from jaxmag.noise.pool import noise_pool, pooled_draws

    pool = noise_pool(jax.random.key(3), (5, 2, T, NY, NX))
    assert abs(float(jnp.mean(pool))) < 0.05 and abs(float(jnp.std(pool)) - 1) < 0.05
    a, b = pooled_draws(pool, jax.random.key(0)), pooled_draws(pool, jax.random.key(1))
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    for out in (a, b):
        for s in range(5):
            matches = [sign * t for t in range(T) for sign in (1, -1)
                       if np.array_equal(np.asarray(out[s]), sign * np.roll(np.asarray(pool[s]), -t, axis=1))]
            assert len(matches) == 1
    np.testing.assert_array_equal(np.asarray(noise_pool(jax.random.key(3), (5, 2, T, NY, NX))), np.asarray(pool))
