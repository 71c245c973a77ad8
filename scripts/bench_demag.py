"""Benchmark and convergence measurements of the demag term; prints one JSON object per line.

    python scripts/bench_demag.py              # kernel build times, field evaluation timings
    python scripts/bench_demag.py --pbc        # also: periodic-image convergence table

Timings are single-threaded CPU (XLA flags set before jax is imported). The baseline is the
straightforward implementation measured in the same run: the full complex 3x3 kernel
spectrum, a 3-D ``rfftn`` over the channel-last array and an ``einsum``.
"""
from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxmag.constants import MU0  # noqa: E402
from jaxmag.fields import demag as D  # noqa: E402
from jaxmag.grid import Grid  # noqa: E402
from jaxmag.material import Material  # noqa: E402

MS = 8e5


def baseline(grid: Grid):
    """Straightforward FFT demag: all 9 complex kernel components, 3-D rfftn, einsum."""
    k = D.demag_kernel_newell(grid)
    (pz, py, px), _ = D.kernel_layout(grid)
    nz, ny, nx = grid.shape
    xx, yy, zz, xy, xz, yz = np.moveaxis(k, -1, 0)
    full = np.stack([np.stack(r, -1) for r in ((xx, xy, xz), (xy, yy, yz), (xz, yz, zz))], -2)
    spectrum = np.fft.rfftn(full, axes=(0, 1, 2)).astype(np.complex64)

    def field(m, material):
        f = jnp.fft.rfftn(m * material.Ms[..., None], s=(pz, py, px), axes=(0, 1, 2))
        h = jnp.einsum("zyxab,zyxb->zyxa", spectrum, f)
        return -MU0 * jnp.fft.irfftn(h, s=(pz, py, px), axes=(0, 1, 2))[:nz, :ny, :nx]

    return field


def time_calls(fns, *args, reps: int = 20, rounds: int = 15) -> list[float]:
    """Best time per call of each function; rounds interleave them so load changes hit all."""
    jitted = [jax.jit(fn) for fn in fns]
    for f in jitted:
        f(*args).block_until_ready()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for n, f in enumerate(jitted):
            start = time.perf_counter()
            for _ in range(reps):
                out = f(*args)
            out.block_until_ready()
            best[n] = min(best[n], (time.perf_counter() - start) / reps)
    return best


def kernel_build(grid: Grid) -> dict:
    D._kernel_cached.cache_clear()
    D._kernel_fft.cache_clear()
    start = time.perf_counter()
    D.demag_kernel_newell(grid)
    mid = time.perf_counter()
    D._kernel_fft(grid)
    end = time.perf_counter()
    return {
        "what": "kernel_build",
        "grid": [grid.nx, grid.ny, grid.nz],
        "boundary": grid.boundary,
        "pbc_images": grid.pbc_images if grid.periodic else None,
        "tensor_s": round(mid - start, 4),
        "fft_s": round(end - mid, 4),
    }


def field_timing(grid: Grid) -> dict:
    key = jax.random.key(0)
    m = jax.random.normal(key, grid.vector_shape)
    m = m / jnp.linalg.norm(m, axis=-1, keepdims=True)
    material = Material.uniform(grid, Ms=MS, A_ex=1.3e-11)
    ours, base = D.demag(grid), baseline(grid)
    diff = float(jnp.abs(jax.jit(ours)(m, material) - jax.jit(base)(m, material)).max() / (MU0 * MS))
    t_ours, t_base = time_calls([ours, base], m, material)
    return {
        "what": "field_eval_float32",
        "grid": [grid.nx, grid.ny, grid.nz],
        "ours_ms": round(t_ours * 1e3, 3),
        "baseline_ms": round(t_base * 1e3, 3),
        "speedup": round(t_base / t_ours, 2),
        "max_diff_rel_MU0Ms": diff,
    }


def pbc_convergence(n: int, images: int) -> dict:
    """Residual in-plane field of a uniformly x-magnetised periodic film (0 for infinite film)."""
    grid = Grid(n, n, 1, 4e-9, 4e-9, 2e-9, boundary="periodic", pbc_images=images)
    field = D.demag(grid)
    material = Material.uniform(grid, Ms=MS, A_ex=1.3e-11, dtype=jnp.float64)
    out = {"what": "pbc_convergence", "grid": [n, n, 1], "cell_nm": [4, 4, 2], "pbc_images": images}
    for label, direction in (("x", (1.0, 0.0, 0.0)), ("z", (0.0, 0.0, 1.0))):
        m = jnp.broadcast_to(jnp.asarray(direction, jnp.float64), grid.vector_shape)
        b = np.asarray(field(m, material)) / (MU0 * MS)
        if label == "x":
            out["max_abs_Bx_over_MU0Ms_m_x"] = float(np.abs(b[..., 0]).max())
        else:
            out["max_abs_Bz_plus_MU0Ms_over_MU0Ms_m_z"] = float(np.abs(b[..., 2] + 1.0).max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pbc", action="store_true", help="also print the periodic-image convergence table")
    args = parser.parse_args()
    grids = [
        Grid(128, 128, 1, 4e-9, 4e-9, 1e-9),
        Grid(256, 64, 1, 4e-9, 4e-9, 3e-9),
        Grid(64, 64, 8, 4e-9, 4e-9, 2e-9),
        Grid(128, 128, 1, 4e-9, 4e-9, 1e-9, boundary="periodic", pbc_images=4),
        Grid(64, 64, 1, 4e-9, 4e-9, 2e-9, boundary="periodic", pbc_images=16),
    ]
    for grid in grids:
        print(json.dumps(kernel_build(grid)), flush=True)
    for grid in grids[:3]:
        print(json.dumps(field_timing(grid)), flush=True)
    if args.pbc:
        with jax.enable_x64(True):
            for images in (0, 1, 2, 4, 8, 16):
                print(json.dumps(pbc_convergence(64, images)), flush=True)


if __name__ == "__main__":
    main()
