"""``jaxmag predict``: defect probability and mask of a user's movie with a trained run.

    jaxmag predict runs/NAME movie.tif --component z --out pred/
    jaxmag predict runs/NAME run.out/ --component x --out pred/ --auto-noise
    jaxmag predict runs/NAME data.h5 --dataset /kerr/frames --rescale minmax --out pred/

Reads the movie (``jaxmag.io.movie``), computes the run's measures, pads/tiles as needed and
writes ``probability.{tif,npy,png}``, ``mask.{tif,npy,png}``, ``overlay.png`` and
``prediction.json`` (``jaxmag.learn.predict``; see ``docs/predict.md``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jaxmag.cli._options import add_force, add_movie_options


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="predict the defect mask of a movie with a trained run",
        description="Compute the run's measure maps from a movie (TIFF stack, HDF5, .npy or a folder of OVF "
        "frames), predict the defect probability with the run's best U-Net and write the probability map, "
        "the mask and an overlay.",
    )
    p.add_argument("run", type=Path, help="run folder (from `jaxmag train` or `jaxmag finetune`)")
    p.add_argument("movie", type=Path, help="movie: .tif/.tiff stack, .h5 (with --dataset), .npy (T, ny, nx) or OVF folder")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_movie_options(p, "magnetisation component of the movie (picked from OVF/HDF5 vector data; "
                      "default: the run's input component)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold of the mask (default 0.5)")
    p.add_argument("--tile", type=int, help="tile size in pixels (default: the training image size; 0: no tiling)")
    p.add_argument("--overlap", type=int, help="tile overlap in pixels (default: a quarter of the tile)")
    p.add_argument("--auto-noise", action="store_true",
                   help="estimate the movie's noise and warn when it differs from the training noise")
    p.add_argument("--noise-factor", type=float, default=10.0,
                   help="--auto-noise warns beyond this ratio of variances (default 10)")
    p.add_argument("--noise-floor", type=float, default=1e-4,
                   help="variance that stands for 'clean' in --auto-noise (default 1e-4; thermal m_z can read ~1e-3)")
    add_force(p, "files in --out that jaxmag did not write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jaxmag.io.movie import read_movie
    from jaxmag.learn.predict import claim_prediction_folder, load_run, predict_movie, run_components, write_prediction

    if not 0 < args.threshold < 1:
        raise ValueError(f"--threshold must be in (0, 1), got {args.threshold}")
    model, info = load_run(args.run)
    needed = run_components(info)
    if len(needed) == 1:
        component = args.component or needed
        if component != needed:
            raise ValueError(
                f"{args.run} was trained on {', '.join(info['inputs'])} (component {needed}); the movie's component "
                f"is {component}: use a run trained on component {component} or pass --component {needed}"
            )
        movies = read_movie(args.movie, component=component, dataset=args.dataset, rescale=args.rescale,
                            max_abs=args.max_abs)
    else:
        if not (args.movie.is_dir() or args.movie.suffix.lower() in (".h5", ".hdf5", ".hdf")):
            raise ValueError(
                f"{args.run} needs components {', '.join(needed)}; a {args.movie.suffix or 'file'} movie holds one. "
                "Give an OVF folder (vector frames) or use jaxmag.learn.predict.predict_movie with one movie per component"
            )
        movies = {c: read_movie(args.movie, component=c, dataset=args.dataset, rescale=args.rescale,
                                max_abs=args.max_abs) for c in needed}
        if len({m.source for m in movies.values()}) < len(movies):  # one scalar dataset read for every component
            raise ValueError(f"{args.movie} holds one component; {args.run} needs {', '.join(needed)}")
    claim_prediction_folder(args.out, force=args.force)  # refuse a user's files before the work, not after
    pred = predict_movie((model, info), movies, threshold=args.threshold, tile=args.tile, overlap=args.overlap,
                         auto_noise=args.auto_noise, noise_factor=args.noise_factor, noise_floor=args.noise_floor)
    paths = write_prediction(pred, args.out, force=args.force)
    first = next(iter(movies.values())) if isinstance(movies, dict) else movies
    T, ny, nx = first.shape
    print(f"{first.source}: {T} frames of {ny} x {nx}; inputs {', '.join(pred.input_names)}; "
          f"{pred.tiles} tile(s) at {pred.padded_shape[0]} x {pred.padded_shape[1]}")
    print(f"defect fraction {pred.mask.mean():.4f} at threshold {pred.threshold:g} -> {paths['json'].parent}")
    if pred.noise is not None:
        n = pred.noise
        from jaxmag.noise import NOISE_MODELS, condition_label

        est = ", ".join(f"{k} {m.level_name} = {n[k]:.3g}" for k, m in NOISE_MODELS.items() if k in n)
        print(f"noise estimate: {est}; training condition {condition_label(n['train_condition'])}")
        if n["mismatch"]:
            print(f"jaxmag: warning: {n['message']}", file=sys.stderr)
    return 0
