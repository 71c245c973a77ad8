"""``jaxmag evaluate``: test Dice of a trained run on any noise condition of a measures file.

    jaxmag evaluate runs/NAME --measures measures.h5 --noise gaussian:1e-2

Writes ``runs/NAME/eval_<name>.json`` and ``.png`` (example predictions; ``<name>`` the
condition's file-system name, e.g. ``gaussian_1e-2``) and prints the Dice. The measures file must hold the labels the run was trained on (its test split is reused).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from jaxmag.cli._options import add_noise


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="test Dice of a trained run on a noise condition",
        description="Evaluate a run's best checkpoint on the test split of a measures file.",
    )
    p.add_argument("run", type=Path, help="run folder written by `jaxmag train`")
    p.add_argument("--measures", type=Path, required=True, help="measures HDF5 file")
    add_noise(p, "evaluate on this condition of the measures file (default clean)", repeatable=True,
              old_name="--condition")
    p.add_argument("--batch-size", type=int, help="evaluation batch (default: the run's training batch)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jaxmag.learn.evaluation import evaluate_run
    from jaxmag.noise import condition_label

    for condition in args.noise or ["clean"]:
        rec = evaluate_run(args.run, args.measures, condition, batch_size=args.batch_size)
        label = condition_label(rec["condition"])
        print(
            f"{label}: dice {rec['dice']:.4f}  per-image dice {rec['dice_per_image']:.4f}  "
            f"loss {rec['loss']:.4f}  ({rec['num_images']} test images) -> "
            f"{args.run / ('eval_' + rec['condition'] + '.json')}"
        )
        b = rec["baseline"]
        verdict = "beats" if rec["dice"] > b["dice"] else "does NOT beat"
        print(f"{label}: baseline (robust z, sigma {b['fit']['sigma']:g} px, threshold "
              f"{b['fit']['threshold']:.2f}, fitted on validation) dice {b['dice']:.4f}: the model {verdict} it")
    return 0
