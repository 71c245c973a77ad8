"""The training loop: ``create_train_state``, ``train_step``, ``eval_step``, ``train_and_evaluate``.

Training is a pure function of (params, optimiser state, step, key, batch). The model object
is split once into a static ``graphdef`` and its parameters (``flax.nnx.split``); the steps
merge them back inside ``jax.jit``. Both steps are compiled once per run with explicit
shardings (``jaxmag.learn.sharding``): batches split over the ``"data"`` mesh axis, everything
else replicated, so the same code runs on 1 device, N devices or N hosts.

Randomness: the parameters come from ``fold_in(key(seed), 0)``; dropout at step ``s`` uses
``fold_in(fold_in(key(seed), 1), s)``; the data order of epoch ``e`` comes from
``fold_in(fold_in(key(seed), 2), e)``. Nothing depends on how many epochs ran before in
this process, so ``--resume`` reproduces an uninterrupted run exactly.

The run folder (``out_dir``) holds ``config.toml``, ``run.json`` (inputs, train condition,
split, normalisation, config hash, source), ``history.json``, ``checkpoints/{best,latest}``
and ``eval_<condition>.{json,png}``; see ``docs/training.md``.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxmag.config import Config
from jaxmag.io import outdir
from jaxmag.io.atomic import write_text
from jaxmag.models.unet import UNet
from jaxmag.progress import bar as progress_bar, write
from jaxmag.pytree import pytree_dataclass, static_field
from jaxmag.learn import calibration, checkpoint, sharding
from jaxmag.learn.classes import class_names, class_scheme
from jaxmag.learn.metrics import segmentation_sums, summarize
from jaxmag.learn.recipe import get_recipe, loss_fn as recipe_loss, model_dropout
from jaxmag.learn.run_folder import HISTORY_FILE, RUN_FILE, _check_resumable, _run_info, _write_json, read_run_info, save_eval_report



@pytree_dataclass
class TrainState:
    """Everything that changes during training, as a pytree (replicated over the mesh).

    ``rng`` is the raw ``key_data`` (uint32[2]) of the dropout key, so it checkpoints as a
    plain array. ``graphdef`` (model structure) and ``tx`` (optimiser) are static.
    """

    step: jax.Array  # int32 scalar: optimiser steps taken
    params: nnx.State
    opt_state: Any
    rng: jax.Array
    graphdef: Any = static_field()
    tx: Any = static_field()

    def checkpoint_tree(self) -> dict:
        return {"step": self.step, "params": self.params, "opt_state": self.opt_state, "rng": self.rng}


def default_head(config: Config) -> str:
    """The U-Net head a new run of ``config`` gets: ``"hierarchical"`` for typed classes (detection
    first, the type from the detector's features: ``jaxmag.models.unet``), else ``"joint"``."""
    return "hierarchical" if len(class_scheme(config.model.classes)) > 2 else "joint"


def make_model(config: Config, in_channels: int, key: jax.Array, input_norm: str | None = None,
               head: str | None = None) -> UNet:
    """The U-Net described by ``config.model`` (and ``training.compute_dtype``): ``num_classes``
    logits for the ``[model] classes`` scheme (``jaxmag.learn.classes``: 2 binary, 3 typed).

    ``input_norm``: the UNet's input normalisation; ``None`` takes the recipe's
    (``jaxmag.learn.recipe``). ``head``: ``None`` takes ``default_head``. A stored run passes the
    values its ``run.json`` records.
    """
    m = config.model
    dtype = jnp.bfloat16 if config.training.compute_dtype == "bfloat16" else jnp.float32
    return UNet(
        in_channels,
        base_features=m.base_features,
        depth=m.depth,
        dropout=model_dropout(config),
        compute_dtype=dtype,
        num_classes=len(class_scheme(m.classes)),
        input_norm=get_recipe(config.training.recipe).input_norm if input_norm is None else input_norm,
        head=default_head(config) if head is None else head,
        rngs=nnx.Rngs(params=key),
    )


def make_optimizer(config: Config, total_steps: int) -> optax.GradientTransformation:
    """Adam (AdamW when ``weight_decay > 0``) with the configured schedule and clipping.

    Schedules: ``constant``; ``cosine`` (decay to 0 over ``total_steps``); ``warmup_cosine``
    (linear warm-up over ``warmup_steps`` from 0, then cosine decay to 0).
    """
    # a constant schedule does not depend on the run length: share one optimiser object
    return _optimizer(config.training, int(total_steps) if config.training.schedule != "constant" else 0)


@functools.lru_cache(maxsize=16)
def _optimizer(t, total_steps: int) -> optax.GradientTransformation:
    # cached: the optimiser is a static part of TrainState, so an equal config must give the
    # same object for jit to reuse compiled steps (resume, studies, tests).
    total = max(int(total_steps), 1)
    if t.schedule == "constant":
        lr = optax.constant_schedule(t.learning_rate)
    elif t.schedule == "cosine":
        lr = optax.cosine_decay_schedule(t.learning_rate, decay_steps=total)
    else:
        warm = min(t.warmup_steps, total - 1)
        lr = optax.warmup_cosine_decay_schedule(0.0, t.learning_rate, warmup_steps=max(warm, 0), decay_steps=total)
    opt = optax.adamw(lr, weight_decay=t.weight_decay) if t.weight_decay > 0 else optax.adam(lr)
    if t.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(t.grad_clip), opt)
    return opt


