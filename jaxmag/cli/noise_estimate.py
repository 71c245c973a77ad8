"""``jaxmag noise-estimate MOVIE``: sigma^2 of the noise in a movie under both noise hypotheses."""
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
    import h5py

    from jaxmag.io.errors import open_h5

    if path.stat().st_size and not h5py.is_hdf5(path):
        raise ValueError(f"{path}: unsupported movie file (expected .npy (T, ny, nx) or an HDF5 dataset)")
    with open_h5(path, "movie (.npy or an HDF5 dataset)") as f:
        if "m" not in f or f["m"].ndim != 5:
            raise ValueError(f"{path}: not a jaxmag dataset (expected /m of shape (N, T, C, ny, nx))")
        components = str(f.attrs.get("components", "xyz"[: f["m"].shape[2]]))
        run = 0 if run is None else run
        if not 0 <= run < f["m"].shape[0]:
            raise ValueError(f"{path}: --run must be in [0, {f['m'].shape[0]}), got {run}")
        component = component or components[0]
        if component not in components:
            raise ValueError(f"{path}: --component must be one of {', '.join(components)}, got {component!r}")
        if "done" in f and not bool(f["done"][run]):
            raise ValueError(f"{path}: run {run} is not done")
        movie = f["m"][run, :, components.index(component)].astype(np.float32)
        mask = (f["labels"][run] == 0) if "labels" in f else None
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
        description="Print sigma^2 of the noise in a movie under the Gaussian (x + n) and speckle (x + x n) "
        "hypotheses, from space-time differences over background pixels (docs/measures.md).",
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
    from jaxmag.noise import estimate_noise_variances

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
                          "gaussian_variance": result["gaussian"], "speckle_variance": result["speckle"]}))
        return 0
    print(f"{what}: {T} frames of {ny} x {nx}, {background} background pixels")
    print(f"gaussian (x + n):   sigma^2 = {result['gaussian']:.4g}")
    speckle = result["speckle"]
    print(f"speckle  (x + x n): sigma^2 = {speckle:.4g}" if speckle == speckle
          else "speckle  (x + x n): inconsistent with the data (residuals exceed the signal)")
    return 0
