"""Fit material parameters to a movie by differentiable thermal simulation.

Contract
--------
The forward model is jaxmag's stochastic solver itself (``drivers.movie_simulator``, a
``lax.scan`` over the Heun steps with the counter-based thermal field of ``jaxmag.rng``); the
movie enters only through its summary statistics (``jaxmag.fit_stats``: covariances between
different pixels, the region means and the region-mean autocovariances, which white measurement
noise leaves unbiased), computed the same way on the movie and on simulated films.

* ``film_model(grid, spec, base, m0, names, weights)``: ``model(theta, key) -> (S,)`` statistics
  of the defect-free film with ``base.p · exp(θ_p)`` for each fitted ``p`` in ``names`` (of
  ``PARAMETERS``), over the pixels ``weights``; differentiable in θ.
* ``defect_model(grid, spec, base, m0, labels, num_regions)``: ``model(theta, key) -> (R·S,)``
  statistics of each region of ``labels`` where A_ex and K_u are multiplied by ``exp(θ_k)``.
* ``pathwise_jacobian(model, theta, keys)``: the forward-mode derivative (``jax.jacfwd``, one
  tangent per parameter) of each film's statistics at fixed thermal keys (common random numbers).
* ``regression_fit(model, observed, theta0, ...) -> FitResult``: Gauss-Newton on the ensemble
  slope of a local linear response surface over forward-simulated films (the derivative-free
  path, used by default: one film's pathwise derivative is exact but, over a movie of many
  precession periods, scattered by the phase of the slow uniform mode, docs/fit.md).
* ``fit_film`` / ``fit_defects``: the two levels, from a movie array.

Uncertainty: the sandwich covariance of the weighted least-squares estimate,
Cov θ = (1 + 1/n) · H⁻¹ Jᵀ W Σ W J H⁻¹ with H = Jᵀ W J, W = diag(1/σ²) from the residual spread
of each statistic about the response surface, Σ the statistics' covariance over ``num_check``
films simulated at the estimate with independent keys (plus the movie's residual), and 1/n for
the finite number n of films in the simulated mean. Identifiability: ``singular_values`` of
W^½ J and the ``correlation`` matrix of Cov θ; a parameter whose relative standard deviation
exceeds ``WEAK_REL_STD`` is reported as weakly identified.

Warnings (named, in ``FitResult.warnings``): ``fit did not converge: statistic X outside the
films' spread`` when a statistic of the movie lies more than ``Z_MAX`` standard deviations from
the films at the estimate (no parameter set of the family reproduces the movie), ``fit did not
converge: ...`` when the steps did not settle within ``max_iter`` iterations, and ``weakly
identified`` for parameters the movie does not pin down.

Units: SI (A_ex J/m, K_u J/m³, α dimensionless); θ is the natural log of the ratio to ``base``.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.drivers import movie_simulator
from jaxmag.fit_steps import refined_spec, refinement
from jaxmag.fit_stats import DEFAULT_OFFSETS, region_statistics, region_weights, statistic_names
from jaxmag.grid import Grid
from jaxmag.material import Material
from jaxmag.simulate import MovieSpec

PARAMETERS = ("K_u", "A_ex", "alpha")  # what the film fit can fit, names of Material fields
DEFECT_OFFSETS: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 1), (2, 1))  # pairs inside a small blob
Z_MAX = 6.0  # a statistic further than this many film standard deviations is outside the family
WEAK_REL_STD = 0.2  # relative standard deviation above which a parameter is "weakly identified"
MAX_STEP = 0.7  # largest Gauss-Newton step per log-parameter (a factor of 2), a trust region

Model = Callable[[jax.Array, jax.Array], jax.Array]


class FitError(ValueError):
    """The fit cannot be run on this input (parameter names, shapes, too few films)."""


def check_names(names: Sequence[str]) -> tuple[str, ...]:
    """The fitted parameter names, validated against ``PARAMETERS`` (order kept, no repeats)."""
    names = tuple(n.strip() for n in names)
    bad = [n for n in names if n not in PARAMETERS]
    if bad or not names or len(set(names)) != len(names):
        raise FitError(f"--fit must list distinct parameters of {', '.join(PARAMETERS)} (e.g. K_u,A_ex,alpha), "
                       f"got {','.join(names) or 'nothing'}")
    return names


def scaled_material(base: Material, names: Sequence[str], theta: jax.Array) -> Material:
    """``base`` with each map ``p`` of ``names`` multiplied by ``exp(θ_p)`` (θ in natural-log units)."""
    return base.replace(**{p: getattr(base, p) * jnp.exp(theta[i]) for i, p in enumerate(names)})


def simulator(grid: Grid, spec: MovieSpec, components: str) -> Callable[[Material, jax.Array, jax.Array], jax.Array]:
    """``(material, m0, key) -> (F, ny, nx, C)`` frames of the one-layer film ``spec`` describes.

    The CPU batch chunking of ``movie_simulator`` is off: it does not compose with ``jax.jacfwd``."""
    sim = movie_simulator(grid, dt=spec.dt, burn_in_steps=spec.burn_in_steps, steps_per_frame=spec.steps_per_frame,
                          num_frames=spec.num_frames, components=components, terms=spec.terms, solver=spec.solver,
                          exposure_steps=spec.exposure.exposure_steps, cpu_chunk_cells=None)
    return lambda material, m0, key: sim(material, m0, key)[:, 0]


def film_model(grid: Grid, spec: MovieSpec, base: Material, m0: jax.Array, names: Sequence[str], weights: jax.Array,
               *, components: str = "xz", offsets=DEFAULT_OFFSETS, mean_lags: Sequence[int] = ()) -> Model:
    """``model(theta, key) -> (S,)``: the statistics (``fit_stats.film_statistics``) over ``weights``
    (ny, nx) of one film of ``base`` scaled by ``exp(θ)`` on ``names`` (module docstring)."""
    names = check_names(names)
    sim = simulator(grid, spec, components)
    w = jnp.asarray(weights, base.Ms.dtype)[None]

    def model(theta: jax.Array, key: jax.Array) -> jax.Array:
        frames = sim(scaled_material(base, names, theta), m0, key)
        return region_statistics(frames, w, offsets, periodic=grid.periodic, mean_lags=tuple(mean_lags))[0]

    return model


def defect_model(grid: Grid, spec: MovieSpec, base: Material, m0: jax.Array, labels: np.ndarray, num_regions: int,
                 *, components: str = "xz", offsets=DEFECT_OFFSETS, mean_lags: Sequence[int] = ()) -> Model:
    """``model(theta, key) -> (R · S,)``: the statistics of each region k = 1..R of ``labels`` (ny, nx)
    over its own pixels, in a film of ``base`` where A_ex and K_u are multiplied by ``exp(θ_k)``
    inside region k (the blobs of ``jaxmag.defects`` scale both together)."""
    labels = np.asarray(labels)
    if labels.shape != (grid.ny, grid.nx):
        raise FitError(f"the defect labels have shape {labels.shape}, the film {grid.ny} x {grid.nx}")
    if num_regions < 1:
        raise FitError("there are no defect regions to fit")
    sim = simulator(grid, spec, components)
    w = region_weights(jnp.asarray(labels), num_regions, base.Ms.dtype)  # (R, ny, nx)

    def model(theta: jax.Array, key: jax.Array) -> jax.Array:
        factor = jnp.exp(jnp.einsum("r,ryx->yx", theta, w))[None]  # 1 outside the regions
        material = base.replace(A_ex=base.A_ex * factor, K_u=base.K_u * factor)
        frames = sim(material, m0, key)
        return region_statistics(frames, w, offsets, periodic=grid.periodic, mean_lags=tuple(mean_lags)).reshape(-1)

    return model


def observed_statistics(movie: np.ndarray, weights: np.ndarray, *, periodic: bool, offsets=DEFAULT_OFFSETS,
                        mean_lags: Sequence[int] = ()) -> np.ndarray:
    """The statistics of a movie (F, ny, nx, C) over ``weights`` (R, ny, nx): (R · S,), float64."""
    m = jnp.asarray(np.asarray(movie, np.float64 if jax.config.jax_enable_x64 else np.float32))
    s = region_statistics(m, jnp.asarray(weights, m.dtype), offsets, periodic=periodic, mean_lags=tuple(mean_lags))
    return np.asarray(s, np.float64).reshape(-1)


def background_weights(movie: np.ndarray, *, labels: np.ndarray | None = None, z_max: float = 4.0,
                       grow: int = 1) -> np.ndarray:
    """(ny, nx) 0/1 weights of the background: pixels of ``labels`` > 0 (when given) or pixels whose
    noise-free local fluctuation (the lag-0 covariance with the right and lower neighbours, per
    pixel and component) is a robust outlier (|z| > ``z_max``, median/MAD), grown by ``grow``
    pixels, are left out, so that defects do not bias the film's statistics."""
    m = np.asarray(movie, np.float64)  # (F, ny, nx, C)
    if labels is not None:
        out = np.asarray(labels) > 0
    else:
        d = m - m.mean(axis=0)
        local = 0.5 * ((d * np.roll(d, -1, axis=2)).mean(0) + (d * np.roll(d, -1, axis=1)).mean(0))  # (ny, nx, C)
        mean = m.mean(axis=0)
        out = np.zeros(m.shape[1:3], bool)
        for field in (local, mean):
            for c in range(m.shape[-1]):
                x = field[..., c]
                med = np.median(x)
                mad = 1.4826 * np.median(np.abs(x - med))
                if mad > 0:
                    out |= np.abs(x - med) > z_max * mad
    for _ in range(grow):
        out = out | np.roll(out, 1, 0) | np.roll(out, -1, 0) | np.roll(out, 1, 1) | np.roll(out, -1, 1)
    weights = (~out).astype(np.float64)
    if weights.sum() < 0.25 * weights.size:
        return np.ones_like(weights)  # most pixels flagged: no clear background, use them all
    return weights


