"""``jaxmag detect`` on photon-count movies it never saw: generated, detected and scored, one JSON line each.

    python scripts/check_counts_detect.py --out /tmp/counts_check            # the four cases of docs/instrument.md
    python scripts/check_counts_detect.py --out /tmp/c --cases z-periodic --nx 32 --frames 40   # one small case

Each case simulates a film with its own seed (``scripts/make_counts_example.py``: jaxmag's solver,
a NumPy/SciPy forward model of the microscope that ``jaxmag.instrument`` did not write), runs
``jaxmag detect --budget quick`` on the uint16 TIFF with only what an experimenter knows (probe,
PSF FWHM; the pixel size and frame interval come from the TIFF's metadata; the boundary is given)
and scores the U-Net's and the baseline's masks against the true defects on the detector pixels,
beside the detector parameters recovered from the movie against the truth.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CASES = {  # name: (probe, boundary, pixel cells, PSF FWHM m, seed)
    "z-periodic": ("z", "periodic", 1, 4e-9, 611),
    "z-open": ("z", "open", 1, 6e-9, 612),
    "grazing-periodic": ("grazing:16", "periodic", 2, 8e-9, 613),
    "grazing-open": ("grazing:16", "open", 2, 8e-9, 614),
}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--nx", type=int, default=64, help="cells a side")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--budget", default="quick")
    args = p.parse_args(argv)
    here = Path(__file__).resolve().parent
    for name in args.cases.split(","):
        probe, boundary, k, fwhm, seed = CASES[name]
        movie, det = args.out / name / "movie", args.out / name / "detect"
        subprocess.run([sys.executable, str(here / "make_counts_example.py"), "--out", str(movie), "--nx", str(args.nx),
                        "--frames", str(args.frames), "--probe", probe, "--boundary", boundary, "--pixel-cells", str(k),
                        "--psf-fwhm", str(fwhm), "--seed", str(seed)], check=True, capture_output=True)
        t0 = time.perf_counter()
        run = subprocess.run(["jaxmag", "detect", str(movie / "counts.tif"), "--probe", probe, "--psf-fwhm", str(fwhm),
                              "--boundary", boundary, "--budget", args.budget, "--out", str(det), "--no-progress",
                              "--force"], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if run.returncode != 0:
            print(json.dumps({"case": name, "error": run.stderr.strip().splitlines()[-1:]}), flush=True)
            continue
        truth = json.loads((movie / "truth.json").read_text())["recording"]
        labels = np.load(movie / "labels.npy")
        record = json.loads((det / "detect.json").read_text())
        r = record["noise"]["recording"]
        true_level = truth["gain"] * truth["photons_per_pixel"] + truth["offset"]
        true_scale = truth["gain"] * truth["photons_per_pixel"] * truth["contrast"]
        true_noise = truth["gain"] ** 2 * truth["photons_per_pixel"] + truth["read_noise"] ** 2
        print(json.dumps({
            "case": name, "probe": probe, "boundary": boundary, "pixel_m": truth["pixel_size_m"], "psf_fwhm_m": fwhm,
            "seed": seed, "frames": args.frames, "inputs": record["inputs"],
            "dice_model": dice(np.load(det / "mask.npy"), labels), "dice_baseline": dice(np.load(det / "baseline_mask.npy"), labels),
            "regime_test_dice_model": record["validation"]["model"]["test_dice"],
            "regime_test_dice_baseline": record["validation"]["baseline"]["test_dice"],
            "level": [r["level"], r["level_se"], true_level], "scale": [r["scale"], r["scale_se"], true_scale],
            "noise_variance": [r["noise_variance"], r["noise_variance_se"], true_noise], "scale_from": r["scale_from"],
            "pixel_read": record["facts"]["origin"]["grid"], "warnings": record["warnings"], "wall_s": seconds,
        }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
