"""``jaxmag dataset merge|info``: combine shard files, summarise a dataset file."""
from __future__ import annotations

import argparse

from jaxmag.cli._options import add_force


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dataset", help="merge shard files or summarise a dataset file")
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    m = sub.add_parser(
        "merge",
        help="present shard files as one dataset",
        description="Write OUT with HDF5 virtual datasets over the shards (which must stay beside it), "
        "or with --copy a self-contained copy.",
    )
    m.add_argument("shards", nargs="+", help="shard files written by `jaxmag simulate --num-shards`")
    m.add_argument("--out", required=True, help="merged file")
    m.add_argument("--copy", action="store_true", help="copy the data instead of virtual datasets")
    add_force(m, "an existing OUT")
    m.set_defaults(func=_merge)
    i = sub.add_parser("info", help="summary: runs done, shape, size, config hash")
    i.add_argument("file")
    i.set_defaults(func=_info)


def _merge(args: argparse.Namespace) -> int:
    from jaxmag.io.dataset import merge, summary

    out = merge(args.shards, args.out, copy=args.copy, force=args.force)
    s = summary(out)
    print(f"{out}: {s.runs_done}/{s.num_rows} runs done from {len(args.shards)} shard(s)")
    return 0


def _info(args: argparse.Namespace) -> int:
    from jaxmag.io.dataset import summary

    print(summary(args.file).format())
    return 0
