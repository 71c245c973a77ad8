"""Calibration of ``jaxmag mumax3 compare``'s thermal verdict (issue 15; docs/mumax3.md).

Simulates one film (``configs/paper.toml``'s physics on an N × N periodic grid, run 0's
defects, 100 frames of 10 ps after 0.5 ns burn-in) with 2P thermal seeds, and P seeds of each
physically different variant of the same film:

* ``T240``: 240 K instead of 300 K;
* ``factor_a_0.7``: the "a" defects scale A and K_u by 0.7 instead of 0.5;
* ``alpha_0.01``: damping 0.01 instead of 0.02;
* ``no_demag``: demagnetisation off.

False-alarm rate: the fraction of pairs of baseline runs (one run per side) that the verdict
calls inconsistent, over the P disjoint pairs and over all 2P(2P − 1)/2 pairs (not
independent, but each is a fair draw). Detection rate of a variant: the fraction of (variant,
baseline) pairs called inconsistent, over all P × 2P pairs and the P disjoint ones. With
``--sides 2`` each side holds two runs instead of one (disjoint groups only).

    timeout 1500 python scripts/calibrate_compare.py --n 32 --pairs 6 --out calib.json
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import time
from pathlib import Path


from jaxmag.compare_thermal import ThermalOptions, compare_thermal_runs
from jaxmag.config import load_config
from jaxmag.io.trajectory import trajectory_from_frames
from jaxmag.validate import simulate_seeds

ROOT = Path(__file__).resolve().parents[1]


def film_config(n: int, frames: int):
    base = load_config(ROOT / "configs" / "paper.toml")
    return base.replace(grid=dataclasses.replace(base.grid, nx=n, ny=n),
                        simulation=dataclasses.replace(base.simulation, num_frames=frames, components="xyz"))


def variants(config) -> dict:
    mat, defects, sim = config.material, config.defects, config.simulation
    return {
        "T240": config.replace(material=dataclasses.replace(mat, temperature=240.0)),
        "factor_a_0.7": config.replace(defects=dataclasses.replace(defects, factor_a=0.7)),
        "alpha_0.01": config.replace(material=dataclasses.replace(mat, alpha=0.01)),
        "no_demag": config.replace(simulation=dataclasses.replace(sim, terms=tuple(t for t in sim.terms if t != "demag"))),
    }


def runs(config, seeds, name):
    t0 = time.time()
    frames, times, labels = simulate_seeds(config, 0, seeds)
    print(f"  {name}: {len(seeds)} runs in {time.time() - t0:.0f} s", flush=True)
    # Temperature left unstated: the variants differ in it on purpose.
    return [trajectory_from_frames(f, times, config.grid.cell_size_m, name=f"{name} seed {s}", regions=labels) for f, s in zip(frames, seeds)]


def rate(flags) -> dict:
    flags = [bool(f) for f in flags]
    n, k = len(flags), sum(flags)
    return {"rate": k / n if n else math.nan, "count": k, "pairs": n}


def verdict(a, b, options):
    result = compare_thermal_runs(a, b, options)
    worst = max(result.statistics, key=lambda s: abs(s.z))
    return (not result.passed), abs(worst.z) / result.k, worst.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32, help="grid side (cells)")
    parser.add_argument("--pairs", type=int, default=6, help="P: 2P baseline runs, P runs per variant")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--sides", type=int, default=1, help="runs per side of each comparison")
    parser.add_argument("--out", type=Path, required=True, help="JSON results")
    args = parser.parse_args()
    config = film_config(args.n, args.frames)
    options = ThermalOptions()
    P, s = args.pairs, args.sides
    print(f"film {args.n}x{args.n}, {args.frames} frames, {2 * P} baseline runs, {P} per variant, {s} run(s) per side", flush=True)
    base = runs(config, [1000 + i for i in range(2 * P)], "baseline")
    groups = [base[i:i + s] for i in range(0, 2 * P - s + 1, s)]
    results = {"grid": args.n, "frames": args.frames, "runs_per_side": s, "pairs": P, "options": dataclasses.asdict(options)}
    same_disjoint = [verdict(groups[2 * i], groups[2 * i + 1], options) for i in range(len(groups) // 2)]
    same_all = [verdict(g, h, options) for g, h in itertools.combinations(groups, 2)]
    results["false_alarm"] = {"disjoint": rate(f for f, _, _ in same_disjoint), "all_pairs": rate(f for f, _, _ in same_all),
                              "worst": sorted(((round(r, 3), n) for _, r, n in same_all), reverse=True)[:5]}
    print("false alarms:", results["false_alarm"], flush=True)
    results["detection"] = {}
    for name, variant in variants(config).items():
        other = runs(variant, [2000 + 100 * len(results["detection"]) + i for i in range(P)], name)
        ogroups = [other[i:i + s] for i in range(0, P - s + 1, s)]
        disjoint = [verdict(ogroups[i], groups[i], options) for i in range(min(len(ogroups), len(groups)))]
        every = [verdict(o, g, options) for o in ogroups for g in groups]
        results["detection"][name] = {"disjoint": rate(f for f, _, _ in disjoint), "all_pairs": rate(f for f, _, _ in every),
                                      "weakest": sorted(((round(r, 3), n) for _, r, n in every))[:3]}
        print(name, results["detection"][name], flush=True)
        args.out.write_text(json.dumps(results, indent=2))
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
