"""Cross-validation of magnetisation trajectories (jaxmag against MuMax3, or any pair).

Sources come from ``jaxmag.io.trajectory`` (``load_source``: a dataset run ``data.h5#run=3``,
an ``export-ovf`` folder or a MuMax3 output folder, each a ``Trajectory``; re-exported here
with ``read_dataset_run`` and ``dataset_frames``). Two regimes, because thermal runs cannot
match trajectory by trajectory:

* deterministic (T = 0, ``compare_deterministic``, one run per side): the denser series is
  interpolated linearly in time onto the sparser one's times (within the common time range).
  Reported: per-frame RMS over cells of |Δm| (pass: max over frames ≤ ``tol_rms``) and the max
  over time and components of |Δ⟨m⟩| (pass: ≤ ``tol_mean``).
* thermal (T > 0, ``jaxmag.compare_thermal``, one or more runs per side): statistics with
  block-bootstrap error bars and a verdict "consistent within k σ" whose overall false-alarm
  rate is ``alpha`` (Šidák over the statistics; measured in docs/mumax3.md).

``compare(a, b, ...)`` dispatches (``mode="auto"``: thermal if a source states T > 0) and
returns a ``Comparison`` with a text ``table()`` and a JSON-safe ``as_dict``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from jaxmag.compare_thermal import Statistic, ThermalOptions, compare_thermal_runs
from jaxmag.io.trajectory import (  # noqa: F401  (re-exported: jaxmag.cli.export_ovf and users import them from here)
    AXES,
    DatasetRun,
    Trajectory,
    dataset_frames,
    load_source,
    read_dataset_run,
    trajectory_from_frames,
)


@dataclasses.dataclass(frozen=True)
class Tolerances:
    """Pass/fail limits of the deterministic (T = 0) comparison.

    tol_rms: max over frames of the per-frame RMS over cells of |Δm|.
    tol_mean: max |Δ⟨m_i⟩| over time and components.
    """

    tol_rms: float = 0.01
    tol_mean: float = 0.01


@dataclasses.dataclass(frozen=True)
class Check:
    """One row of a deterministic report: a quantity, its value, the limit and whether it passed."""

    name: str
    value: float
    limit: float
    passed: bool
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``mode`` "deterministic" (``checks``) or "thermal" (``statistics``, limit ``k``)."""

    mode: str
    checks: tuple[Check, ...] = ()
    statistics: tuple[Statistic, ...] = ()
    k: float = math.nan
    alpha: float = math.nan
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and all(s.passed for s in self.statistics)

    def table(self) -> str:
        """The report as an aligned text table."""
        if self.mode == "thermal":
            rows = [("statistic", "A", "B", "z", "result")]
            for s in self.statistics:
                rows.append((s.name + (f" ({s.unit})" if s.unit else ""), f"{s.a:.6g} ± {s.err_a:.2g}", f"{s.b:.6g} ± {s.err_b:.2g}",
                             f"{s.z:+.2f}", "ok" if s.passed else "DIFFERENT"))
            verdict = (f"consistent within {self.k:.2f} sigma" if self.passed else
                       f"INCONSISTENT: {sum(not s.passed for s in self.statistics)} of {len(self.statistics)} statistics beyond {self.k:.2f} sigma")
        else:
            rows = [("check", "value", "limit", "result", "note")]
            for c in self.checks:
                rows.append((c.name, f"{c.value:.4g}", f"<= {c.limit:.4g}", "pass" if c.passed else "FAIL", c.note))
            verdict = "PASS" if self.passed else "FAIL"
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        notes = "".join(f"\nnote: {n}" for n in self.notes)
        return f"mode: {self.mode}\n" + "\n".join(lines) + notes + f"\nresult: {verdict}"


def common_components(a: Trajectory, b: Trajectory) -> str:
    comps = "".join(c for c in AXES if c in a.components and c in b.components)
    if not comps:
        raise ValueError(f"{a.name} stores {a.components!r} and {b.name} stores {b.components!r}: no component in common")
    return comps


def check_compatible(a: Trajectory, b: Trajectory) -> None:
    """Same grid and cell size (and temperature where both state one)."""
    if a.m.shape[1:] != b.m.shape[1:]:
        raise ValueError(f"grid mismatch: {a.name} has (nz, ny, nx) = {a.m.shape[1:4]}, {b.name} has {b.m.shape[1:4]}")
    if not np.allclose(a.cell_size, b.cell_size, rtol=1e-6, atol=0):
        raise ValueError(f"cell size mismatch: {a.name} has {a.cell_size} m, {b.name} has {b.cell_size} m")
    if a.temperature is not None and b.temperature is not None and not math.isclose(a.temperature, b.temperature, abs_tol=1e-9):
        raise ValueError(f"temperature mismatch: {a.name} is at {a.temperature:g} K, {b.name} at {b.temperature:g} K")


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
    return Comparison("deterministic", checks=tuple(checks))


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


def _runs(x: Trajectory | Sequence[Trajectory]) -> list[Trajectory]:
    return [x] if isinstance(x, Trajectory) else list(x)


def compare(a: Trajectory | Sequence[Trajectory], b: Trajectory | Sequence[Trajectory], tol: Tolerances = Tolerances(),
            mode: str = "auto", thermal: ThermalOptions = ThermalOptions()) -> Comparison:
    """Compare side ``a`` with side ``b`` (a ``Trajectory`` or a list of runs of one setup each).

    ``mode``: ``"deterministic"``, ``"thermal"`` or ``"auto"`` (thermal if any source reports
    a temperature > 0)."""
    a_runs, b_runs = _runs(a), _runs(b)
    if not a_runs or not b_runs:
        raise ValueError("each side of a comparison needs at least one run")
    if mode == "auto":
        temps = [t.temperature for t in a_runs + b_runs if t.temperature is not None]
        mode = "thermal" if any(t > 0 for t in temps) else "deterministic"
    if mode == "deterministic":
        if len(a_runs) != 1 or len(b_runs) != 1:
            raise ValueError(f"a deterministic (T = 0) comparison takes one run per side, got {len(a_runs)} and {len(b_runs)}; use --mode thermal for several seeds")
        return compare_deterministic(a_runs[0], b_runs[0], tol)
    if mode == "thermal":
        result = compare_thermal_runs(a_runs, b_runs, thermal)
        return Comparison("thermal", statistics=result.statistics, k=result.k, alpha=result.alpha, notes=result.notes)
    raise ValueError(f"unknown comparison mode {mode!r} (use auto, deterministic or thermal)")


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def as_dict(result: Comparison) -> dict[str, Any]:
    """The result as plain data that ``json.dumps(..., allow_nan=False)`` accepts (non-finite
    numbers become ``null`` / ``"inf"``)."""
    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {k: _json_number(v) for k, v in d.items()}

    out: dict[str, Any] = {"mode": result.mode, "passed": result.passed}
    if result.mode == "thermal":
        out.update(k=_json_number(result.k), alpha=_json_number(result.alpha),
                   statistics=[clean(dataclasses.asdict(s)) for s in result.statistics])
    else:
        out["checks"] = [clean(dataclasses.asdict(c)) for c in result.checks]
    out["notes"] = list(result.notes)
    return out
