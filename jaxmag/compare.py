"""Cross-validation of two magnetisation trajectories (jaxmag against MuMax3, or any pair).

Sources (``load_source``): a jaxmag dataset run (``data.h5#run=3``), a folder of OVF frames
written by ``jaxmag export-ovf``, or a MuMax3 output folder. Each becomes a ``Trajectory``:
frames ``(T, nz, ny, nx, 3)`` (float64; components not stored are NaN), frame times (s), and
the spatially averaged ⟨m⟩(t) series (from ``table.txt`` when present, it is denser).

Two regimes, because thermal runs cannot match trajectory by trajectory:

* deterministic (T = 0, ``compare_deterministic``): the denser series is interpolated linearly
  in time onto the sparser one's times (within the common time range). Reported: per-frame
  RMS over cells of |Δm| (pass: max over frames ≤ ``tol_rms``) and the max over time and
  components of |Δ⟨m⟩| (pass: ≤ ``tol_mean``).
* thermal (T > 0, ``compare_thermal``): per-cell temporal mean and standard deviation maps of
  each common component. Their spatial distributions are compared with scipy's two-sample
  Kolmogorov–Smirnov test (pass: p ≥ ``ks_alpha``) and by the relative difference of their
  spatial averages, |ā − b̄| / max(|ā|, |b̄|, ``rel_floor``) ≤ ``tol_rel``. The ⟨m⟩ integrated
  autocorrelation time (1/e decay of its autocorrelation) of each component must agree to a
  relative ``tol_tau``. That estimate has a sampling spread of ~25 % for 400 frames and
  τ ≈ 4 frames, so the default ``tol_tau = 0.5`` is meant for movies of several hundred
  frames; shorter movies need a looser limit.

Default tolerances (``Tolerances``) are stated there; all are configurable from the CLI.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from jaxmag.io.mumax3 import read_output_folder

AXES = "xyz"


# ------------------------------------------------------------------------------- sources


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """One run to compare.

    Attributes:
        m: frames, float64 ``(T, nz, ny, nx, 3)``; components not in ``components`` are NaN.
        times: frame times (s), ``(T,)``.
        mean_times, mean_m: the ⟨m⟩(t) series, ``(T',)`` s and ``(T', 3)`` (NaN where absent).
        cell_size: ``(dx, dy, dz)`` m.
        components: components holding data, e.g. ``"xz"``.
        temperature: K when the source says (jaxmag configs, mx3 scripts), else None.
        name: where it came from, for messages.
    """

    m: np.ndarray
    times: np.ndarray
    mean_times: np.ndarray
    mean_m: np.ndarray
    cell_size: tuple[float, float, float]
    components: str
    temperature: float | None
    name: str


@dataclasses.dataclass(frozen=True)
class DatasetRun:
    """Run ``index`` of a jaxmag HDF5 dataset: ``m`` ``(T, C, ny, nx)``, ``times`` (s)."""

    m: np.ndarray
    times: np.ndarray
    components: str
    cell_size: tuple[float, float, float]
    config_text: str
    index: int


def read_dataset_run(path: str | os.PathLike, run: int) -> DatasetRun:
    """Read run ``run`` of a jaxmag dataset (``/m`` (N, T, C, ny, nx), ``/t``, ``/done``)."""
    from jaxmag.io.errors import open_h5

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: {path}")
    with open_h5(path, "jaxmag dataset") as f:  # InputError naming the file for a bad one
        for key in ("m", "t"):
            if key not in f:
                raise ValueError(f"{path}: not a jaxmag dataset (no /{key})")
        dset = f["m"]
        if dset.ndim != 5:
            raise ValueError(f"{path}: /m must have shape (N, T, C, ny, nx), got {dset.shape}")
        n = dset.shape[0]
        if not (0 <= run < n):
            raise ValueError(f"{path}: run {run} out of range (the dataset holds runs 0..{n - 1})")
        if "done" in f and not bool(f["done"][run]):
            raise ValueError(f"{path}: run {run} is not finished (done[{run}] is false); simulate it first")
        components = f.attrs.get("components", "")
        components = components.decode() if isinstance(components, bytes) else str(components)
        if len(components) != dset.shape[2] or not set(components) <= set(AXES):
            raise ValueError(f"{path}: attribute components={components!r} does not match /m's {dset.shape[2]} channels")
        if "cell_size_m" not in f.attrs:
            raise ValueError(f"{path}: missing root attribute cell_size_m")
        cell = tuple(float(c) for c in np.asarray(f.attrs["cell_size_m"]).reshape(-1))
        if len(cell) != 3:
            raise ValueError(f"{path}: cell_size_m must hold 3 lengths, got {cell}")
        config = f.attrs.get("config", "")
        config = config.decode() if isinstance(config, bytes) else str(config)
        return DatasetRun(
            m=np.asarray(dset[run], dtype=np.float64),
            times=np.asarray(f["t"][...], dtype=np.float64),
            components=components,
            cell_size=cell,  # type: ignore[arg-type]
            config_text=config,
            index=run,
        )


def dataset_frames(run: DatasetRun, *, fill_missing: bool = False) -> np.ndarray:
    """``(T, 1, ny, nx, 3)`` frames of a dataset run; missing components are 0 or NaN."""
    T, _, ny, nx = run.m.shape
    out = np.full((T, 1, ny, nx, 3), 0.0 if fill_missing else np.nan)
    for c, axis in enumerate(run.components):
        out[:, 0, :, :, AXES.index(axis)] = run.m[:, c]
    return out


_SPEC_RE = re.compile(r"^(?P<path>.+?)#run=(?P<run>\d+)$")


def load_source(spec: str, run: int | None = None) -> Trajectory:
    """A ``Trajectory`` from ``data.h5#run=3`` (or ``data.h5`` with ``run``) or a folder."""
    match = _SPEC_RE.match(spec)
    if match:
        if run is not None and run != int(match.group("run")):
            raise ValueError(f"{spec}: conflicting run numbers ({match.group('run')} in the path, {run} given)")
        spec, run = match.group("path"), int(match.group("run"))
    path = Path(spec)
    if path.is_dir():
        return _from_folder(path)
    if path.is_file():
        if run is None:
            raise ValueError(f"{spec}: say which run to compare, as '{spec}#run=I' or with --run-a/--run-b")
        return _from_dataset(path, run)
    raise FileNotFoundError(f"no such dataset or folder: {spec}")


