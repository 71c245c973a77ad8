"""Thermal (T > 0) comparison of two sets of runs whose verdict has a known false-alarm rate.

Thermal trajectories cannot match frame by frame, so ``compare_thermal(A, B)`` compares
statistics of the movies, each with a sampling error estimated from the data:

Statistics (per run, then averaged over the runs of a side)
    Components are those both sides store. When both in-plane components are present each
    frame is first rotated about z so that the in-plane ⟨m⟩ lies along the first axis:
    ``m_par``, ``m_perp``, ``m_z``. A film one cell thick with weak in-plane anisotropy wanders
    as a whole by a random in-plane angle (tens of degrees on a 32 × 32 film at 300 K, over
    nanoseconds), which would shift a whole mean-m_x map by a random amount; in the co-rotating
    frame the statistics are invariant to it. Without m_y (datasets storing ``xz``) the raw
    components are used and the note says so. Then, for every region r (``background`` = the
    largest region, and each defect region of the region map; one ``film`` region without a
    map; more than ``MAX_DEFECT_REGIONS`` defect regions are pooled as ``defects``):

    * ``mean m_c [r]``: the region average of the temporal-mean map of m_c;
    * ``std m_c [r]``: the region average of the temporal-std map (ddof = 1);

    and for the whole film:

    * ``var m_c``: the cell average of the temporal variance (ddof = 1);
    * ``<m_c^2>``: the cell and time average of m_c²;
    * ``tau <m_c>``: the 1/e autocorrelation time (s) of the spatially averaged m_c(t) (for the
      in-plane pair: of |⟨m⟩_xy|(t), which the rotation leaves), searched up to a quarter of
      the movie; a series whose correlation stays above 1/e gets that cap.

Errors
    A moving-block bootstrap over time (``jaxmag.bootstrap``; blocks of ``ceil(sqrt(T))``
    frames by default, ``replicates`` = 400) gives each statistic's replicates per run; with
    several runs per side the runs are resampled too (two-stage bootstrap). The lagged
    products of the autocorrelation are attached to their first frame, so blocks never pair
    frames that were not ``lag`` apart. The error σ of a side is half the central 68 % range of
    the replicates times a calibrated factor: a 100-frame movie (1 ns) is not long against the
    decorrelation of the film's long-wavelength modes (~0.5 ns at α = 0.02), so a bootstrap
    inside one movie under-states the run-to-run spread of film-wide statistics. Over 15 pairs
    of runs differing only in the thermal seed (32 × 32, 300 K, 100 frames) the RMS z of the
    film-wide statistics was 1.8-2.4 (mean m_perp and m_z of the background: 0.6-1.0), that of
    defect contrasts (in which the film-wide fluctuation cancels) 0.3-1.9, typically 1.2, and
    that of tau 1.0-1.5. ``scale_film`` = 2.5, ``scale_contrast`` = 1.25 and ``scale_tau`` =
    1.5 correct for that; the false-alarm and
    detection rates with these defaults were then measured on fresh seeds (docs/mumax3.md).
    With several runs per side the two-stage bootstrap already holds the seed-to-seed spread,
    so the factors count it twice: conservative (measured at two runs per side: no false
    alarm, but 240 K vs 300 K and demag on/off caught in only 75 % of pairs; docs/mumax3.md).

Verdict
    z = (θ_A − θ_B) / sqrt(σ_A² + σ_B²) per statistic; a statistic is consistent when
    |z| ≤ k, and the comparison when all are. k is Šidák's bound for S statistics at an
    overall false-alarm rate ``alpha`` (default 0.05): k = Φ⁻¹(1 − (1 − (1 − alpha)^(1/S)) / 2),
    which holds for independent statistics and is conservative for positively dependent ones.
    The false-alarm and detection rates actually reached are measured by
    ``scripts/calibrate_compare.py`` (docs/mumax3.md).

Inputs must describe the same setup: grid, cell size, frame interval and, when both sides
state it, temperature must agree (``ValueError`` naming the mismatch otherwise).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from jaxmag.bootstrap import block_weights, default_block, hierarchical
from jaxmag.io.trajectory import AXES, Trajectory

MAX_DEFECT_REGIONS = 8


@dataclasses.dataclass(frozen=True)
class ThermalOptions:
    """alpha: overall false-alarm rate of the verdict; block: bootstrap block (frames, None =
    ``ceil(sqrt(T))``); replicates: bootstrap replicates; seed: the bootstrap's random seed;
    scale_film, scale_contrast, scale_tau: factors multiplying the bootstrap errors of film-wide
    statistics (background and whole-film values), of defect contrasts and of autocorrelation
    times (module docstring, Errors)."""

    alpha: float = 0.05
    block: int | None = None
    replicates: int = 400
    seed: int = 0
    scale_film: float = 2.5
    scale_contrast: float = 1.25
    scale_tau: float = 1.5

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.block is not None and self.block < 1:
            raise ValueError(f"block must be >= 1 frame, got {self.block}")
        if not (self.scale_film > 0 and self.scale_contrast > 0 and self.scale_tau > 0):
            raise ValueError("error scale factors must be positive")
        if self.replicates < 20:
            raise ValueError(f"replicates must be >= 20, got {self.replicates}")


@dataclasses.dataclass(frozen=True)
class Statistic:
    """One compared statistic: the two sides' estimates, errors, the z-score and the verdict."""

    name: str
    a: float
    b: float
    err_a: float
    err_b: float
    z: float
    k: float
    passed: bool
    unit: str = ""


