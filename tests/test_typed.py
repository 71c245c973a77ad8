"""Typed segmentation (jaxmag.learn.classes): class labels, binary models unchanged bit for bit,
a 3-class toy training with per-class metrics, the typed baseline, the config key."""
import json
import types
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag.config import Config, ConfigError, ModelConfig, config_hash, loads_config
from jaxmag.defects import DefectParams
from jaxmag.learn import baseline, calibration, metrics
from jaxmag.learn.classes import (SCHEMES, any_defect_margin, any_defect_prediction, any_defect_probability,
                                  class_labels, class_names, class_scheme, pixel_classes, typed_prediction)


# -- class labels ----------------------------------------------------------------------------


def test_class_labels_of_a_known_label_map():
    blobs = np.array([[0, 1, 2], [3, 4, 0]], np.uint8)  # num_a = 2: blobs 1, 2 "a"; 3, 4 "b"
    np.testing.assert_array_equal(class_labels(blobs, "binary"), [[0, 1, 1], [1, 1, 0]])
    typed = class_labels(blobs, "typed", num_a=2)
    assert typed.dtype == np.uint8
    np.testing.assert_array_equal(typed, [[0, 1, 1], [2, 2, 0]])
    np.testing.assert_array_equal(class_labels(jnp.asarray(blobs), "typed", num_a=2), typed)  # on device too
    with pytest.raises(ValueError, match="num_a"):
        class_labels(blobs, "typed")
    with pytest.raises(ValueError, match="unknown classes 'fancy'"):
        class_scheme("fancy")
    assert [len(class_scheme(n)) for n in ("binary", "typed")] == [2, 3]
    assert class_names("binary") == ("background", "defect")
    assert class_names("typed", DefectParams()) == ("background", "softer", "harder")
    assert class_names("typed", DefectParams(factor_a=3.0, factor_b=1.0)) == ("background", "harder", "neutral")
    assert class_names("typed", DefectParams(factor_a=0.5, factor_b=0.7)) == ("background", "softer_a", "softer_b")


def test_pixel_classes_bin_the_typed_labels_like_the_binary_ones():
    # 2 x 2 cells per pixel, averaging matrices as jaxmag.recording's plan.binning
    w = np.kron(np.eye(3), np.full((1, 2), 0.5))
    plan = types.SimpleNamespace(binning=(w, w))
    cells = np.zeros((6, 6), np.uint8)
    cells[0:2, 0:2] = 1                 # a whole pixel of class 1
    cells[2:4, 2:4] = [[2, 2], [2, 1]]  # three quarters class 2, one class 1: class 2
    cells[4, 4] = cells[5, 5] = 1       # half class 1...
    cells[4, 5] = 2                     # ... a quarter class 2: defect (3/4), class 1
    cells[0, 4] = 2                     # a quarter: background
    typed = pixel_classes(cells, plan, 3)
    assert typed.tolist() == [[1, 0, 0], [0, 2, 0], [0, 0, 1]]
    from jaxmag.recording import pixel_labels

    np.testing.assert_array_equal(typed > 0, pixel_labels(cells, plan) > 0)  # one any-defect truth
    np.testing.assert_array_equal(pixel_classes(cells, plan, 2), pixel_labels(cells, plan))
    np.testing.assert_array_equal(pixel_classes(jnp.asarray(cells), plan, 3), typed)


# -- binary models unchanged -----------------------------------------------------------------


def _old_soft_dice(logits, labels, eps=1.0):
    p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)[..., 1]
    t = labels.astype(jnp.float32)
    return 1.0 - (2.0 * jnp.sum(p * t) + eps) / (jnp.sum(p) + jnp.sum(t) + eps)


def _old_sums(logits, labels, mask):
    pred = jnp.argmax(logits, axis=-1) == 1
    tp, fp, fn = metrics.confusion_counts(pred, labels)
    return {"loss_sum": jnp.sum(metrics.cross_entropy(logits, labels) * mask),
            "dice_image_sum": jnp.sum(metrics.dice_per_image(pred, labels) * mask),
            "tp": jnp.sum(tp * mask), "fp": jnp.sum(fp * mask), "fn": jnp.sum(fn * mask),
            "pred_pixels": jnp.sum((tp + fp) * mask), "count": jnp.sum(mask)}


