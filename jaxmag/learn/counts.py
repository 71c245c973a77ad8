"""How a researcher's counts movie was recorded, read from the movie and its regime's films.

``estimate_recording(counts, optical, components...)`` is ``detect``'s calibration stage for a
photon-count movie. What the optics make of the film is known (probe, PSF, pixels: the user's
instrument; ``optical`` holds the regime's clean films through it, in units of Ms); what the
detector adds is not. The movie is modelled as

    counts = level + scale · s + noise,  Var(noise) = gain · (mean − offset) + read_noise²

(Poisson–Gaussian, Foi et al. 2008; ``level`` the reading at s = 0, ``scale = gain · I0 · c``) and
three numbers are read from it:

* the **noise variance** N at the movie's level: the space-time mixed-difference estimator of
  ``jaxmag.noise`` (white noise enters it fully, smooth signal hardly), its floor from the
  signal's own roughness removed by calibrating on the regime's optical films scaled to the
  movie (``calibrated_level``), iterated with the scale;
* the **scale** from the thermal fluctuations, a physical standard at a known temperature: the
  median temporal variance of the movie's pixels is ``scale² · v + N`` with v that of the regime's
  optical films. Where the films barely fluctuate (camera-rate frames, a strong PSF), the spatial
  spread of the temporal mean map is used instead (``scale_from``);
* the **level**: the median temporal mean less ``scale`` times the films' median signal.

Gain, offset and read noise come from ``jaxmag.detector.fit_poisson_gaussian`` where the movie
identifies them, else the detector that gives the same noise at the movie's level
(``equivalent_detector``); the instrument's photons per pixel ``I0 = (level − offset) / gain``
and contrast ``c = scale / (gain · I0)`` follow. Uncertainties: the spread of the estimates over
``BLOCKS`` blocks of consecutive frames (standard error of the mean).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from jaxmag.instrument import Instrument
from jaxmag.learn.noise_match import calibrated_level, reference_kind
from jaxmag.noise import estimate_noise_variance
from jaxmag.recording import Calibration

BLOCKS = 4  # blocks of consecutive frames for the uncertainties
MIN_FLUCTUATION_SNR = 0.05  # signal share of the temporal variance below which the scale comes from the static contrast
ITERATIONS = 3
MIN_LEVEL_SPAN = 0.2  # relative span of the pixels' mean levels below which the fitted gain is not used


@dataclasses.dataclass(frozen=True)
class RecordingEstimate:
    """The detector and calibration read from a counts movie, with standard errors (``*_se``).

    level, scale: ADU at s = 0 and ADU per unit of s (``jaxmag.recording.Calibration``);
    noise_variance: ADU² at the movie's level; scale_from: ``"fluctuations"`` or ``"static contrast"``;
    gain (ADU per photon), offset (ADU), read_noise (ADU), photons_per_pixel, contrast: the
    equivalent instrument's detector; detector_note: what the Poisson–Gaussian fit identified."""

    level: float
    level_se: float
    scale: float
    scale_se: float
    noise_variance: float
    noise_variance_se: float
    scale_from: str
    gain: float
    gain_se: float
    offset: float
    read_noise: float
    photons_per_pixel: float
    contrast: float
    detector_note: str
    fit: dict

    @property
    def calibration(self) -> Calibration:
        return Calibration(level=self.level, scale=self.scale)

    def instrument(self, optics: Instrument) -> Instrument:
        """``optics`` (probe, PSF, pixels, exposure as the user gave them) with this detector."""
        return dataclasses.replace(optics, photons_per_pixel=self.photons_per_pixel, contrast=self.contrast,
                                   gain=self.gain, offset=self.offset, read_noise=self.read_noise,
                                   full_scale=max(optics.full_scale, 2.0 * self.level + 10 * abs(self.scale)))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _temporal_variance(x: np.ndarray) -> float:
    """Median over pixels (and films) of the temporal variance of ``x (..., T, ny, nx)``."""
    return float(np.median(np.var(np.asarray(x, np.float64), axis=-3)))


def _spatial_spread(x: np.ndarray) -> float:
    """Robust spatial variance of the temporal mean map (1.4826 MAD)², pooled over films."""
    mean = np.asarray(x, np.float64).mean(axis=-3).reshape(-1, x.shape[-2] * x.shape[-1])
    mad = np.median(np.abs(mean - np.median(mean, axis=-1, keepdims=True)), axis=-1)
    return float(np.median((1.4826 * mad) ** 2))


def _scale_and_noise(counts: np.ndarray, optical: np.ndarray, key: jax.Array) -> tuple[float, float, str]:
    """``(scale, noise variance, scale_from)`` of one block of frames (module docstring)."""
    kind = reference_kind()
    reading = estimate_noise_variance(counts, None, kind)
    total = _temporal_variance(counts)
    v_films = _temporal_variance(optical)
    noise = reading
    scale, source = 0.0, "fluctuations"
    for _ in range(ITERATIONS):
        signal = max(total - noise, 0.0)
        if v_films > 0 and signal > MIN_FLUCTUATION_SNR * total:
            scale, source = math.sqrt(signal / v_films), "fluctuations"
        else:  # the fluctuations are lost in the noise: the static contrast of the mean map
            spread = max(_spatial_spread(counts) - noise / counts.shape[-3], 0.0)
            scale, source = math.sqrt(spread / max(_spatial_spread(optical), 1e-30)), "static contrast"
        if scale <= 0:
            break
        # the estimator's floor on signal that is rough in space and time: calibrate on the films, in
        # units of Ms (the estimator's bracket), at this scale
        calibrated = calibrated_level(reading / scale**2, optical, kind, key) * scale**2 if reading > 0 else 0.0
        # 0: the reading lies below the films' own floor at this scale (a movie unlike the films):
        # the uncorrected reading is then the better estimate
        noise = calibrated if calibrated > 0 else reading
    return scale, noise, source


