"""Per-layer cost of the U-Net's 3x3 convolutions on CPU: Winograd F(4x4, 3x3) against the direct path.

For each 3x3 layer of the paper U-Net (base 64, depth 4, 128x128; or ``--base-features``,
``--depth``, ``--size``) it times one jitted forward pass plus both gradients (input and
kernel) of ``jaxmag.models.winograd.conv3x3_winograd`` and of the direct CPU path
``jaxmag.models.conv.conv3x3_same_cpu`` (YNNPACK forward and input gradient, GEMM kernel
gradient), the two alternating for ``--rounds`` rounds, and prints one JSON line per layer
(best-of-round milliseconds, the median of the per-round ratios direct / Winograd, and whether
``conv.takes_winograd`` picks Winograd for it), then a summary line over all layers.
Single-threaded on CPU, as the other benchmarks::

    taskset -c 1 python scripts/bench_conv.py [--batch 32] [--rounds 3]

This is the evidence behind ``conv.WINOGRAD_MIN_CHANNELS`` / ``WINOGRAD_MIN_FLOPS_PER_IMAGE``
and ``winograd.CHUNK_MIN_TILES_PER_CHANNEL`` (docs/performance.md).
"""
from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # jaxmag from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402


def unet_layers(base: int, depth: int, size: int, in_channels: int = 1) -> list[tuple[str, int, int, int]]:
    """``(name, side, C_in, C_out)`` of every 3x3 convolution of ``jaxmag.models.unet.UNet``,
    read from the model's own kernels (abstract, nothing allocated)."""
    from flax import nnx

    from jaxmag.models.unet import UNet

    model = nnx.eval_shape(lambda: UNet(in_channels, base_features=base, depth=depth, rngs=nnx.Rngs(0)))
    blocks = [(f"down{i}", size >> i, block) for i, block in enumerate(model.down)]
    blocks.append(("bottleneck", size >> depth, model.bottleneck))
    # the decoder runs from the deepest level back up: up_blocks[0] is level depth - 1
    blocks += [(f"up{depth - 1 - j}", size >> (depth - 1 - j), block) for j, block in enumerate(model.up_blocks)]
    return [(f"{name}.{conv}", side, *getattr(block, conv).kernel.shape[2:])
            for name, side, block in blocks for conv in ("conv1", "conv2")]


def value_and_gradients(conv):
    def run(x, k, g):
        y, vjp = jax.vjp(conv, x, k)
        return (y, *vjp(g))

    return jax.jit(run)


def best_ms(fn, args, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--base-features", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the ratio is their median")
    p.add_argument("--repeats", type=int, default=2, help="calls per round (best of)")
    p.add_argument("--only", default="", help="comma-separated layer names (default: all)")
    args = p.parse_args()

    from jaxmag.models import conv, winograd

    direct, wino = value_and_gradients(conv.conv3x3_same_cpu), value_and_gradients(winograd.conv3x3_winograd)
    layers = unet_layers(args.base_features, args.depth, args.size)
    if args.only:
        keep = set(args.only.split(","))
        layers = [layer for layer in layers if layer[0] in keep]
    totals = {"direct": 0.0, "winograd": 0.0, "chosen": 0.0}
    for name, side, c_in, c_out in layers:
        kx, kk, kg = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(kx, (args.batch, side, side, c_in), jnp.float32)
        k = jax.random.normal(kk, (3, 3, c_in, c_out), jnp.float32) / (9 * c_in) ** 0.5
        g = jax.random.normal(kg, (args.batch, side, side, c_out), jnp.float32)
        for fn in (direct, wino):
            jax.block_until_ready(fn(x, k, g))  # compile and warm up
        ms = {"direct": [], "winograd": []}
        for _ in range(args.rounds):
            ms["direct"].append(best_ms(direct, (x, k, g), args.repeats))
            ms["winograd"].append(best_ms(wino, (x, k, g), args.repeats))
        d, w = statistics.median(ms["direct"]), statistics.median(ms["winograd"])
        chosen = conv.takes_winograd(x.shape, k.shape)
        totals["direct"] += d
        totals["winograd"] += w
        totals["chosen"] += w if chosen else d
        print(json.dumps({
            "layer": name, "side": side, "c_in": c_in, "c_out": c_out, "batch": args.batch,
            "gflop_direct": round(3 * 18 * args.batch * side * side * c_in * c_out / 1e9, 2),
            "direct_ms": round(d, 1), "winograd_ms": round(w, 1),
            "speedup": round(statistics.median(a / b for a, b in zip(ms["direct"], ms["winograd"])), 2),
            "chunk_images": winograd.images_per_chunk(x.shape, c_out), "takes_winograd": chosen,
        }), flush=True)
    print(json.dumps({"summary": True, "batch": args.batch, "image": [args.size, args.size],
                      "base_features": args.base_features, "depth": args.depth, "rounds": args.rounds,
                      "direct_ms": round(totals["direct"], 1), "winograd_ms": round(totals["winograd"], 1),
                      "as_dispatched_ms": round(totals["chosen"], 1),
                      "speedup_as_dispatched": round(totals["direct"] / totals["chosen"], 2),
                      "device": str(jax.devices()[0].device_kind)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
