"""Does a plan's Dice hold for a real detection? ``jaxmag detect`` on movies made at a plan's grid points.

    python scripts/check_plan_detect.py --plan runs/plan_stxm --out /tmp/plan_check            # 3 points, 2 movies each
    python scripts/check_plan_detect.py --plan runs/plan_stxm --out /tmp/pc --points 2 --movies 1

Reads a finished ``jaxmag plan`` folder (its ``config.toml`` and ``plan.csv``), picks ``--points``
grid points (those where a model was trained first, then the best baseline points), and at each
makes ``--movies`` photon-count movies with seeds no plan film has (``scripts/make_counts_example.py``:
jaxmag's solver, the microscope written with NumPy/SciPy, not ``jaxmag.instrument``), with the point's
probe, PSF, pixel, photons, contrast, gain, offset and read noise. Each movie goes through
``jaxmag detect --budget quick`` told only the probe, PSF FWHM and boundary (the pixel and frame
interval from the TIFF's metadata; the regime's films are detect's own, not the plan's). One JSON
line per movie: detect's chosen input, its U-Net and baseline Dice on the movie against the true
defects and on its own regime's test films, beside the plan's Dice of that measure at that point
(baseline and model where trained) and the plan's spread of one film's Dice (``dice_se`` times the
square root of its test films: a single movie scatters by that much).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def chosen_points(rows: list[dict], count: int) -> list[str]:
    """Model points first (where the plan says learning matters), then the best baseline points; only
    points with a detector (a movie of counts)."""
    rows = [r for r in rows if float(r["photons_per_pixel"]) > 0]
    model = [r["point"] for r in rows if r["method"] == "model"]
    base = [r["point"] for r in sorted((r for r in rows if r["method"] == "baseline"), key=lambda r: -float(r["dice"]))]
    return list(dict.fromkeys(model + base))[:count]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", type=Path, required=True, help="a finished `jaxmag plan` output folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--points", type=int, default=3)
    p.add_argument("--movies", type=int, default=2)
    p.add_argument("--seed", type=int, default=90210, help="first movie seed (the plan's films use [dataset] seed)")
    args = p.parse_args(argv)
    from jaxmag.config import load_stored_config

    config = load_stored_config(args.plan / "config.toml")
    with open(args.plan / "plan.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    g, s, inst = config.grid, config.simulation, config.instrument
    here = Path(__file__).resolve().parent
    for i, pid in enumerate(chosen_points(rows, args.points)):
        at = [r for r in rows if r["point"] == pid]
        r0 = at[0]
        pixel_cells = max(1, round(float(r0["pixel_size_m"]) / g.cell_size_m[0])) if float(r0["pixel_size_m"]) else 1
        photons = float(r0["photons_per_pixel"])
        # a uint16 TIFF holds 65535 ADU: a bright point is written with a smaller gain, the read noise scaled
        # with it (the same noise in photons); shot noise dominates the rounding's 1/12 ADU² either way
        gain = min(inst.gain, 0.8 * (65535 - inst.offset) / (photons * (1 + abs(inst.contrast))))
        read_noise = float(r0["read_noise"]) * gain / inst.gain
        for j in range(args.movies):
            seed = args.seed + 100 * i + j
            case = args.out / f"point{i}-movie{j}"
            movie, det = case / "movie", case / "detect"
            subprocess.run([sys.executable, str(here / "make_counts_example.py"), "--out", str(movie), "--nx", str(g.nx),
                            "--frames", r0["num_frames"], "--frame-interval", str(s.frame_interval_s),
                            "--burn-in", str(s.burn_in_s), "--boundary", g.boundary, "--seed", str(seed),
                            "--probe", r0["probe"], "--psf-fwhm", r0["psf_fwhm_m"], "--pixel-cells", str(pixel_cells),
                            "--photons", r0["photons_per_pixel"], "--contrast", str(inst.contrast), "--gain", str(gain),
                            "--offset", str(inst.offset), "--read-noise", str(read_noise)],
                           check=True, capture_output=True)
            t0 = time.perf_counter()
            run = subprocess.run(["jaxmag", "detect", str(movie / "counts.tif"), "--probe", r0["probe"],
                                  "--psf-fwhm", r0["psf_fwhm_m"], "--boundary", g.boundary, "--budget", "quick",
                                  "--out", str(det), "--no-progress", "--force"], capture_output=True, text=True)
            if run.returncode != 0:
                print(json.dumps({"point": pid, "seed": seed, "error": run.stderr.strip().splitlines()[-1:]}), flush=True)
                continue
            record = json.loads((det / "detect.json").read_text())
            measure = record["inputs"][0].split(":")[0]
            labels = np.load(movie / "labels.npy")
            plan = {r["method"]: r for r in at if r["measure"] == measure}
            spread = lambda r: float(r["dice_se"]) * math.sqrt(int(r["test_films"])) if r else None
            print(json.dumps({
                "point": pid, "seed": seed, "input": record["inputs"][0], "gain_adu_per_photon": gain,
                "detect_dice_model": dice(np.load(det / "mask.npy"), labels),
                "detect_dice_baseline": dice(np.load(det / "baseline_mask.npy"), labels),
                "detect_regime_test_dice_model": record["validation"]["model"]["test_dice"],
                "detect_regime_test_dice_baseline": record["validation"]["baseline"]["test_dice"],
                "plan_dice_baseline": float(plan["baseline"]["dice"]), "plan_film_spread_baseline": spread(plan["baseline"]),
                "plan_dice_model": float(plan["model"]["dice"]) if "model" in plan else None,
                "plan_film_spread_model": spread(plan.get("model")),
                "warnings": record["warnings"], "wall_s": time.perf_counter() - t0,
            }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