def create_train_state(
    config: Config, in_channels: int, key: jax.Array, total_steps: int, mesh: jax.sharding.Mesh,
    input_norm: str | None = None,
    head: str | None = None,
) -> TrainState:
    """Fresh parameters and optimiser state, replicated on ``mesh``.

    ``key`` is a typed PRNG key; parameters use ``fold_in(key, 0)``, dropout ``fold_in(key, 1)``.
    Every process computes the same values and assembles them as replicated global arrays.
    """
    tx = make_optimizer(config, total_steps)
    # initialise eagerly and replicate from the host: compiling the initialisers as one jitted
    # program costs far more than running them, and every process derives the same values.
    model = make_model(config, in_channels, jax.random.fold_in(key, 0), input_norm, head)
    graphdef, params = nnx.split(model, nnx.Param)
    host = jax.device_get(params)
    params = jax.tree.map(lambda a: sharding.replicate(a, mesh), host)
    rng = sharding.replicate(np.asarray(jax.random.key_data(jax.random.fold_in(key, 1))), mesh)
    step = sharding.replicate(np.zeros((), np.int32), mesh)
    opt_state = jax.jit(tx.init, out_shardings=sharding.replicated(mesh))(params)
    return TrainState(step=step, params=params, opt_state=opt_state, rng=rng, graphdef=graphdef, tx=tx)


def train_step(state: TrainState, inputs: jax.Array, labels: jax.Array, loss: str = "ce") -> tuple[TrainState, dict]:
    """One Adam step on a global batch: ``inputs (B, ny, nx, C)``, ``labels (B, ny, nx)`` int32.

    ``loss`` (static): ``"ce"``, mean pixel-wise cross-entropy over the batch (the paper's), or
    ``"ce_dice"``, that plus the soft Dice loss of any defect (``jaxmag.learn.recipe``).
    Returns the new state and ``{"loss": scalar}`` (the loss before the update).
    """
    dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    batch_loss = recipe_loss(loss)

    def loss_fn(params):
        model = nnx.merge(state.graphdef, params)
        logits = model(inputs, train=True, rngs=nnx.Rngs(dropout=dropout_key))
        return batch_loss(logits, labels)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = TrainState(
        step=state.step + 1, params=params, opt_state=opt_state, rng=state.rng, graphdef=state.graphdef, tx=state.tx
    )
    return new, {"loss": loss}


def eval_step(graphdef, params: nnx.State, inputs: jax.Array, labels: jax.Array, mask: jax.Array) -> dict:
    """Additive metric sums (``jaxmag.learn.metrics.segmentation_sums``) of one batch, dropout off."""
    logits = nnx.merge(graphdef, params)(inputs, train=False)
    return segmentation_sums(logits, labels, mask)


@functools.lru_cache(maxsize=16)
def compiled_eval_step(graphdef, mesh) -> Callable:
    """``eval_step`` for ``graphdef`` jitted with the data-parallel shardings of ``mesh`` (cached)."""
    bsh, rep = sharding.batch_sharding(mesh), sharding.replicated(mesh)
    return jax.jit(
        lambda params, x, y, m: eval_step(graphdef, params, x, y, m),
        in_shardings=(rep, bsh, bsh, bsh),
        out_shardings=rep,
    )


def evaluate_params(graphdef, params, eval_set, batch_size: int, mesh, step_fn: Callable | None = None) -> dict:
    """Metrics (``jaxmag.learn.metrics.summarize``) of ``params`` over an ``EvalSet``."""
    step_fn = step_fn or compiled_eval_step(graphdef, mesh)
    total = None
    for x, y, m in eval_set.batches(batch_size, mesh):
        sums = step_fn(params, x, y, m)
        total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    if total is None:
        raise ValueError("the evaluation set is empty")
    return summarize(jax.device_get(total))


