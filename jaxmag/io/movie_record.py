"""The ``Movie`` record and ``MovieError``: what every movie reader returns and raises.

Kept apart from the readers (``jaxmag.io.movie``) so that the modules they use, the metadata
parsers (``jaxmag.io.movie_metadata``) and the counts checks and writer
(``jaxmag.io.movie_counts``), can raise ``MovieError`` without importing the readers back.
Import both names from ``jaxmag.io.movie``, which re-exports them.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


class MovieError(ValueError):
    """A movie cannot be used: wrong shape, non-finite values, values out of range, bad format."""


@dataclasses.dataclass(frozen=True)
class Movie:
    """One component's time series, ready for ``jaxmag.measures``.

    data: float32 ``(T, ny, nx)``, dimensionless (after ``rescale``).
    component: the magnetisation component it holds (``"x"``, ``"y"`` or ``"z"``).
    source: a one-line description of where it was read from.
    rescale: the rescale option applied (``"none"``, ``"minmax"``, ``"maxabs"``, ``"ms:8e5"``).
    scale, offset: the affine map applied, ``data = (raw - offset) / scale``.
    times_s: (T,) frame times in s when the format stores them (OVF), else None.
    cell_size_m: (dx, dy, dz) in m when the format stores it (OVF), else None.
    signal: ``"magnetisation"`` (data dimensionless) or ``"counts"`` (data in detector units,
        ADU, integer-valued, unscaled).
    pixel_size_m: the side of a (square) pixel in m when the file states it, else None.
    frame_interval_s: the time between frames in s when the file states it, else None.
    """

    data: np.ndarray
    component: str
    source: str
    rescale: str = "none"
    scale: float = 1.0
    offset: float = 0.0
    times_s: np.ndarray | None = None
    cell_size_m: tuple[float, float, float] | None = None
    signal: str = "magnetisation"
    pixel_size_m: float | None = None
    frame_interval_s: float | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    def metadata(self) -> dict[str, Any]:
        """JSON-able description (for prediction reports)."""
        return {
            "source": self.source,
            "component": self.component,
            "frames": int(self.data.shape[0]),
            "ny": int(self.data.shape[1]),
            "nx": int(self.data.shape[2]),
            "rescale": self.rescale,
            "scale": float(self.scale),
            "offset": float(self.offset),
            "cell_size_m": None if self.cell_size_m is None else [float(c) for c in self.cell_size_m],
            "signal": self.signal,
            "pixel_size_m": None if self.pixel_size_m is None else float(self.pixel_size_m),
            "frame_interval_s": None if self.frame_interval_s is None else float(self.frame_interval_s),
        }
