"""A user's point-spread-function image: the one reader of PSF files (``.npy``, ``.tif``/``.tiff``).

``read_psf_image(path) -> (ny, nx) float64`` normalised to sum 1, its peak at the centre pixel
(odd sides), checked: a 2-D array of finite, non-negative values with a positive sum. The image's
pixel is the instrument's ``psf_pixel_m`` (``jaxmag.instrument``), which resamples it onto the
simulation cells.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class PSFError(ValueError):
    """A PSF image that cannot be used, with what to do."""


def read_psf_image(path: str | Path) -> np.ndarray:
    """The PSF image at ``path``, checked and normalised (module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise PSFError(f"PSF image not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            image = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            image = tifffile.imread(path)
        else:
            raise PSFError(f"{path}: a PSF image is a .npy or .tif file, got {suffix or 'no suffix'}")
    except (OSError, ValueError) as exc:
        if isinstance(exc, PSFError):
            raise
        raise PSFError(f"{path}: cannot read the PSF image ({exc})") from None
    image = np.asarray(image, np.float64)
    if image.ndim != 2:
        raise PSFError(f"{path}: a PSF image is 2-D, got shape {image.shape}")
    if image.shape[0] % 2 == 0 or image.shape[1] % 2 == 0:
        raise PSFError(f"{path}: a PSF image has odd sides (its centre pixel is the origin), got {image.shape}")
    if not np.all(np.isfinite(image)) or image.min() < 0 or not image.sum() > 0:
        raise PSFError(f"{path}: a PSF image holds finite non-negative values with a positive sum")
    return image / image.sum()
