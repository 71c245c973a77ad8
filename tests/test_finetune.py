"""Fine-tuning on on-device simulations: the generator, the run folder it writes, resume, and the Dice gain."""
import json
import time

import jax
import numpy as np
import pytest
from flax import nnx

from jaxmag.config import loads_config
from jaxmag.learn.finetune import finetune
from jaxmag.learn.online import defect_pool, make_online_generator
from jaxmag.learn.predict import load_run, predict_movie
from jaxmag.learn.sources.online import OnlineSource
from jaxmag.learn.evaluation import evaluate_run
from jaxmag.learn.loop import read_run_info, train_and_evaluate

from test_predict import TINY_RUN, train_tiny_run


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    return train_tiny_run(root), root / "measures.h5"


def test_generator_is_pure_and_labels_follow_the_pool():
    config = loads_config(TINY_RUN)
    inputs = (("mean", "x"), ("std", "z"))
    make = jax.jit(make_online_generator(config, inputs, "gaussian:1e-2", 4, pool_size=6))
    x, y = make(jax.random.key(1))
    x2, y2 = make(jax.random.key(1))
    assert x.shape == (4, 16, 16, 2) and y.shape == (4, 16, 16) and x.dtype == np.float32
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, make(jax.random.key(2))[0])
    pool = defect_pool(config, 6)
    # the pool never reuses the dataset's runs (indices from dataset.num_runs on)
    assert pool.run_indices[0] == config.dataset.num_runs
    sizes = sorted(int(s) for s in (pool.labels > 0).sum(axis=(1, 2)))
    for lab in np.asarray(y):  # mirrors and cyclic shifts keep each film's defect area
        assert int(lab.sum()) in sizes
    # same key, same films and thermal history: the noise (added before the measures) raises std(m_z)
    clean = jax.jit(make_online_generator(config, inputs, "clean", 4, pool_size=6))(jax.random.key(1))
    np.testing.assert_array_equal(clean[1], y)
    assert float(x[..., 1].mean()) > float(clean[0][..., 1].mean()) + 0.03


def test_finetune_writes_a_run_that_predict_and_evaluate_use(parent, tmp_path):
    run, measures = parent
    out = tmp_path / "ft"
    # a vanishing learning rate: the fine-tuned parameters must be the parent's best ones
    result = finetune(run, "gaussian:1e-2", out, epochs=1, steps_per_epoch=1, learning_rate=1e-12, pool_size=8,
                      num_val_batches=1, num_test_batches=1, progress=False)
    info, parent_info = read_run_info(out), read_run_info(run)
    assert info["train_condition"] == "gaussian_1e-2" and info["inputs"] == parent_info["inputs"]
    assert info["norm_stats"] == parent_info["norm_stats"] and info["split"] == parent_info["split"]
    assert info["finetune"]["noise"] == "gaussian_1e-2" and info["finetune"]["parent"] == str(run.resolve())
    assert info["source"]["kind"] == "online" and info["source"]["labels_sha256"] == parent_info["source"]["labels_sha256"]
    assert len(json.loads((out / "history.json").read_text())) == 1
    assert (out / "eval_gaussian_1e-2.json").is_file()
    model, _ = load_run(out)
    ref, _ = load_run(run)
    for a, b in zip(jax.tree.leaves(nnx.state(model, nnx.Param)), jax.tree.leaves(nnx.state(ref, nnx.Param))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-8)
    # the start model and the (unchanged) fine-tuned one score the same on the same test set
    assert result["start_test"]["dice"] == pytest.approx(result["test"]["dice"], abs=1e-6)
    # the parent is the epoch-0 candidate of the best-validation selection: an epoch that does
    # not beat it on the validation set is not selected (here epoch 1 only ties it)
    assert info["finetune"]["start_val"]["dice"] == result["start_val"]["dice"]
    assert result["best_epoch"] == 0 and result["best_val_dice"] == result["start_val"]["dice"]
    assert json.loads((out / "history.json").read_text())[0]["val_dice"] == pytest.approx(result["best_val_dice"], abs=1e-6)
    assert load_run(out)[1]["checkpoint_epoch"] == 0
    # predict and evaluate work on the new folder
    movie = np.random.default_rng(0).normal(0, 0.1, (4, 16, 16)).astype(np.float32)
    assert predict_movie(out, movie).mask.shape == (16, 16)
    assert evaluate_run(out, measures, "clean")["num_images"] > 0
    # an existing run is not overwritten; resume continues it; the noise must match
    with pytest.raises(FileExistsError):
        finetune(run, "gaussian:1e-2", out, epochs=1, progress=False)
    with pytest.raises(ValueError, match="gaussian_1e-2"):
        finetune(run, "speckle:1e-2", out, resume=True, progress=False)


