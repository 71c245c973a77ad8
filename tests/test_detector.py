"""The Poisson–Gaussian detector fit (``jaxmag.detector``) on synthetic counts movies.

Movies: photons ~ Poisson(rate), reading = gain * photons + offset + N(0, read^2), rounded, as
``jaxmag.instrument.detector_counts`` records them. Rounding adds 1/12 ADU^2 to the noise, so the
true intercept is read^2 + 1/12 - gain * offset.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from jaxmag.detector import PoissonGaussianFit, equivalent_detector, fit_poisson_gaussian

GAIN, OFFSET, READ, I0 = 2.5, 100.0, 4.0, 2000.0
N = 32
DARK_COLS = 4
B_TRUE = READ**2 + 1 / 12 - GAIN * OFFSET


def _smooth_image(n: int = N) -> np.ndarray:
    """Static intensity in units of I0 spanning 0.1-1.0: a ramp along x times a smooth pattern."""
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1)
    return 0.1 + 0.9 * (0.5 * xx + 0.25 * (1 + np.sin(2 * np.pi * yy) * np.cos(np.pi * xx)))


def _fluctuations(rng, T: int, n: int = N, corr_px: float = 1.5, rho: float = 0.8) -> np.ndarray:
    """(T, n, n) unit-variance field, Gaussian-correlated over ``corr_px`` pixels, AR(1) in time
    (correlation ``rho`` between frames: several frames)."""
    k2 = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2
    white = rng.standard_normal((T, n, n))
    field = np.fft.ifft2(np.fft.fft2(white) * np.exp(-2 * np.pi**2 * corr_px**2 * k2)).real
    field /= field.std()
    out = np.empty_like(field)
    out[0] = field[0]
    for t in range(1, T):
        out[t] = rho * out[t - 1] + math.sqrt(1 - rho**2) * field[t]
    return out


def _movie(seed: int = 0, *, T: int = 60, image=None, dark_cols: int = DARK_COLS, signal: float = 0.0,
           modulated: bool = False) -> np.ndarray:
    """uint16 counts (T, N, N); ``signal``: the fluctuation's rms as a fraction of I0, added to
    the rate or (``modulated``) multiplying the local intensity."""
    rng = np.random.default_rng(seed)
    image = _smooth_image() if image is None else image
    rate = np.broadcast_to(I0 * image, (T, N, N)).astype(np.float64)
    if signal:
        f = _fluctuations(rng, T)
        rate = rate * (1 + signal * f) if modulated else rate + signal * I0 * f
    if dark_cols:
        rate[:, :, :dark_cols] = 0.0  # a beam stop: no photons
    adu = GAIN * rng.poisson(np.maximum(rate, 0)) + OFFSET + READ * rng.standard_normal(rate.shape)
    return np.clip(np.round(adu), 0, 65535).astype(np.uint16)


def _dark_mask() -> np.ndarray:
    mask = np.zeros((N, N), bool)
    mask[:, :DARK_COLS] = True
    return mask


def _rel(value: float, truth: float) -> float:
    return abs(value - truth) / abs(truth)


def test_static_image_with_dark_region_gives_gain_offset_and_read_noise():
    counts = _movie(0)
    fit = fit_poisson_gaussian(counts, dark=_dark_mask())
    assert isinstance(fit, PoissonGaussianFit) and fit.offset_identified
    assert _rel(fit.gain, GAIN) < 0.1 and _rel(fit.offset, OFFSET) < 0.1 and _rel(fit.read_noise, READ) < 0.1
    # the standard errors are small here and mean what they say
    assert fit.gain_se < 0.02 * GAIN and abs(fit.gain - GAIN) < 4 * fit.gain_se
    assert abs(fit.offset - OFFSET) < 4 * fit.offset_se
    assert fit.num_pixels == N * (N - DARK_COLS) and fit.dark_pixels == N * DARK_COLS
    assert fit.levels.shape == fit.variances.shape == fit.variances_se.shape and fit.levels.size >= 10
    np.testing.assert_allclose(fit.variances, GAIN * fit.levels + B_TRUE, rtol=0.1)  # the binned points lie on the line
    assert "dark pixels" in fit.note and "consistent" in fit.note

    auto = fit_poisson_gaussian(counts, dark="auto")  # the beam stop is found by the documented rule
    assert auto.offset_identified and auto.dark_pixels == N * DARK_COLS
    assert auto.gain == pytest.approx(fit.gain) and auto.read_noise == pytest.approx(fit.read_noise)
    floats = fit_poisson_gaussian(counts.astype(np.float64), dark=_dark_mask())  # float input, same answer
    assert floats.gain == pytest.approx(fit.gain, rel=1e-9)


@pytest.mark.parametrize("modulated", [False, True], ids=["added", "modulating"])
def test_fluctuating_signal_does_not_bias_the_gain(modulated):
    counts = _movie(1, signal=0.03, modulated=modulated)
    fit = fit_poisson_gaussian(counts, dark=_dark_mask())
    assert _rel(fit.gain, GAIN) < 0.1 and _rel(fit.read_noise, READ) < 0.1
    if modulated:
        # the plain temporal variance per pixel holds the signal too: its slope is far off, so the
        # residual estimator is what passes the check above
        lit = counts[:, :, DARK_COLS:].astype(np.float64)
        naive = np.polyfit(lit.mean(0).ravel(), lit.var(0, ddof=1).ravel(), 1)[0]
        assert _rel(naive, GAIN) > 0.5


def test_rough_static_image_times_signal_does_not_leak():
    """Illumination rough on the pixel scale, modulated by the magnetic signal: neighbours across a
    step do not share the signal, so only pairs of similar level are used (unrestricted: +10 %)."""
    image = np.random.default_rng(100).uniform(0.2, 1.0, (N, N))
    fit = fit_poisson_gaussian(_movie(0, image=image, signal=0.05, modulated=True), dark=_dark_mask())
    assert _rel(fit.gain, GAIN) < 0.06 and abs(fit.gain - GAIN) < 3 * fit.gain_se


def test_without_dark_reference_only_the_intercept_is_identified():
    counts = _movie(2, dark_cols=0, signal=0.03)
    for dark in (None, "auto"):  # the rule finds no dark cluster in a lit frame
        fit = fit_poisson_gaussian(counts, dark=dark)
        assert not fit.offset_identified and fit.dark_pixels == 0
        assert math.isnan(fit.offset) and math.isnan(fit.read_noise) and math.isnan(fit.offset_se)
        assert 0 < fit.intercept_se < 500 and abs(fit.intercept - B_TRUE) < 3 * fit.intercept_se
        assert _rel(fit.gain, GAIN) < 0.1
        assert "only b" in fit.note


def test_uniform_illumination_has_a_poor_slope_but_an_exact_equivalent_detector():
    counts = _movie(3, image=np.ones((N, N)), dark_cols=0, signal=0.03)
    fit = fit_poisson_gaussian(counts)
    assert fit.gain_se > 0.2 * abs(fit.gain)  # levels within a few %: the slope is barely constrained
    assert np.ptp(fit.levels) < 0.1 * fit.mean_level
    level = fit.mean_level
    det = equivalent_detector(fit)
    true_var = GAIN * (level - OFFSET) + READ**2 + 1 / 12
    assert det.gain * (level - det.offset) + det.read_noise**2 == pytest.approx(true_var, rel=0.05)


def test_equivalent_detector_rules():
    fit = fit_poisson_gaussian(_movie(4), dark=_dark_mask())
    for level in (500.0, 2000.0, 5000.0):  # b < 0 here: read noise 0, offset -b / gain, exact on the line
        det = equivalent_detector(fit, level)
        assert det.read_noise == 0 and det.offset == pytest.approx(-fit.intercept / fit.gain)
        assert det.gain * (level - det.offset) == pytest.approx(fit.variance_at(level), rel=1e-12)
    positive = dataclasses.replace(fit, intercept=50.0)
    det = equivalent_detector(positive, 1234.0)
    assert det.offset == 0 and det.read_noise == pytest.approx(math.sqrt(50.0))
    poor = dataclasses.replace(fit, gain_se=0.6 * fit.gain)  # slope not trusted: pure shot noise at the level
    det = equivalent_detector(poor, 3000.0)
    assert det.offset == 0 and det.read_noise == 0 and det.gain * 3000.0 == pytest.approx(fit.variance_at(3000.0))
    with pytest.raises(ValueError, match="level"):
        equivalent_detector(fit, -1.0)


def test_standard_errors_are_calibrated():
    z = []
    for seed in range(10, 20):
        fit = fit_poisson_gaussian(_movie(seed, T=30, signal=0.03), dark=_dark_mask())
        z.append((fit.gain - GAIN) / fit.gain_se)
    assert 0.4 < np.std(z) < 2.0 and abs(np.mean(z)) < 1.5


def test_instrument_records_are_fitted():
    """Movies recorded by ``jaxmag.instrument`` (uniform I0, two domains of contrast +-c) give back its detector."""
    import jax

    from jaxmag.instrument import Instrument, detector_counts

    inst = Instrument(photons_per_pixel=I0, contrast=0.3, gain=GAIN, offset=OFFSET, read_noise=READ)
    rng = np.random.default_rng(5)
    domains = np.where(np.arange(N)[None, :] < N // 2, -1.0, 1.0) * np.ones((N, 1))
    s = np.clip(domains + 0.05 * _fluctuations(rng, 60), -1, 1).astype(np.float32)
    counts = np.asarray(detector_counts(jax.random.key(0), s, inst))
    fit = fit_poisson_gaussian(counts)
    assert _rel(fit.gain, GAIN) < 0.1 and abs(fit.intercept - B_TRUE) < 3 * fit.intercept_se


@pytest.mark.parametrize("counts, match", [
    (np.full((5, N, N), np.nan), "non-finite"),
    (np.ones((1, N, N)), "too short"),
    (np.ones((5, 2, 40)), "too small"),
    (np.ones((5, 6, 6)), "too small"),
    (np.ones((N, N)), "expected a movie"),
    (np.ones((5, N, N), complex), "complex"),
])
def test_bad_inputs_are_named(counts, match):
    with pytest.raises(ValueError, match=match):
        fit_poisson_gaussian(counts)


def test_bad_options_are_named():
    counts = _movie(6, T=10)
    with pytest.raises(ValueError, match="shape"):
        fit_poisson_gaussian(counts, dark=np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="3 pixels wide"):
        fit_poisson_gaussian(counts, dark=np.eye(N, dtype=bool))
    with pytest.raises(ValueError, match="'auto'"):
        fit_poisson_gaussian(counts, dark="outside")
    with pytest.raises(ValueError, match="bins"):
        fit_poisson_gaussian(counts, bins=1)
    checkerboard = np.where(np.add.outer(np.arange(N), np.arange(N)) % 2, 1.0, 0.2)  # no two neighbours alike
    with pytest.raises(ValueError, match="within 10%"):
        fit_poisson_gaussian(_movie(7, T=10, image=checkerboard, dark_cols=0))
