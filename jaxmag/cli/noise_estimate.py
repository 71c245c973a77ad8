"""``jaxmag noise-estimate MOVIE``: the noise level of a movie under every registered noise kind's hypothesis."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load_movie(path: str | Path, run: int | None = None, component: str | None = None
               ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Read one movie (T, ny, nx) float32 and, when the file has labels, its background mask.

    ``.npy``: an array (T, ny, nx). HDF5 dataset (``/m`` (N, T, C, ny, nx)): run ``run`` (default 0),
    component ``component`` (default the first stored); background = ``/labels[run] == 0``.
    TIFF stacks and folders of OVF frames (e.g. MuMax3 output) go through
    ``jaxmag.io.movie.read_movie`` (component default z; no labels, so no mask).
    Returns (movie, background mask (ny, nx) bool or None, a one-line description).
    """
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in (".tif", ".tiff"):
        from jaxmag.io.movie import read_movie

        if run is not None:
            raise ValueError("--run applies to HDF5 datasets only")
        movie = read_movie(path, component=component or "z")
        return movie.data, None, movie.source
    if not path.is_file():
        raise FileNotFoundError(f"movie not found: {path}")
    if path.suffix == ".npy":
        if run is not None or component is not None:
            raise ValueError("--run and --component apply to HDF5 datasets only")
        movie = _load_npy(path, "movie (T, ny, nx)")
        if movie.ndim != 3:
            raise ValueError(f"{path}: expected an array (T, ny, nx), got shape {movie.shape}")
        return movie.astype(np.float32, copy=False), None, f"{path}"
    from jaxmag.io.dataset import open_dataset, read_labels, read_movies
    from jaxmag.io.errors import InputError

    try:
        info = open_dataset(path)
    except InputError as exc:
        raise InputError(f"{exc} (noise-estimate reads a .npy movie (T, ny, nx), a TIFF stack, a folder of "
                         "OVF frames or a jaxmag dataset)") from None
    run = 0 if run is None else run
    if not 0 <= run < info.num_rows:
        raise ValueError(f"{path}: --run must be in [0, {info.num_rows}), got {run}")
    component = component or info.components[0]
    if component not in info.components:
        raise ValueError(f"{path}: --component must be one of {', '.join(info.components)}, got {component!r}")
    movie = read_movies(path, [run], component)[0, :, 0].astype(np.float32)
    mask = (read_labels(path, [run])[0] == 0) if info.has_labels else None
    return movie, mask, f"{path} run {run} component {component}"


def _load_npy(path: str | Path, what: str) -> np.ndarray:
    """``np.load`` with an error naming the file (numpy's own speaks of pickles)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npy array (expected a {what}): "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "noise-estimate",
        help="estimate the noise variance of a movie from its background",
        description="Print the noise level of a movie under every registered noise kind with an estimator "
        "(Gaussian x + n and speckle x + x n: sigma^2), from space-time differences over background pixels "
        "(docs/measures.md).",
    )
    p.add_argument("movie", help=".npy movie (T, ny, nx) or an HDF5 dataset")
    p.add_argument("--run", type=int, help="run index in an HDF5 dataset (default 0)")
    p.add_argument("--component", help="component in an HDF5 dataset (default the first stored)")
    p.add_argument("--mask", help=".npy (ny, nx): nonzero marks defects, excluded (default: the dataset's "
                   "labels, or the whole frame)")
    p.add_argument("--no-mask", action="store_true", help="use the whole frame even when labels exist")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jaxmag.noise import NOISE_MODELS, estimate_noise_variances

    movie, mask, what = load_movie(args.movie, args.run, args.component)
    if args.mask:
        mask = _load_npy(args.mask, "mask (ny, nx)") == 0
    if args.no_mask:
        mask = None
    result = estimate_noise_variances(movie, mask)
    T, ny, nx = movie.shape
    background = ny * nx if mask is None else int(np.sum(mask))
    if args.json:
        print(json.dumps({"movie": what, "frames": T, "ny": ny, "nx": nx, "background_pixels": background,
                          **{f"{k}_{NOISE_MODELS[k].level_name}": v for k, v in result.items()}}))
        return 0
    print(f"{what}: {T} frames of {ny} x {nx}, {background} background pixels")
    labels = {k: f"{k:<{max(map(len, result))}} ({NOISE_MODELS[k].formula}):" for k in result}
    for k, v in result.items():  # NaN: the data contradict the kind's hypothesis
        text = f"{NOISE_MODELS[k].level_name} = {v:.4g}" if v == v else "inconsistent with the data (residuals exceed the signal)"
        print(f"{labels[k]:<{max(map(len, labels.values()))}} {text}")
    return 0
