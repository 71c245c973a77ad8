"""``jaxmag run CONFIG --out DIR``: the main job (simulate → measures → train → evaluate → report)."""
from __future__ import annotations

import argparse
from pathlib import Path

from jaxmag.cli._options import add_classes
from jaxmag.cli.train import with_classes


def _run(args: argparse.Namespace) -> int:
    from jaxmag.config import load_config
    from jaxmag.learn.pipeline import run_pipeline

    config = args.config if args.classes is None else with_classes(load_config(args.config), args.classes)
    result = run_pipeline(config, args.out, mode="run", progress=not args.no_progress)
    best = max(result["results"], key=lambda r: r["dice"] if r["eval_condition"] == "clean" else -1)
    print(f"clean test Dice of {best['inputs']}: {best['dice']:.3f}; report: {result['report']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="the main job: simulate, measure, train, evaluate and report (resumable)",
        description="Simulate the dataset of CONFIG, compute the measures (clean and every [noise] condition), "
                    "train the U-Nets listed in [run] models, evaluate them and write results.json and report.md. "
                    "Rerunning the same command resumes and skips finished stages.",
    )
    p.add_argument("config", type=Path, help="TOML config, e.g. configs/quick.toml")
    p.add_argument("--out", type=Path, required=True, help="output folder, e.g. runs/quick")
    add_classes(p)
    p.add_argument("--quiet", action="store_true", dest="no_progress", help=argparse.SUPPRESS)  # old name
    p.set_defaults(func=_run)