def sidak_k(num_statistics: int, alpha: float) -> float:
    """|z| limit so that S independent standard-normal z-scores all pass with probability 1 − alpha."""
    from scipy.stats import norm

    per_test = 1.0 - (1.0 - alpha) ** (1.0 / num_statistics)
    return float(norm.isf(per_test / 2.0))


def check_same_setup(runs: Sequence[Trajectory]) -> None:
    """Grid, cell size, frame interval and stated temperature must agree (one error line)."""
    first = runs[0]
    for t in runs[1:]:
        if t.m.shape[1:4] != first.m.shape[1:4]:
            raise ValueError(f"grid mismatch: {first.name} has (nz, ny, nx) = {first.m.shape[1:4]}, {t.name} has {t.m.shape[1:4]}")
        if not np.allclose(first.cell_size, t.cell_size, rtol=1e-6, atol=0):
            raise ValueError(f"cell size mismatch: {first.name} has {first.cell_size} m, {t.name} has {t.cell_size} m")
        fa, fb = first.frame_interval, t.frame_interval
        if math.isfinite(fa) and math.isfinite(fb) and not math.isclose(fa, fb, rel_tol=1e-3):
            raise ValueError(f"frame interval mismatch: {first.name} has {fa:.6g} s, {t.name} has {fb:.6g} s")
        if first.temperature is not None and t.temperature is not None and not math.isclose(first.temperature, t.temperature, rel_tol=1e-9, abs_tol=1e-9):
            raise ValueError(f"temperature mismatch: {first.name} is at {first.temperature:g} K, {t.name} at {t.temperature:g} K")


