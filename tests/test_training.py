"""Training: metrics, splits, normalisation, data sources, overfitting, resume, evaluation, CLI."""
import json

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag.cli import main as cli_main
from jaxmag.config import loads_config
from jaxmag.learn import checkpoint, metrics, sharding
from jaxmag.io.measures_file import resolve_condition
from jaxmag.learn.sources import EvalSet
from jaxmag.learn.sources.measures import MeasuresSource
from jaxmag.learn.sources.online import OnlineSource
from jaxmag.learn.evaluation import load_trained, normalise_inputs, predict_proba
from jaxmag.learn.loop import compile_train_step, create_train_state, evaluate_params, train_and_evaluate
from jaxmag.learn.normalization import normalize
from jaxmag.learn.splits import split_indices
from jaxmag.learn.synthetic import disc_geometry, disc_labels, make_disc_batch_fn, write_measures_file

TINY = """
[model]
base_features = 4
depth = 2
dropout = {dropout}
[training]
epochs = {epochs}
batch_size = 8
learning_rate = 1e-2
seed = 3
"""


def tiny_config(epochs=2, dropout=0.1):
    return loads_config(TINY.format(epochs=epochs, dropout=dropout))


@pytest.fixture(scope="module")
def measures(tmp_path_factory):
    return write_measures_file(tmp_path_factory.mktemp("m") / "measures.h5", num=40)


# -- metrics ---------------------------------------------------------------------------------


def test_dice_hand_computed_cases():
    t = np.zeros((4, 2, 3), np.int32)
    p = np.zeros((4, 2, 3), bool)
    # 0: both empty -> 1;  1: empty prediction, 2 true pixels -> 0
    t[1, 0, :2] = 1
    # 2: prediction of 2 pixels on empty truth -> 0
    p[2, 1, 1:] = True
    # 3: truth {3 px}, prediction {2 of them + 1 extra}: 2*2/(3+3)
    t[3, 0, :] = 1
    p[3, 0, :2] = True
    p[3, 1, 0] = True
    d = np.asarray(metrics.dice_per_image(jnp.asarray(p), jnp.asarray(t)))
    np.testing.assert_allclose(d, [1.0, 0.0, 0.0, 4 / 6])
    logits = np.stack([~p, p], axis=-1).astype(np.float32)
    sums = metrics.segmentation_sums(jnp.asarray(logits), jnp.asarray(t), jnp.asarray([1, 1, 1, 1.0]))
    out = metrics.summarize(jax.device_get(sums))
    # aggregated: TP 2, FP 2 + 1, FN 2 + 1 -> 4 / (4 + 3 + 3)
    assert out["dice"] == pytest.approx(4 / 10)
    assert out["dice_per_image"] == pytest.approx((1 + 4 / 6) / 4)
    assert (out["tp"], out["fp"], out["fn"], out["num_images"]) == (2, 3, 3, 4)
    # masked (padding) images do not count
    masked = metrics.summarize(jax.device_get(metrics.segmentation_sums(jnp.asarray(logits), jnp.asarray(t), jnp.asarray([1, 0, 0, 1.0]))))
    assert masked["num_images"] == 2 and masked["dice"] == pytest.approx(4 / 6)  # images 0 and 3 only
    assert metrics.dice_from_counts(0, 0, 0) == 1.0


