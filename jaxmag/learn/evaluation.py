"""Using a trained run: load it, predict, and evaluate it on any noise condition.

- ``load_trained(run_dir) -> (model, run_info)``: the U-Net with the best checkpoint's
  parameters and the run's ``run.json`` (inputs, normalisation statistics, split, ...).
- ``predict_logits(model, inputs)`` / ``predict_proba(model, inputs)`` /
  ``predict_class_proba(model, inputs)``: inputs already normalised with
  ``normalise_inputs(raw, run_info)``, ``(N, ny, nx, C)`` -> logits ``(N, ny, nx, K)`` /
  probability of any defect ``(N, ny, nx)`` / per-class probabilities ``(N, ny, nx, K)``
  (``K`` = 2 binary, 3 typed: ``jaxmag.learn.classes``).
- ``evaluate(model, eval_set)``: test metrics (``jaxmag.learn.metrics.summarize``).
- ``evaluate_run(run_dir, measures, condition)``: the test split of a measures file in a noise
  condition, normalised with the run's clean statistics; writes ``eval_<condition>.json`` and
  ``eval_<condition>.png`` (example inputs, truth, predicted probability and mask). The record's
  ``baseline`` holds the non-learned baseline on the same test split (``jaxmag.learn.baseline``,
  fitted on the validation split of that condition). A typed model's record adds ``classes``,
  ``class_names``, ``class_dice`` and ``confusion`` (``jaxmag.learn.metrics``), and its baseline
  the typed baseline's (``baseline["typed"]``).
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmag.channels import parse_channels
from jaxmag.config import load_stored_config
from jaxmag.learn import calibration, checkpoint, normalization, sharding
from jaxmag.learn.classes import any_defect_probability
from jaxmag.learn.loop import class_record, evaluate_params, make_model
from jaxmag.learn.run_folder import read_run_info, save_eval_report


def load_trained(run_dir: str | Path, slot: str = "best") -> tuple[nnx.Module, dict]:
    """The model of a run with the parameters of checkpoint ``slot`` (``best`` or ``latest``).

    Returns ``(model, run_info)``; ``run_info`` is ``run.json`` plus ``"run_dir"``,
    ``"config"`` (the resolved ``Config``), ``"checkpoint_epoch"`` and ``"decision_bias"``: the
    validation-chosen threshold on the logit margin (``decision.json``, 0 = argmax), already
    folded into the returned model's head so that its argmax and softmax use it.
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    config = load_stored_config(run_dir / "config.toml")
    in_channels = len(info["inputs"])
    input_norm = info["input_norm"]
    abstract = nnx.eval_shape(lambda: make_model(config, in_channels, jax.random.key(0), input_norm, info["head"]))
    graphdef, params = nnx.split(abstract, nnx.Param)
    rep = sharding.replicated(sharding.data_mesh(jax.local_devices()[:1]))
    target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep), params)
    tree, meta = _restore_params(run_dir / "checkpoints", slot, target)
    model = nnx.merge(graphdef, tree)
    # the validation-chosen threshold of this checkpoint (calibrated recipes), folded into the head
    decision = calibration.read_decision(run_dir, meta.get("epoch")) if slot == "best" else None
    bias = 0.0 if decision is None else float(decision["decision_bias"])
    calibration.shift_decision(model, bias)
    return model, {**info, "run_dir": str(run_dir), "config": config, "checkpoint_epoch": meta.get("epoch"),
                   "decision_bias": bias, "input_norm": input_norm}


def _restore_params(ckpt_dir: Path, slot: str, target):
    # restore only the parameters: the optimiser state need not be described.
    import orbax.checkpoint as ocp

    path = ckpt_dir / slot
    if not path.is_dir():
        raise FileNotFoundError(f"no '{slot}' checkpoint in {ckpt_dir}")
    try:
        with ocp.CheckpointManager(path.resolve(), options=ocp.CheckpointManagerOptions(create=False)) as mngr:
            step = mngr.latest_step()
            if step is None:
                raise FileNotFoundError(f"no '{slot}' checkpoint in {ckpt_dir}")
            restored = mngr.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.PyTreeRestore(
                        item={"params": target},
                        restore_args={"params": jax.tree.map(lambda a: ocp.ArrayRestoreArgs(sharding=a.sharding), target)},
                        partial_restore=True,
                    ),
                    meta=ocp.args.JsonRestore(),
                ),
            )
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise checkpoint.corrupt_error(path, exc) from exc  # one line, without TensorStore's spec dump
    return restored["state"]["params"], restored["meta"]


def normalise_inputs(raw: np.ndarray, run_info: dict) -> np.ndarray:
    """Normalise raw channels ``(N, ny, nx, C)`` with the run's clean-training statistics."""
    return normalization.normalize(np.asarray(raw, np.float32), run_info["norm_stats"])


