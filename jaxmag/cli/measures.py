"""``jaxmag measures DATASET --out OUT``: measure maps of every run, per noise condition.

With an ``[instrument]`` (in ``--config``, else in the dataset's stored config) the maps are of
what its detector records of each run: component ``p`` on the detector's pixels, labels binned
onto them, the ``[noise]`` conditions added to the record (``jaxmag.io.measures_file``)."""
from __future__ import annotations

import argparse

from jaxmag.cli._choices import measure_names
from jaxmag.cli._options import add_force, add_noise


def register(subparsers: argparse._SubParsersAction) -> None:
    measures = measure_names()
    p = subparsers.add_parser(
        "measures",
        help=f"compute the measure maps ({' / '.join(measures)}) of a dataset, per noise condition",
        description="Compute /<condition>/<measure>/<component> maps (N, ny, nx) float32 of every finished "
        "run of a dataset written by `jaxmag simulate`, streaming runs in chunks. The 'clean' condition is "
        "always included. With an [instrument] section, the maps are of the detector's record (component p, "
        "on its pixels). Resumable: rerun with --resume after an interruption.",
    )
    p.add_argument("dataset", help="HDF5 dataset (/m, /labels, /done)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    add_noise(p, "a noise condition to add", default=[], repeatable=True)
    p.add_argument("--noise-from-config", action="store_true",
                   help="also add every condition of the config's [noise] section (its levels per kind)")
    p.add_argument("--config", help="TOML config for the [measures] options and the [noise] seed "
                   "(default: the dataset's stored config)")
    p.add_argument("--measures", default=",".join(measures),
                   help=f"comma-separated subset of {','.join(measures)} (default: all)")
    p.add_argument("--noise-seed", type=int, help="override the [noise] seed")
    p.add_argument("--chunk", type=int, default=16, help="runs per chunk (default 16)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue an interrupted output file")
    add_force(group, "an existing output file (the new one is written beside it and moved over it when complete)")
    p.add_argument("--allow-partial", action="store_true", help="skip runs the dataset has not finished")
    p.add_argument("--quiet", action="store_true", dest="no_progress", help=argparse.SUPPRESS)  # old name
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jaxmag.assemble import compute_measures_file, dataset_config
    from jaxmag.config import load_config
    from jaxmag.noise import parse_noise_spec

    specs = [parse_noise_spec(s) for s in args.noise]  # bad specs fail before any file is touched
    config = load_config(args.config) if args.config else None
    if args.noise_from_config:
        specs += list((config or dataset_config(args.dataset)).noise.specs())
    measures = tuple(m.strip() for m in args.measures.split(",") if m.strip())
    out = compute_measures_file(args.dataset, args.out, specs, config=config, measures=measures,
                                noise_seed=args.noise_seed, chunk=args.chunk, resume=args.resume,
                                force=args.force, allow_partial=args.allow_partial, progress=not args.no_progress)
    names = ["clean"] + [s.label for s in specs if s.label != "clean"]
    recorded = (config or dataset_config(args.dataset)).instrument.enabled
    what = "; of the [instrument]'s record (component p, detector pixels)" if recorded else ""
    print(f"wrote {out}: conditions {', '.join(dict.fromkeys(names))}; measures {', '.join(measures)}{what}")
    return 0
