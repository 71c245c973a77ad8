"""``jaxmag plan CONFIG --out DIR``: which defects an instrument can see, and with which measure."""
from __future__ import annotations

import argparse
from pathlib import Path


def _plan(args: argparse.Namespace) -> int:
    from jaxmag.config import load_config
    from jaxmag.learn.plan import check_config, run_plan

    config = load_config(args.config)
    points = check_config(config, str(args.config))
    if args.list:
        for point in points:
            print(point.id)
        print(f"{len(points)} grid points × {len(config.plan.measures)} measures (baseline), "
              f"up to {config.plan.models} models at the frontier")
        return 0
    result = run_plan(config, args.out, progress=not args.no_progress)
    rows = result["rows"]
    print(f"{len(rows)} rows in {args.out / 'plan.csv'}; report: {result['report']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plan", help="before the beamtime: Dice of every measure over a grid of instrument settings",
        description="Simulate CONFIG's films once, record them through every [instrument] setting of its [plan] "
                    "grid (PSF, pixel, photons, read noise, probe, frames, exposure), score every measure with "
                    "the non-learned baseline, train noise-matched U-Nets at the frontier, and write plan.json, "
                    "plan.csv, detectability maps, the recommendation and report.md (docs/plan.md). Rerun to resume.",
    )
    p.add_argument("config", type=Path, help="TOML config with a [plan] section, e.g. configs/plan_stxm.toml")
    p.add_argument("--out", type=Path, required=True, help="output folder (resumed when it holds this config's plan)")
    p.add_argument("--list", action="store_true", help="list the grid points and exit")
    p.set_defaults(func=_plan)
