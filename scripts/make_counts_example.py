"""Simulate a film and record it as a microscope would: a uint16 photon-count TIFF for ``jaxmag detect``.

    python scripts/make_counts_example.py --out counts_example                   # z probe, 4 nm PSF and pixels
    python scripts/make_counts_example.py --out peem --probe grazing:16 --pixel-cells 2 --psf-fwhm 8e-9
    python scripts/make_counts_example.py --out tiny --nx 32 --frames 20         # a small one

The film is simulated by jaxmag (``configs/paper.toml``'s permalloy with four defects of the paper's
areas, its own seed, burn-in and boundary, as ``scripts/make_detect_example.py``); the recording is a forward model
written here with NumPy and SciPy, independent of ``jaxmag.instrument``: the projection on the probe,
``scipy.ndimage.gaussian_filter`` (wrap for a periodic film, zero beyond an open film's edge),
block averaging onto pixels of ``--pixel-cells`` cells, Poisson photons of mean I0 (1 + c s), gain,
dark offset, Gaussian read noise, rounding and clipping to uint16.

Writes ``OUT/counts.tif`` (ImageJ hyperstack with the pixel size and frame interval),
``OUT/labels.npy`` (the true defect mask on the detector pixels: defect cells cover at least half
of the pixel) and ``OUT/truth.json`` (the film's regime and the recording's parameters).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from make_detect_example import example_config


def record_counts(s: np.ndarray, *, cell: float, pixel_cells: int, psf_fwhm: float, periodic: bool, photons: float,
                  contrast: float, gain: float, offset: float, read_noise: float, rng: np.random.Generator) -> np.ndarray:
    """Probe signal ``s (T, ny, nx)`` on cells -> uint16 counts ``(T, ny // k, nx // k)`` (module docstring)."""
    from scipy import ndimage

    s = np.asarray(s, np.float64)
    if psf_fwhm > 0:
        sigma = psf_fwhm / (2 * math.sqrt(2 * math.log(2))) / cell
        s = ndimage.gaussian_filter(s, sigma=(0, sigma, sigma), mode="wrap" if periodic else "constant", cval=0.0,
                                    truncate=6.0)
    k = pixel_cells
    T, ny, nx = s.shape
    s = s[:, : ny // k * k, : nx // k * k].reshape(T, ny // k, k, nx // k, k).mean(axis=(2, 4))
    photons_drawn = rng.poisson(photons * (1 + contrast * s))
    adu = gain * photons_drawn + offset + read_noise * rng.standard_normal(s.shape)
    return np.clip(np.round(adu), 0, 65535).astype(np.uint16)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--nx", type=int, default=64, help="cells a side")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--frame-interval", type=float, default=1e-11)
    p.add_argument("--cell-size", type=float, default=4e-9)
    p.add_argument("--boundary", choices=("open", "periodic"), default="periodic")
    p.add_argument("--seed", type=int, default=2027)
    p.add_argument("--burn-in", type=float, default=3e-10)
    p.add_argument("--probe", default="z", help="x, y, z or grazing:DEGREES")
    p.add_argument("--psf-fwhm", type=float, default=4e-9, help="m")
    p.add_argument("--pixel-cells", type=int, default=1, help="cells per detector pixel along each side")
    p.add_argument("--photons", type=float, default=2e4, help="photons per pixel and frame at s = 0")
    p.add_argument("--contrast", type=float, default=0.1, help="c in I0 (1 + c s) (XMCD asymmetry)")
    p.add_argument("--gain", type=float, default=1.5, help="ADU per photon")
    p.add_argument("--offset", type=float, default=200.0, help="ADU")
    p.add_argument("--read-noise", type=float, default=5.0, help="ADU rms")
    p.add_argument("--defect-cells", default="24,40",
                   help="blob areas MIN,MAX in cells (default: configs/paper.toml's, the film family detect's regime assumes)")
    args = p.parse_args(argv)

    import dataclasses

    from jaxmag.assemble import simulate
    from jaxmag.instrument import probe_direction
    from jaxmag.io.movie import write_counts_tiff

    config = example_config(args.nx, args.nx, args.frames, args.frame_interval, args.boundary, args.cell_size,
                            args.seed, burn_in=args.burn_in)
    lo, hi = (int(v) for v in args.defect_cells.split(","))
    config = config.replace(simulation=dataclasses.replace(config.simulation, components="xyz"),
                            defects=dataclasses.replace(config.defects, size_min=lo, size_max=hi))
    data = simulate(config, progress=False)
    m = np.asarray(data.m[0], np.float64)  # (T, 3, ny, nx)
    k = np.asarray(probe_direction(args.probe))
    s = np.einsum("c,tcyx->tyx", k, m)
    rng = np.random.default_rng(args.seed + 1)
    counts = record_counts(s, cell=args.cell_size, pixel_cells=args.pixel_cells, psf_fwhm=args.psf_fwhm,
                           periodic=args.boundary == "periodic", photons=args.photons, contrast=args.contrast,
                           gain=args.gain, offset=args.offset, read_noise=args.read_noise, rng=rng)
    kk = args.pixel_cells
    lab = (np.asarray(data.labels[0]) > 0).astype(np.float64)
    ny, nx = lab.shape
    labels = (lab[: ny // kk * kk, : nx // kk * kk].reshape(ny // kk, kk, nx // kk, kk).mean(axis=(1, 3)) >= 0.5)
    args.out.mkdir(parents=True, exist_ok=True)
    pixel = args.cell_size * kk
    write_counts_tiff(args.out / "counts.tif", counts, pixel_size_m=pixel, frame_interval_s=args.frame_interval)
    np.save(args.out / "labels.npy", labels.astype(np.uint8))
    truth = {"film": {"cells": [ny, nx], "cell_size_m": args.cell_size, "boundary": args.boundary, "seed": args.seed,
                      "frames": args.frames, "frame_interval_s": args.frame_interval, "burn_in_s": args.burn_in},
             "recording": {"probe": args.probe, "psf_fwhm_m": args.psf_fwhm, "pixel_size_m": pixel,
                           "photons_per_pixel": args.photons, "contrast": args.contrast, "gain": args.gain,
                           "offset": args.offset, "read_noise": args.read_noise},
             "defect_fraction": float(labels.mean()), "counts_range": [int(counts.min()), int(counts.max())]}
    (args.out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    print(json.dumps(truth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
