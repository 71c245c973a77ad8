"""The detector of a counts movie: gain, offset and read noise from the noise's level dependence.

Contract
--------
``fit_poisson_gaussian(counts, dark=None, bins=16) -> PoissonGaussianFit`` fits the
Poisson–Gaussian model of Foi et al., IEEE TIP 17, 1737 (2008) to a movie of detector readings
``counts`` (T, ny, nx) in ADU (float or integer)::

    reading = gain * Poisson(lambda) + offset + N(0, read_noise^2)
    var(mu) = a * mu + b,   a = gain (ADU per photon),   b = read_noise^2 - gain * offset (ADU^2)

with mu = gain * lambda + offset the mean reading. The noise variance is measured per bin of the
pixels' temporal mean level and a weighted line is fitted to it. ``equivalent_detector(fit,
level)`` gives a detector (gain, offset, read_noise) that reproduces the measured noise.

Why not the plain temporal variance: in a magnetic movie the signal fluctuates too (thermal
magnetisation seen through the instrument's contrast, correlated over a few pixels and a few
frames), so a pixel's temporal variance is noise + signal. The noise is read from space-time
mixed differences, as in ``jaxmag.noise.estimate``:
r_k = (y[t+1, p] - y[t, p]) - (y[t+1, q] - y[t, q]) for pixel pairs (p, q) k = 1, 2 apart along
rows and columns. The temporal difference removes every static pattern (illumination, fixed
pattern, static domains), the spatial difference removes what neighbours share (a frame's offset
drift, smooth fluctuations), and since the noise of independent pixels enters E[r_k^2] =
2 var_p + 2 var_q = 4 var(m_pq) + V(k) the same way at every lag while the signal's part V(k)
grows ~ k^2 on the pixel scale, the extrapolation (4 M_1 - M_2) / 3 of the lag-k mean squares
removes it. m_pq = (mu_p + mu_q) / 2 is the pair's level, and the model is linear in the level,
so pooling pairs in a bin of levels is exact: the bin's noise variance is a * level + b at the
bin's (equally extrapolated) mean level. For Poisson counts E[r^2 | pixel means] is linear in
the means as well, so binning on the noisy means adds no bias. Only neighbours whose levels agree
within ``PAIR_LEVEL_TOLERANCE`` (10 %) are paired: the magnetic signal modulates the local
intensity, so across a sharp edge of the static image neighbours' signals differ and would leak.
Assumptions: noise independent between pixels and frames; the signal smooth on the pixel scale
in space or in time (a signal rough in both leaves a floor, growing with its amplitude: ~1 % on
the gain for a 3 % contrast correlated over 1.5 pixels, ~5 % for 10 %); no saturated pixels.

Identifiability. The line gives a and b only. Offset and read noise are separate only with a
dark reference: pixels that receive no photons (a beam stop, the outside of the field of view):
offset = their mean reading, read_noise^2 = their noise variance (same estimator; a point on the
same line at photons = 0, which the fit includes; the note reports whether it agrees with the
line of the lit pixels alone). Without one, offset and read noise are NaN and only b is known.
``dark="auto"`` looks for one: the pixels below the widest gap of the sorted mean levels (within
the lowest half), taken when they are at least 16, contiguous, at least 10 noise standard
deviations below the rest and quieter than the pixels just above (``_auto_dark``).
Rounding to integers adds 1/12 ADU^2 to every variance, so to b and to the read noise^2 measured.
When the levels span a narrow range (a magnetic movie under uniform illumination: a few %) the
slope is poorly determined: it is returned with its large standard error, and
``equivalent_detector`` still reproduces the noise variance at the movie's level.

Standard errors: delete-one jackknife over ~20 space-time blocks (blocks of consecutive frame
differences, and strips of rows when the movie has few frames), so correlations within a block
(the signal's, overlapping differences) are accounted for.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

MIN_PIXELS = 64  # fewer pixels give too few pairs for a line through binned variances
MIN_DARK_PIXELS = 16
MIN_BIN_SAMPLES = 30  # residuals per lag in a bin of levels, for a usable variance
_JACKKNIFE_BLOCKS = 20
_CHUNK_VALUES = 1 << 21  # frames are converted to float64 this many values at a time
_POOR_SLOPE = 0.5  # relative standard error above which the slope (gain) is not used
# Lit pairs whose mean levels differ by more than this fraction of their level are left out: the
# signal is a modulation of the local intensity (I0 (1 + c s), jaxmag.instrument), so across a
# sharp edge of the static image (a pattern, a grain, rough illumination) the neighbours' signals
# differ by the intensity step and would not cancel. Within 10 % the leak is < 1 % of the
# signal's variance, whether the signal scales with the intensity or is added to it.
PAIR_LEVEL_TOLERANCE = 0.1


@dataclasses.dataclass(frozen=True, eq=False)
class PoissonGaussianFit:
    """The fitted detector (module docstring). Levels in ADU, variances in ADU^2.

    gain, gain_se: a, ADU per photon (NaN when the levels do not span two bins).
    intercept, intercept_se: b = read_noise^2 - gain * offset, ADU^2.
    offset, offset_se: the dark level, ADU (NaN unless ``offset_identified``).
    read_noise, read_noise_se: rms ADU (NaN unless ``offset_identified``).
    offset_identified: whether dark pixels were used.
    levels, variances, variances_se: (B,) the binned points (lit pixels) and their standard errors.
    mean_level, mean_variance: the lit pixels' mean level and their pooled noise variance there.
    num_pixels: lit pixels used; dark_pixels: dark pixels used (0 without a dark reference).
    note: which parts are identified and why, in words.
    """

    gain: float
    gain_se: float
    intercept: float
    intercept_se: float
    offset: float
    offset_se: float
    read_noise: float
    read_noise_se: float
    offset_identified: bool
    levels: np.ndarray
    variances: np.ndarray
    variances_se: np.ndarray
    mean_level: float
    mean_variance: float
    num_pixels: int
    dark_pixels: int
    note: str

    def variance_at(self, level: float) -> float:
        """The noise variance (ADU^2) at a mean ``level`` (ADU): the fitted line, or the pooled
        variance when no slope was fitted."""
        if math.isfinite(self.gain) and math.isfinite(self.intercept):
            return self.gain * float(level) + self.intercept
        return self.mean_variance


class DetectorParams(NamedTuple):
    """A detector: gain (ADU per photon), offset (ADU), read_noise (rms ADU)."""

    gain: float
    offset: float
    read_noise: float


def slope_determined(fit: PoissonGaussianFit) -> bool:
    """Whether the fitted gain is positive with a relative standard error of at most ``_POOR_SLOPE``."""
    a = fit.gain
    return math.isfinite(a) and a > 0 and math.isfinite(fit.gain_se) and fit.gain_se <= _POOR_SLOPE * a


def equivalent_detector(fit: PoissonGaussianFit, level: float | None = None) -> DetectorParams:
    """A detector that reproduces the measured noise variance at ``level`` (ADU; default the movie's mean level).

    If the slope is poorly determined (relative standard error > 0.5, or not fitted): pure shot
    noise, offset 0, read noise 0, gain = var(level) / level; exact at ``level`` only. Else the
    fitted gain with offset 0 and read_noise^2 = b when b >= 0, or read noise 0 and offset = -b /
    gain when b < 0: var(mu) = gain * (mu - offset) + read_noise^2 = a mu + b, exact at every
    level on the fitted line. (Not the physical offset and read noise: those are in ``fit``
    when a dark reference identified them.)
    """
    level = fit.mean_level if level is None else float(level)
    if not (math.isfinite(level) and level > 0):
        raise ValueError(f"equivalent_detector: level must be a positive number of ADU, got {level!r}")
    a, b = fit.gain, fit.intercept
    if not slope_determined(fit):
        var = fit.variance_at(level)
        if not var > 0:
            raise ValueError(f"equivalent_detector: the noise variance at level {level:.6g} ADU is {var:.6g} ADU^2, "
                             "not positive: no detector reproduces it")
        return DetectorParams(var / level, 0.0, 0.0)
    if b >= 0:
        return DetectorParams(a, 0.0, math.sqrt(b))
    return DetectorParams(a, -b / a, 0.0)


# ---------------------------------------------------------------------------------------------
# input checks and the dark reference


def _check_counts(counts: Any) -> np.ndarray:
    arr = np.asarray(counts)
    if arr.dtype == object or arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"counts: expected a numeric movie (T, ny, nx) in ADU, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError("counts: complex values are not detector readings")
    if arr.ndim != 3:
        raise ValueError(f"counts: expected a movie (T, ny, nx), got shape {arr.shape}")
    T, ny, nx = arr.shape
    if T < 2:
        raise ValueError(f"counts: too short, {T} frame(s); the noise is read from frame differences, so at least "
                         "2 frames are needed (tens give useful standard errors)")
    if ny < 3 or nx < 3 or ny * nx < MIN_PIXELS:
        raise ValueError(f"counts: frames of {ny} x {nx} pixels are too small; the fit needs at least 3 x 3 and "
                         f"{MIN_PIXELS} pixels")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"counts: {int(bad.sum())} non-finite value(s) (NaN or inf), first at (frame, y, x) = "
                             f"{first}; mask or interpolate dead pixels first")
    return arr


def _chunks(y: np.ndarray, overlap: int):
    """(t0, float64 frames y[t0 : t1 + overlap]) covering the movie, a bounded number of values at a time."""
    T = y.shape[0]
    step = max(1, _CHUNK_VALUES // (y.shape[1] * y.shape[2]))
    for t0 in range(0, T - overlap, step):
        yield t0, y[t0 : min(T, t0 + step + overlap)].astype(np.float64)


def _auto_dark(y: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The dark cluster of ``dark="auto"``, or None, and why.

    Rule: sort the pixels' mean levels; the pixels below the widest gap within the lowest half
    are dark when (1) they are at least MIN_DARK_PIXELS, (2) contiguous: 90 % of them have a
    4-neighbour among them (a beam stop or the outside of the field of view, not scattered dead
    pixels), (3) the gap is at least 10 of their noise standard deviations and twice their own
    spread of levels (far below the rest, a separate cluster), and (4) their noise variance is
    below 1/1.2 of that of as many pixels just above the gap (with light, shot noise grows with
    the level; without, it does not). A dim but lit region passing all four cannot be told from
    a dark one: pass an explicit mask (or None) for such samples.
    """
    flat = mu.ravel()
    order = np.argsort(flat, kind="stable")
    s = flat[order]
    n = s.size
    lo, hi = MIN_DARK_PIXELS, n // 2
    if hi <= lo:
        return None, f"auto: too few pixels to look for a dark cluster of {MIN_DARK_PIXELS}"
    gaps = s[lo : hi + 1] - s[lo - 1 : hi]
    j = lo + int(np.argmax(gaps))
    gap = float(s[j] - s[j - 1])
    v = np.zeros(n)
    for _, chunk in _chunks(y, 1):
        v += (np.diff(chunk, axis=0) ** 2).reshape(chunk.shape[0] - 1, -1).sum(axis=0)
    v /= 2.0 * (y.shape[0] - 1)  # per-pixel temporal noise (+ signal increments), ADU^2
    cluster = np.zeros(n, bool)
    cluster[order[:j]] = True
    grid = cluster.reshape(mu.shape)
    pad = np.pad(grid, 1)
    neighbour = pad[:-2, 1:-1] | pad[2:, 1:-1] | pad[1:-1, :-2] | pad[1:-1, 2:]
    contiguous = float((neighbour & grid).sum()) / j
    v_dark = float(np.median(v[order[:j]]))
    v_above = float(np.median(v[order[j : min(n, 2 * j)]]))
    spread = float(s[j - 1] - s[0])
    checks = [(contiguous >= 0.9, f"only {contiguous:.0%} of them have a neighbour among them"),
              (gap >= 10 * math.sqrt(v_dark) and gap >= 2 * spread,
               f"the gap of {gap:.3g} ADU is under 10 noise std ({math.sqrt(v_dark):.3g} ADU) or twice their spread "
               f"({spread:.3g} ADU)"),
              (v_above >= 1.2 * v_dark, "their noise is not below that of the pixels above the gap")]
    failed = [why for ok, why in checks if not ok]
    if failed:
        return None, f"auto: no dark cluster (the {j} lowest pixels fail: {'; '.join(failed)})"
    return grid, f"auto: {j} dark pixels below a gap of {gap:.3g} ADU"


def _dark_mask(y: np.ndarray, mu: np.ndarray, dark: Any) -> tuple[np.ndarray | None, str]:
    if dark is None:
        return None, ""
    if isinstance(dark, str):
        if dark != "auto":
            raise ValueError(f"dark must be None, 'auto' or an (ny, nx) bool mask, got {dark!r}")
        return _auto_dark(y, mu)
    mask = np.asarray(dark)
    if mask.shape != mu.shape:
        raise ValueError(f"dark mask must have shape (ny, nx) = {mu.shape}, got {mask.shape}")
    if mask.dtype != bool:
        if not (np.issubdtype(mask.dtype, np.number) and np.isin(mask, (0, 1)).all()):
            raise ValueError("dark mask must be boolean (True on pixels that receive no photons)")
        mask = mask.astype(bool)
    if not mask.any():
        return None, "the dark mask is empty"
    if (~mask).sum() < MIN_PIXELS:
        raise ValueError(f"the dark mask leaves {int((~mask).sum())} lit pixels; the fit needs at least {MIN_PIXELS}")
    pairs2 = (mask[:, 2:] & mask[:, :-2]).sum() + (mask[2:, :] & mask[:-2, :]).sum()
    if pairs2 == 0:
        raise ValueError("the dark mask has no two dark pixels 2 apart in a row or column; give a dark region at "
                         "least 3 pixels wide")
    return mask, f"{int(mask.sum())} dark pixels from the mask given"


# ---------------------------------------------------------------------------------------------
# residual statistics per (jackknife block, category); categories: level bins, then dark


def _lit_pairs(mu: np.ndarray, lit: np.ndarray, k: int):
    """Pixel pairs k apart along rows, then columns: (slice of p, slice of q, pair level (ADU),
    whether the pair is used: both lit, levels within ``PAIR_LEVEL_TOLERANCE``)."""
    for sl_p, sl_q in (((slice(None), slice(None, -k)), (slice(None), slice(k, None))),
                       ((slice(None, -k), slice(None)), (slice(k, None), slice(None)))):
        m = 0.5 * (mu[sl_p] + mu[sl_q])
        similar = np.abs(mu[sl_p] - mu[sl_q]) <= PAIR_LEVEL_TOLERANCE * np.abs(m)
        yield sl_p, sl_q, m, lit[sl_p] & lit[sl_q] & similar


def _accumulate(y: np.ndarray, mu: np.ndarray, lit: np.ndarray, dark: np.ndarray | None, edges: np.ndarray,
                units: tuple[int, int]):
    """Residual sums per (jackknife block, category). A pair's category is the bin (of ``edges``)
    of its level (mu_p + mu_q) / 2 when ``_lit_pairs`` uses it, ``nbins`` when both pixels are
    dark, none otherwise. Per lag k = 1, 2: sums of r_k^2, counts and sums of pair levels, shape
    (2, U, nbins + 1); per block the sums and counts of the dark readings, shape (U,)."""
    T, ny, nx = y.shape
    nt, ns = units
    U = nt * ns
    nbins = edges.size - 1
    ncat = nbins + 1
    strip = np.arange(ny) * ns // ny
    S, N, L = (np.zeros((2, U * ncat)) for _ in range(3))
    dsum, dcnt = np.zeros(U), np.zeros(U)
    pairs = []
    for k in (1, 2):  # pair categories and levels do not change with time
        for sl_p, sl_q, m, use in _lit_pairs(mu, lit, k):
            c = np.where(use, np.clip(np.searchsorted(edges[1:-1], m, side="right"), 0, nbins - 1), -1)
            if dark is not None:
                c = np.where(dark[sl_p] & dark[sl_q], nbins, c)
            pairs.append((k, sl_p, sl_q, c, m, strip[sl_p[0]]))
    for t0, chunk in _chunks(y, 1):
        d = np.diff(chunk, axis=0)
        tb = (t0 + np.arange(d.shape[0])) * nt // (T - 1)
        for k, sl_p, sl_q, c, m, rows in pairs:
            r = d[(slice(None),) + sl_q] - d[(slice(None),) + sl_p]
            idx = ((tb[:, None] * ns + rows[None, :])[:, :, None] * ncat + c[None]).ravel()
            keep = np.broadcast_to(c[None] >= 0, r.shape).ravel()
            idx = idx[keep]
            S[k - 1] += np.bincount(idx, (r * r).ravel()[keep], U * ncat)
            N[k - 1] += np.bincount(idx, minlength=U * ncat)
            L[k - 1] += np.bincount(idx, np.broadcast_to(m[None], r.shape).ravel()[keep], U * ncat)
        if dark is not None:
            frames = chunk if t0 + chunk.shape[0] == T else chunk[:-1]  # each frame counted once
            fb = np.minimum(t0 + np.arange(frames.shape[0]), T - 2) * nt // (T - 1)
            row_sums = np.einsum("tyx,yx->ty", frames, dark.astype(np.float64))
            unit = (fb[:, None] * ns + strip[None, :]).ravel()
            dsum += np.bincount(unit, row_sums.ravel(), U)
            dcnt += np.bincount(unit, np.broadcast_to(dark.sum(axis=1)[None], row_sums.shape).ravel(), U)
    shape = (2, U, ncat)
    return S.reshape(shape), N.reshape(shape), L.reshape(shape), dsum, dcnt


def _points(S: np.ndarray, N: np.ndarray, L: np.ndarray):
    """Per category: the extrapolated noise variance (ADU^2), level (ADU) and lag-1 count."""
    with np.errstate(invalid="ignore", divide="ignore"):
        M, lev = S / N, L / N
    return (4 * M[0] - M[1]) / 12.0, (4 * lev[0] - lev[1]) / 3.0, N[0]


def _line(level: np.ndarray, var: np.ndarray, count: np.ndarray) -> tuple[float, float]:
    """Weighted least squares var = a level + b, weights count / var_model^2 (the variance of a
    mean square of ~Gaussian residuals), refined twice from the fitted line, not the noisy points."""
    if level.size < 2 or np.ptp(level) == 0:
        return math.nan, math.nan
    floor = 1e-6 * max(float(np.max(np.abs(var))), 1e-30)
    model = np.full_like(var, max(float(np.mean(var)), floor))
    for _ in range(3):
        w = count / np.maximum(model, floor) ** 2
        X = np.stack([level, np.ones_like(level)], axis=1)
        a, b = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * var))
        model = a * level + b
    return float(a), float(b)


