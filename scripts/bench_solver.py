"""Solver throughput: cell-steps per second of the stochastic Heun step (exchange, uniaxial
anisotropy, FFT demag and thermal field) on 128 × 128 × 1 cells, batch 1, 8 and 32, against
magnum.np's Heun step on the same problem measured in the same run; plus the 32 × 32 periodic
batch-16 case that the quick job runs.

    python scripts/bench_solver.py [--steps 40] [--batches 1,8,32] [--rounds 3] [--peer-python /tmp/peervenv/bin/python]

Make the peer's throwaway venv once (torch CPU wheel + magnum.np from PyPI):

    python -m venv --system-site-packages /tmp/peervenv && /tmp/peervenv/bin/pip install torch==2.13.0 magnumnp

Both codes run single-threaded (XLA eigen threads off; torch.set_num_threads(1)): on small
machines threads fight and timings swing. Prints one JSON line per measurement.
"""
from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxmag.drivers import cpu_chunked_vmap, field_terms, run_steps  # noqa: E402
from jaxmag.fields import effective_field  # noqa: E402
from jaxmag.fields.thermal import thermal  # noqa: E402
from jaxmag.grid import Grid  # noqa: E402
from jaxmag.integrators import stochastic_heun  # noqa: E402
from jaxmag.material import Material  # noqa: E402


def jaxmag_runner(n: int, batch: int, steps: int, dtype, boundary: str = "open"):
    """A compiled ``run()`` of ``steps`` Heun steps on ``batch`` films of n × n cells, and its record."""
    grid = Grid(n, n, 1, 4e-9, 4e-9, 4e-9, boundary)
    material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=500.0, alpha=0.02, temperature=300.0, dtype=dtype)
    init_fn, step_fn = stochastic_heun(effective_field(field_terms(grid)), 1e-13, thermal=thermal(grid))
    m0 = jnp.zeros(grid.vector_shape, dtype).at[..., 0].set(1.0)

    def one(material, m0, key):
        return run_steps(step_fn, init_fn(m0, key), material, steps).m

    # Material and m0 are arguments, one material per run (as `jaxmag simulate` passes them):
    # as closure constants XLA would fold the material-only work out of the timed loop.
    # The batch runs as `movie_simulator` runs it: on CPU in cache-sized chunks (cpu_chunked_vmap).
    compiled = jax.jit(jax.vmap(cpu_chunked_vmap(one, max(1, 16384 // grid.num_cells))))
    keys = jax.random.split(jax.random.key(0), batch)
    materials = jax.tree.map(lambda x: jnp.stack([x] * batch), material)
    m0s = jnp.stack([m0] * batch)
    compiled(materials, m0s, keys).block_until_ready()  # compile

    def run() -> float:
        start = time.perf_counter()
        compiled(materials, m0s, keys).block_until_ready()
        return time.perf_counter() - start

    run.hlo_text = lambda: compiled.lower(materials, m0s, keys).compile().as_text()  # for profile_step.py
    record = {
        "code": f"jaxmag (jax {jax.__version__})", "device": str(jax.devices()[0]), "dtype": jnp.dtype(dtype).name,
        "cells": n * n, "boundary": boundary, "batch": batch, "steps": steps,
    }
    return run, record


def timed_record(run, record: dict, repeats: int = 3) -> dict:
    seconds = min(run() for _ in range(repeats))
    return {**record, "seconds": seconds,
            "cell_steps_per_s": record["batch"] * record["cells"] * record["steps"] / seconds}


def bench_jaxmag(n: int, batch: int, steps: int, dtype, repeats: int = 3, boundary: str = "open") -> dict:
    run, record = jaxmag_runner(n, batch, steps, dtype, boundary)
    return timed_record(run, record, repeats)


def bench_peer(python: str, n: int, steps: int, dtype: str) -> dict:
    script = Path(__file__).with_name("peer_magnumnp_step.py")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([python, str(script), "--n", str(n), "--steps", str(steps), "--dtype", dtype, "--repeats", "3"],
                         capture_output=True, text=True, env=env, cwd="/tmp")
    if out.returncode != 0:
        return {"code": "magnum.np", "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=128, help="cells per side")
    parser.add_argument("--steps", type=int, default=40, help="Heun steps per timed call")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating magnum.np / jaxmag batch-1 rounds; the speedup is their median ratio")
    parser.add_argument("--peer-python", default="/tmp/peervenv/bin/python")
    parser.add_argument("--float64", action="store_true", help="also measure float64 at batch 1")
    parser.add_argument("--quick-case", default="32:16", help="N:BATCH of the periodic case the quick job runs ('' to skip)")
    args = parser.parse_args()

    results = []
    # The peer and jaxmag's batch 1 alternate round by round, and the speedup is the median of
    # the per-round ratios: on a shared machine the speed drifts by tens of percent in minutes.
    have_peer = Path(args.peer_python).exists()
    if not have_peer:
        print(json.dumps({"code": "magnum.np", "error": f"{args.peer_python} not found; see this script's docstring"}))
    run1, record1 = jaxmag_runner(args.n, 1, args.steps, jnp.float32)
    ratios = []
    for round_index in range(args.rounds if have_peer else 1):
        peer = bench_peer(args.peer_python, args.n, args.steps, "float32") if have_peer else None
        ours = timed_record(run1, record1)
        for r in (peer, ours):
            if r is not None:
                results.append({**r, "round": round_index})
                print(json.dumps(results[-1]), flush=True)
        if peer and "cell_steps_per_s" in peer:
            ratios.append(ours["cell_steps_per_s"] / peer["cell_steps_per_s"])
    for batch in (int(b) for b in args.batches.split(",") if int(b) != 1):
        results.append(bench_jaxmag(args.n, batch, args.steps, jnp.float32))
        print(json.dumps(results[-1]), flush=True)
    if args.quick_case:
        qn, qb = (int(v) for v in args.quick_case.split(":"))
        results.append(bench_jaxmag(qn, qb, 4 * args.steps, jnp.float32, boundary="periodic"))
        print(json.dumps(results[-1]), flush=True)
    if args.float64:
        jax.config.update("jax_enable_x64", True)
        results.append(bench_jaxmag(args.n, 1, args.steps, jnp.float64))
        print(json.dumps(results[-1]), flush=True)
        if Path(args.peer_python).exists():
            results.append(bench_peer(args.peer_python, args.n, args.steps, "float64"))
            print(json.dumps(results[-1]), flush=True)
    if ratios:
        print(json.dumps({"summary": "jaxmag/magnum.np float32 batch 1", "speedup": statistics.median(ratios),
                          "per_round": ratios}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