def common_regions(runs: Sequence[Trajectory]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Cell labels ``(ncells,)`` 0..R-1 (0 = background) and region names, from the runs' maps.

    Where runs carry different maps, the common refinement is used (cells in the same region
    of every map); without any map the whole film is one region."""
    ncells = int(np.prod(runs[0].m.shape[1:4]))
    maps = [t.regions.reshape(-1) for t in runs if t.regions is not None]
    if not maps:
        return np.zeros(ncells, np.int64), ("film",)
    key = np.stack(maps, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    background = int(np.argmax(counts))
    # Defect regions numbered in order of first appearance (row-major), background first.
    first_seen = {}
    for r in inverse.tolist():
        if r != background and r not in first_seen:
            first_seen[r] = len(first_seen) + 1
    if len(first_seen) > MAX_DEFECT_REGIONS:
        labels = np.where(inverse == background, 0, 1)
        return labels, ("background", "defects")
    order = {background: 0, **first_seen}
    labels = np.array([order[r] for r in inverse.tolist()], np.int64)
    return labels, ("background",) + tuple(f"region {i}" for i in range(1, len(first_seen) + 1))


def _frames(t: Trajectory, comps: str) -> tuple[np.ndarray, tuple[str, ...], np.ndarray | None]:
    """``(T, ncells, C)`` frames (co-rotated when x and y are present), names, |<m>_xy|(t)."""
    T = t.m.shape[0]
    idx = [AXES.index(c) for c in comps]
    x = t.m[..., idx].reshape(T, -1, len(comps))
    names = tuple(f"m_{c}" for c in comps)
    if "x" in comps and "y" in comps:
        ix, iy = comps.index("x"), comps.index("y")
        mx, my = x[..., ix].mean(axis=1), x[..., iy].mean(axis=1)
        phi = np.arctan2(my, mx)[:, None]
        c, s = np.cos(phi), np.sin(phi)
        par = x[..., ix] * c + x[..., iy] * s
        perp = -x[..., ix] * s + x[..., iy] * c
        x = x.copy()
        x[..., ix], x[..., iy] = par, perp
        names = tuple("m_par" if n == "m_x" else "m_perp" if n == "m_y" else n for n in names)
        return x, names, np.hypot(mx, my)
    return x, names, None


def autocorrelation_times(series: np.ndarray, weights: np.ndarray, max_lag: int) -> np.ndarray:
    """1/e times (frames) of a series ``(T,)`` under bootstrap weights ``(B, T)`` (module docstring).

    The lag-ℓ product (s_t − μ)(s_{t+ℓ} − μ) is counted with the weight of its first frame t;
    the crossing is interpolated linearly; ``max_lag`` when the correlation stays above 1/e."""
    s = np.asarray(series, np.float64)
    T = len(s)
    w = np.asarray(weights, np.float64)
    mu = (w @ s) / w.sum(axis=1)  # (B,)
    # sum_{t < T-l} w_t (s_t - mu)(s_{t+l} - mu), expanded into correlations done by FFT.
    n = 2 * T
    fs = np.fft.rfft(s, n)
    corr = lambda u: np.fft.irfft(np.conj(np.fft.rfft(u, n)) * fs, n)[..., : max_lag + 1]  # noqa: E731  sum_t u_t s_{t+l}
    lags = np.arange(max_lag + 1)
    ws_tail = np.cumsum((w * s)[:, ::-1], axis=1)[:, ::-1]  # sum_{t >= j} w_t s_t
    w_tail = np.cumsum(w[:, ::-1], axis=1)[:, ::-1]
    total_ws, total_w = ws_tail[:, :1], w_tail[:, :1]
    head_ws = total_ws - np.concatenate([np.zeros((len(w), 1)), ws_tail[:, T - lags[1:]]], axis=1)  # sum_{t < T-l} w_t s_t
    head_w = total_w - np.concatenate([np.zeros((len(w), 1)), w_tail[:, T - lags[1:]]], axis=1)
    m = mu[:, None]
    acf = (corr(w * s) - m * corr(w) - m * head_ws + m**2 * head_w) / np.maximum(head_w, 1e-300)
    var = acf[:, :1]
    acf = np.where(var > 0, acf / np.where(var > 0, var, 1.0), 0.0)
    target = math.exp(-1)
    below = acf < target
    tau = np.full(len(w), float(max_lag))
    has = below.any(axis=1)
    k = np.argmax(below, axis=1)
    rows = np.nonzero(has & (k > 0))[0]
    kk = k[rows]
    a0, a1 = acf[rows, kk - 1], acf[rows, kk]
    tau[rows] = kk - 1 + (a0 - target) / np.where(a0 != a1, a0 - a1, 1.0)
    tau[has & (k == 0)] = 0.0
    return tau


def run_replicates(t: Trajectory, comps: str, labels: np.ndarray, region_names: Sequence[str], weights: np.ndarray,
                   max_lag: int) -> tuple[np.ndarray, list[tuple[str, str]], str]:
    """Statistics of one run under each weight row: ``(B, S)``, ``[(name, unit)] * S``, a note."""
    x, names, inplane = _frames(t, comps)
    T, ncells, C = x.shape
    R = len(region_names)
    flat = x.reshape(T, -1)
    w = weights / weights.sum(axis=1, keepdims=True)  # (B, T), rows sum to 1
    s1 = (w @ flat).reshape(-1, ncells, C)
    s2 = (w @ flat**2).reshape(-1, ncells, C)
    var = np.maximum(s2 - s1**2, 0.0) * (T / (T - 1))
    onehot = np.zeros((ncells, R))
    onehot[np.arange(ncells), labels] = 1.0
    onehot /= np.maximum(onehot.sum(axis=0, keepdims=True), 1.0)
    region_mean = np.einsum("bnc,nr->brc", s1, onehot)
    region_std = np.einsum("bnc,nr->brc", np.sqrt(var), onehot)
    columns, meta = [], []
    for stat, values in (("mean", region_mean), ("std", region_std)):
        for c, name in enumerate(names):
            for r, region in enumerate(region_names):
                if r == 0:
                    columns.append(values[:, 0, c])
                    meta.append((f"{stat} {name} [{region}]", ""))
                else:  # contrast: slow, film-wide fluctuations cancel
                    columns.append(values[:, r, c] - values[:, 0, c])
                    meta.append((f"{stat} {name} [{region} - background]", ""))
    for c, name in enumerate(names):
        columns.append(var[:, :, c].mean(axis=1))
        meta.append((f"var {name}", ""))
    for c, name in enumerate(names):
        columns.append(s2[:, :, c].mean(axis=1))
        meta.append((f"<{name}^2>", ""))
    dt = t.frame_interval
    series = []
    if inplane is not None:
        series.append(("|<m_xy>|", inplane))
    series += [(f"<{name}>", x[:, :, c].mean(axis=1)) for c, name in enumerate(names) if name not in ("m_par", "m_perp")]
    for label, values in series:
        columns.append(autocorrelation_times(values, weights, max_lag) * dt)
        meta.append((f"tau {label}", "s"))
    note = "co-rotating frame (m_par along the in-plane <m>)" if inplane is not None else "raw components (no m_y: the global in-plane angle is not removed)"
    return np.stack(columns, axis=1), meta, note


@dataclasses.dataclass(frozen=True)
class ThermalComparison:
    """Per-statistic results, the limit k, the overall verdict and how it was obtained."""

    statistics: tuple[Statistic, ...]
    k: float
    alpha: float
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.statistics)


def _side_replicates(runs: Sequence[Trajectory], comps, labels, region_names, options, rng, max_lag):
    per_run, points, meta, note = [], [], None, ""
    for t in runs:
        T = t.m.shape[0]
        block = options.block or default_block(T)
        weights = np.concatenate([np.ones((1, T)), block_weights(T, min(block, T), options.replicates, rng)])
        values, meta, note = run_replicates(t, comps, labels, region_names, weights, max_lag)
        points.append(values[0])
        per_run.append(values[1:])
    replicates = hierarchical(np.stack(per_run), rng)
    # Half the central 68 % range: the standard deviation for normal replicates, and not
    # inflated by the few replicates of a skewed statistic (tau at its cap).
    lo, hi = np.percentile(replicates, [15.865, 84.135], axis=0)
    return np.mean(points, axis=0), (hi - lo) / 2, meta, note


def compare_thermal_runs(a_runs: Sequence[Trajectory], b_runs: Sequence[Trajectory], options: ThermalOptions = ThermalOptions()) -> ThermalComparison:
    """Compare two sides of one or more runs each (module docstring)."""
    a_runs, b_runs = list(a_runs), list(b_runs)
    if not a_runs or not b_runs:
        raise ValueError("each side needs at least one run")
    everything = a_runs + b_runs
    check_same_setup(everything)
    comps = "".join(c for c in AXES if all(c in t.components for t in everything))
    if not comps:
        raise ValueError("the runs have no stored component of m in common: " + ", ".join(f"{t.name} {t.components!r}" for t in everything))
    lengths = sorted({t.m.shape[0] for t in everything})
    if lengths[0] < 8:
        raise ValueError(f"{min(everything, key=lambda t: t.m.shape[0]).name}: {lengths[0]} frames are too few for thermal statistics (need >= 8)")
    labels, region_names = common_regions(everything)
    max_lag = max(1, lengths[0] // 4)
    rng = np.random.default_rng(options.seed)
    theta_a, err_a, meta, note = _side_replicates(a_runs, comps, labels, region_names, options, rng, max_lag)
    theta_b, err_b, _, _ = _side_replicates(b_runs, comps, labels, region_names, options, rng, max_lag)
    k = sidak_k(len(meta), options.alpha)
    scale = np.array([options.scale_contrast if " - background]" in name else options.scale_tau if name.startswith("tau ")
                      else options.scale_film for name, _ in meta])
    err_a, err_b = err_a * scale, err_b * scale
    stats = []
    for j, (name, unit) in enumerate(meta):
        sigma = math.hypot(err_a[j], err_b[j])
        diff = theta_a[j] - theta_b[j]
        z = diff / sigma if sigma > 0 else (0.0 if diff == 0 else math.inf)
        stats.append(Statistic(name, float(theta_a[j]), float(theta_b[j]), float(err_a[j]), float(err_b[j]), float(z), k, bool(abs(z) <= k), unit))
    notes = [note, f"{len(a_runs)} vs {len(b_runs)} runs, {'/'.join(str(n) for n in lengths)} frames; "
             f"block bootstrap over time ({options.block or default_block(lengths[0])}-frame blocks, {options.replicates} replicates)"
             + ("; runs resampled too" if max(len(a_runs), len(b_runs)) > 1 else ""),
             f"errors: bootstrap x {options.scale_film:g} (film-wide), x {options.scale_contrast:g} (contrasts), x {options.scale_tau:g} (tau); "
             "factors calibrated in docs/mumax3.md",
             f"k = {k:.3g}: Sidak limit for {len(meta)} statistics at an overall false-alarm rate of {options.alpha:g}"]
    if len(lengths) > 1:
        notes.append("the runs have different frame counts: finite-length biases (std, tau) differ between the sides")
    return ThermalComparison(tuple(stats), k, options.alpha, tuple(notes))
