"""One prepared accelerator check: every figure of issue 16 as one JSON line, then a table.

    PYTHONPATH=. python scripts/device_check.py --out dc/            # on the GPU (≤ 8 min on one H100/H200)
    PYTHONPATH=. python scripts/device_check.py --out dc/ --devices 8
    PYTHONPATH=. python scripts/device_check.py --out dc/ --cpu-dry-run   # tiny sizes on CPU (CI)

Figures, most important first, so that a run cut off part-way still reports what matters:

1. ``environment``: JAX version, backend, devices, git commit.
2. ``solver``: stochastic Heun (exchange, anisotropy, periodic FFT demag, thermal), float32,
   cell-steps/s for 128² at batch 1, 8, 64, 256 and 64² at batch 256; compile time apart.
3. ``solver_scaling`` (``--devices N`` > 1): the batch-64-per-device 128² solver over 1, 2, 4 …
   N local devices (weak scaling) and its efficiency.
4. ``peer_magnumnp``: the same problem in magnum.np on the same device through PyTorch (CUDA on a
   GPU), in a subprocess; a ``skipped`` line with the reason when torch or magnumnp is missing.
5. ``measures``: measurement noise + mean/std/latent entropy, pixel-series/s for (64, 100, 128, 128).
6. ``unet_train``: paper U-Net (31 M parameters) training images/s, batch 32, float32 and
   bfloat16, and the hours one 500-epoch paper model takes.
7. ``e2e_slice``: ``jaxmag run`` on a 64-simulation, 3-epoch slice of ``configs/paper.toml``, its
   stage times, and the projected time of ``jaxmag study configs/paper.toml`` from the rates.
8. ``summary``: every figure in one line; the table goes to stdout and ``<out>/summary.md``.

Every line has ``figure``, ``status`` (``ok``, ``skipped`` or ``error``), ``dry_run``, ``platform``
and ``elapsed_s`` (since the start); they are also appended to ``<out>/device_check.jsonl``.
A figure that fails writes an ``error`` line and the check goes on. ``--budget-s`` skips the
remaining figures once it is spent.

Runs from the checkout with ``PYTHONPATH=.`` on an image with JAX, Flax, Optax, Orbax, h5py,
tifffile, matplotlib and tqdm (no network). The peer needs PyTorch (preinstalled on the GPU
images) and the pure-Python magnum.np wheel: ``pip download --no-deps magnumnp==2.2.0 -d peer/``
on a machine with network, carry ``peer/`` along, and pass ``--peer-path peer/magnumnp-2.2.0-py3-none-any.whl``
(a wheel on ``sys.path`` imports as is; magnum.np's optional imports that only its file output
and non-Heun solvers use, pyvista, xitorch, torchdiffeq, are stubbed when absent, see
``scripts/peer_magnumnp_step.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAPER_TRAIN_IMAGES = int(0.70 * 2048)  # one epoch of the paper's training split


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for device_check.jsonl, summary.md and the e2e slice")
    p.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU backend (CI)")
    p.add_argument("--devices", type=int, default=1, help="scale the solver over this many local devices")
    p.add_argument("--budget-s", type=float, default=None,
                   help="skip figures once this many seconds have passed (default 480; none for --cpu-dry-run)")
    p.add_argument("--peer-python", default=sys.executable, help="python that has torch (and magnumnp)")
    p.add_argument("--peer-path", default="", help="extra sys.path entry for magnumnp (a wheel or a folder)")
    p.add_argument("--only", default="", help="comma-separated figures to run (default: all)")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    if ARGS.cpu_dry_run:
        os.environ["JAX_PLATFORMS"] = "cpu"
    # Leave room on the GPU for the PyTorch peer, which runs in a subprocess beside this one.
    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.6")
    sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

# --------------------------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------------------------
FULL = dict(
    solver_cases=[(128, 1), (128, 8), (128, 64), (128, 256), (64, 256)],
    solver_cell_steps=2e9,  # per timed call: about 1 s at the 2e9 cell-steps/s target
    solver_max_steps=2000,
    scaling_n=128, scaling_batch_per_device=64,
    peer_n=128, peer_steps=200,
    measures_shape=(64, 100, 128, 128),
    unet=dict(size=128, batch=32, base_features=64, depth=4, steps=10),
    e2e=dict(base="configs/paper.toml", runs=64, epochs=3),
    plan=dict(config="configs/plan_stxm.toml"),
)
DRY = dict(
    solver_cases=[(16, 2)],
    solver_cell_steps=2e4,
    solver_max_steps=40,
    scaling_n=16, scaling_batch_per_device=2,
    peer_n=16, peer_steps=5,
    measures_shape=(2, 8, 16, 16),
    unet=dict(size=8, batch=4, base_features=4, depth=1, steps=2),
    e2e=dict(base="configs/tiny.toml", runs=8, epochs=1, model="base_features = 4\ndepth = 1",
             training="batch_size = 4", noise='gaussian = [1e-2]'),
    plan=dict(text='base = "{repo}/configs/tiny.toml"\nname = "device-check-plan"\n[simulation]\nnum_frames = 8\n'
                   '[dataset]\nnum_runs = 12\n[training]\nsplit = [0.34, 0.33, 0.33]\nepochs = 1\nbatch_size = 4\n'
                   'recipe = "robust"\n[model]\nbase_features = 4\ndepth = 1\n[plan]\nphotons_per_pixel = [0, 1e3]\n'
                   'measures = ["std"]\nmodels = 0\n'),
)


class Report:
    """Writes each figure's line to stdout and ``<out>/device_check.jsonl`` as it is measured."""

    def __init__(self, out: Path, dry_run: bool, budget_s: float):
        self.out = out
        self.dry_run = dry_run
        self.budget_s = budget_s
        self.start = time.perf_counter()
        self.lines: list[dict] = []
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "device_check.jsonl"
        self.path.write_text("")

    def emit(self, figure: str, status: str = "ok", **fields) -> dict:
        line = {"figure": figure, "status": status, "dry_run": self.dry_run, "platform": jax.default_backend(),
                **fields, "elapsed_s": round(time.perf_counter() - self.start, 3)}
        self.lines.append(line)
        text = json.dumps(line, default=_jsonable)
        print(text, flush=True)
        with self.path.open("a") as f:
            f.write(text + "\n")
        return line

    def run(self, figure: str, fn, *args) -> None:
        """Run one figure's measurements; an exception becomes an ``error`` line."""
        if time.perf_counter() - self.start > self.budget_s:
            self.emit(figure, "skipped", reason=f"time budget of {self.budget_s:.0f} s spent")
            return
        try:
            fn(self, *args)
        except Exception as exc:  # one broken figure must not cost the others
            self.emit(figure, "error", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=6).splitlines()[-6:])

    def figures(self, name: str) -> list[dict]:
        return [line for line in self.lines if line["figure"] == name and line["status"] == "ok"]


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def _timed(fn, repeats: int = 3) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` (already compiled), blocking on the result."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


# --------------------------------------------------------------------------------------------
# 1. environment
# --------------------------------------------------------------------------------------------
def figure_environment(report: Report, sizes: dict) -> None:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    devices = jax.local_devices()
    report.emit("environment", jax=jax.__version__, python=sys.version.split()[0], commit=commit,
                device_kind=devices[0].device_kind, local_devices=len(devices), process_count=jax.process_count(),
                xla_flags=os.environ.get("XLA_FLAGS", ""))


# --------------------------------------------------------------------------------------------
# 2./3. solver
# --------------------------------------------------------------------------------------------
def _film(n: int):
    from jaxmag.grid import Grid
    from jaxmag.material import Material

    grid = Grid(n, n, 1, 4e-9, 4e-9, 4e-9, "periodic", pbc_images=4)
    material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=500.0, alpha=0.02, temperature=300.0,
                                dtype=jnp.float32)
    return grid, material


def _solver_program(n: int, steps: int, mesh=None):
    """``run(keys) -> m`` for a batch, jitted (sharded over ``mesh`` when given) and its inputs."""
    from jaxmag.drivers import field_terms, run_steps
    from jaxmag.fields import effective_field
    from jaxmag.fields.thermal import thermal
    from jaxmag.integrators import stochastic_heun

    grid, material = _film(n)
    init_fn, step_fn = stochastic_heun(effective_field(field_terms(grid)), 1e-13, thermal=thermal(grid))
    m0 = jnp.zeros(grid.vector_shape, jnp.float32).at[..., 0].set(1.0)

    def one(key):
        return run_steps(step_fn, init_fn(m0, key), material, steps).m

    batched = jax.vmap(one)
    if mesh is None:
        return jax.jit(batched)
    from jax.sharding import NamedSharding, PartitionSpec

    sharded = NamedSharding(mesh, PartitionSpec("data"))
    return jax.jit(batched, in_shardings=sharded, out_shardings=sharded)


def _solver_steps(sizes: dict, n: int, batch: int) -> int:
    return int(max(4, min(sizes["solver_max_steps"], sizes["solver_cell_steps"] // (batch * n * n))))


def _measure_solver(n: int, batch: int, steps: int, mesh=None) -> dict:
    run = _solver_program(n, steps, mesh)
    keys = jax.random.split(jax.random.key(0), batch)
    if mesh is not None:
        from jax.sharding import NamedSharding, PartitionSpec

        keys = jax.device_put(keys, NamedSharding(mesh, PartitionSpec("data")))
    t0 = time.perf_counter()
    compiled = run.lower(keys).compile()
    compile_s = time.perf_counter() - t0
    seconds = _timed(lambda: compiled(keys))
    out = np.asarray(compiled(keys))
    norm_error = float(np.abs(np.linalg.norm(out, axis=-1) - 1.0).max())
    return dict(n=n, batch=batch, steps=steps, dtype="float32", compile_s=compile_s, seconds=seconds,
                cell_steps_per_s=batch * n * n * steps / seconds, max_norm_error=norm_error)


def figure_solver(report: Report, sizes: dict) -> None:
    for n, batch in sizes["solver_cases"]:
        report.run("solver", lambda r: r.emit("solver", **_measure_solver(n, batch, _solver_steps(sizes, n, batch))))


def figure_solver_scaling(report: Report, sizes: dict, num_devices: int) -> None:
    from jax.sharding import Mesh

    available = jax.local_devices()
    if num_devices > len(available):
        report.emit("solver_scaling", "skipped", reason=f"--devices {num_devices} but only {len(available)} local devices")
        return
    n, per_device = sizes["scaling_n"], sizes["scaling_batch_per_device"]
    counts = sorted({k for k in (1, 2, 4, 8, 16, 32, 64) if k < num_devices} | {num_devices})
    base = None
    for k in counts:
        mesh = Mesh(np.asarray(available[:k]), ("data",))
        batch = per_device * k
        fig = _measure_solver(n, batch, _solver_steps(sizes, n, per_device), mesh)
        base = base or fig["cell_steps_per_s"]
        report.emit("solver_scaling", devices=k, efficiency=fig["cell_steps_per_s"] / (k * base), **fig)


# --------------------------------------------------------------------------------------------
# 4. peer
# --------------------------------------------------------------------------------------------
def figure_peer(report: Report, sizes: dict, python: str, peer_path: str) -> None:
    script = REPO / "scripts" / "peer_magnumnp_step.py"
    device = "cpu" if report.dry_run or jax.default_backend() == "cpu" else "cuda"
    cmd = [python, str(script), "--n", str(sizes["peer_n"]), "--steps", str(sizes["peer_steps"]), "--dtype", "float32",
           "--device", device, "--boundary", "periodic"]
    if peer_path:
        cmd += ["--path", str(Path(peer_path).resolve())]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=report.out, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.emit("peer_magnumnp", "skipped", reason=f"{type(exc).__name__}: {exc}")
        return
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        report.emit("peer_magnumnp", "error", error=tail)
        return
    peer = json.loads(lines[-1])
    if "skipped" in peer:
        report.emit("peer_magnumnp", "skipped", reason=peer["skipped"])
        return
    ours = [f for f in report.figures("solver") if f["n"] == sizes["peer_n"] and f["batch"] == 1]
    if ours:
        peer["jaxmag_over_peer_batch1"] = ours[0]["cell_steps_per_s"] / peer["cell_steps_per_s"]
    best = max((f["cell_steps_per_s"] for f in report.figures("solver") if f["n"] == sizes["peer_n"]), default=None)
    if best:
        peer["jaxmag_best_batch_over_peer"] = best / peer["cell_steps_per_s"]
    report.emit("peer_magnumnp", **peer)


# --------------------------------------------------------------------------------------------
# 5. measures + noise
# --------------------------------------------------------------------------------------------
def figure_measures(report: Report, sizes: dict) -> None:
    from jaxmag.measures import measures_kernel
    from jaxmag.noise import apply_noise, parse_noise_spec

    B, T, ny, nx = sizes["measures_shape"]
    spec = parse_noise_spec("gaussian:1e-2")
    options = dict(num_states=6, binning="fixed", fixed_range=(-0.35, 0.35), lag=1)

    @jax.jit
    def pipeline(movie, key):
        noisy = apply_noise(movie, spec, key)
        return measures_kernel(noisy, **options)

    key = jax.random.key(0)
    movie = 0.1 * jax.random.normal(jax.random.key(1), (B, T, ny, nx), jnp.float32)
    t0 = time.perf_counter()
    compiled = pipeline.lower(movie, key).compile()
    compile_s = time.perf_counter() - t0
    seconds = _timed(lambda: compiled(movie, key))
    report.emit("measures", shape=[B, T, ny, nx], noise=spec.name, measures=["mean", "std", "latent_entropy"],
                num_states=options["num_states"], compile_s=compile_s, seconds=seconds,
                pixel_series_per_s=B * ny * nx / seconds)


# --------------------------------------------------------------------------------------------
# 6. U-Net training
# --------------------------------------------------------------------------------------------
def _unet_rate(u: dict, dtype: str, mesh) -> dict:
    from jaxmag.config import loads_config
    from jaxmag.learn import sharding
    from jaxmag.learn.loop import compile_train_step, create_train_state

    config = loads_config(
        f"[model]\nbase_features = {u['base_features']}\ndepth = {u['depth']}\ndropout = 0.1\n"
        f"[training]\nbatch_size = {u['batch']}\nlearning_rate = 1e-4\ncompute_dtype = \"{dtype}\"\n"
    )
    shape = (u["batch"], u["size"], u["size"], 1)
    state = create_train_state(config, 1, jax.random.key(0), 1000, mesh)
    t0 = time.perf_counter()
    step = compile_train_step(state, mesh, shape)
    compile_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    bsh = sharding.batch_sharding(mesh)
    x = sharding.global_batch(rng.normal(size=shape).astype(np.float32), bsh, u["batch"])
    y = sharding.global_batch((rng.random(shape[:3]) > 0.9).astype(np.int32), bsh, u["batch"])
    state, metrics = step(state, x, y)  # warm-up
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for _ in range(u["steps"]):
        state, metrics = step(state, x, y)
    jax.block_until_ready((state, metrics))
    seconds = (time.perf_counter() - t0) / u["steps"]
    params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(state.params))
    rate = u["batch"] / seconds
    return dict(dtype=dtype, batch=u["batch"], image=[u["size"], u["size"]], parameters=params,
                devices=int(mesh.devices.size), compile_s=compile_s, seconds_per_step=seconds,
                images_per_s=rate, loss_finite=bool(np.isfinite(float(metrics["loss"]))),
                paper_model_500_epochs_h=500 * PAPER_TRAIN_IMAGES / rate / 3600)


def figure_unet(report: Report, sizes: dict, num_devices: int) -> None:
    from jaxmag.learn import sharding

    mesh = sharding.data_mesh(jax.local_devices()[:1])
    for dtype in ("float32", "bfloat16"):
        report.run("unet_train", lambda r: r.emit("unet_train", **_unet_rate(sizes["unet"], dtype, mesh)))
    if num_devices > 1 and num_devices <= len(jax.local_devices()) and not report.dry_run:
        # data-parallel training over the local devices (not in the dry run: test_sharding covers it)
        mesh = sharding.data_mesh(jax.local_devices()[:num_devices])
        u = dict(sizes["unet"], batch=sizes["unet"]["batch"] * num_devices)
        report.run("unet_train", lambda r: r.emit("unet_train", scaling=True, **_unet_rate(u, "float32", mesh)))


# --------------------------------------------------------------------------------------------
# 7. end-to-end slice and the study projection
# --------------------------------------------------------------------------------------------
def figure_e2e(report: Report, sizes: dict) -> None:
    from jaxmag.config import load_config
    from jaxmag.learn.pipeline import run_pipeline
    from jaxmag.learn.study import plan_study

    e = sizes["e2e"]
    base = (REPO / e["base"]).resolve()
    paper = load_config(REPO / "configs" / "paper.toml")
    folder = report.out / "e2e_slice"
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    model = e.get("model", "")
    text = (f'base = "{base}"\nname = "device-check-slice"\n[dataset]\nnum_runs = {e["runs"]}\n'
            f'batch_size = {e["runs"]}\n[training]\nepochs = {e["epochs"]}\n{e.get("training", "")}\n'
            '[run]\nmodels = ["mean:x"]\n'
            + (f"[model]\n{model}\n" if model else "") + (f"[noise]\n{e['noise']}\n" if "noise" in e else ""))
    cfg_path = folder / "slice.toml"
    cfg_path.write_text(text)
    config = load_config(cfg_path)
    t0 = time.perf_counter()
    result = run_pipeline(config, folder / "run", mode="run", progress=False, log=lambda *_: None)
    wall = time.perf_counter() - t0
    timings = result["timings"]

    # Projection for `jaxmag study configs/paper.toml` on this device (one device).
    scale = paper.dataset.num_runs / config.dataset.num_runs
    units = len(plan_study(paper))
    unet = [f for f in report.figures("unet_train") if f["dtype"] == paper.training.compute_dtype and not f.get("scaling")]
    if unet and not report.dry_run:
        train_rate = unet[0]["images_per_s"]
        rate_source = "unet_train figure"
    else:  # the slice's own training stage (includes compile and evaluation: pessimistic)
        images = e["epochs"] * int(config.training.split[0] * config.dataset.num_runs)
        train_rate = max(images, 1) / timings.get("train_evaluate", wall)
        rate_source = "e2e slice train_evaluate stage"
    train_images = units * paper.training.epochs * int(paper.training.split[0] * paper.dataset.num_runs)
    projection = {
        "simulate_h": timings.get("simulate", 0.0) * scale / 3600,
        "measures_h": timings.get("measures", 0.0) * scale / 3600,
        "train_h": train_images / train_rate / 3600,
    }
    report.emit("e2e_slice", config=str(cfg_path.relative_to(report.out)), runs=config.dataset.num_runs,
                epochs=config.training.epochs, wall_s=wall, stage_s=timings, results=len(result["results"]),
                study_units=units, study_train_images=train_images, train_rate_images_per_s=train_rate,
                train_rate_source=rate_source, projected_h=projection,
                projected_study_h=sum(projection.values()),
                projection_note="simulate and measures scaled by runs; training from images/s; evaluation passes "
                                "and compiles not included; one device")


def figure_plan(report: Report, sizes: dict) -> None:
    """``jaxmag plan`` of the STXM worked example (docs/plan.md): its wall time and stages on this device."""
    import shutil

    from jaxmag.learn.plan import run_plan

    p = sizes["plan"]
    folder = report.out / "plan"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    config = REPO / p["config"] if "config" in p else folder / "plan.toml"
    if "text" in p:
        config.write_text(p["text"].format(repo=REPO))
    t0 = time.perf_counter()
    result = run_plan(config, folder / "out", progress=False, log=lambda *_: None)
    rows = result["rows"]
    report.emit("plan", config=str(config), rows=len(rows), points=len({r["point"] for r in rows}),
                models=sum(r["method"] == "model" for r in rows), wall_s=time.perf_counter() - t0,
                stage_s=result["timings"])


# --------------------------------------------------------------------------------------------
# 8. summary
# --------------------------------------------------------------------------------------------
def _row(line: dict) -> tuple[str, str, str]:
    fig, status = line["figure"], line["status"]
    if status != "ok":
        return fig, status, line.get("reason") or line.get("error", "")
    if fig == "environment":
        return fig, "ok", f"{line['device_kind']} × {line['local_devices']}, jax {line['jax']}"
    if fig in ("solver", "solver_scaling"):
        where = f"{line['n']}² × {line['batch']}" + (f" on {line['devices']} devices" if fig == "solver_scaling" else "")
        return fig, "ok", f"{where}: {line['cell_steps_per_s']:.3g} cell-steps/s (compile {line['compile_s']:.1f} s)"
    if fig == "peer_magnumnp":
        ratio = line.get("jaxmag_over_peer_batch1")
        return fig, "ok", f"{line['cell_steps_per_s']:.3g} cell-steps/s" + (f"; jaxmag batch 1 = {ratio:.2f}×" if ratio else "")
    if fig == "measures":
        return fig, "ok", f"{tuple(line['shape'])}: {line['pixel_series_per_s']:.3g} pixel-series/s"
    if fig == "unet_train":
        return fig, "ok", (f"{line['dtype']} batch {line['batch']} on {line['devices']}: {line['images_per_s']:.4g} images/s; "
                           f"500 epochs {line['paper_model_500_epochs_h']:.2f} h")
    if fig == "plan":
        return fig, "ok", f"{line['points']} points, {line['models']} models in {line['wall_s']:.1f} s"
    if fig == "e2e_slice":
        return fig, "ok", f"{line['runs']} runs, {line['epochs']} epochs in {line['wall_s']:.1f} s; study ≈ {line['projected_study_h']:.2f} h"
    return fig, status, ""


def write_summary(report: Report) -> None:
    rows = [_row(line) for line in report.lines]
    counts = {s: sum(1 for line in report.lines if line["status"] == s) for s in ("ok", "skipped", "error")}
    report.emit("summary", **counts, figures=[f"{f}:{s}" for f, s, _ in rows])
    width = max(len(f) for f, _, _ in rows)
    table = ["| figure | status | result |", "| --- | --- | --- |"]
    table += [f"| {f:<{width}} | {s} | {text} |" for f, s, text in rows]
    text = "\n".join(table) + "\n"
    (report.out / "summary.md").write_text(text)
    print(text, flush=True)


FIGURES = ("environment", "solver", "solver_scaling", "peer", "measures", "unet", "e2e", "plan")


def main(args: argparse.Namespace) -> int:
    sizes = DRY if args.cpu_dry_run else FULL
    budget = args.budget_s if args.budget_s is not None else (float("inf") if args.cpu_dry_run else 480.0)
    report = Report(Path(args.out), args.cpu_dry_run, budget)
    only = set(filter(None, args.only.split(","))) or set(FIGURES)
    unknown = only - set(FIGURES)
    if unknown:
        raise SystemExit(f"unknown figures {sorted(unknown)}; choose from {', '.join(FIGURES)}")
    steps = {
        "environment": lambda: report.run("environment", figure_environment, sizes),
        "solver": lambda: figure_solver(report, sizes),
        "solver_scaling": lambda: args.devices > 1 and report.run("solver_scaling", figure_solver_scaling, sizes, args.devices),
        "peer": lambda: report.run("peer_magnumnp", figure_peer, sizes, args.peer_python, args.peer_path),
        "measures": lambda: report.run("measures", figure_measures, sizes),
        "unet": lambda: figure_unet(report, sizes, args.devices),
        "e2e": lambda: report.run("e2e_slice", figure_e2e, sizes),
        "plan": lambda: report.run("plan", figure_plan, sizes),
    }
    for name in FIGURES:
        if name in only:
            steps[name]()
    write_summary(report)
    return 1 if any(line["status"] == "error" for line in report.lines) else 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
