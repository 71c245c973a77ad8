"""Fine-tune a trained run on simulations with a given measurement noise, generated on the fly.

``finetune(run_dir, noise, out_dir, ...)`` continues training a run's **best** parameters on
batches from ``jaxmag.learn.online.make_online_generator``: films drawn from the run's own config
(grid, material, defects, simulation, measures), simulated, made noisy with ``noise`` and
reduced to the run's input measures, all on the device at every step. The run's clean
normalisation statistics are kept unchanged (as the paper applies clean statistics to every
noise condition), so the fine-tuned model reads inputs exactly as the original did.

The new run folder has the format of ``jaxmag train`` (``config.toml``, ``run.json``,
``history.json``, ``checkpoints/{best,latest}``, ``eval_<condition>.{json,png}``), so
``jaxmag predict`` and ``jaxmag.learn.evaluation`` work on it. Its ``run.json`` keeps the original
run's ``split`` and measures-file ``labels_sha256``: the fine-tuned model never saw that file (its
films come from a separate defect pool, see ``jaxmag.learn.online``), so ``jaxmag evaluate RUN-ft
--measures <original file>`` scores it on the original test split. A ``finetune`` record names
the parent run, the noise, the pool and the start model's Dice on the fine-tuning test set.

How it reuses ``jaxmag.learn.loop.train_and_evaluate``: the new folder is seeded with a ``latest``
checkpoint at epoch 0 holding the parent's best parameters, a fresh optimiser state and the
dropout key of ``training.seed``; training then "resumes" from it. ``resume=True`` continues an
interrupted fine-tune the same way, exactly as ``jaxmag train --resume``.

Model selection: the parent is the epoch-0 candidate. It is scored on the fine-tuning validation
set and saved as the ``best`` checkpoint at epoch 0, and a fine-tuned epoch replaces it only
with a strictly higher validation Dice. (The first steps of a fresh Adam state often degrade
the parent, e.g. towards "nothing is defect", before it improves; without the parent as a
candidate such a fine-tune returned a model worse than the one it started from.)
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Iterator

import jax
import numpy as np
from flax import nnx

from jaxmag.channels import parse_channels
from jaxmag.config import Config, load_stored_config
from jaxmag.learn import checkpoint, sharding
from jaxmag.learn.evaluation import evaluate, load_trained
from jaxmag.learn.loop import make_optimizer, train_and_evaluate
from jaxmag.learn.online import make_online_generator
from jaxmag.learn.run_folder import RUN_FILE, _run_info, _write_json, read_run_info
from jaxmag.learn.sources import Batch, EvalSet
from jaxmag.learn.sources.online import OnlineSource
from jaxmag.noise import NoiseSpec, parse_noise_spec


class FinetuneSource:
    """An ``OnlineSource`` that also carries the parent run's measures-file split (for ``evaluate``).

    It is a ``jaxmag.learn.sources.DataSource``: the interface is forwarded to the online source
    by name, nothing else."""

    def __init__(self, online: OnlineSource, parent_info: dict, extra: dict):
        self._online = online
        self.input_names = online.input_names
        self.batch_size = online.batch_size
        self.steps_per_epoch = online.steps_per_epoch
        self.train_condition = online.train_condition
        self.norm_stats = online.norm_stats
        split = parent_info.get("split")
        self.indices = None if split is None else {k: np.asarray(v, np.int64) for k, v in split.items()}
        self._labels_sha = parent_info.get("source", {}).get("labels_sha256")
        self._extra = extra

    def train_batches(self, epoch: int, key: jax.Array) -> Iterator[Batch]:
        return self._online.train_batches(epoch, key)

    def val_set(self) -> EvalSet:
        return self._online.val_set()

    def test_set(self, condition: str | None = None) -> EvalSet:
        return self._online.test_set(condition)

    def describe(self) -> dict:
        out = {**self._online.describe(), **self._extra}
        if self._labels_sha is not None:
            out["labels_sha256"] = self._labels_sha
        return out


def finetune_config(
    parent: Config, *, epochs: int | None = None, learning_rate: float | None = None, batch_size: int | None = None
) -> Config:
    """The parent's config with the ``[training]`` overrides of a fine-tune."""
    t = parent.training
    changes = {k: v for k, v in (("epochs", epochs), ("learning_rate", learning_rate), ("batch_size", batch_size)) if v is not None}
    for key, value in changes.items():
        if not value > 0:
            raise ValueError(f"--{key.replace('_', '-')} must be positive, got {value!r}")
    return parent.replace(training=dataclasses.replace(t, **changes))