def _from_dataset(path: Path, run: int) -> Trajectory:
    data = read_dataset_run(path, run)
    frames = dataset_frames(data)
    temperature = None
    if data.config_text:
        from jaxmag.config import loads_config

        temperature = loads_config(data.config_text, source=f"{path} (config attribute)").material.temperature
    mean = frames.mean(axis=(1, 2, 3))
    return Trajectory(frames, data.times, data.times, mean, data.cell_size, data.components, temperature, f"{path}#run={run}")


def _from_folder(folder: Path) -> Trajectory:
    out = read_output_folder(folder)
    m = out.m.copy()
    for i, axis in enumerate(AXES):
        if axis not in out.components:
            m[..., i] = np.nan
    mean_times, mean_m = out.times, m.mean(axis=(1, 2, 3))
    table = out.table
    if table is not None and "t" in table and table.num_rows >= 2:
        cols = [f"m{a}" for a in AXES]
        if any(c in table for c in cols):
            mean_times = table["t"]
            mean_m = np.stack([table[c] if c in table and a in out.components else np.full(table.num_rows, np.nan) for c, a in zip(cols, AXES)], axis=1)
    return Trajectory(m, out.times, mean_times, mean_m, out.cell_size, out.components, _folder_temperature(folder), str(folder))


def _folder_temperature(folder: Path) -> float | None:
    """Temperature (K) from the script MuMax3 copies into ``log.txt``, or a ``*.mx3`` beside it."""
    from jaxmag.io.mx3 import script_temperature

    candidates = [folder / "log.txt", *sorted(folder.glob("*.mx3"))]
    if folder.name.endswith(".out"):
        candidates.append(folder.with_name(folder.name[: -len(".out")] + ".mx3"))
    for path in candidates:
        if path.is_file():
            temperature = script_temperature(path.read_text(errors="replace"))
            if temperature is not None:
                return temperature
    return None


# ------------------------------------------------------------------------------- statistics


@dataclasses.dataclass(frozen=True)
class Tolerances:
    """Pass/fail limits.

    tol_rms: max over frames of the per-frame RMS over cells of |Δm| (T = 0).
    tol_mean: max |Δ⟨m_i⟩| over time and components (T = 0).
    ks_alpha: minimum two-sample KS p-value for per-cell mean / std maps (T > 0).
    tol_rel: max relative difference of the spatial averages of those maps (T > 0).
    rel_floor: denominator floor of that relative difference (mean maps of a component that
        averages to ~0 are compared on this absolute scale).
    tol_tau: max relative difference of the ⟨m⟩ autocorrelation times (T > 0).
    """

    tol_rms: float = 0.01
    tol_mean: float = 0.01
    ks_alpha: float = 1e-3
    tol_rel: float = 0.1
    rel_floor: float = 0.05
    tol_tau: float = 0.5


