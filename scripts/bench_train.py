"""Training throughput of the paper U-Net: jaxmag (JAX/Flax) against the same network in PyTorch.

Prints JSON lines: one per framework (``images_per_s`` of full training steps: forward,
backward, Adam update, on random data at 1x128x128, batch 32) and a summary with the ratio.

On CPU both run single-threaded (XLA: no multi-threaded Eigen, one intra-op thread; torch:
``set_num_threads(1)``) so the comparison does not depend on how busy the machine's other
cores are. The PyTorch part runs in a separate virtual environment when one exists::

    python -m venv --system-site-packages /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0

Usage: ``python scripts/bench_train.py [--steps 2] [--batch 32] [--size 128] [--device cpu|gpu]
[--dtype float32|bfloat16] [--rounds 2] [--torch-python /tmp/torchvenv/bin/python]``
(on CPU the two frameworks alternate for ``--rounds`` rounds; the ratio is the median of
the per-round ratios);
``--sources CONFIG OUT [--inputs std:z] [--condition gaussian_1e-2]`` instead compares the
measures-file source with the movie source (docs/training.md). ``--device gpu``
skips the single-thread flags and PyTorch and also reports the projected time of one paper
training run (500 epochs of 0.70 x 2048 images).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TORCH_SCRIPT = r"""
import json, sys, time
import torch
from torch import nn

steps, batch, size, base, depth = (int(a) for a in sys.argv[1:6])
torch.set_num_threads(1)
torch.manual_seed(0)


