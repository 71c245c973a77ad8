"""muMAG standard problem 4 with jaxmag: ⟨m⟩(t) for 1 ns every 10 ps as CSV.

    python scripts/sp4.py --out sp4.csv [--dt 1e-13] [--float64] [--reference ../shared/fixtures/mumax3/sp4/table.txt]

Prints the first ⟨m_x⟩ zero crossing and, with --reference, the RMS of the ⟨m⟩ difference
against a MuMax3 table (interpolated onto our frame times) as a JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def read_mumax_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(path, comments="#")
    return data[:, 0], data[:, 1:4]


def compare(t: np.ndarray, m: np.ndarray, reference: Path) -> dict:
    from jaxmag.problems import first_zero_crossing

    t_ref, m_ref = read_mumax_table(reference)
    interp = np.stack([np.interp(t, t_ref, m_ref[:, i]) for i in range(3)], axis=1)
    rms = float(np.sqrt(np.mean(np.sum((m - interp) ** 2, axis=1))))
    return {
        "rms_dm": rms,
        "max_abs_dm": float(np.abs(m - interp).max()),
        "zero_crossing_ref_s": first_zero_crossing(t_ref, m_ref[:, 0]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write (t_s,mx,my,mz)")
    parser.add_argument("--dt", type=float, default=1e-13, help="fixed RK4 step, s (default 1e-13)")
    parser.add_argument("--float64", action="store_true", help="compute in float64")
    parser.add_argument("--reference", type=Path, help="MuMax3 table.txt to compare against")
    args = parser.parse_args(argv)

    import jax

    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from jaxmag.problems import run_sp4

    start = time.perf_counter()
    result = run_sp4(dt=args.dt, dtype=jnp.float64 if args.float64 else jnp.float32,
                     progress=lambda msg: print(msg, file=sys.stderr))
    elapsed = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(args.out, np.column_stack([result.t_s, result.m_avg]), delimiter=",",
               header="t_s,mx,my,mz", comments="", fmt="%.9e")
    report = {
        "relaxed_m": result.m_avg[0].tolist(),
        "relax_steps": result.relax_info["steps"],
        "final_m": result.m_avg[-1].tolist(),
        "zero_crossing_s": result.first_mx_zero_crossing_s(),
        "wall_s": elapsed,
        "dt_s": args.dt,
        "dtype": "float64" if args.float64 else "float32",
    }
    if args.reference:
        report.update(compare(result.t_s, result.m_avg, args.reference))
    print(f"first <m_x> zero crossing: {report['zero_crossing_s'] * 1e9:.4f} ns", file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