@dataclasses.dataclass(frozen=True)
class Check:
    """One row of the report: a quantity, its value, the limit and whether it passed."""

    name: str
    value: float
    limit: float
    passed: bool
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Comparison:
    mode: str  # "deterministic" or "thermal"
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def table(self) -> str:
        """The report as an aligned text table."""
        rows = [("check", "value", "limit", "result", "note")]
        for c in self.checks:
            bound = ">=" if c.name.startswith("KS") else "<="
            rows.append((c.name, f"{c.value:.4g}", f"{bound} {c.limit:.4g}", "pass" if c.passed else "FAIL", c.note))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        verdict = "PASS" if self.passed else "FAIL"
        return f"mode: {self.mode}\n" + "\n".join(lines) + f"\nresult: {verdict}"


def common_components(a: Trajectory, b: Trajectory) -> str:
    comps = "".join(c for c in AXES if c in a.components and c in b.components)
    if not comps:
        raise ValueError(f"{a.name} stores {a.components!r} and {b.name} stores {b.components!r}: no component in common")
    return comps


def check_compatible(a: Trajectory, b: Trajectory) -> None:
    if a.m.shape[1:] != b.m.shape[1:]:
        raise ValueError(f"mesh mismatch: {a.name} has (nz, ny, nx) = {a.m.shape[1:4]}, {b.name} has {b.m.shape[1:4]}")
    if not np.allclose(a.cell_size, b.cell_size, rtol=1e-6):
        raise ValueError(f"cell size mismatch: {a.name} has {a.cell_size} m, {b.name} has {b.cell_size} m")


