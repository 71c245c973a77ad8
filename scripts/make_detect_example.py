"""Simulate the example movies of ``docs/detect.md``: a film with four defects, as OVF frames.

    python scripts/make_detect_example.py --out example_movie            # the docs' permalloy movie
    python scripts/make_detect_example.py --out m --nx 16 --frames 12    # a tiny one
    python scripts/make_detect_example.py --out pma --material configs/pma.toml --nx 40 --seed 7 --burn-in 2e-9

Writes ``OUT/m000000.ovf ...`` (3-vector frames, MuMax3 names, the frame time in each header),
``OUT/labels.npy`` (the true defect mask, uint8 (ny, nx)), ``OUT/blob_ids.npy`` (each blob's id:
1..num_a the factor_a ("softer") blobs, then the factor_b ones) and ``OUT/truth.json`` (the regime and
the noise added). The regime is deliberately not one that ``jaxmag detect`` starts from: open
edges, 48 x 48 cells, 5 ps frames, a longer burn-in (``--burn-in``, 0.3 ns), its own seed, Gaussian noise of variance
``--noise`` added to every component of every frame (``jaxmag.noise``, key ``--seed``). The film
is ``configs/paper.toml``'s permalloy, or the ``[material]`` and ``[defects]`` of ``--material``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np


def example_config(nx: int, ny: int, frames: int, frame_interval: float, boundary: str, cell: float, seed: int,
                   material: Path | None = None, burn_in: float = 3e-10):
    from jaxmag.config import load_config

    base = load_config(Path(__file__).resolve().parents[1] / "configs" / "paper.toml")
    if material is not None:  # its film: [material] and [defects], the rest as the permalloy example
        own = load_config(material)
        base = base.replace(material=own.material, defects=own.defects)
    area = 16.0 / 1024 * nx * ny  # blob area in cells: 16-32 cells on 32 x 32 (configs/quick.toml), scaled
    return base.replace(
        name="detect-example",
        grid=dataclasses.replace(base.grid, nx=nx, ny=ny, cell_size_m=(cell, cell, cell), boundary=boundary, pbc_images=2),
        defects=dataclasses.replace(base.defects, size_min=max(4, int(area)), size_max=max(6, int(2 * area))),
        simulation=dataclasses.replace(base.simulation, burn_in_s=burn_in, frame_interval_s=frame_interval,
                                       num_frames=frames, components="xyz"),
        dataset=dataclasses.replace(base.dataset, num_runs=1, batch_size=1, seed=seed),
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--nx", type=int, default=48)
    p.add_argument("--ny", type=int, default=None)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--frame-interval", type=float, default=5e-12)
    p.add_argument("--cell-size", type=float, default=4e-9)
    p.add_argument("--boundary", choices=("open", "periodic"), default="open")
    p.add_argument("--noise", type=float, default=3e-3, help="Gaussian noise variance added (0: clean)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--burn-in", type=float, default=3e-10, help="seconds simulated before the first frame")
    p.add_argument("--material", type=Path, default=None,
                   help="config file whose [material] and [defects] the film has (default: permalloy, configs/paper.toml)")
    args = p.parse_args(argv)

    from jaxmag.io.ovf import write_ovf
    from jaxmag.noise import add_gaussian
    from jaxmag.assemble import simulate

    config = example_config(args.nx, args.ny or args.nx, args.frames, args.frame_interval, args.boundary,
                            args.cell_size, args.seed, args.material, args.burn_in)
    data = simulate(config, progress=False)
    m = np.asarray(data.m[0], np.float32)  # (T, 3, ny, nx)
    if args.noise > 0:
        m = np.asarray(add_gaussian(m, args.noise, jax.random.key(args.seed)))
    args.out.mkdir(parents=True, exist_ok=True)
    cell = config.grid.cell_size_m
    for k in range(m.shape[0]):
        frame = np.moveaxis(m[k], 0, -1)[None]  # (1, ny, nx, 3)
        write_ovf(args.out / f"m{k:06d}.ovf", frame, cell, time_s=float(data.t[k]))
    np.save(args.out / "labels.npy", (data.labels[0] > 0).astype(np.uint8))
    np.save(args.out / "blob_ids.npy", np.asarray(data.labels[0]).astype(np.uint8))  # 1..num_a the "a" blobs, then "b"
    truth = {
        "grid": [config.grid.ny, config.grid.nx],
        "cell_size_m": cell[0],
        "frame_interval_s": config.simulation.frame_interval_s,
        "num_frames": config.simulation.num_frames,
        "burn_in_s": config.simulation.burn_in_s,
        "boundary": config.grid.boundary,
        "material": str(args.material) if args.material else "permalloy (configs/paper.toml)",
        "easy_axis": list(config.material.easy_axis),
        "temperature_K": config.material.temperature,
        "noise": f"gaussian:{args.noise:g}" if args.noise > 0 else "clean",
        "noise_variance": args.noise,
        "seed": args.seed,
        "defect_fraction": float((data.labels[0] > 0).mean()),
        "num_a": config.defects.num_a, "factor_a": config.defects.factor_a, "factor_b": config.defects.factor_b,
    }
    (args.out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    print(json.dumps(truth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
