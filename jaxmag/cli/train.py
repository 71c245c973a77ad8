"""``jaxmag train``: train a U-Net on a measures file (see ``docs/training.md``).

    jaxmag train CONFIG --measures measures.h5 --measure std --component z \
        [--noise gaussian:1e-2] --out runs/NAME [--resume]
    jaxmag train CONFIG --measures measures.h5 --inputs mean:x,std:z --out runs/multi
    jaxmag train CONFIG --data data.h5 --measure std --component z --noise gaussian:1e-2 \
        --out runs/robust          # training.recipe = "robust": the movies, fresh noise per step
    jaxmag train CONFIG --online --measure std --component z [--noise gaussian:1e-2] \
        --steps-per-epoch 16 --out runs/online

With an ``[instrument]`` section in CONFIG the inputs are measures of what its detector records,
component ``p`` (``--inputs std:p``): a measures recipe reads them from the measures file (written
by ``jaxmag measures`` on the same config), a movie recipe records the dataset's films anew every
step (``jaxmag.learn.sources.recorded.RecordedSource``, fresh shot and read noise).

``--online`` generates every training batch on the accelerator from the config's physics
(solver → noise → measures, ``jaxmag.learn.online``): no dataset on disk, no host round trip;
validation and test sets are generated once from fixed keys.

Multi-host: start one process per host with ``--coordinator HOST:PORT --num-processes N
--process-id I`` (or ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from jaxmag.cli._choices import component_names, measure_names
from jaxmag.cli._options import add_classes, add_noise
from jaxmag.config import load_config, parse_input_spec


def add_distributed_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("multi-host (jax.distributed)")
    g.add_argument("--coordinator", help="HOST:PORT of process 0 (default: $JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=int, help="number of processes (default: $JAX_NUM_PROCESSES)")
    g.add_argument("--process-id", type=int, help="this process's index (default: $JAX_PROCESS_ID)")


def input_channels(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """The (measure, component) channels from ``--inputs`` or ``--measure``/``--component``."""
    if args.inputs and (args.measure or args.component):
        raise ValueError("give either --inputs or --measure/--component, not both")
    if args.inputs:
        return parse_input_spec(args.inputs)
    if not (args.measure and args.component):
        raise ValueError("name the input with --measure and --component (or --inputs mean:x,std:z)")
    return parse_input_spec(f"{args.measure}:{args.component}")


def with_classes(config, classes: str | None):
    """``config`` with ``[model] classes = classes`` (unchanged when ``classes`` is None)."""
    import dataclasses

    return config if classes is None else config.replace(model=dataclasses.replace(config.model, classes=classes))


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a U-Net defect segmenter on measure maps",
        description="Train the U-Net on measure maps of an HDF5 measures file; keeps the best "
        "(validation Dice) and latest checkpoints in the run folder.",
    )
    p.add_argument("config", type=Path, help="TOML config ([model] and [training] are used)")
    p.add_argument("--measures", type=Path, help="measures HDF5 file (from `jaxmag measures`)")
    p.add_argument("--data", type=Path,
                   help="the dataset (`jaxmag simulate`) whose movies a movie recipe (training.recipe = "
                        "\"robust\" ...) trains on; default: data.h5 beside --measures")
    p.add_argument("--online", action="store_true",
                   help="generate training data on the fly with the solver instead of reading --measures")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="--online: generated batches per epoch (default: dataset.num_runs * split[0] // batch)")
    p.add_argument("--pool-size", type=int, default=256,
                   help="--online: defect films drawn on the host once and sampled on device (jaxmag.learn.online)")
    p.add_argument("--measure", choices=measure_names(), help="input measure")
    p.add_argument("--component", choices=component_names(),
                   help="input magnetisation component (p: the [instrument]'s record)")
    p.add_argument("--inputs", help="several channels, e.g. mean:x,std:z (instead of --measure/--component)")
    add_noise(p, "train (and validate) on this noise condition (of the measures file, or drawn fresh)",
              default="clean", old_name="--train-noise")
    p.add_argument("--out", type=Path, required=True, help="run folder, e.g. runs/NAME")
    add_classes(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    add_distributed_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jaxmag.learn import sharding

    # before anything touches a device
    sharding.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    import jax

    from jaxmag.learn.loop import train_and_evaluate
    from jaxmag.learn.recipe import get_recipe, make_source
    from jaxmag.learn.run_folder import read_run_info
    from jaxmag.noise import condition_label

    config = with_classes(load_config(args.config), args.classes)
    inputs = input_channels(args)
    files = args.measures is not None or args.data is not None
    if args.online == files:
        raise ValueError("give exactly one data source: --measures FILE (and/or --data DATASET) or --online")
    if args.online:
        if config.instrument.enabled:
            raise ValueError("--online generates films of the magnetisation and has no [instrument] yet: simulate "
                             "a dataset (`jaxmag simulate`) and train on it with --data (or --measures)")
        return _run_online(args, config, inputs)
    recipe = get_recipe(config.training.recipe)
    data = _movie_dataset(args, recipe) if recipe.source != "measures" else None
    if recipe.source == "measures" and args.measures is None:
        raise ValueError(f"training.recipe = {recipe.name!r} trains on a measures file: pass --measures FILE "
                         "(from `jaxmag measures`)")
    stored = read_run_info(args.out) if args.resume else None
    if stored is None and (args.out / "run.json").exists():
        raise FileExistsError(f"{args.out} already holds a run; pass --resume to continue it or choose another --out")
    mesh = sharding.data_mesh()
    source = make_source(recipe, config, data_path=data, measures_path=args.measures, inputs=inputs,
                         train_condition=args.noise,
                         indices=None if stored is None else stored["split"],
                         norm_stats=None if stored is None else stored["norm_stats"], mesh=mesh)
    result = train_and_evaluate(config, source, args.out, resume=args.resume, mesh=mesh, progress=not args.no_progress)
    if jax.process_index() == 0:
        test = result["test"]
        print(
            f"{args.out}: best validation Dice {result['best_val_dice']:.4f} (epoch {result['best_epoch']}); "
            f"test Dice on {condition_label(test['condition'])} {test['dice']:.4f} (per image {test['dice_per_image']:.4f}, "
            f"{test['num_images']} images)"
        )
    return 0


def _movie_dataset(args: argparse.Namespace, recipe) -> Path:
    """The dataset whose movies a movie recipe trains on: ``--data``, else ``data.h5`` beside ``--measures``."""
    data = args.data if args.data is not None else (args.measures.parent / "data.h5" if args.measures else None)
    if data is None or not data.is_file():
        where = f"{data} does not exist; " if data is not None else ""
        raise FileNotFoundError(f"training.recipe = {recipe.name!r} trains on the clean movies of a dataset: "
                                f"{where}pass --data DATASET.h5 (written by `jaxmag simulate`)")
    return data


def _run_online(args: argparse.Namespace, config, inputs) -> int:
    import jax

    from jaxmag.noise import condition_label, parse_noise_spec
    from jaxmag.learn.online import make_online_generator

    spec = parse_noise_spec(args.noise)
    t = config.training
    steps = args.steps_per_epoch or max(1, int(config.dataset.num_runs * t.split[0]) // t.batch_size)
    if steps < 1:
        raise ValueError(f"--steps-per-epoch must be positive, got {steps}")
    make = make_online_generator(config, inputs, spec, t.batch_size, pool_size=args.pool_size)
    make_clean = make_online_generator(config, inputs, "clean", t.batch_size, pool_size=args.pool_size)
    names = tuple(f"{m}:{c}" for m, c in inputs)
    result = train_online(config, make, names, args.out, steps_per_epoch=steps, make_clean_batch=make_clean,
                          train_condition=spec.name, resume=args.resume, progress=not args.no_progress)
    if jax.process_index() == 0:
        test = result["test"]
        print(f"{args.out}: best validation Dice {result['best_val_dice']:.4f} (epoch {result['best_epoch']}); "
              f"test Dice on generated {condition_label(test['condition'])} data {test['dice']:.4f}")
    return 0


def train_online(
    config,
    make_batch,
    input_names: tuple[str, ...],
    out: Path,
    *,
    steps_per_epoch: int,
    num_val_batches: int = 4,
    num_test_batches: int = 4,
    make_clean_batch=None,
    train_condition: str = "clean",
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train on batches generated on the accelerator by ``make_batch(key) -> (inputs, labels)``.

    ``make_batch`` must be jittable and return ``(inputs (B, ny, nx, C) float32 raw,
    labels (B, ny, nx) int)`` with ``B = config.training.batch_size``; ``make_clean_batch`` is
    the same without noise (normalisation calibration). On ``resume`` the stored normalisation
    statistics are reused. Call ``jaxmag.learn.sharding.initialize_distributed`` first on several
    hosts. Returns ``train_and_evaluate``'s result.
    """
    from jaxmag.learn import sharding
    from jaxmag.learn.sources.online import OnlineSource
    from jaxmag.learn.loop import train_and_evaluate
    from jaxmag.learn.run_folder import read_run_info

    stored = read_run_info(out) if resume else None
    if stored is None and (Path(out) / "run.json").exists():
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    mesh = sharding.data_mesh()
    source = OnlineSource(
        make_batch,
        tuple(input_names),
        batch_size=config.training.batch_size,
        steps_per_epoch=steps_per_epoch,
        num_val_batches=num_val_batches,
        num_test_batches=num_test_batches,
        seed=config.training.seed,
        make_clean_batch=make_clean_batch,
        norm_stats=None if stored is None else stored["norm_stats"],
        train_condition=train_condition,
        mesh=mesh,
    )
    return train_and_evaluate(config, source, out, resume=resume, mesh=mesh, progress=progress)
