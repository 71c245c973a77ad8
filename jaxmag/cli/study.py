"""``jaxmag study CONFIG [--out DIR]``: the paper's Dice grid as resumable units of work."""
from __future__ import annotations

import argparse
from pathlib import Path


def _study(args: argparse.Namespace) -> int:
    from jaxmag.config import load_config
    from jaxmag.learn.pipeline import run_pipeline
    from jaxmag.learn.study import plan_study
    from jaxmag.noise import condition_label

    config = load_config(args.config)
    out = args.out or Path("runs") / args.config.stem
    if args.plan:
        for unit in plan_study(config):
            print(f"{unit.id}: evaluated on {', '.join(map(condition_label, unit.eval_conditions))}")
        return 0
    shard = None
    if args.num_shards is not None or args.shard_index is not None:
        if args.num_shards is None or args.shard_index is None:
            raise ValueError("--shard-index and --num-shards go together")
        shard = (args.shard_index, args.num_shards)
    result = run_pipeline(config, out, mode="study", progress=not args.no_progress, shard=shard)
    print(f"{len(result['results'])} results in {out}/results.csv; report: {result['report']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "study", help="the paper's grid: measures × components × clean/noise-matched training × noise levels",
        description="Run the whole study of CONFIG ([study], [noise]) as resumable units: one U-Net per "
                    "measure/component/training condition, evaluated on clean and noisy test data; writes "
                    "results.csv, results.json, figures and report.md. Rerun to resume.",
    )
    p.add_argument("config", type=Path, help="TOML config, e.g. configs/paper.toml or configs/study_quick.toml")
    p.add_argument("--out", type=Path, help="output folder (default runs/<config name>)")
    p.add_argument("--plan", action="store_true", help="list the units and exit")
    p.add_argument("--shard-index", type=int, help="train only every --num-shards-th unit from this one (0-based): "
                   "processes that share the folder; start the others after the first has written measures.h5, "
                   "and rerun without shards at the end for the complete report")
    p.add_argument("--num-shards", type=int, help="number of processes sharing the study (with --shard-index)")
    p.add_argument("--quiet", action="store_true", dest="no_progress", help=argparse.SUPPRESS)  # old name
    p.set_defaults(func=_study)