def test_cross_entropy_matches_numpy():
    logits = jax.random.normal(jax.random.key(0), (2, 4, 4, 2))
    labels = (jax.random.uniform(jax.random.key(1), (2, 4, 4)) > 0.5).astype(jnp.int32)
    lp = np.log(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
    ref = -np.take_along_axis(lp, np.asarray(labels)[..., None], -1)[..., 0].mean(axis=(1, 2))
    np.testing.assert_allclose(metrics.cross_entropy(logits, labels), ref, rtol=1e-5)


# -- splits and normalisation -----------------------------------------------------------------


def test_split_reproducible_and_disjoint():
    a = split_indices(100, (0.7, 0.15, 0.15), seed=5)
    b = split_indices(100, (0.7, 0.15, 0.15), seed=5)
    c = split_indices(100, (0.7, 0.15, 0.15), seed=6)
    assert [len(a[k]) for k in ("train", "val", "test")] == [70, 15, 15]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train"], c["train"])
    assert sorted(np.concatenate(list(a.values()))) == list(range(100))
    with pytest.raises(ValueError, match="too few"):
        split_indices(4, (0.7, 0.15, 0.15), seed=0)


def test_normalisation_uses_clean_training_split_only(measures, tmp_path):
    path = tmp_path / "m.h5"
    write_measures_file(path, num=40)
    split = split_indices(40, (0.7, 0.15, 0.15), seed=0)
    with h5py.File(path, "r+") as f:
        # poison everything but the clean training samples: statistics must not move
        for cond in ("clean", "gaussian_1e-2"):
            d = f[f"{cond}/std/z"]
            data = d[...]
            rows = np.setdiff1d(np.arange(40), split["train"]) if cond == "clean" else np.arange(40)
            data[rows] = 1e3
            d[...] = data
        clean_train = f["clean/std/z"][...][split["train"]]
    src = MeasuresSource(path, (("std", "z"),), train_condition="gaussian:1e-2", batch_size=8, seed=0)
    assert src.norm_stats["mean"][0] == pytest.approx(clean_train.mean(), rel=1e-6)
    assert src.norm_stats["std"][0] == pytest.approx(clean_train.std(), rel=1e-6)
    assert src.train_condition == "gaussian_1e-2"
    # the noisy training inputs are normalised with the clean statistics, unchanged
    x, _ = next(src.train_batches(0, jax.random.key(0)))
    assert float(jnp.min(x)) == pytest.approx((1e3 - clean_train.mean()) / clean_train.std(), rel=1e-4)


def test_resolve_condition_and_file_errors(measures, tmp_path):
    names = ["clean", "gaussian_1e-2", "speckle_0.1"]
    assert resolve_condition(names, "gaussian:0.01") == "gaussian_1e-2"
    assert resolve_condition(names, "speckle:1e-1") == "speckle_0.1"
    with pytest.raises(ValueError, match="gaussian_1e-2"):
        resolve_condition(names, "gaussian:1")
    with pytest.raises(ValueError, match=r"lacks /clean/latent_entropy/x .*it has: clean \(mean:x/z, std:x/z\)"):
        MeasuresSource(measures, (("latent_entropy", "x"),), batch_size=8)
    with pytest.raises(ValueError, match="not in the measures file; it has: clean, gaussian_1e-2"):
        MeasuresSource(measures, (("mean", "x"),), train_condition="speckle:1e-1", batch_size=8)
    bad = tmp_path / "bad.h5"
    write_measures_file(bad, num=20)
    with h5py.File(bad, "r+") as f:
        del f["labels"]
        f["labels"] = np.zeros((20, 8, 8), np.uint8)
    with pytest.raises(ValueError, match=r"has shape \(20, 16, 16\) but /labels has \(20, 8, 8\)"):
        MeasuresSource(bad, (("mean", "x"),), batch_size=4)
    with pytest.raises(FileNotFoundError):
        MeasuresSource(tmp_path / "missing.h5", (("mean", "x"),))


def test_measures_batches_stack_channels_and_binarise(measures):
    src = MeasuresSource(measures, (("mean", "x"), ("std", "z")), batch_size=8)
    assert src.input_names == ("mean:x", "std:z") and src.steps_per_epoch == 28 // 8
    batches = list(src.train_batches(1, jax.random.key(7)))
    again = list(src.train_batches(1, jax.random.key(7)))
    other = list(src.train_batches(2, jax.random.key(8)))
    x, y = batches[0]
    assert x.shape == (8, 16, 16, 2) and x.dtype == jnp.float32 and y.dtype == jnp.int32
    assert set(np.unique(y)) <= {0, 1}
    np.testing.assert_array_equal(x, again[0][0])
    assert not np.array_equal(x, other[0][0])
    # normalised with the clean training statistics: the training inputs are ~ zero mean, unit std
    train_x = np.concatenate([np.asarray(b[0]) for b in batches])
    assert np.all(np.abs(train_x.mean(axis=(0, 1, 2))) < 0.3)


# -- learning ---------------------------------------------------------------------------------


def test_tiny_model_overfits_eight_images():
    make = make_disc_batch_fn(8, 16, 16, num_discs=2, radius=(2.0, 3.5), noise_std=0.1)
    x, y = make(jax.random.key(0))
    x = normalize(np.asarray(x), {"channels": ["a"], "mean": [float(x.mean())], "std": [float(x.std())]})
    config = tiny_config(dropout=0.0)
    mesh = sharding.data_mesh()
    state = create_train_state(config, 1, jax.random.key(0), 300, mesh)
    step = compile_train_step(state, mesh, x.shape)
    xs, ys = jnp.asarray(x), jnp.asarray(y)
    for _ in range(200):
        state, m = step(state, xs, ys)
    result = evaluate_params(state.graphdef, state.params, EvalSet(x, np.asarray(y)), 8, mesh)
    assert result["dice"] > 0.95, result
    assert float(m["loss"]) < 0.1


def _params(run_dir):
    model, _ = load_trained(run_dir, slot="latest")
    from flax import nnx

    return jax.tree.leaves(nnx.state(model, nnx.Param))


def test_resume_equals_uninterrupted_run(measures, tmp_path, capsys):
    config = tiny_config(epochs=4)
    make = lambda: MeasuresSource(measures, (("mean", "x"),), batch_size=8, seed=config.training.seed)
    full = train_and_evaluate(config, make(), tmp_path / "full", progress=False, evaluate_test=False)
    # progress=False hides the bars, not the per-epoch summary lines
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")] == \
        ["1/4", "2/4", "3/4", "4/4"]

    def interrupt(epoch, record):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, make(), tmp_path / "cut", progress=False, on_epoch_end=interrupt, evaluate_test=False)
    assert len(json.loads((tmp_path / "cut" / "history.json").read_text())) == 2
    with pytest.raises(FileExistsError, match="--resume"):
        train_and_evaluate(config, make(), tmp_path / "cut", progress=False)
    resumed = train_and_evaluate(config, make(), tmp_path / "cut", resume=True, progress=False, evaluate_test=False)
    keys = ("epoch", "loss", "val_dice", "val_loss")
    assert [[r[k] for k in keys] for r in resumed["history"]] == [[r[k] for k in keys] for r in full["history"]]
    assert resumed["best_epoch"] == full["best_epoch"]
    for a, b in zip(_params(tmp_path / "full"), _params(tmp_path / "cut")):
        np.testing.assert_array_equal(a, b)
    # a different config refuses to resume
    with pytest.raises(ValueError, match="config differs") as refused:
        train_and_evaluate(tiny_config(epochs=5), make(), tmp_path / "cut", resume=True, progress=False)
    assert "training.epochs: 4 in the run folder, 5 now" in str(refused.value)  # names the key, not two hashes


