"""``jaxmag finetune``: fine-tune a trained run on noisy simulations generated on the fly.

    jaxmag finetune runs/NAME --noise gaussian:1e-2 --out runs/NAME-ft [--epochs 20] [--resume]

Starts from the run's best parameters and keeps its normalisation; each step simulates a batch
from the run's config, adds the noise and computes the measures on the device
(``jaxmag.learn.finetune``, ``jaxmag.learn.online``). The new run folder works with ``jaxmag predict``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from jaxmag.cli._options import add_noise


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a run on simulations with matching measurement noise",
        description="Continue training a run's best model on films simulated on the fly from its config, with "
        "the given measurement noise added before the measures; writes a new run folder.",
    )
    p.add_argument("run", type=Path, help="run folder to start from")
    add_noise(p, "the new training noise", required=True)
    p.add_argument("--out", type=Path, required=True, help="new run folder")
    p.add_argument("--epochs", type=int, help="epochs (default: the run's training.epochs)")
    p.add_argument("--steps-per-epoch", type=int, help="generated batches per epoch (default: as in the parent's split)")
    p.add_argument("--learning-rate", type=float, help="learning rate (default: the run's)")
    p.add_argument("--batch-size", type=int, help="global batch (default: the run's)")
    p.add_argument("--pool-size", type=int, default=256, help="defect films drawn once and sampled on device (default 256)")
    p.add_argument("--val-batches", type=int, default=2, help="fixed validation batches (default 2)")
    p.add_argument("--test-batches", type=int, default=4, help="fixed test batches (default 4)")
    p.add_argument("--seed", type=int, help="seed of the pool and the fixed sets (default dataset.seed + 1)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted fine-tune in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import jax

    from jaxmag.learn.finetune import finetune
    from jaxmag.noise import condition_label

    result = finetune(
        args.run, args.noise, args.out, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        learning_rate=args.learning_rate, batch_size=args.batch_size, pool_size=args.pool_size,
        num_val_batches=args.val_batches, num_test_batches=args.test_batches, seed=args.seed,
        resume=args.resume, progress=not args.no_progress,
    )
    if jax.process_index() == 0:
        start, test = result["start_test"], result["test"]
        before = "-" if start is None else f"{start['dice']:.4f}"
        print(f"{args.out}: test Dice at {condition_label(test['condition'])}: {before} (start) -> {test['dice']:.4f} "
              f"(best epoch {result['best_epoch']}, {result['seconds']:.0f} s)")
    return 0