def test_a_binary_model_has_the_loss_metrics_and_threshold_it_had():
    from jaxmag.learn.recipe import loss_fn, soft_dice_loss

    k1, k2 = jax.random.split(jax.random.key(0))
    logits = 3 * jax.random.normal(k1, (4, 8, 8, 2))
    labels = jax.random.bernoulli(k2, 0.2, (4, 8, 8)).astype(jnp.int32)
    mask = jnp.array([1.0, 1.0, 1.0, 0.0])
    assert float(soft_dice_loss(logits, labels)) == float(_old_soft_dice(logits, labels))
    ce = jnp.mean(metrics.cross_entropy(logits, labels))
    assert float(loss_fn("ce_dice")(logits, labels)) == float(ce + _old_soft_dice(logits, labels))
    new, old = jax.device_get(metrics.segmentation_sums(logits, labels, mask)), jax.device_get(_old_sums(logits, labels, mask))
    assert set(new) == set(old) | {"dice_image_sq_sum"}  # no confusion matrix for binary models (the squares: the spread)
    for key in old:
        assert float(new[key]) == float(old[key]), key
    assert "class_dice" not in metrics.summarize(new)
    grid = jnp.asarray(calibration.THRESHOLD_GRID, jnp.float32)
    margin = logits[..., 1] - logits[..., 0]
    old_counts = jax.lax.map(lambda t: jnp.stack([jnp.sum(c * mask) for c in metrics.confusion_counts(margin > t, labels)]), grid)
    np.testing.assert_array_equal(calibration.threshold_sums(logits, labels, mask, grid), old_counts)
    np.testing.assert_array_equal(any_defect_probability(logits), jax.nn.softmax(logits, axis=-1)[..., 1])
    np.testing.assert_array_equal(any_defect_prediction(logits), jnp.argmax(logits, -1) == 1)


def test_typed_any_defect_decision_and_metrics():
    logits = jnp.array([[[[0.0, 1.0, -5.0], [0.0, -0.5, -0.5], [2.5, 0.0, 1.9], [0.0, -1.0, 3.0]]]])  # (1, 1, 4, 3)
    labels = jnp.array([[[1, 0, 2, 1]]])
    # lse(-0.5, -0.5) = -0.5 + log 2 > 0: any defect although no defect class beats the background alone
    np.testing.assert_allclose(any_defect_margin(logits)[0, 0], [1.0 + np.log1p(np.exp(-6.0)), np.log(2) - 0.5,
                                                                  np.logaddexp(0.0, 1.9) - 2.5, np.logaddexp(-1, 3)], rtol=1e-6)
    assert typed_prediction(logits)[0, 0].tolist() == [1, 1, 0, 2]
    np.testing.assert_allclose(any_defect_probability(logits), 1 - jax.nn.softmax(logits)[..., 0], atol=1e-6)
    out = metrics.summarize(jax.device_get(metrics.segmentation_sums(logits, labels, jnp.ones(1))))
    assert out["confusion"] == [[0, 1, 0], [0, 1, 1], [1, 0, 0]]  # rows true, columns predicted
    assert (out["tp"], out["fp"], out["fn"]) == (2, 1, 1)
    assert out["class_dice"] == pytest.approx([0.0, 2 / 4, 0.0])


def test_the_decision_shift_moves_the_any_defect_margin_of_a_typed_model():
    from flax import nnx

    head = nnx.Linear(4, 3, rngs=nnx.Rngs(params=jax.random.key(0)))  # a U-Net's head, on features
    head.bias[...] = jnp.array([0.3, -0.2, 0.5])
    model = types.SimpleNamespace(head=head)
    x = jax.random.normal(jax.random.key(1), (5, 4))
    before = head(x)
    after = calibration.shift_decision(model, 1.5).head(x)
    np.testing.assert_allclose(any_defect_margin(after), any_defect_margin(before) - 1.5, atol=1e-5)
    np.testing.assert_array_equal(jnp.argmax(after[..., 1:], -1), jnp.argmax(before[..., 1:], -1))


# -- a 3-class toy training ------------------------------------------------------------------


TYPED = """
[model]
base_features = 4
depth = 2
dropout = 0.0
classes = "typed"
[defects]
num_a = 1
num_b = 1
[training]
epochs = 2
batch_size = 4
learning_rate = 1e-2
seed = 1
"""