def _estimate(S, N, L, dsum, dcnt, nbins: int, has_dark: bool) -> dict:
    """Every estimate from the sums (summed over the blocks kept)."""
    var, lev, cnt = _points(S, N, L)
    ok = (N[0] >= MIN_BIN_SAMPLES) & (N[1] >= MIN_BIN_SAMPLES)
    lit = np.arange(var.size) < nbins
    use = ok & lit
    out = {"var": var, "lev": lev, "use": use}
    out["a_lit"], out["b_lit"] = _line(lev[use], var[use], cnt[use])
    Slit, Nlit, Llit = (x[:, :nbins].sum(axis=1) for x in (S, N, L))
    out["mean_var"], out["mean_level"], _ = _points(Slit, Nlit, Llit)
    if has_dark and ok[nbins]:
        out["a"], out["b"] = _line(lev[use | ~lit], var[use | ~lit], cnt[use | ~lit])
        out["read2"] = var[nbins]
        out["offset"] = dsum / dcnt
        out["check"] = var[nbins] - (out["a_lit"] * out["offset"] + out["b_lit"])  # dark point vs lit line
    else:
        out["a"], out["b"] = out["a_lit"], out["b_lit"]
    return out


def _jackknife(S, N, L, dsum, dcnt, nbins, has_dark, keys) -> dict[str, np.ndarray]:
    """Delete-one-block jackknife standard errors of ``keys`` (scalars or per-bin arrays)."""
    blocks = [u for u in range(S.shape[1]) if N[:, u].sum() > 0]
    reps = {k: [] for k in keys}
    tot = (S.sum(1), N.sum(1), L.sum(1), dsum.sum(), dcnt.sum())
    for u in blocks:
        est = _estimate(tot[0] - S[:, u], tot[1] - N[:, u], tot[2] - L[:, u], tot[3] - dsum[u], tot[4] - dcnt[u],
                        nbins, has_dark)
        for k in keys:
            reps[k].append(np.asarray(est.get(k, math.nan), np.float64))
    g = len(blocks)
    if g < 2:
        return {k: np.full(np.shape(reps[k][0]) if reps[k] else (), math.nan) for k in keys}
    return {k: np.sqrt((g - 1) / g * np.sum((np.stack(v) - np.mean(np.stack(v), 0)) ** 2, 0)) for k, v in reps.items()}


