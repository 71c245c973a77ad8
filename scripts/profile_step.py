"""Where the time of one compiled step goes: per-XLA-operation times of the stochastic Heun step
or of the U-Net training step, from a JAX profiler trace (CPU or GPU).

    python scripts/profile_step.py solver [--n 128] [--batch 1] [--steps 40] [--top 25]
    python scripts/profile_step.py unet [--size 64] [--batch 8] [--base-features 64] [--depth 4]

It builds exactly the programs that ``scripts/bench_solver.py`` and ``scripts/bench_train.py``
time, runs them ``--calls`` times under ``jax.profiler.trace`` (with XLA:CPU's per-thunk trace
events on) and prints JSON lines: one per operation among the ``--top`` slowest (``op``, its
``kind`` = the name without the numeric suffix, e.g. ``fft`` or ``ynn_fusion``, ``ms_per_step``,
``share`` of the step and, with ``--hlo``, the operation's HLO line), one per kind (the
``--top`` largest), and a
``summary`` line. On CPU it runs single-threaded, as the benchmarks do. This is the evidence
behind docs/performance.md's "Where the time goes"; timings under the trace run a little slower
than untraced ones, and the shares are what to read.
"""
from __future__ import annotations

import os
import sys

_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1 --xla_cpu_enable_xprof_traceme=true"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAGS).strip()

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling bench scripts
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # jaxmag from this checkout

import jax  # noqa: E402

# Events that time a whole program or loop (or mark a region) rather than one operation inside it.
_CONTAINERS = re.compile(r"^(ThunkExecutor|while|call|conditional|end: |ThreadpoolListener)")


def operation_times(run, calls: int) -> tuple[dict[str, float], dict[str, int]]:
    """Total nanoseconds and count per traced XLA operation name over ``calls`` calls of ``run``."""
    from jax.profiler import ProfileData

    run()  # compile and warm up outside the trace
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        try:
            for _ in range(calls):
                run()
        finally:
            jax.profiler.stop_trace()
        traces = sorted(Path(trace_dir).rglob("*.xplane.pb"))
        if not traces:
            raise RuntimeError(f"the profiler wrote no trace under {trace_dir}")
        data = ProfileData.from_file(str(traces[-1]))
    total: dict[str, float] = collections.Counter()
    count: dict[str, int] = collections.Counter()
    for plane in data.planes:
        if plane.name.startswith("/host:") and "CPU" not in plane.name:
            continue
        for line in plane.lines:
            # XLA:CPU's operations appear on its worker threads, GPU kernels on the device planes.
            if plane.name.startswith("/host:") and "XLA" not in line.name:
                continue
            for event in line.events:
                if _CONTAINERS.match(event.name):
                    continue
                total[event.name] += event.duration_ns
                count[event.name] += 1
    return dict(total), dict(count)


def hlo_lines(compiled_text: str) -> dict[str, str]:
    lines = {}
    for line in compiled_text.splitlines():
        match = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (.*)", line)
        if match:
            lines[match.group(1)] = re.sub(r",? metadata=\{.*", "", match.group(2))[:300]
    return lines


def solver_program(args):
    from bench_solver import jaxmag_runner

    run, record = jaxmag_runner(args.n, args.batch, args.steps, jax.numpy.float32)
    return run, record, args.steps, run.hlo_text() if args.hlo else None


def unet_program(args):
    import bench_train

    # one training step per call (--steps is the solver's)
    time_steps, _, step = bench_train.jax_timer(argparse.Namespace(**{**vars(args), "steps": 1}))
    record = {"batch": args.batch, "image": [args.size, args.size], "base_features": args.base_features,
              "depth": args.depth}
    return time_steps, record, 1, step.as_text() if args.hlo else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", choices=("solver", "unet"))
    parser.add_argument("--n", type=int, default=128, help="solver: cells per side")
    parser.add_argument("--steps", type=int, default=40, help="solver: Heun steps per call")
    parser.add_argument("--batch", type=int, default=None, help="films (solver, default 1) or images (unet, default 8)")
    parser.add_argument("--size", type=int, default=64, help="unet: image side")
    parser.add_argument("--base-features", type=int, default=64)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--dtype", default="float32", help="unet: compute dtype")
    parser.add_argument("--calls", type=int, default=3, help="traced calls")
    parser.add_argument("--top", type=int, default=25, help="operations listed one by one")
    parser.add_argument("--hlo", action="store_true", help="add each listed operation's HLO line")
    args = parser.parse_args()
    if args.batch is None:
        args.batch = 1 if args.program == "solver" else 8
    if args.calls < 1 or args.top < 0:
        parser.error("--calls must be >= 1 and --top >= 0")

    build = solver_program if args.program == "solver" else unet_program
    run, record, steps_per_call, text = build(args)
    total, count = operation_times(run, args.calls)
    if not total:
        print(json.dumps({"summary": args.program, "error": "the trace holds no XLA operation events"}))
        return 1
    per_step = args.calls * steps_per_call
    grand = sum(total.values())
    hlo = hlo_lines(text) if (args.hlo and text) else {}
    for name, ns in sorted(total.items(), key=lambda kv: -kv[1])[: args.top]:
        line = {"op": name, "kind": re.sub(r"[.\d]+$", "", name), "ms_per_step": ns / per_step / 1e6,
                "calls_per_step": count[name] / per_step, "share": ns / grand}
        if name in hlo:
            line["hlo"] = hlo[name]
        print(json.dumps(line))
    kinds: dict[str, float] = collections.Counter()
    for name, ns in total.items():
        kinds[re.sub(r"[.\d]+$", "", name)] += ns
    for kind, ns in kinds.most_common(args.top):
        print(json.dumps({"kind": kind, "ms_per_step": ns / per_step / 1e6, "share": ns / grand}))
    print(json.dumps({"summary": args.program, **record, "device": str(jax.devices()[0]),
                      "ms_per_step_in_operations": grand / per_step / 1e6, "operations": len(total)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