@functools.partial(jax.jit, static_argnums=0)
def _logits(graphdef, params, x):
    return nnx.merge(graphdef, params)(x, train=False)


def predict_logits(model: nnx.Module, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Logits ``(N, ny, nx, K)`` float32 for normalised ``inputs (N, ny, nx, C)`` (dropout off)."""
    graphdef, params = nnx.split(model, nnx.Param)
    inputs = np.asarray(inputs, np.float32)
    if inputs.ndim == 3:
        raise ValueError(f"inputs must be (N, ny, nx, C) channel-last, got {inputs.shape}; add a channel axis")
    out = []
    for start in range(0, inputs.shape[0], batch_size):
        chunk = inputs[start : start + batch_size]
        pad = batch_size - chunk.shape[0]
        if pad and inputs.shape[0] > batch_size:  # keep one compiled shape
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        out.append(np.asarray(_logits(graphdef, params, chunk))[: batch_size - pad])
    return np.concatenate(out)


def predict_proba(model: nnx.Module, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Probability of any defect ``(N, ny, nx)``: the softmax's defect channel of a binary model,
    ``1 - p(background)`` of a typed one (``jaxmag.learn.classes.any_defect_probability``)."""
    logits = predict_logits(model, inputs, batch_size)
    return np.asarray(any_defect_probability(jnp.asarray(logits)))


def predict_class_proba(model: nnx.Module, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Per-class probabilities ``(N, ny, nx, K)`` (softmax of the logits; class 0 background, the
    order of ``jaxmag.learn.classes.class_names``)."""
    logits = predict_logits(model, inputs, batch_size)
    return np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1))


def evaluate(model: nnx.Module, eval_set, batch_size: int = 32, mesh=None) -> dict:
    """Test metrics of ``model`` over an ``EvalSet`` (aggregated and per-image Dice, loss, counts)."""
    mesh = mesh if mesh is not None else sharding.data_mesh()
    graphdef, params = nnx.split(model, nnx.Param)
    params = jax.device_put(params, sharding.replicated(mesh))
    return evaluate_params(graphdef, params, eval_set, batch_size, mesh)


def evaluate_run(run_dir: str | Path, measures: str | Path, condition: str = "clean", batch_size: int | None = None) -> dict:
    """Evaluate a run's best model on the test split of ``measures`` in ``condition``.

    The measures file must hold the same labels as the one the run was trained on (checked by
    hash), since the stored test indices refer to it. Writes ``eval_<condition>.{json,png}``.
    """
    from jaxmag.learn.sources.measures import MeasuresSource

    model, info = load_trained(run_dir)
    if info["split"] is None:
        raise ValueError(f"{run_dir} was trained on generated data; it has no stored split of a measures file")
    inputs = parse_channels(info["inputs"])
    config = info["config"]
    typed = config.model.classes != "binary"
    if typed and config.instrument.enabled:
        raise ValueError(f"{run_dir} segments [model] classes = {config.model.classes!r}, but the measures file of an "
                         "[instrument] stores pixel labels (0/1) without the blob ids that tell the classes apart; "
                         "evaluate it on its own recorded test films (the run's eval_*.json from training)")
    bs = batch_size or config.training.batch_size
    mesh = sharding.data_mesh()
    bs = max(mesh.devices.size, bs - bs % mesh.devices.size)
    source = MeasuresSource(
        measures, inputs, train_condition="clean", batch_size=bs, indices=info["split"],
        norm_stats=info["norm_stats"], mesh=mesh, load_train=False,
        classes=config.model.classes, num_a=config.defects.num_a,
    )
    if source.labels_sha256 != info["source"].get("labels_sha256"):
        raise ValueError(
            f"{measures} does not hold the labels the run was trained on (labels hash {source.labels_sha256} "
            f"vs {info['source'].get('labels_sha256')}); its stored test split would be meaningless"
        )
    test = source.test_set(condition)
    t0 = time.perf_counter()
    metrics = evaluate(model, test, bs, mesh)
    metrics["seconds"] = time.perf_counter() - t0
    from jaxmag.learn import baseline  # the non-learned row reported beside every model

    base = baseline.fit_and_evaluate(measures, inputs, test.condition, info["split"],
                                     periodic=config.grid.boundary == "periodic",
                                     classes=config.model.classes, num_a=config.defects.num_a)
    return save_eval_report(run_dir, test, metrics, model, extra={"checkpoint": "best", "checkpoint_epoch": info["checkpoint_epoch"], "measures_file": str(Path(measures).resolve()), "baseline": base, **class_record(config)})
