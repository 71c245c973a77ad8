"""``jaxmag simulate CONFIG --out data.h5``: run the simulation dataset (see docs/dataset.md)."""
from __future__ import annotations

import argparse

from jaxmag.cli._options import add_force


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate the defect-film dataset into an HDF5 file",
        description="Simulate one thermal movie per run index (defects and noise drawn from the seed "
        "and the run index) in batches on all local devices, writing a resumable HDF5 file.",
    )
    p.add_argument("config", help="TOML config file (e.g. configs/paper.toml)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--num", type=int, help="number of runs (overrides dataset.num_runs)")
    p.add_argument("--batch", type=int, help="runs per batch, over all local devices (overrides dataset.batch_size)")
    p.add_argument("--seed", type=int, help="dataset seed (overrides dataset.seed)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted file (config must match)")
    add_force(p, "an existing output file (the new one is written beside it and moved over it when complete)")
    p.add_argument("--shard-index", type=int, help="this job's shard when several simulate disjoint slices of the runs")
    p.add_argument("--num-shards", type=int, help="number of shards; each writes OUT.shardIII-of-NNN.h5")
    # the old names read like jax.distributed's process id/count, which they are not
    p.add_argument("--process-id", type=int, dest="shard_index", help=argparse.SUPPRESS)
    p.add_argument("--num-processes", type=int, dest="num_shards", help=argparse.SUPPRESS)
    p.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() (cluster env); shards default to the process index/count")
    p.add_argument("--quiet", action="store_true", dest="no_progress", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import jax

    from jaxmag.assemble import simulate
    from jaxmag.config import load_config

    config = load_config(args.config)  # before anything is created: a bad config leaves no file
    if config.simulation.precision == "float64":
        jax.config.update("jax_enable_x64", True)
    if (args.shard_index is None) != (args.num_shards is None):
        raise ValueError("--shard-index and --num-shards go together")
    if args.distributed:
        jax.distributed.initialize()
    path = simulate(
        config,
        out=args.out,
        num=args.num,
        batch=args.batch,
        seed=args.seed,
        resume=args.resume,
        force=args.force,
        progress=not args.no_progress,
        shard_index=args.shard_index,
        num_shards=args.num_shards,
    )
    from jaxmag.io.dataset import summary

    s = summary(path)
    print(f"{path}: {s.runs_done}/{s.num_rows} runs done, /m {s.m_shape} {s.m_dtype}")
    return 0