@dataclasses.dataclass(frozen=True)
class FitResult:
    """A fit's outcome. ``theta`` natural-log ratios to the reference values ``reference``;
    ``values = reference · exp(theta)``; ``std_log`` the standard deviation of θ (≈ the relative
    standard deviation of the value); statistics as lists in the order of ``stat_names``."""

    names: tuple[str, ...]
    reference: tuple[float, ...]
    theta: tuple[float, ...]
    std_log: tuple[float, ...]
    correlation: list[list[float]]
    singular_values: tuple[float, ...]
    stat_names: tuple[str, ...]
    observed: list[float]
    before: list[float]
    after: list[float]
    spread: list[float]
    z_after: list[float]
    chi2_before: float
    chi2_after: float
    converged: bool
    warnings: tuple[str, ...]
    history: list[dict]
    num_films: int
    film_equivalents: float
    wall_s: float
    refinements: tuple[int, ...] = (1,)  # the step divisions k the films used (dt / k)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(r * math.exp(t) for r, t in zip(self.reference, self.theta))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["values"] = list(self.values)
        d["rel_std"] = [math.expm1(s) for s in self.std_log]
        return d


def pathwise_jacobian(model: Model, theta: jax.Array, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(s, J)``: each film's statistics (B, S) and their forward-mode derivative (B, S, P) with
    respect to θ at fixed keys (common random numbers), jitted. The derivative of one film's
    statistics is exact (it equals CRN finite differences, tests/test_fit.py), but over a movie of
    many precession periods it is dominated by the phase of the slow, anisotropy-bound uniform mode
    and scatters from film to film by several times the ensemble slope (docs/fit.md): the fit
    therefore uses ``regression_fit``."""
    return jax.jit(jax.vmap(lambda th, k: (model(th, k), jax.jacfwd(model)(th, k)), in_axes=(None, 0)))(theta, keys)


def sign_design(P: int, n: int, iteration: int) -> np.ndarray:
    """(n, P) ±1 perturbation signs with orthogonal columns: rows of a Sylvester-Hadamard matrix
    (its first column dropped), cycled, negated on odd iterations (a fold-over across iterations)."""
    size = 1
    while size < P + 1:
        size *= 2
    H = np.array([[1.0]])
    while H.shape[0] < size:
        H = np.block([[H, H], [H, -H]])
    rows = H[:, 1:P + 1]
    out = np.stack([rows[(iteration * n + i) % size] * (-1.0 if (i // size) % 2 else 1.0) for i in range(n)])
    return -out if iteration % 2 else out


def _local_linear(thetas: np.ndarray, stats: np.ndarray, center: np.ndarray, width: float):
    """Weighted least squares of stats ≈ a + J (θ − center) over films at ``thetas`` (n, P), weights
    exp(−|θ − center|² / 2 width²): ``(a (S,), J (S, P), residual variance (S,), dof)``."""
    d = thetas - center
    w = np.exp(-0.5 * np.sum(d * d, axis=1) / width ** 2)
    X = np.concatenate([np.ones((len(d), 1)), d], axis=1)
    sw = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(X * sw, stats * sw, rcond=None)
    resid = (stats - X @ coef) * sw
    dof = max(float(np.sum(w)) - X.shape[1], 1.0)
    return coef[0], coef[1:].T, np.sum(resid * resid, axis=0) / dof, dof


def regression_fit(model: Model, observed: np.ndarray, theta0: Sequence[float], *, names: Sequence[str],
                   reference: Sequence[float], stat_names: Sequence[str], films_per_step: int = 8,
                   num_check: int = 4, max_iter: int = 3, seed: int = 0, step: float = 0.3,
                   step_tol: float = 0.03, batch: int = 4, bounds: tuple[np.ndarray, np.ndarray] | None = None,
                   refine: Callable[[np.ndarray], int] | None = None,
                   callback: Callable[[int, dict], None] | None = None) -> FitResult:
    """Gauss-Newton on a local linear response surface of the mean statistics (module docstring).

    Each iteration simulates ``films_per_step`` films (forward only, in batches of ``batch``): two at
    the current θ and the rest at θ + ``step`` · ε with random signs ε ∈ {±1}^P, each film its own
    thermal key (``sign_design``). A weighted regression over all films so far, centred on θ, gives the mean
    statistics a, their slope J (the ensemble derivative, which the phases of the slow modes do not
    scramble as they do a single film's pathwise derivative) and each statistic's spread σ (the
    residuals), hence W = 1/σ². The step solves min |W^½ (observed − a − J Δ)|², clipped to
    ``MAX_STEP``; the fit stops when every step is below ``step_tol`` or half the parameter's
    standard deviation, or after ``max_iter`` iterations, and ``num_check`` films at the estimate
    give the spread, the uncertainty and the out-of-family test. ``bounds``: (lower, upper) on θ
    (e.g. the largest values the time step resolves, ``stable_bounds``); a design film or step
    beyond them is clipped, and an estimate on a bound is named in the warnings. ``refine``: with it,
    ``model`` is a factory ``model(k) -> Model`` of films at the step dt / k, and ``refine(thetas)``
    the k that the stiffest of a batch of θ needs (films are simulated at the finest step their
    batch needs: one compilation per k)."""
    names = tuple(names)
    observed = np.asarray(observed, np.float64)
    P = len(names)
    lo, hi = (np.full(P, -np.inf), np.full(P, np.inf)) if bounds is None else (np.asarray(bounds[0], float),
                                                                            np.asarray(bounds[1], float))
    if films_per_step < P + 2 or num_check < 2:
        raise FitError(f"the fit needs at least P + 2 = {P + 2} films per step and 2 check films, "
                       f"got {films_per_step} and {num_check}")
    if not np.all(np.isfinite(observed)):
        raise FitError("the movie's statistics are not finite (NaN or inf in the movie?)")
    start = time.perf_counter()
    dtype = jnp.zeros(()).dtype
    compiled: dict[int, Callable] = {}

    def batched(thetas: jax.Array, keys: jax.Array, k: int) -> jax.Array:
        if k not in compiled:
            compiled[k] = jax.jit(jax.vmap(model(k) if refine is not None else model))
        return compiled[k](thetas, keys)

    steps_used: set[int] = set()
    key_base = jax.random.key(seed)
    counter = [0]

    def simulate(thetas: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(thetas), batch):
            chunk = thetas[i:i + batch]
            pad = batch - len(chunk)  # one compiled batch size: pad with copies, drop them
            full = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
            keys = jax.vmap(lambda j: jax.random.fold_in(key_base, j))(jnp.arange(counter[0], counter[0] + batch))
            counter[0] += batch
            k = 1 if refine is None else int(refine(chunk))
            steps_used.add(k)
            out.append(np.asarray(batched(jnp.asarray(full, dtype), keys, k), np.float64)[:len(chunk)])
        return np.concatenate(out)

    theta = np.asarray(theta0, np.float64)
    thetas = np.zeros((0, P))
    stats = np.zeros((0, len(observed)))
    history: list[dict] = []
    converged = False
    before = chi2_before = None
    width = 2.0 * step
    for it in range(max_iter):
        eps = sign_design(P, films_per_step - 2, it)
        design = np.clip(np.concatenate([np.repeat(theta[None], 2, axis=0), theta + step * eps]), lo, hi)
        thetas = np.concatenate([thetas, design])
        stats = np.concatenate([stats, simulate(design)])
        a, J, var, dof = _local_linear(thetas, stats, theta, width)
        sigma2 = _floor(var)
        r = observed - a
        chi2 = float(np.sum(r * r / sigma2))
        if before is None:
            before, chi2_before = a, chi2
        Wh = 1.0 / np.sqrt(sigma2)
        A = J * Wh[:, None]
        delta = np.linalg.lstsq(A, r * Wh, rcond=1e-10)[0]
        delta = np.clip(delta, -MAX_STEP, MAX_STEP)
        sd = np.sqrt(np.clip(np.diag(np.linalg.pinv(A.T @ A)), 0, None))
        row = {"iteration": it, "theta": theta.tolist(), "chi2": chi2, "step": delta.tolist(),
               "films": int(len(thetas)), "wall_s": time.perf_counter() - start}
        history.append(row)
        if callback:
            callback(it, row)
        theta = np.clip(theta + delta, lo, hi)
        if np.all(np.abs(delta) <= np.maximum(step_tol, 0.5 * sd)):
            converged = True
            break
    # the check films: independent keys at the estimate, for the spread and the uncertainty
    check_thetas = np.repeat(theta[None], num_check, axis=0)
    s_check = simulate(check_thetas)
    thetas = np.concatenate([thetas, check_thetas])
    stats = np.concatenate([stats, s_check])
    a, J, var, dof = _local_linear(thetas, stats, theta, width)
    sigma2 = _floor(var)
    Wh = 1.0 / np.sqrt(sigma2)
    A = J * Wh[:, None]
    H_inv = np.linalg.pinv(A.T @ A)
    center = s_check.mean(0)
    spread = np.sqrt(_floor(s_check.var(0, ddof=1)))
    dev = np.concatenate([s_check - center, (observed - a)[None]])
    Sigma = dev.T @ dev / max(len(dev) - 1, 1)
    cov = H_inv @ A.T @ (Wh[:, None] * Sigma * Wh[None, :]) @ A @ H_inv
    n_mean = max(float(np.sum(np.exp(-0.5 * np.sum((thetas - theta) ** 2, axis=1) / width ** 2))), 1.0)
    cov = (1.0 + 1.0 / n_mean) * cov  # the movie's own realisation, and the films' mean
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    corr = cov / np.maximum(np.outer(std, std), 1e-300)
    sv = np.linalg.svd(A, compute_uv=False)
    z = (observed - a) / np.sqrt(sigma2 * (1.0 + 1.0 / n_mean))  # σ from the regression's residuals: many films
    chi2_after = float(np.sum((observed - a) ** 2 / sigma2))
    warnings = _warnings(names, std, z, stat_names, converged, max_iter)
    warnings += [f"{n} stopped at the bound of the fit (x{math.exp(t):.3g} of the start): "
                 + ("the largest value the time step resolves; simulate with a smaller [simulation] dt"
                    if t >= h - 1e-9 else "the smallest value the fit explores")
                 for n, t, l, h in zip(names, theta, lo, hi) if t <= l + 1e-9 or t >= h - 1e-9]
    return FitResult(
        names=names, reference=tuple(float(v) for v in reference), theta=tuple(float(t) for t in theta),
        std_log=tuple(float(s) for s in std), correlation=corr.tolist(), singular_values=tuple(float(v) for v in sv),
        stat_names=tuple(stat_names), observed=observed.tolist(), before=before.tolist(), after=center.tolist(),
        spread=spread.tolist(), z_after=z.tolist(), chi2_before=float(chi2_before), chi2_after=chi2_after,
        converged=converged, warnings=tuple(warnings), history=history, num_films=int(len(thetas)),
        film_equivalents=float(counter[0]), wall_s=time.perf_counter() - start, refinements=tuple(sorted(steps_used)))


def _warnings(names, std, z, stat_names, converged: bool, max_iter: int) -> list[str]:
    """The named warnings of a fit (module docstring)."""
    warnings = []
    outside = [(n, float(zz)) for n, zz in zip(stat_names, z) if abs(zz) > Z_MAX]
    if outside:
        worst = sorted(outside, key=lambda t: -abs(t[1]))[:3]
        warnings.append("fit did not converge: statistic " + "; ".join(
            f"{n} outside the films' spread ({zz:+.1f} standard deviations)" for n, zz in worst)
            + f" ({len(outside)} of {len(z)} statistics beyond {Z_MAX:g}): no parameter set of the family "
            "reproduces the movie (temperature, Ms, boundary, noise or history differ?)")
    if not converged:
        warnings.append(f"fit did not converge: the Gauss-Newton steps did not settle in {max_iter} iterations; "
                        "the estimate is the last step's")
    for n, s in zip(names, std):
        if math.expm1(s) > WEAK_REL_STD:
            warnings.append(f"{n} is weakly identified by this movie: relative standard deviation {math.expm1(s):.0%}")
    return warnings


def _floor(var: np.ndarray) -> np.ndarray:
    """Variances with a floor (1e-6 of the largest, and 1e-30), so that a statistic that no film
    moves (e.g. a mean that symmetry fixes) does not get an infinite weight."""
    return np.maximum(var, max(1e-6 * float(np.max(var)), 1e-30))


MAX_FACTOR = 3.0  # the fit explores each parameter within [1/5, 3] x its start (defect factors [0.1, 3.5])


def _movie_array(movie: np.ndarray, grid: Grid, spec: MovieSpec) -> np.ndarray:
    m = np.asarray(movie)
    want = (spec.num_frames, grid.ny, grid.nx)
    if m.ndim != 4 or m.shape[:3] != want:
        raise FitError(f"the movie has shape {m.shape}, expected (F, ny, nx, C) = {want + ('C',)} "
                       "(the frames, grid and components of the film to fit)")
    if not np.all(np.isfinite(m)):
        raise FitError("the movie contains NaN or inf values")
    return m


def fit_film(movie: np.ndarray, grid: Grid, spec: MovieSpec, base: Material, m0: jax.Array, *,
             names: Sequence[str] = PARAMETERS, components: str = "xz", weights: np.ndarray | None = None,
             films_per_step: int = 8, num_check: int = 4, max_iter: int = 3, seed: int = 0,
             callback: Callable[[int, dict], None] | None = None) -> FitResult:
    """Fit the background parameters ``names`` of ``base`` (a uniform ``Material`` of ``grid``, the
    starting guess and the fixed values of the others) to ``movie`` (F, ny, nx, C), components
    ``components``, frames as ``spec`` simulates them. ``weights`` (ny, nx): the background pixels
    (default ``background_weights(movie)``); the simulated films are defect-free and use the same
    pixels. Returns the ``FitResult`` (values in SI units)."""
    names = check_names(names)
    m = _movie_array(movie, grid, spec)
    if m.shape[-1] != len(components):
        raise FitError(f"the movie has {m.shape[-1]} components, {components!r} names {len(components)}")
    w = background_weights(m) if weights is None else np.asarray(weights, np.float64)
    lags = _mean_lags(spec.num_frames)
    observed = observed_statistics(m, w[None], periodic=grid.periodic, mean_lags=lags)
    models = {}

    def model_for(k: int) -> Model:
        if k not in models:
            models[k] = film_model(grid, refined_spec(spec, k), base, m0, names, w, components=components,
                                   mean_lags=lags)
        return models[k]

    def refine(thetas: np.ndarray) -> int:
        return max(refinement(grid, spec, scaled_material(base, names, jnp.asarray(t))) for t in thetas)

    reference = [float(np.asarray(getattr(base, p)).mean()) for p in names]
    bounds = (np.full(len(names), math.log(0.2)), np.full(len(names), math.log(MAX_FACTOR)))
    return regression_fit(model_for, observed, np.zeros(len(names)), names=names, reference=reference, bounds=bounds,
                          refine=refine,
                          stat_names=statistic_names(components, DEFAULT_OFFSETS, lags), films_per_step=films_per_step,
                          num_check=num_check, max_iter=max_iter, seed=seed, callback=callback)


def fit_defects(movie: np.ndarray, grid: Grid, spec: MovieSpec, base: Material, m0: jax.Array, labels: np.ndarray, *,
                components: str = "xz", films_per_step: int = 8, num_check: int = 4, max_iter: int = 3, seed: int = 0,
                callback: Callable[[int, dict], None] | None = None) -> FitResult:
    """Fit one factor per region k = 1..R of ``labels`` (ny, nx) on A_ex and K_u of ``base`` (the
    fitted background), from each region's own statistics. ``FitResult.names`` are ``defect k``;
    ``values`` the factors (reference 1)."""
    m = _movie_array(movie, grid, spec)
    labels = np.asarray(labels).astype(np.int64)
    R = int(labels.max()) if labels.size else 0
    if R < 1:
        raise FitError("the defect map has no regions (labels 1..R) to fit")
    w = np.asarray(region_weights(jnp.asarray(labels), R, jnp.float32), np.float64)
    if np.any(w.sum(axis=(1, 2)) == 0):
        raise FitError("the defect labels must number the regions 1..R without gaps")
    observed = observed_statistics(m, w, periodic=grid.periodic, offsets=DEFECT_OFFSETS)
    upper = 3.5  # the largest defect factor explored
    models = {}

    def model_for(k: int) -> Model:
        if k not in models:
            models[k] = defect_model(grid, refined_spec(spec, k), base, m0, labels, R, components=components)
        return models[k]

    def refine(thetas: np.ndarray) -> int:
        scale = np.exp(np.max(thetas, axis=0))  # the stiffest factor of each region in the batch
        factor = np.concatenate([[1.0], scale])[labels][None]
        return refinement(grid, spec, base.replace(A_ex=np.asarray(base.A_ex) * factor,
                                                   K_u=np.asarray(base.K_u) * factor))
    per = statistic_names(components, DEFECT_OFFSETS)
    stat_names = [f"defect {k + 1} {n}" for k in range(R) for n in per]
    return regression_fit(model_for, observed, np.zeros(R), names=[f"defect {k + 1}" for k in range(R)], refine=refine,
                          reference=[1.0] * R, stat_names=stat_names, films_per_step=films_per_step,
                          bounds=(np.full(R, math.log(0.1)), np.full(R, math.log(upper))),
                          num_check=num_check, max_iter=max_iter, seed=seed, callback=callback)


def _mean_lags(num_frames: int) -> tuple[int, ...]:
    from jaxmag.fit_stats import default_mean_lags

    return default_mean_lags(num_frames)
