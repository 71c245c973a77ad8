"""The validation-chosen decision threshold (jaxmag.learn.calibration): exact counts, a known
threshold recovered, and the shift folded into the head reproducing it."""
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmag.learn import sharding
from jaxmag.learn.calibration import THRESHOLD_GRID, choose_decision_bias, shift_decision, threshold_sums
from jaxmag.learn.sources import EvalSet
from jaxmag.learn.evaluation import predict_logits
from jaxmag.models.unet import UNet


def test_threshold_sums_are_the_confusion_counts_at_each_threshold():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5, 2)).astype(np.float32)
    labels = rng.integers(0, 2, size=(3, 4, 5))
    mask = np.array([1.0, 1.0, 0.0], np.float32)  # the last image is padding
    ts = np.array([-1.0, 0.0, 0.5], np.float32)
    got = np.asarray(threshold_sums(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask), jnp.asarray(ts)))
    margin = logits[..., 1] - logits[..., 0]
    for k, t in enumerate(ts):
        p, y = margin[:2] > t, labels[:2].astype(bool)
        np.testing.assert_array_equal(got[k], [np.sum(p & y), np.sum(p & ~y), np.sum(~p & y)])


def test_a_known_threshold_is_recovered_and_the_shifted_model_applies_it():
    model = UNet(in_channels=1, base_features=4, depth=1, dropout=0.0, rngs=nnx.Rngs(0))
    x = np.random.default_rng(1).normal(size=(8, 16, 16, 1)).astype(np.float32)
    margin = predict_logits(model, x)
    margin = margin[..., 1] - margin[..., 0]
    # spread the margins over a few units (a random head is nearly indifferent) around 0
    model.head.kernel[...] = model.head.kernel[...] * (2.0 / margin.std())
    model.head.bias[...] = model.head.bias[...] * 0.0
    margin = predict_logits(model, x)
    margin = margin[..., 1] - margin[..., 0]
    q = 1.3  # labels: the model's own margin cut at a grid point
    labels = (margin > q).astype(np.int32)
    mesh = sharding.data_mesh()
    graphdef, params = nnx.split(model, nnx.Param)
    decision = choose_decision_bias(graphdef, params, EvalSet(x, labels), 4, mesh)
    assert q in THRESHOLD_GRID and np.any((margin > q - 0.1) & (margin <= q))  # the grid's neighbour differs
    assert decision["decision_bias"] == q and decision["val_dice"] == 1.0
    assert decision["val_dice_argmax"] < 0.8
    shifted = shift_decision(model, decision["decision_bias"])
    logits = predict_logits(shifted, x)
    pred = np.argmax(logits, -1) == 1
    np.testing.assert_array_equal(pred, margin > decision["decision_bias"])
    # zero leaves the model as it is
    before = np.asarray(shifted.head.bias[...]).copy()
    shift_decision(shifted, 0.0)
    np.testing.assert_array_equal(np.asarray(shifted.head.bias[...]), before)