# ---------------------------------------------------------------------------------------------
# the loop


@dataclasses.dataclass
class _Progress:
    """Where a run stands: the next epoch, the best validation Dice so far and the history."""

    start_epoch: int = 0
    best_dice: float = -1.0
    best_epoch: int = 0
    history: list = dataclasses.field(default_factory=list)


def train_and_evaluate(
    config: Config,
    source,
    out_dir: str | Path,
    *,
    resume: bool = False,
    mesh: jax.sharding.Mesh | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    evaluate_test: bool = True,
) -> dict:
    """Train a U-Net on ``source``, keep the best (validation Dice) and latest checkpoints.

    Args:
        config: the resolved config (``model`` and ``training`` sections are used;
            ``training.recipe`` picks the loss, ``jaxmag.learn.recipe``).
        source: a ``jaxmag.learn.sources`` source (measures file, movies or online) built on ``mesh``.
        out_dir: the run folder; must not hold a run unless ``resume``.
        resume: continue from ``checkpoints/latest`` (same config, split and normalisation
            required); the result equals an uninterrupted run.
        on_epoch_end: called as ``on_epoch_end(epoch_index, record)`` after each epoch's
            checkpoint is saved (raising ``KeyboardInterrupt`` there simulates an interrupt).
        evaluate_test: after training, evaluate the best checkpoint on ``source.test_set()``
            and write ``eval_<condition>.{json,png}``.

    Returns ``{"best_val_dice", "best_epoch", "history", "test"}``.
    """
    t = config.training
    check_source_classes(config, source)
    mesh = mesh if mesh is not None else sharding.data_mesh()
    sharding.check_batch_size(t.batch_size, mesh)
    if source.batch_size != t.batch_size:
        raise ValueError(f"source batch size {source.batch_size} differs from training.batch_size {t.batch_size}")
    out = Path(out_dir)
    root = jax.random.key(t.seed)
    # a resumed (or fine-tuning) run keeps the input normalisation its run.json records
    stored = read_run_info(out) if resume and (out / RUN_FILE).is_file() else None
    input_norm = stored["input_norm"] if stored is not None else get_recipe(t.recipe).input_norm
    head = stored["head"] if stored is not None else default_head(config)
    state = create_train_state(config, len(source.input_names), root, t.epochs * source.steps_per_epoch, mesh,
                               input_norm, head)
    state, run = _open_run(config, source, out, state, resume, input_norm, head)
    ny, nx = _image_shape(source)
    step_fn = compile_train_step(state, mesh, (t.batch_size, ny, nx, len(source.input_names)), get_recipe(t.recipe).loss)
    eval_fn = compiled_eval_step(state.graphdef, mesh)
    val_set = source.val_set()
    data_root = jax.random.fold_in(root, 2)
    show = progress and jax.process_index() == 0

    sharding.barrier("train_start")  # all processes compiled: start the collectives together
    for epoch in range(run.start_epoch, t.epochs):
        last_val = run.history[-1].get("val_dice") if run.history else None
        state, record = _train_epoch(state, step_fn, source, epoch, jax.random.fold_in(data_root, epoch), t, show, last_val)
        if (epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs:
            _validate(state, val_set, t.batch_size, mesh, eval_fn, epoch, record, run, out,
                      calibrate=get_recipe(t.recipe).calibrate)
        _end_epoch(state, epoch, t.epochs, record, run, out)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)

    result = {"best_val_dice": run.best_dice, "best_epoch": run.best_epoch, "history": run.history, "test": None,
              "decision": None}
    if get_recipe(t.recipe).calibrate:
        result["decision"] = _calibrate_best(state, val_set, t.batch_size, mesh, out, run.best_epoch)
    if evaluate_test:
        result["test"] = _test_best(state, source, t.batch_size, mesh, eval_fn, out, run.best_epoch,
                                    class_record(config))
    return result


def check_source_classes(config: Config, source) -> None:
    """``ValueError`` unless ``source`` labels its pixels with ``[model] classes`` (a source without a
    ``classes`` attribute, e.g. ``OnlineSource``, gives binary labels)."""
    given = getattr(source, "classes", "binary")
    if given != config.model.classes:
        raise ValueError(f"[model] classes = {config.model.classes!r} but the training source gives {given!r} labels; "
                         f"build the source with classes={config.model.classes!r} (jaxmag.learn.recipe.make_source "
                         "does), or train a binary model (--classes binary)"
                         + ("; --online and fine-tuning generate binary labels only" if given == "binary" else ""))