class Block(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.1),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, c_in=1, base=64, depth=4):
        super().__init__()
        w = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([Block(c_in if i == 0 else w[i - 1], w[i]) for i in range(depth)])
        self.mid = Block(w[depth - 1], w[depth])
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in reversed(range(depth))])
        self.dec = nn.ModuleList([Block(2 * w[i], w[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(w[0], 2, 1)

    def forward(self, x):
        skips = []
        for b in self.down:
            x = b(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.mid(x)
        for up, dec, s in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([s, up(x)], 1))
        return self.head(x)


model = UNet(1, base, depth)
params = sum(p.numel() for p in model.parameters())
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
x = torch.randn(batch, 1, size, size)
y = (torch.rand(batch, size, size) > 0.9).long()
loss_fn = nn.CrossEntropyLoss()


def step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


step()  # warm-up
t0 = time.perf_counter()
for _ in range(steps):
    step()
dt = time.perf_counter() - t0
print(json.dumps({"framework": "pytorch", "version": torch.__version__, "parameters": params,
                  "images_per_s": steps * batch / dt, "seconds_per_step": dt / steps}))
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--base-features", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--torch-python", default="/tmp/torchvenv/bin/python")
    p.add_argument("--sources", nargs=2, metavar=("CONFIG", "OUT"),
                   help="instead: measures-file vs movie source, one epoch per round each, on a study folder")
    p.add_argument("--inputs", default="std:z", help="with --sources")
    p.add_argument("--condition", default="gaussian_1e-2", help="with --sources")
    p.add_argument("--rounds", type=int, default=2,
                   help="CPU: alternating jaxmag / PyTorch rounds (the ratio is their median); with --sources: timed epochs per source")
    return p.parse_args()


def jax_train_step(args: argparse.Namespace):
    """``(step, state, x, y)``: the compiled training step `jaxmag train` runs, its state and a
    random batch (``compile_s`` set on ``args``)."""
    import jax
    import numpy as np

    from jaxmag.config import loads_config
    from jaxmag.learn import sharding
    from jaxmag.learn.loop import compile_train_step, create_train_state

    config = loads_config(
        f"[model]\nbase_features = {args.base_features}\ndepth = {args.depth}\ndropout = 0.1\n"
        f"[training]\nbatch_size = {args.batch}\nlearning_rate = 1e-4\ncompute_dtype = \"{args.dtype}\"\n"
    )
    mesh = sharding.data_mesh()
    shape = (args.batch, args.size, args.size, 1)
    state = create_train_state(config, 1, jax.random.key(0), 1000, mesh)
    t0 = time.perf_counter()
    step = compile_train_step(state, mesh, shape)  # the exact step `jaxmag train` runs
    args.compile_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    bsh = sharding.batch_sharding(mesh)
    x = sharding.global_batch(rng.normal(size=shape).astype(np.float32), bsh, args.batch)
    y = sharding.global_batch((rng.random(shape[:3]) > 0.9).astype(np.int32), bsh, args.batch)
    return step, state, x, y


def jax_timer(args: argparse.Namespace):
    """``(time_steps, record, step)``: ``time_steps()`` runs ``args.steps`` training steps of the
    compiled ``step`` (after one warm-up at creation) and returns images/s; ``record`` describes
    it. Shared with scripts/profile_step.py."""
    import jax
    import numpy as np

    step, state, x, y = jax_train_step(args)
    holder = {"state": state}

    def run_steps(n: int) -> None:
        for _ in range(n):
            holder["state"], metrics = step(holder["state"], x, y)
        jax.block_until_ready((holder["state"], metrics))

    run_steps(1)  # warm-up
    params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(holder["state"].params))

    def time_steps() -> float:
        t0 = time.perf_counter()
        run_steps(args.steps)
        return args.steps * args.batch / (time.perf_counter() - t0)

    record = {
        "framework": "jax",
        "version": jax.__version__,
        "device": str(jax.devices()[0].device_kind),
        "num_devices": jax.device_count(),
        "dtype": args.dtype,
        "parameters": params,
        "compile_s": args.compile_s,
    }
    return time_steps, record, step


def torch_available(args: argparse.Namespace) -> bool:
    """Whether ``--torch-python`` exists; says once why PyTorch is skipped when it does not."""
    py = Path(args.torch_python)
    if not py.exists():
        print(
            json.dumps({"framework": "pytorch", "skipped": f"{py} not found; create it with: python -m venv "
                        "--system-site-packages /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0"}),
            flush=True,
        )
    return py.exists()


def bench_torch(args: argparse.Namespace) -> dict:
    py = Path(args.torch_python)
    cmd = [str(py), "-c", TORCH_SCRIPT, str(args.steps), str(args.batch), str(args.size), str(args.base_features), str(args.depth)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if res.returncode != 0:
        raise RuntimeError(f"the PyTorch benchmark failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_sources(args: argparse.Namespace) -> dict:
    """Images/s of full training steps fed by the measures-file source and by the movie source
    (on-device augmentation + fresh noise + measures), alternating rounds in one process so both
    see the same machine load; ``cost_ratio`` is the median over rounds of the pair's ratio.
    ``--sources CONFIG OUT``: a study folder with data.h5 and measures.h5."""
    import jax
    import numpy as np

    from jaxmag.config import load_config, parse_input_spec
    from jaxmag.learn import sharding
    from jaxmag.learn.loop import compile_train_step, create_train_state
    from jaxmag.learn.recipe import get_recipe, make_source

    config, out = load_config(args.sources[0]), Path(args.sources[1])
    inputs, cond = parse_input_spec(args.inputs), args.condition
    mesh = sharding.data_mesh()
    runs = {}
    for name in ("paper", "robust"):
        src = make_source(get_recipe(name), config, data_path=out / "data.h5", measures_path=out / "measures.h5",
                          inputs=inputs, train_condition=cond)
        state = create_train_state(config, len(inputs), jax.random.key(0), 1000, mesh)
        ny, nx = src.describe()["image_shape"]
        runs[name] = [src, state, compile_train_step(state, mesh, (src.batch_size, ny, nx, len(inputs)), get_recipe(name).loss)]
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds + 1):  # round 0 warms up (compiles the batch function)
        for name, run in runs.items():
            src, state, step = run
            t0 = time.perf_counter()
            n = 0
            for x, y in src.train_batches(r, jax.random.key(r)):
                state, m = step(state, x, y)
                n += int(y.shape[0])
            jax.block_until_ready(m)
            run[1] = state
            if r:
                rates[name].append(n / (time.perf_counter() - t0))
    best = {k: max(v) for k, v in rates.items()}
    # the machine's speed drifts between epochs: the ratio of each round's pair, then the median
    ratio = float(np.median([a / b for a, b in zip(rates["paper"], rates["robust"])]))
    return {"sources": True, "inputs": args.inputs, "condition": cond, "measures_file_images_per_s": best["paper"],
            "movies_images_per_s": best["robust"], "cost_ratio": ratio, "cost_ratio_of_best": best["paper"] / best["robust"],
            "target_met": ratio <= 1.5, "rounds": rates}


def main() -> None:
    args = parse_args()
    if args.sources:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        print(json.dumps(bench_sources(args)), flush=True)
        return
    if args.device == "cpu":
        # single-threaded, fixed before JAX starts
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
        os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    common = {"batch": args.batch, "image": [args.size, args.size], "base_features": args.base_features, "depth": args.depth, "steps": args.steps}
    time_steps, record, _ = jax_timer(args)
    # On CPU jaxmag and PyTorch alternate for --rounds rounds and the ratio is the median of the
    # per-round ratios: this machine's speed drifts by tens of percent within minutes.
    rounds = args.rounds if args.device == "cpu" else 1
    have_torch = args.device == "cpu" and torch_available(args)
    ratios, jax_rates, torch_rates = [], [], []
    for round_index in range(rounds):
        rate = time_steps()
        jax_rates.append(rate)
        print(json.dumps({**record, "images_per_s": rate, "seconds_per_step": args.batch / rate, **common,
                          "round": round_index}), flush=True)
        if not have_torch:
            continue
        torch_result = bench_torch(args)
        print(json.dumps({**torch_result, **common, "round": round_index}), flush=True)
        torch_rates.append(torch_result["images_per_s"])
        ratios.append(rate / torch_result["images_per_s"])
    summary = {"summary": True, "jax_images_per_s": statistics.median(jax_rates), **common, "rounds": len(jax_rates)}
    if ratios:
        summary["pytorch_images_per_s"] = statistics.median(torch_rates)
        summary["jax_over_pytorch"] = statistics.median(ratios)
        summary["per_round"] = ratios
        summary["target_met"] = summary["jax_over_pytorch"] >= 1.0  # issue 16: at least PyTorch's rate
    if args.device != "cpu":
        images = 500 * int(0.70 * 2048)
        summary["paper_run_hours"] = images / summary["jax_images_per_s"] / 3600
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