def _detector(fit, level: float, noise: float, use_slope: bool = True) -> tuple[float, float, float, bool]:
    """``(gain, offset, read_noise, shot_noise_equivalent)`` giving the noise variance ``noise`` (ADU², the
    calibrated estimate) at the movie's ``level`` (ADU).

    The fit's gain is used where its slope is determined (``jaxmag.detector.equivalent_detector``'s
    rule) *and* its levels span at least ``MIN_LEVEL_SPAN`` of the level: over a narrower span
    (a magnetic movie under uniform illumination) a signal whose amplitude follows the level tilts the
    line more than the shot noise does. The line is then moved through ``(level, noise)``. Otherwise,
    or with ``use_slope`` False: pure shot noise (gain = noise / level), exact at the movie's level."""
    from jaxmag.detector import slope_determined

    if not (noise > 0 and level > 0):
        raise ValueError(f"the movie's noise variance ({noise:.4g} ADU²) at its level ({level:.4g} ADU) is not "
                         "that of a photon-counting detector; is this a counts movie?")
    levels = np.asarray(fit.levels, np.float64)
    span = float(np.ptp(levels) / level) if levels.size > 1 else 0.0
    if not (use_slope and slope_determined(fit) and span >= MIN_LEVEL_SPAN):
        return noise / level, 0.0, 0.0, True
    g = fit.gain
    b = noise - g * level
    return (g, 0.0, math.sqrt(b), False) if b >= 0 else (g, -b / g, 0.0, False)


def estimate_recording(counts: np.ndarray, optical: np.ndarray, *, seed: int = 0, dark=None) -> RecordingEstimate:
    """The recording of ``counts (T, ny_pix, nx_pix)`` (ADU) given the regime's clean films through
    the optics, ``optical (N, T, ny_pix, nx_pix)`` in units of Ms (module docstring).

    Raises ``ValueError`` where the movie shows neither fluctuations nor static contrast above
    its noise (nothing to calibrate on) or the implied contrast is not below 1."""
    from jaxmag.detector import fit_poisson_gaussian

    counts = np.asarray(counts, np.float64)
    optical = np.asarray(optical, np.float64)
    if optical.shape[-2:] != counts.shape[-2:]:
        raise ValueError(f"the films through the optics have frames {optical.shape[-2:]}, the movie {counts.shape[-2:]}: "
                         "check --pixel-size")
    key = jax.random.key(seed + 17)
    scale, noise, source = _scale_and_noise(counts, optical, key)
    if not scale > 0:
        raise ValueError("the movie shows neither thermal fluctuations nor static contrast above its noise: "
                         "the contrast scale cannot be read (check --probe: a probe along a component that does "
                         "not vary sees nothing)")
    blocks = [b for b in np.array_split(counts, BLOCKS, axis=0) if b.shape[0] >= 4]
    per_block = [_scale_and_noise(b, optical[:, :b.shape[0]], key)[:2] for b in blocks]
    se = lambda values: float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    # the level at s = 0: the movie's median mean less the films' median signal at this scale
    s_films = float(np.median(optical.mean(axis=-3)))
    level = float(np.median(counts.mean(axis=0))) - scale * s_films
    level_blocks = [float(np.median(b.mean(axis=0))) - sc * s_films for b, (sc, _) in zip(blocks, per_block)]
    fit = fit_poisson_gaussian(counts, dark=dark)
    movie_level = float(np.median(counts.mean(axis=0)))
    gain, offset, read, equivalent = _detector(fit, movie_level, noise)
    if not equivalent and not 0 < scale < level - offset:
        # the fitted gain implies no intensity I0 (1 + c s) with |c| < 1: the slope is the signal's, not the shot noise's
        gain, offset, read, equivalent = _detector(fit, movie_level, noise, use_slope=False)
    note = str(fit.note) + ("; the gain reported is that of pure shot noise giving the measured noise at the "
                            "movie's level (no standard error: the slope is not determined)" if equivalent else "")
    photons = (level - offset) / gain
    contrast = scale / (gain * photons) if photons > 0 else math.inf
    if not (photons > 0 and 0 < abs(contrast) < 1):
        raise ValueError(f"the movie's contrast scale ({scale:.4g} ADU per unit of m) against its level "
                         f"({level:.4g} ADU) and gain ({gain:.4g} ADU/photon) gives a contrast of {contrast:.3g}: "
                         "not an intensity I0 (1 + c s) with |c| < 1; is this a counts movie with its dark offset?")
    return RecordingEstimate(
        level=level, level_se=se(level_blocks), scale=scale, scale_se=se([s for s, _ in per_block]),
        noise_variance=noise, noise_variance_se=se([n for _, n in per_block]), scale_from=source,
        gain=float(gain), gain_se=math.nan if equivalent else float(fit.gain_se), offset=float(offset),
        read_noise=float(read), photons_per_pixel=float(photons), contrast=float(contrast), detector_note=note,
        fit={k: (float(v) if isinstance(v, (int, float, np.floating)) else None)
             for k, v in dataclasses.asdict(fit).items() if not isinstance(v, (np.ndarray, list, tuple))},
    )
