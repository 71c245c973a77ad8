"""``jaxmag fit-regime``: fit the film's material (K_u, A_ex, alpha) to a movie by differentiable simulation.

    jaxmag fit-regime run.out/ --out fit/                                   # OVF folder: all from headers
    jaxmag fit-regime movie.npy --component z --frame-interval 1e-11 --temperature 300 --out fit/
    jaxmag fit-regime movie.h5 --fit K_u,A_ex --boundary periodic --out fit/

Writes ``regime.toml`` (the movie's regime with the fitted values in ``[material]``, uncertainties
and statistics in comments) and ``fit.json`` (``jaxmag.learn.fit_regime``; see ``docs/fit.md``).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import get_args

from jaxmag.cli._options import add_force, add_movie_options
from jaxmag.grid import Boundary


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit-regime",
        help="fit the film's anisotropy, exchange and damping to a movie by differentiable thermal simulation",
        description="Read a movie, build its simulation regime as detect does, and fit the background K_u, A_ex "
        "and alpha (any subset) so that simulated films of the regime reproduce the movie's noise-robust "
        "statistics; write regime.toml with the fitted [material] and fit.json (docs/fit.md).",
    )
    p.add_argument("movie", type=Path, help="OVF folder, .tif/.tiff stack, .h5 (with --dataset) or .npy (T, ny, nx)")
    p.add_argument("--out", type=Path, required=True, help="output folder (regime.toml, fit.json)")
    add_movie_options(p, "component of a single-component movie (default z); OVF/HDF5 vector movies use x and z")
    p.add_argument("--fit", default="K_u,A_ex,alpha", metavar="NAMES",
                   help="the parameters to fit, comma-separated from K_u, A_ex, alpha (default all three)")
    p.add_argument("--regime", type=Path, metavar="FILE", help="a regime config used as written (e.g. detect's regime.toml)")
    p.add_argument("--material",
                   help="the starting material: permalloy (configs/paper.toml) or a config .toml (its [material]); "
                   "Ms and the easy axis are taken from it, not fitted")
    p.add_argument("--temperature", type=float, metavar="K",
                   help="K; it trades off against K_u and A_ex in the thermal spread, so it is given, not fitted "
                   "(default: --regime's, else the material's, 300 for permalloy)")
    p.add_argument("--boundary", choices=("auto", *get_args(Boundary)),
                   help="film edges (default: --regime's, else auto: open edges show in the movie)")
    p.add_argument("--cell-size", type=float, metavar="M", help="cell size in m (OVF: from the headers; else 4e-9)")
    p.add_argument("--frame-interval", type=float, metavar="S",
                   help="seconds between frames (OVF: from the headers; required for TIFF/HDF5/npy otherwise)")
    p.add_argument("--films-per-step", type=int, default=8, metavar="N",
                   help="simulated films per fit step (default 8; at least the number of parameters + 2)")
    p.add_argument("--steps", type=int, default=3, metavar="N", help="fit steps at most (default 3)")
    p.add_argument("--check-films", type=int, default=4, metavar="N",
                   help="films at the estimate for its uncertainty and the out-of-family test (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated films' thermal keys (default 0)")
    add_force(p, "regime.toml and fit.json in --out that jaxmag did not write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jaxmag.learn.fit_regime import fit_regime

    if args.films_per_step < 1 or args.steps < 1 or args.check_films < 2:
        raise ValueError("--films-per-step and --steps must be >= 1 and --check-films >= 2")
    res = fit_regime(args.movie, args.out, component=args.component, dataset=args.dataset, rescale=args.rescale,
                     max_abs=args.max_abs, regime=args.regime, material=args.material, boundary=args.boundary,
                     cell_size=args.cell_size, frame_interval=args.frame_interval, temperature=args.temperature,
                     fit=args.fit, seed=args.seed, films_per_step=args.films_per_step, num_check=args.check_films,
                     max_iter=args.steps, force=args.force, progress=not args.no_progress)
    f = res.fit
    for name, value, s in zip(f.names, f.values, f.std_log):
        print(f"{name} = {value:.4g} +- {math.expm1(s):.0%}")
    print(f"chi2 {f.chi2_before:.3g} -> {f.chi2_after:.3g} over {len(f.stat_names)} statistics; {f.num_films} films, "
          f"{f.wall_s:.0f} s -> {args.out / 'regime.toml'}")
    for w in res.warnings:
        print(f"jaxmag: warning: {w}", file=sys.stderr)
    return 0
