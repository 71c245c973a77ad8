"""What the instrument stage adds to a training batch (JSON lines): target <= 20 %.

Both arms train the quick budget's U-Net (``jaxmag.learn.budgets.BUDGETS["quick"]``: base 8,
depth 2, batch 8, the ``robust`` recipe's loss) with the step ``jaxmag train`` compiles
(``jaxmag.learn.loop.compile_train_step``), on the same clean films (made with numpy: m_x ~ 0.98,
m_z a smooth AR(1) field in time that fluctuates twice as much inside a labelled disc):

  A (baseline)   ``MovieSource``: inputs std:z, fresh Gaussian noise 3e-3, augment;
  B (instrument) ``RecordedSource``: the films through
                 ``Instrument(probe="z", psf_fwhm_m=4e-9, photons_per_pixel=2e4, contrast=0.1,
                 gain=1.5, offset=200, read_noise=5)`` (periodic, ``jaxmag.recording``), inputs std:p.

Timed per repetition, A and B alternating (the order swapped every repetition, so a change in the
load of this shared machine hits both alike): the batch alone (``next`` of a running
``train_batches`` iterator), the full step (batch + optimiser step), and, for the breakdown, the
instrument stage alone (``record_signal`` on a (8, T, 2, ny, nx) batch, jitted) and the optimiser
step alone on a fixed batch. Every timing waits for its outputs (``block_until_ready``); medians
over ``--repeats`` repetitions after ``--warmup`` (compiles excluded, reported apart). ``ratio``
is the median over repetitions of B/A of the full step; ``pass`` is ratio <= 1.20.

``--pixel-cells 2``: films of 2n x 2n cells of 4 nm seen through 8 nm pixels (n x n); A then trains
on the 2n x 2n cells, B on the n x n pixels (the same films with and without the instrument).

Where B's time goes, besides the breakdown: ``B_optics_only`` is B through the optics alone (no
detector, no random draws: the floor of recording 100 frames per film); the detector's shot
noise is ``jax.random.poisson`` (``jaxmag.instrument.detector_counts``), and the
``poisson_options`` line times it against a normal approximation round(λ + √λ z) on the batch's
rates (the draw alone and the whole detector stage, with one or two normal draws);
``B_normal_approx`` re-runs B with that approximation patched in for this process only (the
library is not changed), to show what the fix would buy.

On CPU everything runs single-threaded (XLA flags set before jax is imported) in a process pinned
to one core (``os.sched_setaffinity``, as ``taskset -c``) unless ``--threads``.

    python scripts/bench_instrument.py [--repeats 20] [--warmup 3] [--pixel-cells 1|2] [--cpu N]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--films", type=int, default=24, help="clean films N (4 validation, 4 test, the rest training)")
    p.add_argument("--frames", type=int, default=100, help="frames T per film")
    p.add_argument("--pixels", type=int, default=32, help="detector frame n x n; the films have n * pixel-cells cells a side")
    p.add_argument("--pixel-cells", type=int, default=1, choices=(1, 2), help="cells per detector pixel along each axis")
    p.add_argument("--repeats", type=int, default=20, help="timed, alternated repetitions (>= 20 for the claim)")
    p.add_argument("--warmup", type=int, default=3, help="untimed repetitions first (compiles and caches)")
    p.add_argument("--cpu", type=int, default=None, help="the core to pin to (default: the highest allowed)")
    p.add_argument("--threads", action="store_true", help="let XLA use every core and do not pin")
    p.add_argument("--no-approx", action="store_true", help="skip the normal-approximation arm and poisson_options")
    return p.parse_args()


ARGS = parse_args()
if not ARGS.threads:
    # Must precede the jax import; the affinity is inherited by XLA's threads.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    PINNED = ARGS.cpu if ARGS.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {PINNED})
else:
    PINNED = None
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxmag import instrument as ins  # noqa: E402
from jaxmag.config import MeasuresConfig, loads_config  # noqa: E402
from jaxmag.learn import sharding  # noqa: E402
from jaxmag.learn.budgets import BUDGETS  # noqa: E402
from jaxmag.learn.loop import compile_train_step, create_train_state  # noqa: E402
from jaxmag.learn.recipe import get_recipe  # noqa: E402
from jaxmag.learn.sources.movies import MovieSource  # noqa: E402
from jaxmag.learn.sources.recorded import RecordedSource  # noqa: E402
from jaxmag.recording import record_signal, recording_plan  # noqa: E402

CELL_M = 4e-9  # m, the simulation cell
DETECTOR = dict(probe="z", psf_fwhm_m=4e-9, photons_per_pixel=2e4, contrast=0.1, gain=1.5, offset=200.0, read_noise=5.0)
TRAIN_CONDITION = "gaussian:3e-3"  # A's fresh noise, units of Ms
TARGET = 1.20  # B/A of the full step


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


# ---------------------------------------------------------------------------------------------
# data: clean films and the two sources


def smooth_noise(rng: np.random.Generator, shape: tuple, sigma_cells: float) -> np.ndarray:
    """White noise ``shape (..., ny, nx)`` low-passed by a periodic Gaussian of ``sigma_cells``, unit std."""
    ny, nx = shape[-2:]
    ky, kx = np.fft.fftfreq(ny)[:, None], np.fft.fftfreq(nx)[None, :]
    gain = np.exp(-2 * (np.pi * sigma_cells) ** 2 * (ky**2 + kx**2))
    f = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * gain).real
    return f / f.std(axis=(-2, -1), keepdims=True)


def clean_films(n_films: int, frames: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Films ``(N, T, 2, n, n)`` float32 (components x, z; unit vectors in the xz plane) and
    labels ``(N, n, n)`` uint8: m_z an AR(1) in time (correlation 0.9 per frame) of smooth fields,
    std 0.2 (so m_x ~ 0.98), twice as large inside each film's labelled disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    labels = np.zeros((n_films, n, n), np.uint8)
    for i in range(n_films):
        cy, cx = rng.integers(0, n, 2)
        dy, dx = np.minimum(abs(yy - cy), n - abs(yy - cy)), np.minimum(abs(xx - cx), n - abs(xx - cx))
        labels[i] = dy**2 + dx**2 <= (n / 8) ** 2
    amp = np.where(labels > 0, 0.4, 0.2)[:, None]
    z = np.empty((n_films, frames, n, n), np.float64)
    z[:, 0] = smooth_noise(rng, (n_films, n, n), n / 16)
    for t in range(1, frames):
        z[:, t] = 0.9 * z[:, t - 1] + np.sqrt(1 - 0.81) * smooth_noise(rng, (n_films, n, n), n / 16)
    mz = np.clip(amp * z, -0.9, 0.9)
    m = np.stack([np.sqrt(1 - mz**2), mz], axis=2).astype(np.float32)
    return m, labels


def sources(m: np.ndarray, labels: np.ndarray, plan, batch: int, steps: int) -> dict:
    """``{"A": MovieSource, "B": RecordedSource}`` on the same films and split, each with ``steps`` per epoch."""
    n = m.shape[0]
    indices = {"train": np.arange(n - 8), "val": np.arange(n - 8, n - 4), "test": np.arange(n - 4, n)}
    mc = MeasuresConfig()
    common = dict(batch_size=batch, indices=indices, augment=True, steps_per_epoch=steps)
    return {
        "A": lambda: MovieSource(m, labels, "xz", (("std", "z"),), {"z": mc.options("z")},
                                 train_condition=TRAIN_CONDITION, fresh_noise=True, periodic=True, **common),
        "B": lambda: RecordedSource(m, labels, plan, (("std", "p"),), {"p": mc.options("p")}, **common),
    }


# ---------------------------------------------------------------------------------------------
# the proposed fix, for this process only


def normal_approx_counts(key: jax.Array, signal, instrument: ins.Instrument) -> jax.Array:
    """``detector_counts`` with photons round(λ + √λ z) instead of Poisson(λ): the fix proposed for
    λ = I0 (1 + c s) above ~1e3 photons (Poisson skewness 1/√λ <= 3 %); same gain, offset,
    read noise, rounding and clipping (detector units)."""
    i = instrument
    k_shot, k_read = jax.random.split(key)
    rate = i.photons_per_pixel * (1.0 + i.contrast * jnp.asarray(signal, jnp.float32))
    photons = jnp.maximum(jnp.round(rate + jnp.sqrt(rate) * jax.random.normal(k_shot, rate.shape, jnp.float32)), 0.0)
    adu = i.gain * photons + i.offset
    if i.read_noise > 0:
        adu = adu + i.read_noise * jax.random.normal(k_read, rate.shape, jnp.float32)
    return jnp.clip(jnp.round(adu), 0.0, i.full_scale)


def one_draw_counts(key: jax.Array, signal, instrument: ins.Instrument) -> jax.Array:
    """``normal_approx_counts`` with shot and read noise as one normal draw of variance g²λ + σ_r²
    (ADU²): half the random numbers, the same law to the photon rounding (variance g²/12)."""
    i = instrument
    rate = i.photons_per_pixel * (1.0 + i.contrast * jnp.asarray(signal, jnp.float32))
    sd = jnp.sqrt(i.gain**2 * rate + i.read_noise**2)
    adu = i.gain * rate + i.offset + sd * jax.random.normal(key, rate.shape, jnp.float32)
    return jnp.clip(jnp.round(adu), 0.0, i.full_scale)


@contextlib.contextmanager
def patched_detector(fn):
    """``jaxmag.instrument.detector_counts`` replaced while the arm traces (its jitted functions keep it)."""
    original = ins.detector_counts
    ins.detector_counts = fn
    try:
        yield
    finally:
        ins.detector_counts = original


# ---------------------------------------------------------------------------------------------
# timing


class Arm:
    """A running source and its own train state: ``batch()`` and ``step()`` wait for their outputs."""

    def __init__(self, source, config, mesh, loss: str, steps: dict):
        self.source = source
        self.batches = source.train_batches(0, jax.random.key(1))
        ny, nx = (int(v) for v in source.describe()["image_shape"])
        shape = (source.batch_size, ny, nx, len(source.inputs))
        self.state = create_train_state(config, shape[-1], jax.random.key(0), 10_000, mesh)
        if shape not in steps:
            t0 = time.perf_counter()
            steps[shape] = (compile_train_step(self.state, mesh, shape, loss), time.perf_counter() - t0)
        self.train_step, self.step_compile_s = steps[shape]
        self.shape = shape

    def batch(self):
        return jax.block_until_ready(next(self.batches))

    def step(self):
        x, y = next(self.batches)
        self.state, metrics = self.train_step(self.state, x, y)
        return jax.block_until_ready(metrics)

    def fixed_step(self, x, y):
        self.state, metrics = self.train_step(self.state, x, y)
        return jax.block_until_ready(metrics)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def summary_of(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "n": len(times)}


def main() -> int:
    B, T, npx, f = BUDGETS["quick"].batch_size, ARGS.frames, ARGS.pixels, ARGS.pixel_cells
    ncell = npx * f
    t_start = time.perf_counter()
    common = {"device": str(jax.devices()[0]), "threads": "all" if ARGS.threads else 1, "pinned_cpu": PINNED,
              "films": [ARGS.films, T, 2, ncell, ncell], "batch": B, "pixel_cells": f, "pixels": [npx, npx]}
    emit(event="start", load=os.getloadavg(), note="2 shared cores: A and B alternate, order swapped every repetition, "
         "so load changes hit both; trust the ratio more than the absolute times", **common)

    m, labels = clean_films(ARGS.films, T, ncell)
    inst = ins.Instrument(pixel_size_m=CELL_M * f if f > 1 else 0.0, **DETECTOR)
    plan = recording_plan(inst, (ncell, ncell), (CELL_M, CELL_M), "xz", periodic=True)
    q = BUDGETS["quick"]
    training = "\n".join(f"{k} = {json.dumps(v)}" for k, v in q.training().items())
    config = loads_config(f"[model]\nbase_features = {q.base_features}\ndepth = {q.depth}\ndropout = 0.1\n"
                          f"[training]\n{training}\n")
    loss = get_recipe(config.training.recipe).loss
    mesh = sharding.data_mesh()
    # two batches per repetition and arm (batch alone, full step), plus the fixed-batch steps' one
    steps_needed = 3 * (ARGS.warmup + ARGS.repeats) + 4
    make = sources(m, labels, plan, B, steps_needed)
    compiled: dict = {}
    arms, build_s = {}, {}
    for name in ("A", "B"):
        t0 = time.perf_counter()
        arms[name] = Arm(make[name](), config, mesh, loss, compiled)
        build_s[name] = time.perf_counter() - t0
    # the floor: the same films and batch function through the optics alone (no detector, no draws)
    optics = recording_plan(ins.Instrument(probe="z", psf_fwhm_m=DETECTOR["psf_fwhm_m"], pixel_size_m=inst.pixel_size_m),
                            (ncell, ncell), (CELL_M, CELL_M), "xz", periodic=True)
    t0 = time.perf_counter()
    arms["B_optics_only"] = Arm(sources(m, labels, optics, B, steps_needed)["B"](), config, mesh, loss, compiled)
    build_s["B_optics_only"] = time.perf_counter() - t0
    if not ARGS.no_approx:
        with patched_detector(normal_approx_counts):
            t0 = time.perf_counter()
            arms["B_normal_approx"] = Arm(make["B"](), config, mesh, loss, compiled)
            arms["B_normal_approx"].batch()  # traces and compiles its batch function under the patch
            build_s["B_normal_approx"] = time.perf_counter() - t0

    # the instrument stage alone, on one batch of films, a fresh key per call
    films = jax.device_put(m[:B])
    record = jax.jit(lambda k, mv: record_signal(k, mv, plan))
    calls = iter(range(10**9))
    record_once = lambda: jax.block_until_ready(record(jax.random.fold_in(jax.random.key(7), next(calls)), films))
    # the optimiser step alone, on a fixed batch of each arm's shape
    fixed = {name: arms[name].batch() for name in ("A", "B")}

    tasks = {
        "A_batch": arms["A"].batch, "B_batch": arms["B"].batch,
        "A_step": arms["A"].step, "B_step": arms["B"].step,
        "A_train_step_alone": lambda: arms["A"].fixed_step(*fixed["A"]),
        "B_train_step_alone": lambda: arms["B"].fixed_step(*fixed["B"]),
        "record_signal_alone": record_once,
    }
    tasks["B_optics_only_batch"] = arms["B_optics_only"].batch
    tasks["B_optics_only_step"] = arms["B_optics_only"].step
    if "B_normal_approx" in arms:
        tasks["B_normal_approx_batch"] = arms["B_normal_approx"].batch
        tasks["B_normal_approx_step"] = arms["B_normal_approx"].step
    first_call = {"record_signal_alone": timed(record_once)}
    times = {k: [] for k in tasks}
    step_ratio, batch_ratio = [], []
    names = list(tasks)
    for r in range(ARGS.warmup + ARGS.repeats):
        # alternate: A before B on even repetitions, the whole order reversed on odd ones
        order = names if r % 2 == 0 else names[::-1]
        got = {n: timed(tasks[n]) for n in order}
        if r >= ARGS.warmup:
            for n, s in got.items():
                times[n].append(s)
            step_ratio.append(got["B_step"] / got["A_step"])
            batch_ratio.append(got["B_batch"] / got["A_batch"])

    for name, ts in times.items():
        arm = name.split("_step")[0].split("_batch")[0].split("_train")[0]
        extra = {}
        if arm in arms:
            extra.update(build_s=build_s[arm], model_input=list(arms[arm].shape),
                         train_step_compile_s=arms[arm].step_compile_s)
        if name in first_call:
            extra["first_call_s"] = first_call[name]
            extra["input"] = [B, T, 2, ncell, ncell]
        emit(config=name, **summary_of(ts), **extra, **common)

    med = {k: statistics.median(v) for k, v in times.items()}
    if not ARGS.no_approx:
        emit(**poisson_options(jax.device_put(m[:B]), plan, inst), **common)
    summary = {
        "event": "summary",
        "claim": "the instrument stage adds <= 20 % to a training batch (batch + optimiser step)",
        "ratio": statistics.median(step_ratio),
        "ratio_of_medians": med["B_step"] / med["A_step"],
        "batch_ratio": statistics.median(batch_ratio),
        "pass": statistics.median(step_ratio) <= TARGET,
        "target": TARGET,
        "A_step_median_s": med["A_step"], "B_step_median_s": med["B_step"],
        "breakdown_B_s": {"batch": med["B_batch"], "record_signal": med["record_signal_alone"],
                          "train_step": med["B_train_step_alone"]},
        "breakdown_A_s": {"batch": med["A_batch"], "train_step": med["A_train_step_alone"]},
        "ratio_optics_only": statistics.median([b / a for b, a in zip(times["B_optics_only_step"], times["A_step"])]),
        "repeats": ARGS.repeats, "warmup": ARGS.warmup,
        "load": os.getloadavg(), "total_s": time.perf_counter() - t_start,
    }
    if "B_normal_approx_step" in med:
        ratios = [b / a for b, a in zip(times["B_normal_approx_step"], times["A_step"])]
        summary["ratio_normal_approx"] = statistics.median(ratios)
        summary["pass_normal_approx"] = summary["ratio_normal_approx"] <= TARGET
    emit(**summary, **common)
    return 0


def poisson_options(films, plan, inst: ins.Instrument, repeats: int = 7) -> dict:
    """Times of the shot noise for one batch's rates λ = I0 (1 + c s) (s the optical signal of
    ``films``), jitted, alternated, medians: the draw alone (``jax.random.poisson`` against
    round(λ + √λ z)) and the whole detector stage (the library's ``detector_counts`` against
    ``normal_approx_counts`` and ``one_draw_counts``); with the standardised moments
    (mean, variance, third moment of (draw − λ)/√λ) of each photon draw: (0, 1, 1/√λ) for Poisson."""
    signal = jax.block_until_ready(jax.jit(lambda mv: ins.apply_optics(ins.project(mv, plan.components,
                                                                                    inst.direction), plan.operators))(films))
    rate = inst.photons_per_pixel * (1.0 + inst.contrast * signal)
    fns = {
        "poisson_exact": jax.jit(lambda k, lam: jax.random.poisson(k, lam, lam.shape).astype(jnp.float32)),
        "normal_approx": jax.jit(lambda k, lam: jnp.maximum(jnp.round(lam + jnp.sqrt(lam) * jax.random.normal(k, lam.shape)), 0.0)),
        "detector_counts_exact": jax.jit(lambda k, s: ins.detector_counts(k, s, inst)),
        "detector_counts_normal_two_draws": jax.jit(lambda k, s: normal_approx_counts(k, s, inst)),
        "detector_counts_normal_one_draw": jax.jit(lambda k, s: one_draw_counts(k, s, inst)),
    }
    arg = {name: rate if name in ("poisson_exact", "normal_approx") else signal for name in fns}
    out, draws = {}, {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        draws[name] = np.asarray(jax.block_until_ready(fn(jax.random.key(0), arg[name])))
        out[f"{name}_first_call_s"] = time.perf_counter() - t0
    ts = {k: [] for k in fns}
    for r in range(repeats):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            ts[name].append(timed(lambda: jax.block_until_ready(fns[name](jax.random.key(r + 1), arg[name]))))
    lam = np.asarray(rate, np.float64)
    for name in fns:
        out[f"{name}_s"] = statistics.median(ts[name])
    for name in ("poisson_exact", "normal_approx"):
        z = (draws[name] - lam) / np.sqrt(lam)
        out[f"{name}_standardised_mean_var_m3"] = [float(z.mean()), float(z.var()), float((z**3).mean())]
    out["draw_speedup"] = out["poisson_exact_s"] / out["normal_approx_s"]
    out["detector_speedup_two_draws"] = out["detector_counts_exact_s"] / out["detector_counts_normal_two_draws_s"]
    out["detector_speedup_one_draw"] = out["detector_counts_exact_s"] / out["detector_counts_normal_one_draw_s"]
    return {"config": "poisson_options", "rates_shape": list(rate.shape),
            "rate_range": [float(lam.min()), float(lam.max())], "poisson_third_moment": float(np.mean(lam ** -0.5)),
            **out}


if __name__ == "__main__":
    sys.exit(main())