# -- the point of it all: noise-matched fine-tuning beats the clean model at that noise ---------

# A 16 x 16 film in a fast regime (strong anisotropy and damping, no demag, both blob kinds
# softer than the film, easy axes tilted by N(0, 45 deg)) where the defects show in every measure
# after 16 ps of burn-in and 40 frames 0.4 ps apart. Not the paper's physics; small enough for a
# CPU test.
PHYSICS = """
name = "finetune-physics"
[grid]
nx = 16
ny = 16
pbc_images = 1
[material]
K_u = 1e4
alpha = 0.2
[defects]
size_min = 8
size_max = 14
min_gap = 1
factor_a = 0.25
factor_b = 0.3
angle_sigma_deg = 45.0
[simulation]
dt = 8e-14
burn_in_s = 1.6e-11
frame_interval_s = 4e-13
num_frames = 40
terms = ["exchange", "anisotropy", "zeeman"]
[dataset]
num_runs = 64
[model]
base_features = 8
depth = 2
dropout = 0.0
[training]
epochs = {epochs}
batch_size = 16
learning_rate = 3e-3
seed = 0
"""


@pytest.mark.slow
def test_finetune_improves_dice_at_matched_noise(tmp_path):
    # Input: the latent entropy of m_z, H(s[t+1] | s[t]) of the trajectory quantised into 4
    # min-max bins per pixel. The soft, tilted defects fluctuate slowly and coherently, so their
    # entropy is low: clean background 0.83 +- 0.11 nats, defects 0.63 (measured with this
    # generator). Per-frame Gaussian noise of variance 3e-3 (std 0.055, half the thermal std of
    # m_z) decorrelates consecutive states and pushes every pixel towards the ln 4 ceiling: the
    # background moves to 0.95, defects to 0.81, i.e. where the clean background used to be.
    # Under the clean normalisation the clean model reads the whole film as background and its
    # Dice collapses to near zero ("nothing is defect"), while the contrast that is left (about
    # one background standard deviation; the best single-pixel threshold still gives Dice 0.49)
    # is learnable: a noise-matched fine-tune recovers Dice ~0.55. This is the paper's finding 3
    # (moderate noise: clean-trained fails, noise-matched holds).
    # Measured (2 busy CPU cores, about 3.5 min): clean model 0.65 on clean films, 0.03 at
    # gaussian:3e-3, fine-tuned 0.54 (another training seed: 0.64, 0.02 -> 0.56). The
    # clean model leaves "nothing is defect" only after 4 to 6 epochs with some seeds, hence 8.
    # The selection keeps the parent as the epoch-0 candidate, so the gain is an improvement on
    # the fixed validation set, confirmed on a separate 64-film test set.
    noise = "gaussian:3e-3"
    config = loads_config(PHYSICS.format(epochs=8))
    inputs = (("latent_entropy", "z"),)
    t0 = time.perf_counter()
    make = make_online_generator(config, inputs, "clean", 16, pool_size=128, first_index=1000)
    clean_src = OnlineSource(make, ("latent_entropy:z",), batch_size=16, steps_per_epoch=8, num_val_batches=2,
                             num_test_batches=2, seed=5)
    clean = train_and_evaluate(config, clean_src, tmp_path / "clean", progress=False)
    t_clean = time.perf_counter() - t0
    ft = finetune(tmp_path / "clean", noise, tmp_path / "ft", epochs=4, steps_per_epoch=8, learning_rate=1e-3, pool_size=128,
                  num_val_batches=2, num_test_batches=4, progress=False)
    before, after = ft["start_test"]["dice"], ft["test"]["dice"]
    print(f"\nclean model: clean test Dice {clean['test']['dice']:.3f} ({t_clean:.0f} s); at {noise}: "
          f"{before:.3f} -> fine-tuned {after:.3f} ({ft['seconds']:.0f} s)")
    assert clean["test"]["dice"] > 0.5  # the clean model learned the defects (all-defect scores 0.29)
    assert before < 0.25  # ... and fails at the noise: less than predicting every pixel a defect
    assert after > 0.4 and after > before + 0.2
    # resuming a finished fine-tune changes nothing
    again = finetune(tmp_path / "clean", noise, tmp_path / "ft", resume=True, progress=False)
    assert again["best_epoch"] == ft["best_epoch"] and again["test"]["dice"] == pytest.approx(after, abs=1e-6)