def test_corrupt_checkpoint_is_a_clear_error_and_nothing_is_overwritten(measures, tmp_path):
    config = tiny_config(epochs=1)
    src = MeasuresSource(measures, (("mean", "x"),), batch_size=8, seed=config.training.seed)
    run = tmp_path / "run"
    train_and_evaluate(config, src, run, progress=False, evaluate_test=False)
    state_dir = next((run / "checkpoints" / "latest").glob("*/state"))
    for f in state_dir.rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and f.name != "commit_success.txt":
            f.write_bytes(b"\x00garbage" * 3)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="corrupt"):
        train_and_evaluate(config, src, run, resume=True, progress=False)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert before == after
    with pytest.raises(FileNotFoundError, match="no 'latest' checkpoint"):
        checkpoint.restore(tmp_path / "nowhere", "latest", {})


# -- online source ----------------------------------------------------------------------------


def test_online_source_labels_match_generated_defects(tmp_path):
    make = make_disc_batch_fn(8, 16, 16, num_discs=3)
    src = OnlineSource(jax.jit(make), ("mean:x",), batch_size=8, steps_per_epoch=2, num_val_batches=1, num_test_batches=1, seed=4)
    key = jax.random.key(11)
    batches = list(src.train_batches(0, key))
    assert len(batches) == 2
    for s, (x, y) in enumerate(batches):
        # step s uses fold_in(key, s); its labels are exactly the discs that key draws
        centres, radii = disc_geometry(jax.random.fold_in(key, s), 8, 16, 16, 3, (1.5, 3.5))
        np.testing.assert_array_equal(y, disc_labels(centres, radii, 16, 16))
        raw, _ = make(jax.random.fold_in(key, s))
        np.testing.assert_allclose(x, normalize(raw, src.norm_stats), rtol=1e-6, atol=1e-6)
        xn, yn = np.asarray(x)[..., 0], np.asarray(y).astype(bool)
        assert xn[yn].mean() > xn[~yn].mean() + 1.0  # the defects are where the contrast is
    assert not np.array_equal(batches[0][1], batches[1][1])
    # validation data are fixed; normalisation came from the clean calibration batch
    v1, v2 = src.val_set(), src.val_set()
    np.testing.assert_array_equal(v1.device_batches[0][0], v2.device_batches[0][0])
    assert not np.array_equal(v1.device_batches[0][1], src.test_set().device_batches[0][1])
    calib_raw, _ = make(jax.random.fold_in(jax.random.key(4), 3))
    assert src.norm_stats["mean"][0] == pytest.approx(float(calib_raw.mean()), rel=1e-5)
    with pytest.raises(ValueError, match="B=4"):
        OnlineSource(make, ("mean:x",), batch_size=4, steps_per_epoch=1)
    # the whole loop runs on it
    result = train_and_evaluate(tiny_config(epochs=1), src, tmp_path / "online", progress=False)
    assert result["test"]["num_images"] == 8 and (tmp_path / "online" / "eval_clean.json").is_file()


