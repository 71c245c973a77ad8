"""Exposure: how long a microscope's frame integrates the magnetisation, as solver steps.

A detector does not see m at one instant: each frame integrates the signal over its exposure.
The signal is linear in m (``jaxmag.instrument``: s = m·k̂ and linear optics), so the frame of an
exposure τ is the instrument applied to the time average of m over τ, which the solver
accumulates in its scan (``drivers.trajectory(..., exposure_steps=E)``) without storing
sub-frames. ``plan_exposure`` turns the instrument's ``exposure_s`` and ``camera_window_s`` into
step counts, once, at the assembly seam; three regimes:

* ``"instantaneous"`` (``exposure_s = 0``): frame k is m after the last step of its frame
  interval, exactly as without an instrument.
* ``"exposure"`` (``0 < exposure_s <= camera_window_s``): time-resolved exposure. Frame k is the
  mean of m over the last ``E = round(exposure_s / dt)`` steps of its interval (the states after
  each of those E steps); ``1 <= E <= steps_per_frame`` (a longer exposure would overlap the
  next frame). A precession of frequency f keeps ``|sinc(π f τ)|`` of its amplitude, and the
  averaged vector is shorter than 1: that is the physics, not round-off.
* ``"camera"`` (``exposure_s > camera_window_s``): the camera-rate limit. ms–s exposures are far
  beyond the ps–ns correlation time τ_c of the thermal fluctuations, and a 1 ms frame interval
  would be 10¹⁰ steps of 0.1 ps. Every frame is therefore the same thermal average of m over
  one simulated window of ``W = round(camera_window_s / dt)`` steps after burn-in; the residual
  fluctuation of a real exposure (variance ~ τ_c / exposure_s, 10⁻⁶ of the thermal variance at
  1 ns / 1 ms) is neglected. Only the detector noise, applied later by the instrument, makes
  the frames differ. Cost: burn-in + W steps per film, whatever the number of frames; the
  frame interval is nominal (the frame times of ``simulate.MovieSpec``), not simulated.

Times in s; step counts are plain ints, so a plan is hashable and can key compiled code.
"""
from __future__ import annotations

import dataclasses
import math
import operator
from typing import Literal

MODES = ("instantaneous", "exposure", "camera")


class ExposureError(ValueError):
    """An exposure that the time stepping cannot realise (names the values and what to change)."""


@dataclasses.dataclass(frozen=True)
class ExposurePlan:
    """How the solver turns time into frames (module docstring).

    mode: ``"instantaneous"``, ``"exposure"`` or ``"camera"``; exposure_steps: E, the steps
    averaged at the end of every frame interval (mode ``"exposure"``, else 0); window_steps: W,
    the steps averaged once after burn-in into the film of every frame (mode ``"camera"``, else
    0); dt: the time step in s the counts refer to (0 when instantaneous); exposure_s: the
    instrument's exposure in s (the camera's, e.g. 1e-3, in mode ``"camera"``).
    """

    mode: Literal["instantaneous", "exposure", "camera"] = "instantaneous"
    exposure_steps: int = 0
    window_steps: int = 0
    dt: float = 0.0
    exposure_s: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"exposure mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        wanted = {"instantaneous": (0, 0), "exposure": (1, 0), "camera": (0, 1)}[self.mode]
        for name, need in zip(("exposure_steps", "window_steps"), wanted):
            value = getattr(self, name)
            ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 1 if need else value == 0)
            if not ok:
                raise ValueError(f"ExposurePlan(mode={self.mode!r}): {name} must be "
                                 f"{'a positive integer' if need else '0'}, got {value!r}")
        if self.mode != "instantaneous" and not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"ExposurePlan(mode={self.mode!r}) needs the time step dt > 0 (s), got {self.dt!r}")

    @property
    def averaged_s(self) -> float:
        """The simulated time each frame averages, in s (0 when instantaneous)."""
        return (self.exposure_steps + self.window_steps) * self.dt

    def describe(self) -> str:
        """What a movie of this plan can and cannot show, in one paragraph."""
        if self.mode == "instantaneous":
            return ("instantaneous frames: each frame is m at the end of its frame interval, so the "
                    "fluctuation measures (std, latent entropy) see the full thermal fluctuations "
                    "at the frame rate.")
        if self.mode == "exposure":
            return (f"time-resolved exposure of {self.averaged_s:.3g} s ({self.exposure_steps} steps of "
                    f"{self.dt:.3g} s) at the end of each frame interval: each frame is the time average "
                    "of m over it. Dynamics slower than the exposure survive; faster ones are averaged "
                    "away (a precession of frequency f keeps |sinc(pi f exposure)| of its amplitude), so "
                    "the fluctuation measures see only the slower part of the thermal fluctuations, and "
                    "the averaged magnetisation is shorter than 1.")
        return (f"camera-rate frames: an exposure of {self.exposure_s:.3g} s is far beyond the ps-ns "
                f"correlation time of the fluctuations, so every frame is the same thermal average of m "
                f"over one simulated window of {self.averaged_s:.3g} s ({self.window_steps} steps of "
                f"{self.dt:.3g} s); the residual fluctuation of the exposure (variance ~ correlation "
                "time / exposure) is neglected. Static contrast survives (domains, the defects' mean "
                "tilt and reduced average moment); the fluctuation measures (std, latent entropy) "
                "carry only detector noise.")