# ---------------------------------------------------------------------------------------------
# the fit


def fit_poisson_gaussian(counts: Any, *, dark: Any = None, bins: int = 16) -> PoissonGaussianFit:
    """Fit var(mu) = gain * mu + b to a counts movie (module docstring for the estimator).

    counts: (T, ny, nx) detector readings in ADU, float or integer, T >= 2, at least 3 x 3 and
        ``MIN_PIXELS`` pixels, finite.
    dark: None (no dark reference: offset and read noise not identified), an (ny, nx) bool mask
        of pixels that receive no photons, or ``"auto"`` (``_auto_dark``'s rule: a contiguous
        cluster far below the other levels whose noise does not grow with the level).
    bins: number of bins of pixel level (quantiles of the lit pairs' levels), >= 2.
    Raises ``ValueError`` naming the problem for bad input.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    y = _check_counts(counts)
    T, ny, nx = y.shape
    mu = y.mean(axis=0, dtype=np.float64)
    mask, dark_note = _dark_mask(y, mu, dark)
    lit = np.ones_like(mu, bool) if mask is None else ~mask
    pair_levels = np.concatenate([m[use] for _, _, m, use in _lit_pairs(mu, lit, 1)])
    if pair_levels.size < MIN_BIN_SAMPLES:
        raise ValueError(f"counts: only {pair_levels.size} pairs of neighbouring lit pixels have levels within "
                         f"{PAIR_LEVEL_TOLERANCE:.0%} of each other; the noise is read from such pairs: give a larger "
                         "movie or one whose static image is smoother on the pixel scale")
    edges = np.unique(np.quantile(pair_levels, np.linspace(0, 1, int(bins) + 1)))
    if edges.size < 2:  # every lit level equal: one bin
        edges = np.array([edges[0], edges[0]])
    nbins = edges.size - 1
    nt = min(T - 1, _JACKKNIFE_BLOCKS)  # blocks of frame differences, then strips of rows for short movies
    ns = max(1, min(-(-_JACKKNIFE_BLOCKS // nt), ny // 4))
    S, N, L, dsum, dcnt = _accumulate(y, mu, lit, mask, edges, (nt, ns))
    has_dark = mask is not None
    est = _estimate(S.sum(1), N.sum(1), L.sum(1), dsum.sum(), dcnt.sum(), nbins, has_dark)
    keys = ["a", "b", "var", "read2", "offset", "check"]
    se = _jackknife(S, N, L, dsum, dcnt, nbins, has_dark, keys)
    use = est["use"][:nbins]
    identified = has_dark and "read2" in est
    read2 = est.get("read2", math.nan)
    read = math.sqrt(read2) if identified and read2 > 0 else (0.0 if identified else math.nan)
    read_se = math.nan
    if identified:  # delta method; at read noise 0 the square root of the variance's error bounds it
        read_se = float(se["read2"]) / (2 * read) if read > 0 else math.sqrt(float(se["read2"]))
    fit = dict(
        gain=est["a"], gain_se=float(se["a"]), intercept=est["b"], intercept_se=float(se["b"]),
        offset=float(est["offset"]) if identified else math.nan,
        offset_se=float(se["offset"]) if identified else math.nan,
        read_noise=read, read_noise_se=read_se, offset_identified=bool(identified),
        levels=est["lev"][:nbins][use], variances=est["var"][:nbins][use], variances_se=se["var"][:nbins][use],
        mean_level=float(est["mean_level"]), mean_variance=float(est["mean_var"]),
        num_pixels=int(lit.sum()), dark_pixels=int(mask.sum()) if identified else 0,
    )
    return PoissonGaussianFit(**fit, note=_note(fit, est, se, dark_note, has_dark, read2))


def _note(fit: dict, est: dict, se: dict, dark_note: str, has_dark: bool, read2: float) -> str:
    parts = []
    a, a_se = fit["gain"], fit["gain_se"]
    lv = fit["levels"]
    if math.isfinite(a):
        span = float(np.ptp(lv) / abs(fit["mean_level"])) if lv.size and fit["mean_level"] else math.nan
        parts.append(f"gain and intercept b from {lv.size} bins of level spanning {lv.min():.4g}-{lv.max():.4g} ADU "
                     f"({span:.1%} of the mean level)")
        if not (a_se <= _POOR_SLOPE * abs(a)):
            parts.append(f"the levels span too narrow a range: the slope (gain {a:.3g} +- {a_se:.2g}) is poorly "
                         "determined; equivalent_detector reproduces the noise variance at the movie's level")
    else:
        parts.append("the levels do not span two bins: no slope, only the noise variance "
                     f"{fit['mean_variance']:.4g} ADU^2 at level {fit['mean_level']:.4g} ADU")
    if fit["offset_identified"]:
        parts.append(f"offset and read noise from {fit['dark_pixels']} dark pixels ({dark_note})")
        if read2 <= 0:
            parts.append(f"the dark noise variance {read2:.3g} ADU^2 is not positive: read noise set to 0")
        check, check_se = float(est["check"]), float(se["check"])
        if math.isfinite(check) and check_se > 0:
            z = check / check_se
            verdict = "consistent with" if abs(z) <= 3 else "INCONSISTENT with (stray light? a dim lit region?)"
            parts.append(f"the dark point is {verdict} the lit pixels' line (z = {z:.1f})")
    else:
        why = dark_note or "no dark reference given"
        if has_dark:
            why = f"{dark_note}: too few dark pairs"
        parts.append(f"offset and read noise not separately identified ({why}); only b = read_noise^2 - gain * offset "
                     f"= {fit['intercept']:.4g} +- {fit['intercept_se']:.2g} ADU^2 is")
    return "; ".join(parts)