# -- evaluation and CLI -----------------------------------------------------------------------


def test_cli_train_evaluate_and_predict_api(measures, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY.format(epochs=2, dropout=0.1))
    run = tmp_path / "runs" / "a"
    assert cli_main(["train", str(cfg), "--measures", str(measures), "--measure", "std", "--component", "z",
                     "--train-noise", "gaussian:1e-2", "--out", str(run), "--no-progress"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["inputs"] == ["std:z"] and info["train_condition"] == "gaussian_1e-2"
    assert len(json.loads((run / "history.json").read_text())) == 2
    assert (run / "eval_gaussian_1e-2.json").is_file()
    assert cli_main(["evaluate", str(run), "--measures", str(measures), "--condition", "clean"]) == 0
    out = capsys.readouterr().out
    rec = json.loads((run / "eval_clean.json").read_text())
    assert f"{rec['dice']:.4f}" in out and rec["num_images"] == 6 and (run / "eval_clean.png").stat().st_size > 1000
    assert f"baseline (robust z" in out and f"{rec['baseline']['dice']:.4f}" in out   # the baseline row beside it
    assert rec["baseline"]["num_images"] == 6 and rec["baseline"]["fit"]["num_val"] == len(info["split"]["val"])
    # the Python API gives the same Dice from predictions
    model, info = load_trained(run)
    with h5py.File(measures, "r") as f:
        idx = np.asarray(info["split"]["test"])
        raw = f["clean/std/z"][...][idx][..., None]
        truth = f["labels"][...][idx] > 0
    pred = predict_proba(model, normalise_inputs(raw, info)) > 0.5
    tp, fp, fn = (pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()
    assert rec["dice"] == pytest.approx(metrics.dice_from_counts(tp, fp, fn))
    # user errors: one line, exit status 2
    assert cli_main(["evaluate", str(run), "--measures", str(measures), "--condition", "speckle:1"]) == 2
    assert cli_main(["train", str(cfg), "--measures", str(measures), "--inputs", "latent_entropy:z", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "speckle:1" in err and "latent_entropy" in err and "it has:" in err
    assert not (tmp_path / "b").exists()


def test_recipes_and_soft_dice_loss():
    from jaxmag.learn.recipe import get_recipe, loss_fn, soft_dice_loss

    labels = jnp.array([[[1, 0], [0, 0]]])
    sure = jnp.stack([jnp.where(labels == 1, -20.0, 20.0), jnp.where(labels == 1, 20.0, -20.0)], -1)
    assert float(soft_dice_loss(sure, labels)) == pytest.approx(0.0, abs=1e-6)
    nothing = jnp.stack([jnp.full((1, 2, 2), 20.0), jnp.full((1, 2, 2), -20.0)], -1)
    assert float(soft_dice_loss(nothing, labels)) == pytest.approx(1 - 1 / 2, abs=1e-6)   # (0 + 1) / (0 + 1 + 1)
    ce = float(jnp.mean(metrics.cross_entropy(nothing, labels)))
    assert float(loss_fn("ce")(nothing, labels)) == pytest.approx(ce)
    assert float(loss_fn("ce_dice")(nothing, labels)) == pytest.approx(ce + 0.5, abs=1e-6)
    paper = get_recipe("paper")
    assert (paper.source, paper.loss, paper.augment, paper.fresh_noise) == ("measures", "ce", False, False)
    from jaxmag.recipes import RECIPES
    assert all(get_recipe(name) is recipe for name, recipe in RECIPES.items())
    # the robust recipes train without dropout; paper and the ablation keep [model] dropout
    from jaxmag.learn.recipe import model_dropout
    with_recipe = lambda name: loads_config(f'[model]\ndropout = 0.2\n[training]\nrecipe = "{name}"\n')  # noqa: E731
    assert [model_dropout(with_recipe(n)) for n in ("paper", "robust", "robust_dropout")] == [0.2, 0.0, 0.2]
    with pytest.raises(ValueError, match="unknown training.recipe"):
        get_recipe("fancy")


def test_resume_refuses_a_run_whose_recipe_trained_another_dropout(tmp_path):
    # run.json records the dropout the model trained with (a recipe may override [model]);
    # a robust run from before the recipe dropped dropout must not resume without it
    from jaxmag.learn.run_folder import _check_resumable

    stored = {"config_hash": "h", "model": {"in_channels": 1, "dropout": 0.1}}
    _check_resumable(stored, {"config_hash": "h", "model": {"in_channels": 1, "dropout": 0.1}}, tmp_path)
    with pytest.raises(ValueError, match="recipe's dropout"):
        _check_resumable(stored, {"config_hash": "h", "model": {"in_channels": 1, "dropout": 0.0}}, tmp_path)
