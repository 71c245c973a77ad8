"""A film recorded by an instrument, in units a model can learn from: ``RecordingPlan``.

``jaxmag.instrument`` says what a microscope does to a movie. This module fixes it to a grid
(``recording_plan``: the optics built once as matrices, the detector pixels' labels) and maps
the detector's counts back to the probe signal in units of Ms (``Calibration``), so that the
measures, their latent-entropy ranges and a model's inputs mean the same thing for a simulated
film and a researcher's movie:

    ŝ = (counts − level) / scale,  level = gain · I0 + offset (the reading at s = 0),
                                    scale = gain · I0 · c   (detector units per unit of s).

For a simulated instrument the calibration is exact (``Calibration.of``); for a user's movie
``jaxmag.learn.counts`` estimates it. The calibrated record is the component ``"p"``
(``PROBE_COMPONENT``) of the channels: ``"std:p"`` is the temporal std of what the detector saw.
Without a detector (``photons_per_pixel = 0``) ŝ is the optical signal itself.

Labels: a detector pixel is a defect where defect cells cover at least half of its area
(``pixel_labels``, the pixel matrices without the PSF).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag import instrument as ins
from jaxmag.channels import PROBE_COMPONENT

__all__ = ["PROBE_COMPONENT", "Calibration", "RecordingPlan", "recording_plan", "record_signal", "pixel_labels",
           "calibrate_counts"]


@dataclasses.dataclass(frozen=True)
class Calibration:
    """``ŝ = (reading − level) / scale``: ``level`` the reading at s = 0 and ``scale`` the reading per
    unit of s, both in detector units (ADU); identity (0, 1) without a detector."""

    level: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.level) and np.isfinite(self.scale) and self.scale != 0):
            raise ValueError(f"a calibration needs a finite level and a non-zero finite scale, got {self}")

    @classmethod
    def of(cls, instrument: ins.Instrument) -> "Calibration":
        """The exact calibration of a known instrument."""
        if not instrument.records_counts:
            return cls()
        i = instrument
        return cls(level=i.gain * i.photons_per_pixel + i.offset, scale=i.gain * i.photons_per_pixel * i.contrast)


@dataclasses.dataclass(frozen=True, eq=False)
class RecordingPlan:
    """An instrument on a grid of ``cell_shape (ny, nx)`` cells of ``cell_m (dy, dx)`` m, recording
    stored movies whose component axis holds ``components``; ``pixel_shape`` the detector's frame."""

    instrument: ins.Instrument
    components: str
    cell_shape: tuple[int, int]
    cell_m: tuple[float, float]
    periodic: bool
    operators: tuple[np.ndarray, np.ndarray]  # (L_y, L_x) float64: blur then pixel average
    binning: tuple[np.ndarray, np.ndarray]  # (W_y, W_x) float64: pixel average only (labels)
    calibration: Calibration

    @property
    def pixel_shape(self) -> tuple[int, int]:
        return int(self.operators[0].shape[0]), int(self.operators[1].shape[0])

    @property
    def pixel_m(self) -> float:
        """The detector pixel in m."""
        return float(self.instrument.pixel or self.cell_m[1])

    def with_calibration(self, calibration: Calibration) -> "RecordingPlan":
        return dataclasses.replace(self, calibration=calibration)


def recording_plan(instrument: ins.Instrument, cell_shape: tuple[int, int], cell_m: tuple[float, float],
                   components: str, periodic: bool, calibration: Calibration | None = None) -> RecordingPlan:
    """The plan of ``instrument`` on a grid (class docstring); ``calibration`` default: the exact one.

    Raises ``ValueError`` for a probe needing a component the movies lack, a PSF wider than the
    frame or pixels smaller than the cells."""
    ins.project(np.zeros((1, len(components), 1, 1), np.float32), components, instrument.direction)  # checks the probe
    ops = ins.optics_operators(tuple(cell_shape), tuple(cell_m), instrument, periodic)
    binning = tuple(ins.pixel_matrix(n, d, instrument.pixel) for n, d in zip(cell_shape, cell_m))
    return RecordingPlan(instrument, components, tuple(int(n) for n in cell_shape), tuple(float(d) for d in cell_m),
                         bool(periodic), ops, binning, calibration or Calibration.of(instrument))  # type: ignore[arg-type]


def calibrate_counts(reading: Any, calibration: Calibration) -> Any:
    """Detector readings (any shape, ADU) -> ŝ in units of Ms (module docstring)."""
    return (reading - calibration.level) / calibration.scale


def record_signal(key: jax.Array, movies: Any, plan: RecordingPlan) -> jax.Array:
    """Stored movies ``(..., T, C, ny, nx)`` -> the calibrated record ŝ ``(..., T, ny_pix, nx_pix)`` float32.

    The instrument's optics, then (with a detector) fresh shot and read noise from ``key`` and
    the plan's calibration. Traceable: build the plan outside ``jit``."""
    out = ins.record(key, jnp.asarray(movies, jnp.float32), plan.components, plan.instrument, plan.operators)
    if plan.instrument.records_counts:
        out = calibrate_counts(out, plan.calibration)
    return out.astype(jnp.float32)


def pixel_labels(labels: Any, plan: RecordingPlan) -> Any:
    """Cell labels ``(..., ny, nx)`` (0 background) -> detector-pixel labels ``(..., ny_pix, nx_pix)``
    uint8: 1 where defect cells cover at least half of the pixel's area."""
    wy, wx = plan.binning
    xp = jnp if isinstance(labels, jax.Array) else np
    cover = xp.einsum("Yy,...yx,Xx->...YX", xp.asarray(wy, xp.float32), (labels > 0).astype(xp.float32),
                      xp.asarray(wx, xp.float32))
    return (cover >= 0.5 - 1e-6).astype(xp.uint8)