def resample(times: np.ndarray, values: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values`` (T, ...) from ``times`` onto ``new_times`` (T', ...)."""
    times = np.asarray(times, dtype=np.float64)
    new_times = np.asarray(new_times, dtype=np.float64)
    if len(times) == 1:
        return np.repeat(values[:1], len(new_times), axis=0)
    idx = np.clip(np.searchsorted(times, new_times, side="right") - 1, 0, len(times) - 2)
    span = times[idx + 1] - times[idx]
    w = np.where(span > 0, (new_times - times[idx]) / np.where(span > 0, span, 1.0), 0.0)
    w = w.reshape((-1,) + (1,) * (values.ndim - 1))
    return (1 - w) * values[idx] + w * values[idx + 1]


def align(t_a: np.ndarray, v_a: np.ndarray, t_b: np.ndarray, v_b: np.ndarray, *, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Put two time series on common times: the denser is interpolated onto the sparser.

    Returns ``(times, a_values, b_values, note)``; only times inside both ranges are kept.
    """
    tol = 1e-6 * max(_spacing(t_a), _spacing(t_b), 1e-15)
    if len(t_a) == len(t_b) and np.allclose(t_a, t_b, rtol=0, atol=tol):
        return t_a, v_a, v_b, ""
    lo, hi = max(t_a[0], t_b[0]) - tol, min(t_a[-1], t_b[-1]) + tol
    dense_a = _spacing(t_a) < _spacing(t_b)
    base_t = t_b if dense_a else t_a
    keep = (base_t >= lo) & (base_t <= hi)
    if not np.any(keep):
        raise ValueError(
            f"{what}: no common time range ({t_a[0]:.4g}..{t_a[-1]:.4g} s against {t_b[0]:.4g}..{t_b[-1]:.4g} s)"
        )
    times = base_t[keep]
    if dense_a:
        return times, resample(t_a, v_a, times), v_b[keep], "A interpolated onto B's times"
    return times, v_a[keep], resample(t_b, v_b, times), "B interpolated onto A's times"


def _spacing(times: np.ndarray) -> float:
    return float(np.median(np.diff(times))) if len(times) > 1 else math.inf


def compare_deterministic(a: Trajectory, b: Trajectory, tol: Tolerances = Tolerances()) -> Comparison:
    """T = 0 comparison: per-frame RMS of |Δm| and max deviation of ⟨m⟩(t) (module docstring)."""
    check_compatible(a, b)
    comps = common_components(a, b)
    idx = [AXES.index(c) for c in comps]
    checks = []
    times, fa, fb, note = align(a.times, a.m[..., idx], b.times, b.m[..., idx], what="frames")
    diff = fa - fb
    rms = np.sqrt(np.mean(np.sum(diff**2, axis=-1), axis=(1, 2, 3)))  # (T,)
    worst = int(np.argmax(rms))
    checks.append(Check(
        f"max per-frame RMS |Δm| ({comps})", float(rms[worst]), tol.tol_rms, bool(rms[worst] <= tol.tol_rms),
        f"{len(times)} frames, worst at t = {times[worst]:.4g} s; mean {rms.mean():.3g}" + (f"; {note}" if note else ""),
    ))
    mt, ma, mb, note = align(a.mean_times, a.mean_m[:, idx], b.mean_times, b.mean_m[:, idx], what="<m>(t)")
    dev = np.abs(ma - mb)
    for j, c in enumerate(comps):
        k = int(np.argmax(dev[:, j]))
        checks.append(Check(
            f"max |Δ<m{c}>(t)|", float(dev[k, j]), tol.tol_mean, bool(dev[k, j] <= tol.tol_mean),
            f"{len(mt)} times, worst at t = {mt[k]:.4g} s; RMS {np.sqrt(np.mean(dev[:, j] ** 2)):.3g}" + (f"; {note}" if note else ""),
        ))
    return Comparison("deterministic", tuple(checks))


def autocorrelation_time(series: np.ndarray, dt: float) -> float:
    """Autocorrelation time (s) of a 1-D series sampled every ``dt`` s: the lag at which the
    normalised autocorrelation first falls to 1/e (linear interpolation between lags).

    For an exponentially correlated process (Ornstein-Uhlenbeck, the small-fluctuation
    limit of thermal LLG) this is its correlation time; it has a smaller sampling spread
    than the integrated time on short movies. Returns 0 for a constant series and the
    series' duration when the autocorrelation never falls to 1/e (a lower bound).
    """
    x = np.asarray(series, dtype=np.float64)
    x = x - x.mean()
    var = float(np.dot(x, x))
    if var == 0 or len(x) < 3:
        return 0.0
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n] / var
    below = np.nonzero(acf < math.exp(-1))[0]
    if not len(below):
        return dt * (n - 1)
    k = int(below[0])
    frac = (acf[k - 1] - math.exp(-1)) / (acf[k - 1] - acf[k])
    return dt * (k - 1 + frac)


def compare_thermal(a: Trajectory, b: Trajectory, tol: Tolerances = Tolerances()) -> Comparison:
    """T > 0 comparison of per-cell statistics and ⟨m⟩ autocorrelation times (module docstring)."""
    from scipy.stats import ks_2samp

    check_compatible(a, b)
    comps = common_components(a, b)
    for t in (a, b):
        if len(t.times) < 3:
            raise ValueError(f"{t.name}: {len(t.times)} frames are too few for temporal statistics (need >= 3)")
    checks = []
    for c in comps:
        i = AXES.index(c)
        for stat, fn in (("mean", np.mean), ("std", np.std)):
            map_a = fn(a.m[..., i], axis=0).ravel()
            map_b = fn(b.m[..., i], axis=0).ravel()
            result = ks_2samp(map_a, map_b)
            checks.append(Check(
                f"KS p, per-cell {stat} m{c}", float(result.pvalue), tol.ks_alpha, bool(result.pvalue >= tol.ks_alpha),
                f"D = {result.statistic:.3g}, {map_a.size} cells",
            ))
            avg_a, avg_b = float(map_a.mean()), float(map_b.mean())
            rel = abs(avg_a - avg_b) / max(abs(avg_a), abs(avg_b), tol.rel_floor)
            checks.append(Check(
                f"rel. diff of avg {stat} m{c}", rel, tol.tol_rel, bool(rel <= tol.tol_rel),
                f"A {avg_a:.4g}, B {avg_b:.4g}",
            ))
    for c in comps:
        i = AXES.index(c)
        taus = []
        for t in (a, b):
            series, times = t.mean_m[:, i], t.mean_times
            dt = _spacing(times)
            if not np.allclose(np.diff(times), dt, rtol=0.05, atol=0):
                # Adaptive-step tables are not evenly spaced; resample onto an even grid.
                even = np.linspace(times[0], times[-1], len(times))
                series, dt = resample(times, series, even), float(even[1] - even[0])
            taus.append(autocorrelation_time(series, dt))
        rel = abs(taus[0] - taus[1]) / max(taus[0], taus[1], 1e-300)
        checks.append(Check(
            f"rel. diff of <m{c}> autocorr. time", rel, tol.tol_tau, bool(rel <= tol.tol_tau),
            f"A {taus[0]:.3g} s, B {taus[1]:.3g} s",
        ))
    return Comparison("thermal", tuple(checks))


def compare(a: Trajectory, b: Trajectory, tol: Tolerances = Tolerances(), mode: str = "auto") -> Comparison:
    """Dispatch on ``mode``: ``"deterministic"``, ``"thermal"`` or ``"auto"`` (thermal if
    either source reports a temperature > 0)."""
    if mode == "auto":
        temps = [t.temperature for t in (a, b) if t.temperature is not None]
        mode = "thermal" if any(t > 0 for t in temps) else "deterministic"
    if mode == "deterministic":
        return compare_deterministic(a, b, tol)
    if mode == "thermal":
        return compare_thermal(a, b, tol)
    raise ValueError(f"unknown comparison mode {mode!r} (use auto, deterministic or thermal)")


def as_dict(result: Comparison) -> dict[str, Any]:
    return {"mode": result.mode, "passed": result.passed, "checks": [dataclasses.asdict(c) for c in result.checks]}
