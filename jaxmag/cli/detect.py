"""``jaxmag detect``: from a movie to a defect map, training on the movie's own regime and noise.

    jaxmag detect run.out/ --out det/                                   # OVF folder: all from headers
    jaxmag detect movie.tif --component z --frame-interval 1e-11 --cell-size 4e-9 --out det/
    jaxmag detect movie.tif --frame-interval 1e-11 --boundary open --budget standard --out det/
    jaxmag detect movie.tif --regime det/regime.toml --out det2/        # an earlier regime, edited, as written
    jaxmag detect counts.tif --probe z --psf-fwhm 8e-9 --out det3/      # uint16 counts (pixel size and frame
                                                                        # interval from OME/ImageJ metadata)

Writes ``regime.toml`` (the regime as a jaxmag config), ``probability``, ``mask`` and
``baseline_mask`` (``.npy``/``.tif``), ``overlay.png``, ``report.md`` and ``detect.json``
(``jaxmag.learn.detect``; see ``docs/detect.md``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import get_args

from jaxmag.cli._options import add_classes, add_force, add_movie_options, add_noise
from jaxmag.grid import Boundary


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "detect",
        help="defect map of a movie, with a model trained on the movie's own regime and noise",
        description="Read a movie (OVF folder, TIFF stack, HDF5, .npy), infer its simulation regime and noise, "
        "train (or reuse) a noise-matched U-Net on simulated films of that regime, and write the defect "
        "probability, the mask, the non-learned baseline's mask, an overlay and a report.",
    )
    p.add_argument("movie", type=Path, help="OVF folder, .tif/.tiff stack, .h5 (with --dataset) or .npy (T, ny, nx)")
    p.add_argument("--out", type=Path, required=True, help="output folder (files jaxmag did not write there are kept: see --force)")
    add_movie_options(p, "component of a single-component movie (default z); OVF/HDF5 vector movies use x and z")
    # Regime flags default to None ("not given"): a --regime file's value stands unless the flag is given.
    p.add_argument("--regime", type=Path, metavar="FILE",
                   help="a regime config used as written, e.g. the regime.toml of an earlier detect, edited; "
                   "its grid and frame count must match the movie's; a flag given here overrides it")
    p.add_argument("--material",
                   help="permalloy (configs/paper.toml), a config .toml whose [material] and [defects] are used, or fit (the film's K_u, A_ex, alpha fitted to the movie first, docs/fit.md) "
                   "(default: --regime's, else permalloy)")
    p.add_argument("--boundary", choices=("auto", *get_args(Boundary)),
                   help="film edges (default: --regime's, else auto: open edges show in the movie)")
    p.add_argument("--cell-size", type=float, metavar="M",
                   help="cell size in m (OVF: from the headers; else --regime's, else 4e-9)")
    p.add_argument("--frame-interval", type=float, metavar="S",
                   help="seconds between frames, 0.01 ps - 10 ns (OVF: from the headers; else --regime's; "
                   "required for TIFF/HDF5/npy otherwise)")
    p.add_argument("--signal", choices=("counts", "magnetisation"),
                   help="what the movie holds: detector counts (docs/instrument.md) or unit-vector magnetisation "
                   "(default: counts for integer TIFF/HDF5 data, magnetisation otherwise)")
    add_classes(p)
    p.add_argument("--probe", help="counts: the probe direction, x, y, z, grazing:DEGREES (XMCD-PEEM) or kx,ky,kz (default z)")
    p.add_argument("--pixel-size", type=float, metavar="M",
                   help="counts: detector pixel in m (default: the movie's OME/ImageJ/HDF5 metadata)")
    p.add_argument("--psf-fwhm", type=float, metavar="M", help="counts: FWHM of the point-spread function in m (default 0)")
    p.add_argument("--psf-image", type=Path, metavar="FILE",
                   help="counts: a PSF image (.npy/.tif, odd sides, centred) sampled on the detector's pixels, "
                   "instead of --psf-fwhm (docs/instrument.md)")
    p.add_argument("--exposure", type=float, metavar="S",
                   help="counts: exposure per frame in s (default: instantaneous; longer than 1 ns: camera-rate frames)")
    p.add_argument("--temperature", type=float, help="K (default: --regime's, else the material's: 300 for permalloy)")
    p.add_argument("--inputs", default="auto",
                   help="auto (scored by the baseline on the regime) or one model's channels, e.g. std:z or mean:x,std:z")
    add_noise(p, "the movie's noise", default="auto", extra="auto (estimated from the movie) or ")
    p.add_argument("--budget", choices=("quick", "standard", "full"),
                   help="simulated films, epochs and model size (docs/detect.md lists wall times; default: "
                   "--regime's, else quick)")
    p.add_argument("--cache", type=Path, help="folder of simulated films and models to reuse (default OUT/cache)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold of the mask (default 0.5)")
    p.add_argument("--seed", type=int, help="seed of the simulated films (default: --regime's, else 0)")
    add_force(p, "files in --out that jaxmag did not write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jaxmag.learn.detect import detect

    res = detect(
        args.movie, args.out, component=args.component, dataset=args.dataset, rescale=args.rescale,
        max_abs=args.max_abs, regime=args.regime, material=args.material, boundary=args.boundary, cell_size=args.cell_size,
        frame_interval=args.frame_interval, temperature=args.temperature, inputs=args.inputs, noise=args.noise,
        budget=args.budget, cache=args.cache, threshold=args.threshold, seed=args.seed, force=args.force,
        progress=not args.no_progress, signal=args.signal, classes=args.classes, probe=args.probe, pixel_size=args.pixel_size,
        psf_fwhm=args.psf_fwhm, psf_image=args.psf_image, exposure=args.exposure,
    )
    f, v, n = res.facts, res.validation, res.noise
    print(f"regime: {f.ny} x {f.nx}, {f.num_frames} frames of {f.frame_interval_s:g} s, cells {f.cell_size_m:g} m, "
          f"{f.boundary} -> {args.out / 'regime.toml'}")
    if "recording" in n:
        r = n["recording"]
        print(f"detector: level {r['level']:.5g} ADU, scale {r['scale']:.4g} ADU per unit of m (from {r['scale_from']}), "
              f"gain {r['gain']:.3g} ADU/photon, I0 {r['photons_per_pixel']:.4g} photons, contrast {r['contrast']:.3g}")
    else:
        _print_noise(n)
    print(f"model {', '.join(res.input_names)}{' (cached)' if res.cached else ''}: test Dice {v['model']['test_dice']:.3f} "
          f"on simulated films (baseline {v['baseline']['test_dice']:.3f})")
    print(f"defect fraction {res.mask.mean():.4f} (baseline {res.baseline_mask.mean():.4f}) -> {args.out / 'report.md'}")
    for w in res.warnings:
        print(f"jaxmag: warning: {w}", file=sys.stderr)
    return 0


def _print_noise(n: dict) -> None:
    from jaxmag.learn.noise_match import reference_kind
    from jaxmag.noise import condition_label, noise_model

    ref = reference_kind()
    est = ", ".join(f"m_{c} {p[ref]:.3g}" for c, p in n["per_component"].items())
    print(f"noise: {n['kind']}; calibrated {ref} {noise_model(ref).level_name} {est}; trained at {condition_label(n['trained'])}")