INSTANTANEOUS = ExposurePlan()


def plan_exposure(dt: float, steps_per_frame: int, exposure_s: float, camera_window_s: float = 1e-9) -> ExposurePlan:
    """The ``ExposurePlan`` of an exposure of ``exposure_s`` (s) with time step ``dt`` (s) and
    frames every ``steps_per_frame`` steps; ``camera_window_s`` (s) is the longest window
    simulated per frame (longer exposures are camera-rate frames).

    Raises ``ExposureError`` for an exposure longer than the frame interval (frames would
    overlap) or shorter than half a step (use 0 for instantaneous frames).
    """
    for name, value in (("dt", dt), ("camera_window_s", camera_window_s)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ExposureError(f"{name} must be a positive number of seconds, got {value!r}")
    if not (isinstance(exposure_s, (int, float)) and math.isfinite(exposure_s) and exposure_s >= 0):
        raise ExposureError(f"exposure_s must be >= 0 s (0: instantaneous frames), got {exposure_s!r}")
    try:
        spf = operator.index(steps_per_frame)
    except TypeError:
        spf = 0
    if spf < 1:
        raise ExposureError(f"steps_per_frame must be a positive integer, got {steps_per_frame!r}")
    steps_per_frame = spf
    if exposure_s == 0:
        return INSTANTANEOUS
    frame_interval_s = steps_per_frame * dt
    if exposure_s > frame_interval_s * (1 + 1e-9):
        raise ExposureError(
            f"exposure_s = {exposure_s:.6g} s is longer than the frame interval (simulation.frame_interval_s "
            f"= {frame_interval_s:.6g} s): consecutive frames would overlap; shorten the exposure or "
            "lengthen the frame interval")
    if exposure_s > camera_window_s:
        window = round(camera_window_s / dt)
        if window < 1:
            raise ExposureError(f"camera_window_s = {camera_window_s:.6g} s is shorter than one time step "
                                f"(simulation.dt = {dt:.6g} s)")
        return ExposurePlan("camera", window_steps=int(window), dt=float(dt), exposure_s=float(exposure_s))
    steps = round(exposure_s / dt)
    if steps < 1:
        raise ExposureError(
            f"exposure_s = {exposure_s:.6g} s is shorter than half a time step (simulation.dt = {dt:.6g} s): "
            "use exposure_s = 0 for instantaneous frames, or at least one step")
    return ExposurePlan("exposure", exposure_steps=min(int(steps), steps_per_frame), dt=float(dt),
                        exposure_s=float(exposure_s))