def _typed_films(n=24, frames=8, side=16):
    """Films whose "a" blob (softer) fluctuates more in m_z, and whose "b" blob (harder) less."""
    rng = np.random.default_rng(0)
    labels = np.zeros((n, side, side), np.uint8)
    for i in range(n):
        y, x = rng.integers(0, side - 5, 2)
        labels[i, y:y + 4, x:x + 4] = 1
        y2, x2 = (y + 8) % (side - 4), (x + 8) % (side - 4)
        labels[i, y2:y2 + 4, x2:x2 + 4] = np.where(labels[i, y2:y2 + 4, x2:x2 + 4] == 0, 2, 1)
    std = np.where(labels == 1, 0.3, np.where(labels == 2, 0.0, 0.1))[:, None]
    m = np.zeros((n, frames, 2, side, side), np.float32)
    m[:, :, 0] = 0.9
    m[:, :, 1] = (std * rng.normal(size=(n, frames, side, side))).astype(np.float32)
    return m, labels


def test_a_three_class_toy_training_writes_per_class_metrics(tmp_path):
    from jaxmag.assemble import measure_options
    from jaxmag.config import MeasuresConfig
    from jaxmag.learn.evaluation import load_trained, predict_class_proba, predict_proba
    from jaxmag.learn.loop import train_and_evaluate
    from jaxmag.learn.predict import predict_class_probability, predict_probability
    from jaxmag.learn.sources.movies import MovieSource

    config = loads_config(TYPED)
    m, labels = _typed_films()

    def source(classes):
        return MovieSource(m, labels, "xz", (("std", "z"),), measure_options(MeasuresConfig()), batch_size=4, seed=0,
                           augment=False, fresh_noise=False, steps_per_epoch=48, classes=classes,
                           num_a=config.defects.num_a)

    with pytest.raises(ValueError, match="classes = 'typed' but the training source gives 'binary'"):
        train_and_evaluate(config, source("binary"), tmp_path / "wrong", progress=False)
    src = source("typed")
    assert set(np.unique(src.val_set().labels)) <= {0, 1, 2} and src.describe()["classes"] == "typed"
    result = train_and_evaluate(config, src, tmp_path / "run", progress=False)
    record = json.loads((tmp_path / "run" / "eval_clean.json").read_text())
    assert record["classes"] == "typed" and record["class_names"] == ["background", "softer", "harder"]
    confusion = np.array(record["confusion"])
    assert confusion.shape == (3, 3) and len(record["class_dice"]) == 3
    assert confusion.sum() == record["num_images"] * 16 * 16
    # the headline Dice is that of any defect, the class map's non-background pixels
    assert (record["tp"], record["fp"], record["fn"]) == (confusion[1:, 1:].sum(), confusion[0, 1:].sum(),
                                                          confusion[1:, 0].sum())
    assert result["test"]["class_dice"] == record["class_dice"]
    assert "val_class_dice" in result["history"][-1]
    print("toy typed training: test Dice", record["dice"], "per class", record["class_dice"])
    assert min(record["class_dice"][1:]) > 0.5, record  # the types are learnt, not just the defects

    model, info = load_trained(tmp_path / "run")
    x = src.test_set().inputs
    cls = predict_class_proba(model, x)
    assert cls.shape == x.shape[:3] + (3,)
    np.testing.assert_allclose(predict_proba(model, x), 1 - cls[..., 0], atol=1e-5)
    raw = np.asarray(x[0]) * np.float32(info["norm_stats"]["std"][0]) + np.float32(info["norm_stats"]["mean"][0])
    any_p, _, _ = predict_probability(model, info, raw)
    per_class, tiles, _ = predict_class_probability(model, info, raw)
    assert per_class.shape == (16, 16, 3) and tiles == 1
    np.testing.assert_allclose(any_p, 1 - per_class[..., 0], atol=1e-5)


