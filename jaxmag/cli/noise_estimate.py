"""``jaxmag noise-estimate MOVIE``: the noise level of a movie under every registered noise kind's hypothesis."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jaxmag.cli._options import add_movie_options


def load_movie(path: str | Path, run: int | None = None, component: str | None = None, *,
               dataset: str | None = None, rescale: str = "none", max_abs: float | None = None
               ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Read one movie (T, ny, nx) float32 and, when the file has labels, its background mask.

    Every format ``jaxmag detect`` reads, through the same reader (``jaxmag.io.movie.read_movie``:
    an OVF folder, a TIFF stack, an HDF5 array at ``dataset``, a ``.npy`` (T, ny, nx); component
    default z; no labels, so no mask), checked and rescaled as ``detect`` does, so the level
    printed is the one ``detect`` and ``predict`` see. A jaxmag simulation file (``/m``
    (N, T, C, ny, nx), no ``dataset``) gives run ``run`` (default 0) and ``component`` (default the
    first stored), with background = ``/labels[run] == 0``.
    Returns (movie, background mask (ny, nx) bool or None, a one-line description).
    """
    from jaxmag.io.movie import MAX_ABS, movie_from_array, read_movie

    path = Path(path)
    max_abs = MAX_ABS if max_abs is None else max_abs
    if dataset is None and path.is_file() and path.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        simulated = _simulation_run(path, run, component)
        if simulated is not None:
            raw, mask, what, comp = simulated
            movie = movie_from_array(raw, component=comp, source=what, rescale=rescale, max_abs=max_abs)
            return movie.data, mask, what
    if run is not None:
        raise ValueError("--run applies to jaxmag simulation files (HDF5 with /m) only")
    movie = read_movie(path, component=component or "z", dataset=dataset, rescale=rescale, max_abs=max_abs)
    return movie.data, None, movie.source


def _simulation_run(path: Path, run: int | None, component: str | None):
    """``(movie, background mask or None, description, component)`` of a jaxmag simulation file,
    or None when ``path`` is another HDF5 file (read as a user's movie)."""
    from jaxmag.io.dataset import open_dataset, read_labels, read_movies
    from jaxmag.io.errors import InputError

    try:
        info = open_dataset(path)
    except InputError:
        return None
    run = 0 if run is None else run
    if not 0 <= run < info.num_rows:
        raise ValueError(f"{path}: --run must be in [0, {info.num_rows}), got {run}")
    component = component or info.components[0]
    if component not in info.components:
        raise ValueError(f"{path}: --component must be one of {', '.join(info.components)}, got {component!r}")
    movie = read_movies(path, [run], component)[0, :, 0].astype(np.float32)
    mask = (read_labels(path, [run])[0] == 0) if info.has_labels else None
    return movie, mask, f"{path} run {run} component {component}", component


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
    p.add_argument("movie", help="every movie detect reads: OVF folder, .tif/.tiff stack, .h5 (with --dataset, or a "
                   "jaxmag simulation file) or .npy (T, ny, nx)")
    add_movie_options(p, "component of a vector movie (OVF folder, jaxmag simulation file; default z, or a simulation "
                      "file's first stored); a single-component movie is taken as it is")
    p.add_argument("--run", type=int, help="run index in a jaxmag simulation file (default 0)")
    p.add_argument("--mask", help=".npy (ny, nx): nonzero marks defects, excluded (default: the dataset's "
                   "labels, or the whole frame)")
    p.add_argument("--no-mask", action="store_true", help="use the whole frame even when labels exist")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jaxmag.noise import NOISE_MODELS, estimate_noise_variances

    movie, mask, what = load_movie(args.movie, args.run, args.component, dataset=args.dataset, rescale=args.rescale,
                                   max_abs=args.max_abs)
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
