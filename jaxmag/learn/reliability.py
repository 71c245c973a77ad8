"""Are the defect probabilities calibrated? Reliability curves, the expected calibration error,
and temperature scaling of the logit margin (Guo et al. 2017, "On calibration of modern neural
networks", ICML).

This is about the probabilities themselves: a pixel given p = 0.8 should be a defect 80 % of
the time. ``jaxmag.learn.calibration`` is another thing, the *decision threshold* on the margin
that maximises the validation Dice; a model may have a good threshold and poor probabilities, or
the reverse.

Inputs are per-pixel, of any shape (flattened): ``prob`` the predicted defect probability in
[0, 1], ``truth`` the true labels (bool, or 0/1), ``margin`` the logit margin ``l1 - l0`` (so
``p = sigmoid(margin)``; ``logit(p)`` recovers it from a probability map). All dimensionless.

**Reliability curve** (``reliability_curve``). ``bins`` equal-width bins of [0, 1]; pixel k is in
bin ``b = min(floor(p_k * bins), bins - 1)`` (so p = 1 falls in the last bin). For each bin:
``counts[b] = n_b``, ``mean_predicted[b]`` the mean p of its pixels (its "confidence" in the
positive class) and ``fraction_positive[b]`` the fraction of its pixels that are defects (its
"accuracy"); NaN for an empty bin.

**Expected calibration error** (``expected_calibration_error``), the reliability-diagram form for
a binary probability:

    ECE = sum_b (n_b / N) |fraction_positive[b] - mean_predicted[b]|,

over the non-empty bins, N the number of pixels. It is 0 for calibrated probabilities up to the
sampling noise of each bin (about ``sqrt(p (1 - p) / n_b)``) and the within-bin spread, and at
most 1.

**Temperature scaling** (``fit_temperature``, ``apply_temperature``). One number T > 0 divides the
margin: ``p_T = sigmoid(margin / T)``; T > 1 softens over-confident probabilities, T < 1
sharpens under-confident ones, and no pixel changes side of p = 0.5, so the argmax mask stays the
same. T minimises the mean negative log-likelihood of the validation pixels,
``mean(log(1 + exp(-s margin / T)))`` with ``s = +1`` for a defect and -1 otherwise. That loss is
convex in 1/T, hence unimodal in log T, and a golden-section search over
``log T in [log 0.05, log 20]`` finds it (to 1e-6 in log T); a minimum beyond a bound returns the
bound (e.g. perfectly separable pixels push T to 0.05).

``plot_reliability`` draws the diagram (diagonal, one curve per model or temperature, the ECE in
the legend) as a PNG, with ``jaxmag.figures``' fonts.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import IO, Mapping

import numpy as np

import jaxmag.figures as figures
from jaxmag.io.atomic import atomic_write

T_BOUNDS = (0.05, 20.0)
"""The range of temperatures ``fit_temperature`` searches (dimensionless)."""
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_LOG_T_TOLERANCE = 1e-6


def _pixels(prob, truth) -> tuple[np.ndarray, np.ndarray]:
    """Flattened float64 probabilities and bool truth; ``ValueError`` for shapes or values that cannot be scored."""
    p = np.asarray(prob, np.float64).ravel()
    t = np.asarray(truth)
    if t.shape != np.shape(prob):
        raise ValueError(f"probabilities {np.shape(prob)} and truth {t.shape} must have the same shape")
    if p.size == 0:
        raise ValueError("no pixels to score: the probability map is empty")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("probabilities must be finite numbers in [0, 1]")
    return p, t.ravel().astype(bool)


def _check_bins(bins: int) -> int:
    if not (isinstance(bins, (int, np.integer)) and bins >= 1):
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    return int(bins)


def reliability_curve(prob, truth, bins: int = 10) -> dict[str, np.ndarray]:
    """The reliability curve of binary probabilities (module docstring).

    Returns ``{"bin_edges" (bins + 1,), "mean_predicted" (bins,), "fraction_positive" (bins,),
    "counts" (bins,) int}``; the means are NaN where a bin is empty.
    """
    p, t = _pixels(prob, truth)
    bins = _check_bins(bins)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(which, weights=p, minlength=bins) / counts
        fraction_positive = np.bincount(which, weights=t.astype(np.float64), minlength=bins) / counts
    return {"bin_edges": np.linspace(0.0, 1.0, bins + 1), "mean_predicted": mean_predicted,
            "fraction_positive": fraction_positive, "counts": counts}


def ece_from_curve(curve: Mapping[str, np.ndarray]) -> float:
    """``sum_b (n_b / N) |fraction_positive[b] - mean_predicted[b]|`` over the non-empty bins of ``curve``."""
    counts = np.asarray(curve["counts"], np.float64)
    full = counts > 0
    gap = np.abs(np.asarray(curve["fraction_positive"])[full] - np.asarray(curve["mean_predicted"])[full])
    return float(np.sum(counts[full] * gap) / counts.sum())


def expected_calibration_error(prob, truth, bins: int = 10) -> float:
    """ECE of binary probabilities in ``bins`` equal-width bins (module docstring), in [0, 1]."""
    return ece_from_curve(reliability_curve(prob, truth, bins))


# -- temperature scaling ------------------------------------------------------------------------

def sigmoid(z) -> np.ndarray:
    """``1 / (1 + exp(-z))``, without overflow."""
    z = np.asarray(z, np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def logit(prob, eps: float = 1e-7) -> np.ndarray:
    """The margin ``log(p / (1 - p))`` of probabilities clipped to ``[eps, 1 - eps]`` (a float32
    probability saturates at 1 beyond a margin of about 17, so margins from probabilities are
    bounded near ``±log(1 / eps)``: prefer the model's margins where there are any)."""
    p = np.clip(np.asarray(prob, np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def temperature_nll(margin, truth, temperature: float) -> float:
    """Mean negative log-likelihood (nats per pixel) of ``truth`` under ``sigmoid(margin / T)``."""
    m = np.asarray(margin, np.float64).ravel()
    s = np.where(np.asarray(truth).ravel().astype(bool), 1.0, -1.0)
    return float(np.mean(np.logaddexp(0.0, -s * m / temperature)))


def fit_temperature(margins, truth, *, bounds: tuple[float, float] = T_BOUNDS) -> float:
    """The temperature T in ``bounds`` that minimises ``temperature_nll`` on validation pixels
    (golden-section search in log T; module docstring). ``margins``: logit margins ``l1 - l0`` of
    any shape; ``truth``: the labels, same shape. ``ValueError`` for empty or non-finite margins."""
    m = np.asarray(margins, np.float64)
    t = np.asarray(truth)
    if m.shape != t.shape:
        raise ValueError(f"margins {m.shape} and truth {t.shape} must have the same shape")
    if m.size == 0 or not np.all(np.isfinite(m)):
        raise ValueError("fit_temperature needs a non-empty set of finite margins")
    lo, hi = (math.log(float(b)) for b in bounds)
    if not lo < hi:
        raise ValueError(f"temperature bounds must be 0 < low < high, got {bounds!r}")
    m, t = m.ravel(), t.ravel()

    def loss(log_t: float) -> float:
        return temperature_nll(m, t, math.exp(log_t))

    a, b = lo, hi
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = loss(c), loss(d)
    while b - a > _LOG_T_TOLERANCE:
        if fc <= fd:  # the minimum lies in [a, d]
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = loss(c)
        else:  # in [c, b]
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = loss(d)
    return float(math.exp((a + b) / 2))


def apply_temperature(margin, temperature: float) -> np.ndarray:
    """The calibrated defect probability ``sigmoid(margin / T)``, same shape as ``margin``."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"the temperature must be a positive number, got {temperature!r}")
    return sigmoid(np.asarray(margin, np.float64) / temperature)


# -- the diagram ---------------------------------------------------------------------------------

def plot_reliability(path_or_file: str | Path | IO[bytes], curves: Mapping[str, Mapping[str, np.ndarray]],
                     ece: Mapping[str, float]) -> None:
    """A reliability diagram as PNG: the diagonal (calibrated), and for each ``name`` of ``curves``
    its ``mean_predicted`` against ``fraction_positive`` (non-empty bins, markers sized by the
    bin's share of pixels) labelled with ``ece[name]``. ``path_or_file``: a file name (written
    atomically) or a binary file object."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("plot_reliability needs at least one reliability curve")
    with matplotlib.rc_context(figures.style()):
        fig, ax = plt.subplots(figsize=(figures.MAP_INCHES + 0.5, figures.MAP_INCHES + 0.3), layout="constrained")
        try:
            _draw_reliability(ax, curves, ece)
            if isinstance(path_or_file, (str, Path)):
                with atomic_write(path_or_file, "wb") as f:
                    fig.savefig(f, format="png", dpi=figures.DPI)
            else:
                fig.savefig(path_or_file, format="png", dpi=figures.DPI)
        finally:
            plt.close(fig)


def _draw_reliability(ax, curves, ece) -> None:
    ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1.2, label="calibrated")
    for name, curve in curves.items():
        counts = np.asarray(curve["counts"], np.float64)
        full = counts > 0
        x, y = np.asarray(curve["mean_predicted"])[full], np.asarray(curve["fraction_positive"])[full]
        label = f"{name} (ECE {ece[name]:.3f})" if name in ece else name
        line, = ax.plot(x, y, linewidth=1.6, label=label)
        share = counts[full] / counts.sum()  # marker area grows with the bin's share of pixels
        ax.scatter(x, y, s=12 + 120 * np.sqrt(share), color=line.get_color(), zorder=3, clip_on=False)
    ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal",
           xlabel="predicted defect probability (unitless)", ylabel="observed defect fraction (unitless)",
           title="reliability of the defect probability")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
