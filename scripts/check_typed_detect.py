"""``jaxmag detect --classes typed`` on films it never saw: does each defect it finds get the right type?

    python scripts/check_typed_detect.py --out /tmp/typed_check                  # clean and 3e-3, two seeds
    python scripts/check_typed_detect.py --out /tmp/t --noises 0 --seeds 5 --nx 32 --frames 30

Each case simulates a permalloy film with two softer (A_ex, K_u x 0.5) and two harder (x 2) blobs
(``scripts/make_detect_example.py``: its own seed, open edges, 5 ps frames, 0.3 ns burn-in), adds
Gaussian noise, runs ``jaxmag detect --classes typed`` and matches every row of ``defects.csv`` to
the true blob it overlaps most. It prints one JSON line per case: the rows found, how many match a
blob, how many of those have the blob's type, the any-defect Dice of the U-Net and of the baseline.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--noises", default="0,3e-3", help="Gaussian noise variances, comma-separated")
    p.add_argument("--seeds", default="7171,7272")
    p.add_argument("--nx", type=int, default=48)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--budget", default="quick")
    args = p.parse_args(argv)
    here = Path(__file__).resolve().parent
    for seed in args.seeds.split(","):
        for noise in args.noises.split(","):
            case = args.out / f"seed{seed}-noise{noise}"
            movie, det = case / "movie", case / "detect"
            subprocess.run([sys.executable, str(here / "make_detect_example.py"), "--out", str(movie), "--nx", str(args.nx),
                            "--frames", str(args.frames), "--noise", noise, "--seed", seed], check=True,
                           capture_output=True)
            t0 = time.perf_counter()
            run = subprocess.run(["jaxmag", "detect", str(movie), "--classes", "typed", "--budget", args.budget,
                                  "--out", str(det), "--no-progress", "--force"], capture_output=True, text=True)
            if run.returncode != 0:
                print(json.dumps({"seed": seed, "noise": noise, "error": run.stderr.strip().splitlines()[-1:]}), flush=True)
                continue
            ids = np.load(movie / "blob_ids.npy")
            truth = json.loads((movie / "truth.json").read_text())
            num_a = int(truth.get("num_a", 2))
            record = json.loads((det / "detect.json").read_text())
            types = np.load(det / "types.npy")
            from jaxmag.learn.defect_table import label_regions

            regions, n = label_regions(np.load(det / "mask.npy") > 0, periodic=False)
            matched = right = 0
            for r in range(1, n + 1):
                inside = ids[regions == r]
                blob = np.bincount(inside, minlength=ids.max() + 1)
                blob[0] = 0
                if blob.max() == 0:
                    continue  # a region on no true blob
                matched += 1
                true_class = 1 if int(np.argmax(blob)) <= num_a else 2
                found = np.bincount(types[regions == r], minlength=3)[1:]
                right += int(1 + np.argmax(found) == true_class)
            labels = ids > 0
            mask = np.load(det / "mask.npy") > 0
            base = np.load(det / "baseline_mask.npy") > 0
            dice = lambda a, b: float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
            print(json.dumps({"seed": int(seed), "noise": float(noise), "regions": n, "on_a_blob": matched,
                              "right_type": right, "dice_model": dice(mask, labels), "dice_baseline": dice(base, labels),
                              "typed_test": record["validation"].get("typed"), "inputs": record["inputs"],
                              "wall_s": time.perf_counter() - t0}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
