"""An experiment plan's grid: the ``[plan]`` section, its axes and its points (``jaxmag plan``).

A plan sweeps what an experimenter can choose before a beamtime (``docs/plan.md``): the optics
and the detector of ``[instrument]`` (PSF FWHM, pixel size, photons per pixel and frame, read
noise, probe direction) and the movie (frames, exposure). ``AXES`` is the registry: each entry
names its unit, how it is plotted, and where its value goes (the ``Instrument`` or the movie).
An axis left empty in ``[plan]`` keeps the base value of ``[instrument]`` / ``[simulation]``;
the grid is the Cartesian product of the listed values (``plan_points``).

Only the solver is expensive, so the films are simulated once for the whole grid and every
point is a view of them (``movie_variant``):

* ``num_frames``: the first N frames of the simulated movie (simulated: the largest N);
* ``exposure_s``: the time average over the last ``exposure_s`` of each frame interval, from a
  movie sampled ``exposure_samples`` times per interval. The record is linear in m
  (``jaxmag.exposure``), so averaging the samples is the exposure: the solver's own rule (the mean
  of the states at the end of each of the window's parts) with parts of one sample instead of one
  step. Each exposure must span at least ``MIN_EXPOSURE_SAMPLES`` samples (``check_plan``). Exposures up to the frame interval only: a
  camera-rate frame (ms) is ``[instrument] exposure_s``, applied by the solver.

Everything here is plain data and NumPy; ``jaxmag.learn.plan`` runs the plan.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Sequence

import numpy as np

from jaxmag.instrument import Instrument, probe_direction
from jaxmag.params import ParamError, require


@dataclasses.dataclass(frozen=True)
class Axis:
    """One sweepable quantity: ``unit`` (SI, as in its column name), ``label`` and ``scale`` for
    figures (the value times ``scale`` in the label's unit), ``log`` (plotted on a log scale),
    ``target``: ``"instrument"`` (an ``Instrument`` field of the same name) or ``"movie"``;
    ``better``: +1 where more is better for the experiment, -1 where less is, 0 for no order (the
    probe): a report shows the axes it does not plot at their most favourable value."""

    name: str
    unit: str
    label: str
    scale: float = 1.0
    log: bool = False
    target: str = "instrument"
    numeric: bool = True
    better: int = 0


AXES: dict[str, Axis] = {a.name: a for a in (
    Axis("psf_fwhm_m", "m", "PSF FWHM (nm)", 1e9, better=-1),
    Axis("pixel_size_m", "m", "pixel size (nm; 0: one per cell)", 1e9, better=-1),
    Axis("photons_per_pixel", "photons", "photons per pixel and frame", log=True, better=+1),  # 0: unlimited
    Axis("read_noise", "ADU", "read noise (ADU rms)", better=-1),
    Axis("exposure_s", "s", "exposure (ps)", 1e12, target="movie", better=-1),
    Axis("num_frames", "frames", "frames", target="movie", better=+1),
    Axis("probe", "", "probe", target="instrument", numeric=False),
)}
"""The sweepable axes, in the order of a point's id and of the table's columns."""


@dataclasses.dataclass(frozen=True)
class PlanConfig:
    """The ``[plan]`` section: the values of each axis (``AXES``; empty: the base value), what is
    scored, and the training budget.

    measures: the measures scored at every point, each of the probe signal (``mean``, ``std``,
        ``latent_entropy``).
    map_axes: the two axes of the detectability maps (default: the first two swept axes).
    target_dice: the Dice an experiment must reach (the maps' contour, the recommendation).
    models: how many noise-matched U-Nets are trained (``[model]``/``[training]``), at the
        grid points on the frontier (``jaxmag.learn.plan.frontier``); 0: the baseline only.
    exposure_samples: samples of the movie per frame interval when ``exposure_s`` is swept.
    steps_per_epoch: training steps per epoch of those models (``jaxmag detect``'s quick budget: 16;
        0: one pass over the training films), each a fresh record of ``[training] batch_size`` films.
    """

    enabled: bool = True
    psf_fwhm_m: tuple[float, ...] = ()
    pixel_size_m: tuple[float, ...] = ()
    photons_per_pixel: tuple[float, ...] = ()
    read_noise: tuple[float, ...] = ()
    exposure_s: tuple[float, ...] = ()
    num_frames: tuple[int, ...] = ()
    probe: tuple[str, ...] = ()
    measures: tuple[str, ...] = ("mean", "std", "latent_entropy")
    map_axes: tuple[str, ...] = ()
    target_dice: float = 0.7
    models: int = 4
    exposure_samples: int = 4
    steps_per_epoch: int = 16

    def __post_init__(self) -> None:
        from jaxmag.measures import MEASURES

        for name in ("psf_fwhm_m", "pixel_size_m", "photons_per_pixel", "read_noise", "exposure_s"):
            values = getattr(self, name)
            require(all(math.isfinite(v) and v >= 0 for v in values), name, f"values must be >= 0 ({AXES[name].unit})")
            require(len(set(values)) == len(values), name, "lists a value twice")
        require(all(n >= 2 for n in self.num_frames), "num_frames", "values must be at least 2 frames")
        require(len(set(self.num_frames)) == len(self.num_frames), "num_frames", "lists a value twice")
        for p in self.probe:
            try:
                probe_direction(p)
            except ValueError as exc:
                raise ParamError("probe", str(exc)) from None
        require(len(set(self.probe)) == len(self.probe), "probe", "lists a probe twice")
        require(bool(self.measures) and all(m in MEASURES for m in self.measures), "measures",
                f"must list measures of {', '.join(MEASURES)}")
        require(all(a in AXES for a in self.map_axes) and len(self.map_axes) in (0, 2)
                and len(set(self.map_axes)) == len(self.map_axes), "map_axes",
                f"must name two different axes of {', '.join(AXES)} (or none: the first two swept)")
        require(0 < self.target_dice <= 1, "target_dice", "must lie in (0, 1]")
        require(self.models >= 0, "models", "must be >= 0 (0: the baseline only)")
        require(self.exposure_samples >= 1, "exposure_samples", "must be >= 1")
        require(self.steps_per_epoch >= 0, "steps_per_epoch", "must be >= 0 (0: one pass over the training films)")

    def values(self, name: str) -> tuple:
        return getattr(self, name)

    @property
    def samples_per_frame(self) -> int:
        """Samples of the films per frame interval: ``exposure_samples`` when the exposure is swept, else 1."""
        return self.exposure_samples if self.exposure_s else 1

    def swept(self) -> tuple[str, ...]:
        """The axes with more than one value, in ``AXES`` order."""
        return tuple(a for a in AXES if len(self.values(a)) > 1)

    def maps(self) -> tuple[str, str] | None:
        """The two axes of the detectability maps, or None when fewer than two are swept."""
        if self.map_axes:
            return tuple(self.map_axes)  # type: ignore[return-value]
        swept = [a for a in self.swept() if a != "probe"]
        return (swept[0], swept[1]) if len(swept) >= 2 else None


@dataclasses.dataclass(frozen=True)
class PlanPoint:
    """One grid point: every axis' value (``values``, in ``AXES`` order) and the instrument there."""

    values: tuple[tuple[str, Any], ...]
    instrument: Instrument
    swept: tuple[str, ...] = ()  # the axes named in the id (those with several values)

    def __getitem__(self, name: str) -> Any:
        return dict(self.values)[name]

    @property
    def id(self) -> str:
        """A file-name-safe name of the swept axes' values, e.g. ``psf_fwhm_m=8e-09,photons_per_pixel=10000``
        (``base`` when nothing is swept)."""
        parts = [f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in self.values if k in self.swept]
        return ",".join(parts).replace(":", "-").replace("/", "-").replace(" ", "") or "base"

    def columns(self) -> dict[str, Any]:
        return dict(self.values)


def base_value(name: str, instrument: Instrument, num_frames: int) -> Any:
    """An unswept axis' value: the instrument's field, or the simulated movie's (frames, exposure 0)."""
    if name == "num_frames":
        return int(num_frames)
    if name == "exposure_s":
        return float(instrument.exposure_s)
    return getattr(instrument, name)


def plan_points(plan: PlanConfig, instrument: Instrument, num_frames: int) -> list[PlanPoint]:
    """Every grid point: the product of the axes' values (the base value where an axis is empty).

    The movie axes (frames, a swept exposure) stay out of the instrument (``movie_variant``)."""
    axes = [(name, plan.values(name) or (base_value(name, instrument, num_frames),)) for name in AXES]
    points = []
    for combo in itertools.product(*(v for _, v in axes)):
        values = tuple((name, value) for (name, _), value in zip(axes, combo))
        fields = {k: v for k, v in values if AXES[k].target == "instrument"}
        points.append(PlanPoint(values, dataclasses.replace(instrument, enabled=True, **fields), plan.swept()))
    return points


def film_components(points: Sequence[PlanPoint]) -> str:
    """The magnetisation components the probes of ``points`` see (``"xz"`` for probes x and z)."""
    used = set()
    for p in points:
        used |= {c for c, k in zip("xyz", p.instrument.direction) if abs(k) > 1e-12}
    return "".join(c for c in "xyz" if c in used)


def simulated_frames(plan: PlanConfig, num_frames: int) -> int:
    """Frames the solver must store: the largest ``num_frames``, times ``exposure_samples`` when
    the exposure is swept."""
    return max(plan.num_frames or (num_frames,)) * plan.samples_per_frame


MIN_EXPOSURE_SAMPLES = 4  # a swept exposure spans at least this many samples of the films


def check_plan(plan: PlanConfig, instrument: Instrument, frame_interval_s: float, cell_m: float,
               num_frames: int) -> None:
    """What ``PlanConfig`` cannot check alone; ``ValueError`` naming the key.

    A positive exposure must be a whole number k >= ``MIN_EXPOSURE_SAMPLES`` of samples
    (``frame_interval_s / exposure_samples``): the frame is then the mean of k samples, the solver's
    exposure (``jaxmag.exposure``) with its average taken every sample instead of every step. One
    sample would be an instantaneous frame, and a few would mis-state the window. The frames swept
    are at most the ``num_frames`` of ``[simulation]`` (the films are simulated once, with those)."""
    if plan.num_frames and max(plan.num_frames) > num_frames:
        raise ValueError(f"[plan] num_frames: {max(plan.num_frames)} frames exceed [simulation] num_frames = "
                         f"{num_frames}; raise it (the films are simulated once, with that many)")
    if plan.exposure_s:
        if instrument.exposure_s:
            raise ValueError("[plan] exposure_s sweeps the exposure, but [instrument] exposure_s = "
                             f"{instrument.exposure_s:g} s fixes one: set one of them")
        if max(plan.exposure_s) > frame_interval_s * (1 + 1e-9):
            raise ValueError(f"[plan] exposure_s: {max(plan.exposure_s):g} s is longer than the frame interval "
                             f"({frame_interval_s:g} s); camera-rate exposures are [instrument] exposure_s")
        sample = frame_interval_s / plan.exposure_samples
        for e in plan.exposure_s:
            k = e / sample
            if e > 0 and (abs(k - round(k)) > 1e-6 * max(k, 1) or round(k) < MIN_EXPOSURE_SAMPLES):
                need = math.ceil(MIN_EXPOSURE_SAMPLES * frame_interval_s / e)
                raise ValueError(f"[plan] exposure_s: {e:g} s must be a whole number (at least {MIN_EXPOSURE_SAMPLES}) "
                                 f"of the {sample:g} s samples (frame interval / exposure_samples); raise "
                                 f"exposure_samples to a multiple of the frame interval's parts, at least {need}")
    for p in plan.pixel_size_m:
        if 0 < p < cell_m * (1 - 1e-9):
            raise ValueError(f"[plan] pixel_size_m: {p:g} m is smaller than the cell ({cell_m:g} m)")
    for name in plan.map_axes:
        if len(plan.values(name)) < 2:
            raise ValueError(f"[plan] map_axes: {name!r} must list at least two values in [plan] {name}")


def movie_variant(films: np.ndarray, num_frames: int, exposure_s: float, frame_interval_s: float,
                  samples: int) -> np.ndarray:
    """The movie a point records, from the simulated films ``(N, T, C, ny, nx)``.

    ``samples == 1``: the first ``num_frames`` frames (an ``exposure_s`` is then ``[instrument]
    exposure_s``, which the solver already applied to the films). Otherwise the films hold ``samples`` samples
    per frame interval and frame f is the mean of the last ``k = max(1, round(exposure_s /
    (frame_interval_s / samples)))`` samples of its interval (``exposure_s = 0``: the last
    sample, an instantaneous frame)."""
    if samples == 1:
        return films[:, :num_frames]
    n, t = films.shape[:2]
    if num_frames * samples > t:
        raise ValueError(f"{num_frames} frames of {samples} samples need {num_frames * samples} samples, the films hold {t}")
    k = min(samples, max(1, int(round(exposure_s / (frame_interval_s / samples)))))
    grouped = films[:, :num_frames * samples].reshape((n, num_frames, samples) + films.shape[2:])
    return grouped[:, :, samples - k:].mean(axis=2, dtype=np.float64).astype(films.dtype)
