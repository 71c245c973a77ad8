"""A user's movie's noise, read on the noise registry and calibrated on clean films of its regime.

``estimate_noise(movies, films, components)`` is ``detect``'s noise stage: per component, every
kind with an estimator (``jaxmag.noise.NOISE_MODELS``) reads the movie, then the level that gives
that reading on the clean films plus noise (``calibrated_level``: the estimator's floor, signal
that is rough in space and time, is not simply added to the noise); the kind is told from how
the noise reads on m_x and m_z (``_choose_kind``: on the component along the film's magnetisation
and the one across it, whichever the film's orientation); each component gets a ``KIND:LEVEL``
condition to train with, ``"clean"`` when the level is negligible.

Kinds are iterated, never named: the *reference* kind is the first registered one whose noise
does not follow the signal and that has an estimator (Gaussian today), the *signal-dependent*
one the first whose noise follows the signal (speckle ``x + x n`` today).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.io.movie import Movie
from jaxmag.noise import (NOISE_MODELS, NoiseSpec, apply_noise, estimate_noise_variance, estimate_noise_variances,
                          noise_model)

CALIBRATION_FILMS = 4  # clean films of the regime the noise estimate is calibrated on
WEAKER_ON_Z = 0.3  # signal-dependent noise: the weak component (m_z in-plane, m_x perpendicular) reads below this share


def reference_kind() -> str:
    """The first registered kind whose noise does not follow the signal and that has an estimator:
    what a clean run's noise, or a single component's, is read as."""
    for kind, model in NOISE_MODELS.items():
        if model.estimator is not None and not model.signal_dependent:
            return kind
    raise ValueError("no registered noise kind is signal-independent with an estimator: the noise cannot be read")


def signal_dependent_kind() -> str | None:
    """The first registered kind with an estimator whose noise follows the signal, or None."""
    return next((k for k, m in NOISE_MODELS.items() if m.estimator is not None and m.signal_dependent), None)


def calibrated_level(target: float, clean: np.ndarray, kind: str, key: jax.Array) -> float:
    """The level ``v`` of ``kind`` noise for which the estimator reads ``target`` on ``clean`` films + noise(v).

    The estimator's reading grows monotonically with the noise but is not floor + v: the clean
    signal's residuals are heavy-tailed (edges, fast modes), so their share of the robust (MAD)
    moment changes with the noise. Bisection in log10(v) over the estimator's ``bracket``
    ([1e-6, 10] for a variance), 14 steps (0.1 % in v); 0 when even the weakest noise reads
    above ``target``. At most ``CALIBRATION_FILMS`` films are used."""
    estimator = noise_model(kind).require_estimator()
    x = jnp.asarray(clean[:CALIBRATION_FILMS])

    def reading(v):
        return estimate_noise_variance(apply_noise(x, NoiseSpec(kind, float(v)), key), None, kind)

    weak, strong = (math.log10(b) for b in estimator.bracket)
    lo, hi = min(weak, strong), max(weak, strong)
    # the reading grows with the level whatever the kind; the weakest noise is at the bracket's first end
    weakest = reading(10 ** weak)
    if not (weakest < target if estimator.grows_with_level else weakest > target):
        return 0.0
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if reading(10 ** mid) < target else (lo, mid)
    return float(10 ** (0.5 * (lo + hi)))


def condition(kind: str, level: float) -> str:
    """``"KIND:LEVEL"`` to two significant digits, or ``"clean"`` when the level is negligible (or NaN)."""
    if noise_model(kind).require_estimator().is_negligible(level):
        return "clean"
    return f"{kind}:{float(f'{level:.2g}'):g}"


def strongest(specs: Sequence[NoiseSpec]) -> NoiseSpec:
    """The condition with the strongest noise (clean is the weakest); one kind is expected."""
    def strength(spec: NoiseSpec) -> tuple[bool, float]:
        if spec.kind == "clean":
            return False, 0.0
        estimator = NOISE_MODELS[spec.kind].estimator
        grows = estimator is None or estimator.grows_with_level
        return True, spec.level if grows else -spec.level

    return max(specs, key=strength)


def _component_record(movie: np.ndarray, clean: np.ndarray | None, key: jax.Array) -> dict:
    """Raw readings, floor and calibrated level per kind of one component (floor 0 without films)."""
    raw = estimate_noise_variances(movie)
    rec: dict = {"raw": raw}
    if clean is None:  # no simulated films of this component: floor unknown
        rec["floor"] = {kind: 0.0 for kind in raw}
        rec.update(raw)
        return rec
    rec["floor"] = estimate_noise_variances(clean)
    for kind, value in raw.items():
        rec[kind] = calibrated_level(value, clean, kind, key) if math.isfinite(value) else math.nan
    return rec


def strong_and_weak(power: Mapping[str, float]) -> tuple[str, str]:
    """``(strong, weak)`` of m_x and m_z: the component with the larger mean square ``power`` (along the
    film's magnetisation: m_x in-plane, m_z perpendicular) and the other; m_x first on a tie."""
    return ("x", "z") if power.get("x", 1.0) >= power.get("z", 0.0) else ("z", "x")


def _choose_kind(per: Mapping[str, dict], power: Mapping[str, float] | None = None) -> tuple[str, str]:
    """``(kind, why)``: noise that reads alike on m_x and m_z does not follow the signal; noise that
    reads much weaker on the weak component (``strong_and_weak`` of the mean squares ``power``: m_z
    of an in-plane film, m_x of a perpendicular one, where the component is ~0) does. One component
    cannot tell them apart."""
    ref, dependent = reference_kind(), signal_dependent_kind()
    name, model = ref.capitalize(), noise_model(ref)
    if "x" not in per or "z" not in per:
        other = f"{dependent} from {name} noise" if dependent else "the noise kinds apart"
        return ref, f"{name} assumed: one component (m_{next(iter(per))}) cannot tell {other}"
    s, w = strong_and_weak(power or {})
    gs, gw = per[s][ref], per[w][ref]
    negligible = model.require_estimator().is_negligible(gs)
    if dependent is not None and not negligible and gw < WEAKER_ON_Z * gs:
        return dependent, (f"m_{w} reads {gw / gs:.2f} of m_{s}'s {name} {model.level_name}: {dependent} "
                           f"({NOISE_MODELS[dependent].formula} is weak where m_{w} ~ 0)")
    return ref, f"{name}: the noise reads alike on m_x and m_z" + ("" if negligible else f" (ratio {w}/{s} {gw / gs:.2f})")


def estimate_noise(movies: Mapping[str, Movie], films: np.ndarray, components: str, seed: int = 0) -> dict:
    """The movie's noise, calibrated on clean films of its regime (module docstring).

    ``movies``: component letter -> ``Movie``; ``films (N, C, T, ny, nx)``: clean films whose
    components are ``components``. Returns ``per_component`` (``raw`` and ``floor`` readings and
    the calibrated level, per kind with an estimator), ``kind``, ``why`` and, per component, the
    ``conditions`` to train with. A signal-dependent kind takes the strong component's level for
    every component (``strong_and_weak``: m_x in-plane, m_z perpendicular, ~1, carries it)."""
    key = jax.random.key(seed + 5)
    per = {c: _component_record(mv.data, films[:, components.index(c)] if c in components else None, key)
           for c, mv in movies.items()}
    # the mean square of each component: of the clean films where simulated, else of the movie
    power = {c: float(np.mean(np.square(films[:, components.index(c)] if c in components else mv.data)))
             for c, mv in movies.items()}
    kind, why = _choose_kind(per, power)
    if NOISE_MODELS[kind].signal_dependent:
        strong = strong_and_weak(power)[0] if {"x", "z"} <= set(per) else "x"
        conditions = {c: condition(kind, per[strong][kind]) for c in per}
    else:
        conditions = {c: condition(kind, per[c][kind]) for c in per}
    return {"per_component": per, "kind": kind, "why": why, "conditions": conditions}