def build_source(
    config: Config,
    info: dict,
    noise: NoiseSpec,
    *,
    steps_per_epoch: int,
    num_val_batches: int,
    num_test_batches: int,
    pool_size: int,
    seed: int,
    mesh=None,
):
    """The online source of a fine-tune: the run's inputs under ``noise``, the run's normalisation."""
    inputs = parse_channels(info["inputs"])
    make_batch = make_online_generator(config, inputs, noise, config.training.batch_size, pool_size=pool_size, seed=seed)
    return OnlineSource(
        make_batch,
        tuple(info["inputs"]),
        batch_size=config.training.batch_size,
        steps_per_epoch=steps_per_epoch,
        num_val_batches=num_val_batches,
        num_test_batches=num_test_batches,
        seed=seed,
        norm_stats=info["norm_stats"],
        train_condition=noise.name,
        mesh=mesh,
    )


def _seed_run(out: Path, config: Config, source, parent_dir: Path, record: dict, mesh) -> dict:
    """Write config.toml, run.json and ``latest`` and ``best`` checkpoints at epoch 0 with the parent's best parameters.

    The tree has the layout of ``jaxmag.learn.loop.create_train_state``: ``step`` 0, a fresh optimiser
    state, the dropout key ``fold_in(key(training.seed), 1)``, the parent's parameters.

    The parent is the epoch-0 candidate of the best-validation selection: it is scored on the
    fine-tuning validation set, saved as ``best`` and its Dice becomes the ``best_dice`` that a
    fine-tuned epoch must beat. A fine-tune that never improves on the validation set at the
    new noise therefore returns the parent, not its last degraded epoch. Returns the parent's
    validation metrics.
    """
    t = config.training
    model, parent_info = load_trained(parent_dir)
    _, params = nnx.split(model, nnx.Param)
    params = jax.tree.map(lambda a: sharding.replicate(np.asarray(a), mesh), params)
    tx = make_optimizer(config, t.epochs * source.steps_per_epoch)
    tree = {
        "step": sharding.replicate(np.zeros((), np.int32), mesh),
        "params": params,
        "opt_state": jax.jit(tx.init, out_shardings=sharding.replicated(mesh))(params),
        "rng": sharding.replicate(np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.key(t.seed), 1))), mesh),
    }
    if jax.process_index() == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(config.to_toml())
    val = evaluate_on(model, source, mesh, source.val_set())
    record = {**record, "start_val": val}
    # the parent's input normalisation travels with its parameters (train_and_evaluate resumes with it)
    _write_json(out / RUN_FILE, {**_run_info(config, source, parent_info["input_norm"], parent_info["head"]),
                                 "finetune": record})
    checkpoint.save(out / "checkpoints", "best", 0, tree, {"epoch": 0, "val": val})
    checkpoint.save(out / "checkpoints", "latest", 0, tree,
                    {"epoch": 0, "best_dice": float(val["dice"]), "best_epoch": 0, "history": []})
    return val


def evaluate_on(model, source, mesh=None, eval_set=None) -> dict:
    """Metrics of ``model`` on ``eval_set`` (default ``source.test_set()``, the fixed, noisy fine-tuning test set)."""
    return evaluate(model, source.test_set() if eval_set is None else eval_set, source.batch_size, mesh)


@dataclasses.dataclass(frozen=True)
class FinetunePlan:
    """What a fine-tune runs: its config, generated batches per epoch, defect pool, seed and
    fixed validation/test sets; ``record`` is the stored ``finetune`` record when resuming."""

    config: Config
    steps_per_epoch: int
    pool_size: int
    seed: int
    num_val_batches: int
    num_test_batches: int
    record: dict | None = None


def _resumed_plan(out: Path, spec: NoiseSpec) -> FinetunePlan:
    record = read_run_info(out).get("finetune") or {}
    if record.get("noise") != spec.name:
        raise ValueError(f"cannot resume {out}: it fine-tunes on {record.get('noise')!r}, not {spec.name!r}")
    return FinetunePlan(load_stored_config(out / "config.toml"), record["steps_per_epoch"], record["pool_size"], record["seed"],
                        record["num_val_batches"], record["num_test_batches"], record)