def test_a_typed_recorded_source_bins_the_classes_onto_the_pixels():
    from jaxmag import instrument as ins
    from jaxmag.config import MeasuresConfig
    from jaxmag.learn.sources.recorded import RecordedSource
    from jaxmag.recording import recording_plan

    m, labels = _typed_films(n=6, frames=6)
    plan = recording_plan(ins.Instrument(probe="z", pixel_size_m=8e-9), (16, 16), (4e-9, 4e-9), "xz", periodic=True)
    kw = dict(batch_size=2, indices={"train": np.arange(4), "val": np.arange(4, 5), "test": np.arange(5, 6)})
    typed = RecordedSource(m, labels, plan, (("std", "p"),), {"p": MeasuresConfig().options("p")}, classes="typed",
                           num_a=1, **kw)
    binary = RecordedSource(m, labels, plan, (("std", "p"),), {"p": MeasuresConfig().options("p")}, **kw)
    assert set(np.unique(typed.labels)) == {0, 1, 2}
    np.testing.assert_array_equal(typed.labels > 0, binary.labels)
    _, y = next(iter(typed.train_batches(0, jax.random.key(0))))  # augmented: classes moved and binned on device
    assert y.shape == (2, 8, 8) and set(np.unique(np.asarray(y))) <= {0, 1, 2} and int(np.asarray(y).max()) == 2


# -- the typed baseline ----------------------------------------------------------------------


def _blob_maps(n=4, side=32, positive_class=1):
    """Background noise, one blob above (+4) and one below (-4) it; ``positive_class`` labels the upper one."""
    rng = np.random.default_rng(1)
    maps = rng.normal(0, 0.3, (n, side, side))
    classes = np.zeros((n, side, side), np.uint8)
    for i in range(n):
        y, x = rng.integers(0, side // 2 - 6, 2)
        maps[i, y:y + 6, x:x + 6] += 4.0
        classes[i, y:y + 6, x:x + 6] = positive_class
        maps[i, y + 16:y + 22, x + 16:x + 22] -= 4.0
        classes[i, y + 16:y + 22, x + 16:x + 22] = 3 - positive_class
    return maps, classes


@pytest.mark.parametrize("positive_class", [1, 2])
def test_the_typed_baseline_types_detections_by_the_sign_learnt_on_validation(positive_class):
    val_x, val_y = _blob_maps(positive_class=positive_class)
    detect = baseline.fit(val_x, val_y > 0)
    fitted = baseline.fit_types(detect, val_x, val_y)
    assert fitted.signs == ((1,) if positive_class == 1 else (-1,))
    test_x, test_y = _blob_maps(n=2, positive_class=positive_class)
    test_x = test_x[::-1].copy()  # other films than the fit's
    test_y = test_y[::-1].copy()
    pred = baseline.typed_predict(fitted, test_x)
    assert pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1, 2}
    score = baseline.typed_score(pred, test_y)
    assert min(score["class_dice"]) > 0.9, score
    # both defect pixels typed: the upper blob gets positive_class
    upper = test_x > 2
    assert np.all(pred[upper & (pred > 0)] == positive_class)


# -- config ----------------------------------------------------------------------------------


def test_config_round_trip_with_typed_classes_and_binary_keeps_its_hash():
    typed = loads_config('[model]\nclasses = "typed"\n')
    assert typed.model.classes == "typed"
    assert 'classes = "typed"' in typed.to_toml()
    assert loads_config(typed.to_toml()) == typed
    assert config_hash(typed) != config_hash(Config())
    binary = loads_config('[model]\nclasses = "binary"\n')
    assert "classes" not in Config().to_dict()["model"] and "classes" not in binary.to_toml()
    assert config_hash(binary) == config_hash(Config())
    with pytest.raises(ConfigError, match="model.classes"):
        loads_config('[model]\nclasses = "colours"\n')
    # the config's choices are the registry's schemes
    assert typing.get_args(typing.get_type_hints(ModelConfig)["classes"]) == tuple(SCHEMES)


def test_cli_classes_override():
    from jaxmag.cli.train import with_classes

    assert with_classes(Config(), "typed").model.classes == "typed"
    assert with_classes(Config(), None) == Config()


def test_runs_from_before_the_hierarchical_head_load_with_the_joint_one(tmp_path):
    from jaxmag.learn.loop import default_head
    from jaxmag.learn.run_folder import RUN_FILE, read_run_info

    (tmp_path / RUN_FILE).write_text('{"inputs": ["std:z"]}')
    assert read_run_info(tmp_path)["head"] == "joint"
    config = Config()
    assert default_head(config) == "joint"
    typed = config.replace(model=ModelConfig(classes="typed"))
    assert default_head(typed) == "hierarchical"
