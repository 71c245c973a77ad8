"""jaxmag.learn.reliability: reliability curves, ECE and temperature scaling of the margin."""
from __future__ import annotations

import io

import numpy as np
import pytest

from jaxmag.learn.reliability import (apply_temperature, expected_calibration_error, fit_temperature, logit,
                                      plot_reliability, reliability_curve, sigmoid, temperature_nll)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def calibrated(n=200_000, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, n)
    return p, rng.uniform(0.0, 1.0, n) < p


def test_ece_by_hand():
    prob = np.array([0.05, 0.15, 0.95, 0.95])
    truth = np.array([0, 1, 1, 0])
    # bins 0, 1 and 9: gaps 0.05, 0.85, |0.5 - 0.95| weighted 1/4, 1/4, 2/4
    assert expected_calibration_error(prob, truth) == pytest.approx(0.05 / 4 + 0.85 / 4 + 0.45 / 2)
    curve = reliability_curve(prob, truth)
    assert curve["counts"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert np.isnan(curve["mean_predicted"][2]) and np.isnan(curve["fraction_positive"][5])
    assert curve["bin_edges"].shape == (11,) and curve["bin_edges"][-1] == 1.0
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1, 1])) == 0.0  # p = 1 is in the last bin


def test_ece_of_calibrated_and_overconfident_probabilities():
    p, truth = calibrated()
    ece = expected_calibration_error(p, truth)
    assert ece < 0.01
    overconfident = sigmoid(5.0 * logit(p))  # pushed towards 0 and 1, same ranking
    assert expected_calibration_error(overconfident, truth) > 0.15
    curve = reliability_curve(p, truth, bins=20)
    assert curve["counts"].sum() == p.size
    full = curve["counts"] > 0
    assert np.allclose(curve["mean_predicted"][full], curve["fraction_positive"][full], atol=0.02)


def test_fit_temperature_recovers_a_scaled_margin():
    rng = np.random.default_rng(1)
    margin = rng.normal(0.0, 3.0, 100_000)
    truth = rng.uniform(size=margin.size) < sigmoid(margin)
    T = fit_temperature(2.0 * margin, truth)
    assert T == pytest.approx(2.0, rel=0.05)
    assert fit_temperature(0.5 * margin, truth) == pytest.approx(0.5, rel=0.05)
    # the fit is a minimum of the likelihood and makes the scaled probabilities calibrated again
    assert temperature_nll(2 * margin, truth, T) < min(temperature_nll(2 * margin, truth, 0.9 * T),
                                                       temperature_nll(2 * margin, truth, 1.1 * T))
    before = expected_calibration_error(sigmoid(2 * margin), truth)
    after = expected_calibration_error(apply_temperature(2 * margin, T), truth)
    assert after < 0.01 < before


def test_temperature_keeps_the_decision_and_hits_bounds():
    margin = np.linspace(-6, 6, 13)
    assert np.array_equal(apply_temperature(margin, 3.0) > 0.5, margin > 0)
    separable = fit_temperature(margin[margin != 0], margin[margin != 0] > 0)
    assert separable == pytest.approx(0.05, rel=1e-3)  # perfectly separable: as sharp as allowed
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(margin, 0.0)
    with pytest.raises(ValueError, match="finite"):
        fit_temperature(np.array([np.nan, 1.0]), np.array([0, 1]))


def test_bad_probabilities_are_value_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error(np.array([1.5]), np.array([1]))
    with pytest.raises(ValueError, match="shape"):
        reliability_curve(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="bins"):
        reliability_curve(np.zeros(3), np.zeros(3), bins=0)


def test_plot_reliability_writes_a_png(tmp_path):
    p, truth = calibrated(20_000)
    over = sigmoid(4 * logit(p))
    curves = {"model": reliability_curve(over, truth), "model, T fitted": reliability_curve(p, truth)}
    ece = {"model": expected_calibration_error(over, truth), "model, T fitted": expected_calibration_error(p, truth)}
    path = tmp_path / "reliability.png"
    plot_reliability(path, curves, ece)
    assert path.read_bytes()[:8] == PNG_MAGIC
    buffer = io.BytesIO()
    plot_reliability(buffer, curves, ece)
    assert buffer.getvalue()[:8] == PNG_MAGIC
    assert not list(tmp_path.glob(".*tmp*"))