def class_record(config: Config) -> dict:
    """What an evaluation record says about the classes of a typed model (``{}`` for binary, whose
    records stay as they were): ``classes`` (the scheme) and ``class_names`` (background first),
    the order of its ``class_dice`` and of the rows and columns of its ``confusion``."""
    if config.model.classes == "binary":
        return {}
    return {"classes": config.model.classes, "class_names": list(class_names(config.model.classes, config.defects))}


def _calibrate_best(state, val_set, batch_size: int, mesh, out: Path, best_epoch: int) -> dict:
    """The best checkpoint's validation-chosen decision threshold, written to ``decision.json`` once."""
    decision = calibration.read_decision(out, best_epoch)
    if decision is None:
        tree, _ = checkpoint.restore(out / "checkpoints", "best", _abstract(state.checkpoint_tree()))
        decision = {"best_epoch": best_epoch,
                    **calibration.choose_decision_bias(state.graphdef, tree["params"], val_set, batch_size, mesh)}
        _write_json(out / calibration.DECISION_FILE, decision)
    if jax.process_index() == 0:
        write(f"decision threshold {decision['decision_bias']:+.1f} (logit margin): val dice "
              f"{decision['val_dice']:.4f}, {decision['val_dice_argmax']:.4f} at argmax")
    return decision


def _open_run(config: Config, source, out: Path, state: TrainState, resume: bool,
              input_norm: str = "none", head: str = "joint") -> tuple[TrainState, _Progress]:
    """Check the run folder and either restore ``checkpoints/latest`` (resume) or start it."""
    info = _run_info(config, source, input_norm, head)
    ckpt_dir = out / "checkpoints"
    if resume:
        _check_resumable(read_run_info(out), info, out, config)
        if not checkpoint.exists(ckpt_dir, "latest"):  # interrupted before the first epoch ended
            return state, _Progress()
        tree, meta = checkpoint.restore(ckpt_dir, "latest", _abstract(state.checkpoint_tree()))
        state = TrainState(**tree, graphdef=state.graphdef, tx=state.tx)
        return state, _Progress(int(meta["epoch"]), float(meta["best_dice"]), int(meta["best_epoch"]), list(meta["history"]))
    taken = (out / RUN_FILE).exists()
    sharding.barrier("run_folder_checked")  # every process looked before process 0 writes
    if taken:
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if jax.process_index() == 0:  # never replace a file of the user's (or of another run) in --out
        outdir.claim(out, ["config.toml", RUN_FILE, HISTORY_FILE, calibration.DECISION_FILE, "checkpoints"], f"train {info['config_hash']}",
                     fix="move it away or choose another --out")
        write_text(out / "config.toml", config.to_toml())
    _write_json(out / RUN_FILE, info)
    return state, _Progress()


