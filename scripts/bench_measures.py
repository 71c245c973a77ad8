"""Throughput of jaxmag.measures against numpy, in pixel-series per second (JSON lines).

A pixel-series is one pixel's T-frame series of one movie. The batch is (B, T, ny, nx), default
(64, 100, 128, 128) float32 (420 MB), i.e. 1 048 576 series. Baselines, run in the same process:
  - numpy_onehot: the definition written directly with numpy, vectorised over pixels
    (minmax states, then one boolean count per (i, j) pair);
  - numpy_bincount: a tuned numpy version (one np.bincount of pixel * K^2 + code).
On CPU, XLA and numpy are single-threaded (XLA_FLAGS set before jax is imported) unless
--threads is given. Each timing is the best of --repeats interleaved calls after a warm-up (compile excluded;
the first call is reported separately).

    python scripts/bench_measures.py [--batch 64] [--frames 100] [--size 128] [--states 4]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--size", type=int, default=128, help="ny = nx")
    p.add_argument("--states", type=int, default=4, help="K")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", action="store_true", help="let XLA use every core (default: one)")
    p.add_argument("--skip-onehot", action="store_true", help="skip the slow numpy_onehot baseline")
    return p.parse_args()


ARGS = parse_args()
if not ARGS.threads:
    # Must precede the jax import.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxmag.measures import compute_measures, measures_kernel  # noqa: E402


def numpy_states(x: np.ndarray, K: int) -> np.ndarray:
    """(B, T, P) -> int states by per-pixel equal-width bins between min and max."""
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    span = hi - lo
    u = (x - lo) / np.where(span > 0, span, 1)
    return np.clip(np.floor(u * K), 0, K - 1).astype(np.int64)


def entropy_from_counts(N: np.ndarray) -> np.ndarray:
    """N (B, K, K, P) [next, current] -> frequency-weighted conditional entropy (B, P), nats."""
    col = N.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(N > 0, N * np.log(np.where(N > 0, N, 1) / np.where(col > 0, col, 1)), 0.0)
    return -terms.sum(axis=(1, 2)) / N.sum(axis=(1, 2))


def numpy_onehot(x: np.ndarray, K: int) -> np.ndarray:
    s = numpy_states(x, K)
    nxt, cur = s[:, 1:], s[:, :-1]
    N = np.empty((x.shape[0], K, K, x.shape[2]))
    for i in range(K):
        a = nxt == i
        for j in range(K):
            N[:, i, j] = np.count_nonzero(a & (cur == j), axis=1)
    return entropy_from_counts(N)


def numpy_bincount(x: np.ndarray, K: int) -> np.ndarray:
    B, _, P = x.shape
    s = numpy_states(x, K)
    code = s[:, 1:] * K + s[:, :-1]  # (B, T-1, P)
    flat = (np.arange(B)[:, None, None] * P + np.arange(P)[None, None, :]) * (K * K) + code
    N = np.bincount(flat.ravel(), minlength=B * P * K * K).reshape(B, P, K, K).transpose(0, 2, 3, 1)
    return entropy_from_counts(N.astype(np.float64))


def numpy_all(x: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return x.mean(axis=1), x.std(axis=1), numpy_bincount(x, K)


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def main() -> int:
    B, T, n, K = ARGS.batch, ARGS.frames, ARGS.size, ARGS.states
    series = B * n * n
    rng = np.random.default_rng(0)
    # An AR(1) movie, so that transitions are structured and every state is visited.
    x = np.empty((B, T, n, n), np.float32)
    x[:, 0] = rng.standard_normal((B, n, n))
    for t in range(1, T):
        x[:, t] = 0.8 * x[:, t - 1] + 0.6 * rng.standard_normal((B, n, n), dtype=np.float32)
    xj = jax.device_put(x)
    flat = x.reshape(B, T, n * n)
    common = dict(device=str(jax.devices()[0]), threads="all" if ARGS.threads else 1, shape=[B, T, n, n],
                  num_states=K, pixel_series=series)
    emit(event="start", **common)

    le_only = lambda: measures_kernel(xj, measures=("latent_entropy",), num_states=K)["latent_entropy"]
    everything = lambda: measures_kernel(xj, num_states=K)
    impls = {
        "jax_latent_entropy": le_only,
        "jax_compute_measures": everything,
        # The public entry point adds the boundary check (one fused pass for NaN/inf).
        "jax_compute_measures_checked": lambda: compute_measures(xj, num_states=K),
        "numpy_bincount": lambda: numpy_bincount(flat, K),
        "numpy_all_measures": lambda: numpy_all(flat, K),
    }
    if not ARGS.skip_onehot:
        impls["numpy_onehot"] = lambda: numpy_onehot(flat, K)
    first_call, outputs = {}, {}
    for name in ("jax_latent_entropy", "jax_compute_measures"):
        t0 = time.perf_counter()
        jax.block_until_ready(impls[name]())
        first_call[name] = time.perf_counter() - t0
    # Interleaved repeats, best of each: a load change on a shared machine hits all alike.
    best = dict.fromkeys(impls, float("inf"))
    for _ in range(ARGS.repeats):
        for name, fn in impls.items():
            t0 = time.perf_counter()
            outputs[name] = jax.block_until_ready(fn())
            best[name] = min(best[name], time.perf_counter() - t0)
    jax_le = np.asarray(outputs["jax_latent_entropy"]).reshape(B, -1)
    for name, seconds in best.items():
        extra = {}
        if name in first_call:
            extra["first_call_s"] = first_call[name]
        if name in ("numpy_bincount", "numpy_onehot"):
            extra["max_abs_diff_vs_jax"] = float(np.abs(outputs[name] - jax_le).max())
        emit(impl=name, seconds=seconds, series_per_s=series / seconds, **extra, **common)
    summary = {f"latent_entropy_speedup_vs_{k}": best[k] / best["jax_latent_entropy"]
               for k in ("numpy_bincount", "numpy_onehot") if k in best}
    summary["all_measures_speedup_vs_numpy_all"] = best["numpy_all_measures"] / best["jax_compute_measures"]
    summary["load_average_1min"] = os.getloadavg()[0]
    emit(event="summary", **summary, **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
