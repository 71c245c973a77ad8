"""``jaxmag detect``: from a movie to a defect map, training on the movie's own regime and noise.

    jaxmag detect run.out/ --out det/                                   # OVF folder: all from headers
    jaxmag detect movie.tif --component z --frame-interval 1e-11 --cell-size 4e-9 --out det/
    jaxmag detect movie.tif --frame-interval 1e-11 --boundary open --budget standard --out det/

Writes ``regime.toml`` (the regime as a jaxmag config), ``probability``, ``mask`` and
``baseline_mask`` (``.npy``/``.tif``), ``overlay.png``, ``report.md`` and ``detect.json``
(``jaxmag.learn.detect``; see ``docs/detect.md``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import get_args

from jaxmag.cli._choices import component_names, noise_forms
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
    p.add_argument("--component", choices=component_names(),
                   help="component of a single-component movie (default z); OVF/HDF5 vector movies use x and z")
    p.add_argument("--dataset", metavar="PATH", help="dataset path inside an HDF5 movie")
    p.add_argument("--rescale", default="none", metavar="MODE",
                   help="none | minmax | maxabs | ms:<Ms in A/m>: map the data to unit-vector components (default none)")
    p.add_argument("--material", default="permalloy",
                   help="permalloy (configs/paper.toml) or a config .toml whose [material] and [defects] are used")
    p.add_argument("--boundary", choices=("auto", *get_args(Boundary)), default="auto",
                   help="film edges (default auto: open edges show in the movie)")
    p.add_argument("--cell-size", type=float, metavar="M", help="cell size in m (OVF: from the headers; else default 4e-9)")
    p.add_argument("--frame-interval", type=float, metavar="S",
                   help="seconds between frames (OVF: from the headers; required for TIFF/HDF5/npy)")
    p.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    p.add_argument("--inputs", default="auto",
                   help="auto (scored by the baseline on the regime) or one model's channels, e.g. std:z or mean:x,std:z")
    p.add_argument("--noise", default="auto", help=f"auto (estimated from the movie) or {noise_forms()}")
    p.add_argument("--budget", choices=("quick", "standard", "full"), default="quick",
                   help="simulated films, epochs and model size (docs/detect.md lists wall times; default quick)")
    p.add_argument("--cache", type=Path, help="folder of simulated films and models to reuse (default OUT/cache)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold of the mask (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated films and of training (default 0)")
    p.add_argument("--max-abs", type=float, default=1.5,
                   help="reject movies whose 99.9th percentile |value| exceeds this after --rescale (default 1.5)")
    p.add_argument("--force", action="store_true", help="replace files in --out that jaxmag did not write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jaxmag.learn.detect import detect

    res = detect(
        args.movie, args.out, component=args.component, dataset=args.dataset, rescale=args.rescale,
        max_abs=args.max_abs, material=args.material, boundary=args.boundary, cell_size=args.cell_size,
        frame_interval=args.frame_interval, temperature=args.temperature, inputs=args.inputs, noise=args.noise,
        budget=args.budget, cache=args.cache, threshold=args.threshold, seed=args.seed, force=args.force,
        progress=not args.no_progress,
    )
    f, v, n = res.facts, res.validation, res.noise
    print(f"regime: {f.ny} x {f.nx}, {f.num_frames} frames of {f.frame_interval_s:g} s, cells {f.cell_size_m:g} m, "
          f"{f.boundary} -> {args.out / 'regime.toml'}")
    from jaxmag.learn.noise_match import reference_kind
    from jaxmag.noise import noise_model

    ref = reference_kind()
    est = ", ".join(f"m_{c} {p[ref]:.3g}" for c, p in n["per_component"].items())
    print(f"noise: {n['kind']}; calibrated {ref} {noise_model(ref).level_name} {est}; trained at {n['trained']}")
    print(f"model {', '.join(res.input_names)}{' (cached)' if res.cached else ''}: test Dice {v['model']['test_dice']:.3f} "
          f"on simulated films (baseline {v['baseline']['test_dice']:.3f})")
    print(f"defect fraction {res.mask.mean():.4f} (baseline {res.baseline_mask.mean():.4f}) -> {args.out / 'report.md'}")
    for w in res.warnings:
        print(f"jaxmag: warning: {w}", file=sys.stderr)
    return 0