def _train_epoch(state, step_fn, source, epoch: int, key, t, show: bool, last_val) -> tuple[TrainState, dict]:
    """One pass over ``source.train_batches(epoch, key)``; returns the state and the epoch's record."""
    steps = source.steps_per_epoch
    # lines=0: in a log, the epoch's summary line (_end_epoch) is its progress line
    bar = progress_bar(steps, desc=f"epoch {epoch + 1}/{t.epochs}", enabled=show, leave=False, lines=0)
    loss_sum = jnp.zeros((), jnp.float32)
    t0 = time.perf_counter()
    fetch_every = max(1, steps // 10)
    for s, (x, y) in enumerate(source.train_batches(epoch, key)):
        state, metrics = step_fn(state, x, y)
        loss_sum = loss_sum + metrics["loss"]
        bar.update(1)
        if show and (s + 1) % fetch_every == 0:
            rate = (s + 1) * t.batch_size / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{float(metrics['loss']):.4f}", val_dice=_fmt(last_val), img_s=f"{rate:.1f}")
    loss = float(loss_sum) / steps  # float() waits for the last step
    seconds = time.perf_counter() - t0
    bar.close()
    return state, {"epoch": epoch + 1, "loss": loss, "images_per_s": steps * t.batch_size / seconds, "seconds": seconds}


def _validate(state, val_set, batch_size: int, mesh, eval_fn, epoch: int, record: dict, run: _Progress, out: Path,
              *, calibrate: bool = False) -> None:
    """Validation Dice into ``record``; a new best is saved as ``checkpoints/best``.

    ``calibrate``: the checkpoint is chosen by its validation Dice at its own best threshold
    (``calibration.choose_decision_bias``), the decision it will be used with, instead of at argmax.
    """
    if calibrate:
        val, decision = calibration.validate(state.graphdef, state.params, val_set, batch_size, mesh)
        record.update(val_dice_calibrated=decision["val_dice"], decision_bias=decision["decision_bias"])
        score = decision["val_dice"]
    else:
        val = evaluate_params(state.graphdef, state.params, val_set, batch_size, mesh, eval_fn)
        score = val["dice"]
    record.update(val_dice=val["dice"], val_dice_per_image=val["dice_per_image"], val_loss=val["loss"])
    if "class_dice" in val:  # typed models: each class's validation Dice, background first
        record["val_class_dice"] = val["class_dice"]
    if score > run.best_dice:
        run.best_dice, run.best_epoch = score, epoch + 1
        checkpoint.save(out / "checkpoints", "best", epoch + 1, state.checkpoint_tree(), {"epoch": epoch + 1, "val": val})


def _end_epoch(state, epoch: int, epochs: int, record: dict, run: _Progress, out: Path) -> None:
    """Append the record, save ``checkpoints/latest`` and ``history.json``."""
    run.history.append(record)
    meta = {"epoch": epoch + 1, "best_dice": run.best_dice, "best_epoch": run.best_epoch, "history": run.history}
    checkpoint.save(out / "checkpoints", "latest", epoch + 1, state.checkpoint_tree(), meta)
    _write_json(out / HISTORY_FILE, run.history)
    # the per-epoch summary is not progress: --no-progress hides the bars, not these lines
    if jax.process_index() == 0:
        calibrated = ""
        if "val_dice_calibrated" in record:
            calibrated = f" ({record['val_dice_calibrated']:.4f} at threshold {record['decision_bias']:+.1f})"
        write(f"epoch {epoch + 1}/{epochs}  loss {record['loss']:.4f}  val dice {_fmt(record.get('val_dice'))}"
              f"{calibrated}  {record['images_per_s']:.1f} img/s")


def _test_best(state, source, batch_size: int, mesh, eval_fn, out: Path, best_epoch: int, classes: dict) -> dict:
    """The best checkpoint on ``source.test_set()``; writes ``eval_<condition>.{json,png}``."""
    tree, _ = checkpoint.restore(out / "checkpoints", "best", _abstract(state.checkpoint_tree()))
    test_set = source.test_set()
    model = nnx.merge(state.graphdef, tree["params"])
    decision = calibration.read_decision(out, best_epoch)
    bias = 0.0 if decision is None else decision["decision_bias"]
    params = nnx.split(calibration.shift_decision(model, bias), nnx.Param)[1]
    metrics = evaluate_params(state.graphdef, params, test_set, batch_size, mesh, eval_fn)
    return save_eval_report(out, test_set, metrics, model,
                            extra={"checkpoint": "best", "best_epoch": best_epoch, "decision_bias": bias, **classes})


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def _abstract(tree):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), tree)


def compile_train_step(state: TrainState, mesh: jax.sharding.Mesh, batch_shape: tuple[int, int, int, int], loss: str = "ce") -> Callable:
    """``train_step`` jitted with the data-parallel shardings and compiled ahead of time.

    ``batch_shape`` is the global ``(B, ny, nx, C)``. Compiling once up front means no
    recompiles during training and epoch timings free of compilation.
    """
    jitted = _jitted_train_step(mesh, loss)
    bsh = sharding.batch_sharding(mesh)
    x = jax.ShapeDtypeStruct(tuple(batch_shape), jnp.float32, sharding=bsh)
    y = jax.ShapeDtypeStruct(tuple(batch_shape[:3]), jnp.int32, sharding=bsh)
    return jitted.lower(state, x, y).compile()


@functools.lru_cache(maxsize=16)
def _jitted_train_step(mesh, loss: str = "ce") -> Callable:
    bsh, rep = sharding.batch_sharding(mesh), sharding.replicated(mesh)
    step = functools.partial(train_step, loss=loss)
    return jax.jit(step, in_shardings=(rep, bsh, bsh), out_shardings=(rep, rep), donate_argnums=0)


def _image_shape(source) -> tuple[int, int]:
    shape = source.describe()["image_shape"]
    return int(shape[0]), int(shape[1])