def _new_plan(run_dir: Path, out: Path, info: dict, overrides: dict, steps_per_epoch: int | None, pool_size: int,
              seed: int | None, num_val_batches: int, num_test_batches: int) -> FinetunePlan:
    if (out / RUN_FILE).exists():
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    config = finetune_config(load_stored_config(run_dir / "config.toml"), **overrides)
    train_shape = info.get("source", {}).get("image_shape")
    grid_shape = [config.grid.ny, config.grid.nx]
    if train_shape is not None and list(train_shape) != grid_shape:
        raise ValueError(f"{run_dir} was trained on {train_shape} images but its config simulates {grid_shape}")
    t = config.training
    steps = steps_per_epoch or max(1, int(config.dataset.num_runs * t.split[0]) // t.batch_size)
    return FinetunePlan(config, steps, pool_size, config.dataset.seed + 1 if seed is None else int(seed),
                        num_val_batches, num_test_batches)


def _start(run_dir: Path, out: Path, info: dict, spec: NoiseSpec, plan: FinetunePlan, online, mesh) -> tuple[dict, dict, FinetuneSource]:
    """Score the parent on the fine-tuning test set and seed the new run folder with it."""
    model, _ = load_trained(run_dir)
    start = evaluate_on(model, online, mesh)
    record = {
        "parent": str(run_dir.resolve()),
        "parent_train_condition": info.get("train_condition"),
        "noise": spec.name,
        "steps_per_epoch": plan.steps_per_epoch,
        "pool_size": plan.pool_size,
        "seed": plan.seed,
        "num_val_batches": plan.num_val_batches,
        "num_test_batches": plan.num_test_batches,
        "start_test": start,
    }
    source = FinetuneSource(online, info, {"finetuned_from": record["parent"]})
    record["start_val"] = _seed_run(out, plan.config, source, run_dir, record, mesh)
    return start, record, source


def finetune(
    run_dir: str | Path,
    noise: str | NoiseSpec,
    out_dir: str | Path,
    *,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    pool_size: int = 256,
    num_val_batches: int = 2,
    num_test_batches: int = 4,
    seed: int | None = None,
    resume: bool = False,
    progress: bool = True,
    mesh=None,
) -> dict:
    """Fine-tune ``run_dir`` on generated data with ``noise``; write the new run to ``out_dir``.

    Args:
        noise: ``"gaussian:1e-2"``, ``"speckle:0.1"`` (or ``"clean"``) or a ``NoiseSpec``.
        epochs, learning_rate, batch_size: override the parent's ``[training]`` values.
        steps_per_epoch: generated batches per epoch (default: as many as the parent's training
            split had, ``dataset.num_runs * split[0] // batch_size``, at least 1).
        pool_size: host-drawn defect films the generator samples from (``jaxmag.learn.online``).
        num_val_batches, num_test_batches: fixed validation (model selection) and test sets.
        seed: seeds the pool and the fixed sets (default ``config.dataset.seed + 1``).
        resume: continue an interrupted fine-tune in ``out_dir``.

    Returns ``train_and_evaluate``'s result plus ``"start_test"`` (the parent model on the same
    noisy test set), ``"start_val"`` (the parent on the validation set: the Dice a fine-tuned
    epoch must beat to be selected; ``best_epoch`` 0 means none did), ``"seconds"`` and ``"out"``.
    """
    run_dir, out = Path(run_dir), Path(out_dir)
    if out.resolve() == run_dir.resolve():
        raise ValueError("--out must be a new folder, not the run being fine-tuned")
    info = read_run_info(run_dir)
    spec = parse_noise_spec(noise) if isinstance(noise, str) else noise
    overrides = {"epochs": epochs, "learning_rate": learning_rate, "batch_size": batch_size}
    plan = (_resumed_plan(out, spec) if resume else
            _new_plan(run_dir, out, info, overrides, steps_per_epoch, pool_size, seed, num_val_batches, num_test_batches))
    mesh = mesh if mesh is not None else sharding.data_mesh()
    online = build_source(plan.config, info, spec, steps_per_epoch=plan.steps_per_epoch,
                          num_val_batches=plan.num_val_batches, num_test_batches=plan.num_test_batches,
                          pool_size=plan.pool_size, seed=plan.seed, mesh=mesh)
    t0 = time.perf_counter()
    if resume:
        record = plan.record or {}
        start = record.get("start_test")
        source = FinetuneSource(online, info, {"finetuned_from": record.get("parent")})
    else:
        start, record, source = _start(run_dir, out, info, spec, plan, online, mesh)
    result = train_and_evaluate(plan.config, source, out, resume=True, mesh=mesh, progress=progress)
    return {**result, "start_test": start, "start_val": record.get("start_val"),
            "seconds": time.perf_counter() - t0, "out": str(out)}
