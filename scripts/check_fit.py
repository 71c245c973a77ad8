"""Validate ``jaxmag.fit`` (docs/fit.md, "Validation"): fit films jaxmag simulates with known parameters.

Each case is a thermal movie of the regime ``jaxmag fit-regime`` would build for it
(``jaxmag.learn.regime.regime_config``: permalloy of configs/paper.toml, 10 ps frames, 0.1 ns
burn-in, Heun at 0.1 ps, the paper's four defect blobs with their easy-axis tilts), whose
background K_u, A_ex, alpha are the paper's times factors in 0.5-3, whose defect factors (on A_ex
and K_u) lie in 0.3-3, on seeds and grids no test or cached model uses, periodic and open, clean
and with Gaussian noise of variance 3e-3. The film fit starts from permalloy and finds the
background pixels itself (``fit.background_weights``); the per-defect fit uses the true defect
regions (the detector's regions are not part of this check) and the fitted background.

    python scripts/check_fit.py --out docs/fit/validation.json            # the five documented cases
    python scripts/check_fit.py --quick --out /tmp/fit_smoke.json         # a 32 x 32, 20-frame smoke run

Prints one line per case and writes every number to ``--out``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import numpy as np

from jaxmag import fit, fit_steps
from jaxmag.assemble import simulation_setup
from jaxmag.learn import regime as rg
from jaxmag.noise import add_gaussian
from jaxmag.simulate import build_run

PAPER = {"K_u": 500.0, "A_ex": 1.3e-11, "alpha": 0.02}
# (n, boundary, noise variance, (K_u, A_ex, alpha) factors, (factor_a, factor_b), seed)
CASES = [
    (64, "periodic", 0.0, (2.0, 0.7, 1.5), (0.4, 2.5), 9101),
    (48, "periodic", 3e-3, (0.6, 1.8, 0.5), (0.3, 3.0), 9202),
    (48, "open", 0.0, (3.0, 1.2, 2.0), (0.5, 1.8), 9303),
    (40, "open", 3e-3, (1.5, 0.5, 3.0), (0.35, 2.2), 9404),
    (48, "periodic", 3e-3, (0.5, 2.5, 1.0), (0.6, 1.5), 9505),
]
QUICK = [(32, "periodic", 3e-3, (2.0, 0.7, 1.5), (0.4, 2.5), 9606)]


def case_config(n: int, boundary: str, factors, defect_factors, seed: int, num_frames: int):
    facts = rg.MovieFacts(num_frames, n, n, "xz", 4e-9, 1e-11, boundary, {})
    config = rg.regime_config(facts, seed=seed, num_runs=1)
    mat = dataclasses.replace(config.material, K_u=PAPER["K_u"] * factors[0], A_ex=PAPER["A_ex"] * factors[1],
                              alpha=PAPER["alpha"] * factors[2])
    defects = dataclasses.replace(config.defects, factor_a=defect_factors[0], factor_b=defect_factors[1],
                                  margin=2 if boundary == "open" else 0)
    return config.replace(material=mat, defects=defects)


def run_case(case, num_frames: int, quick: bool) -> dict:
    n, boundary, noise_var, factors, defect_factors, seed = case
    truth_config = case_config(n, boundary, factors, defect_factors, seed, num_frames)
    setup = simulation_setup(truth_config)
    run = build_run(setup, 0, seed)
    # the truth is simulated at a step its stiffest cells resolve (a real film has no step)
    truth_spec = fit_steps.stable_spec(setup.grid, setup.movie, run.material, 1.0)
    sim = jax.jit(fit.simulator(setup.grid, truth_spec, "xz"))
    t0 = time.perf_counter()
    movie = np.asarray(sim(run.material, run.m0, run.key))
    if noise_var > 0:
        movie = np.asarray(add_gaussian(jax.numpy.asarray(movie), noise_var, jax.random.key(seed + 17)))
    t_movie = time.perf_counter() - t0
    # the fit starts from permalloy: the config a movie of this size gets by default
    start_config = case_config(n, boundary, (1.0, 1.0, 1.0), (0.5, 2.0), seed, num_frames)
    start = simulation_setup(start_config)
    steps = dict(films_per_step=6, num_check=3, max_iter=2) if quick else {}
    film = fit.fit_film(movie, start.grid, start.movie, start.background, start.m0, names=fit.PARAMETERS,
                        seed=seed, **steps)
    fitted = start.background.replace(**{p: getattr(start.background, p) * math.exp(t)
                                         for p, t in zip(film.names, film.theta)})
    labels = run.labels.astype(np.int64)
    defect = fit.fit_defects(movie, start.grid, start.movie, fitted, start.m0, labels, seed=seed + 1,
                             **(dict(films_per_step=6, num_check=3, max_iter=1) if quick else {}))
    true_bg = [PAPER[p] * f for p, f in zip(fit.PARAMETERS, factors)]
    rows = []
    for name, value, s, t in zip(film.names, film.values, film.std_log, true_bg):
        err = math.log(value / t)
        rows.append({"name": name, "truth": t, "fit": value, "rel_std": math.expm1(s), "log_error": err,
                     "within_20pct": abs(value / t - 1) <= 0.2, "within_2sd": abs(err) <= 2 * s})
    drows = []
    for k, (value, s) in enumerate(zip(defect.values, defect.std_log)):
        t = float(run.defects.factors[k])
        drows.append({"defect": k + 1, "truth": t, "fit": value, "rel_std": math.expm1(s),
                      "right_side_of_1": (value - 1) * (t - 1) > 0, "within_x1.5": max(value / t, t / value) <= 1.5,
                      "area_cells": int((labels == k + 1).sum())})
    return {"n": n, "boundary": boundary, "noise_variance": noise_var, "seed": seed, "frames": num_frames,
            "truth_dt_s": truth_spec.dt,
            "background": rows, "defects": drows, "film_fit": film.to_dict(), "defect_fit": defect.to_dict(),
            "movie_s": t_movie, "film_fit_s": film.wall_s, "film_fit_films": film.num_films,
            "defect_fit_s": defect.wall_s, "defect_fit_films": defect.num_films}


def profile(out: Path, n: int = 32, films: int = 3, seed: int = 9707) -> dict:
    """The weighted misfit along each log-parameter through the truth (the others at their true
    values), on a movie of the first case's material at n x n, periodic, clean: docs/fit/profile.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxmag.fit_stats import DEFAULT_OFFSETS, default_mean_lags, statistic_names

    config = case_config(n, "periodic", (2.0, 0.7, 1.5), (1.0, 1.0), seed, 100)
    config = config.replace(defects=dataclasses.replace(config.defects, num_a=0, num_b=0))
    setup = simulation_setup(config)
    sim = jax.jit(fit.simulator(setup.grid, setup.movie, "xz"))
    movie = np.asarray(sim(setup.background, setup.m0, jax.random.key(seed)))
    lags = default_mean_lags(100)
    w = np.ones((n, n))
    observed = fit.observed_statistics(movie, w[None], periodic=True, mean_lags=lags)
    model = fit.film_model(setup.grid, setup.movie, setup.background, setup.m0, fit.PARAMETERS, w, mean_lags=lags)
    batched = jax.jit(jax.vmap(model, in_axes=(None, 0)))
    keys = jax.random.split(jax.random.key(seed + 1), films)
    grid_pts = np.log([0.5, 0.7, 1.0, 1.4, 2.0])
    at_truth = np.asarray(batched(jax.numpy.zeros(3), keys), np.float64)
    sigma2 = np.maximum(at_truth.var(0, ddof=1), 1e-30)
    curves = {}
    start = time.perf_counter()
    for i, name in enumerate(fit.PARAMETERS):
        chi2 = []
        for g in grid_pts:
            th = np.zeros(3)
            th[i] = g
            s = np.asarray(batched(jax.numpy.asarray(th, jax.numpy.zeros(()).dtype), keys), np.float64).mean(0)
            chi2.append(float(np.sum((observed - s) ** 2 / sigma2)))
        curves[name] = chi2
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, chi2 in curves.items():
        ax.plot(np.exp(grid_pts), chi2, "o-", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("parameter / true value")
    ax.set_ylabel(f"weighted misfit ({len(observed)} statistics)")
    ax.set_title(f"{n}x{n} periodic, 100 frames of 10 ps, {films} films per point")
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".png"), dpi=110)
    record = {"ratios": np.exp(grid_pts).tolist(), "chi2": curves, "films_per_point": films, "n": n,
              "statistics": statistic_names("xz", DEFAULT_OFFSETS, lags), "wall_s": time.perf_counter() - start}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def jacobian_scatter(n: int = 32, films: int = 4, seed: int = 9808) -> dict:
    """Each film's pathwise (forward-mode, CRN) derivative of the statistics against the ensemble
    slope (secant over ±0.3 in log with independent films), both in units of the film spread:
    why the fit regresses over films instead of averaging pathwise derivatives (docs/fit.md)."""
    from jaxmag.fit_stats import DEFAULT_OFFSETS, default_mean_lags, statistic_names

    config = case_config(n, "periodic", (1.0, 1.0, 1.0), (1.0, 1.0), seed, 100)
    setup = simulation_setup(config)
    lags = default_mean_lags(100)
    w = np.ones((n, n))
    model = fit.film_model(setup.grid, setup.movie, setup.background, setup.m0, fit.PARAMETERS, w, mean_lags=lags)
    keys = jax.random.split(jax.random.key(seed), films)
    t0 = time.perf_counter()
    s, J = fit.pathwise_jacobian(model, jax.numpy.zeros(3), keys)
    t_jac = time.perf_counter() - t0
    s, J = np.asarray(s, np.float64), np.asarray(J, np.float64)
    batched = jax.jit(jax.vmap(model, in_axes=(None, 0)))
    t0 = time.perf_counter()
    _ = np.asarray(batched(jax.numpy.zeros(3), keys))
    t_fwd = time.perf_counter() - t0
    sd = np.sqrt(np.maximum(s.var(0, ddof=1), 1e-30))
    names = statistic_names("xz", DEFAULT_OFFSETS, lags)
    out = {"films": films, "n": n, "jacobian_s": t_jac, "forward_s": t_fwd, "per_parameter": {}}
    other = jax.random.split(jax.random.key(seed + 5), 2 * films)
    for i, p in enumerate(fit.PARAMETERS):
        e = np.zeros(3)
        e[i] = 0.3
        hi = np.asarray(batched(jax.numpy.asarray(e, jax.numpy.zeros(()).dtype), other[:films]), np.float64).mean(0)
        lo = np.asarray(batched(jax.numpy.asarray(-e, jax.numpy.zeros(()).dtype), other[films:]), np.float64).mean(0)
        secant = (hi - lo) / 0.6 / sd
        path = J[:, :, i] / sd  # (films, S)
        k = int(np.argmax(np.abs(secant)))
        out["per_parameter"][p] = {"statistic": names[k], "secant_per_sd": float(secant[k]),
                                   "pathwise_per_sd": path[:, k].tolist(),
                                   "pathwise_mean": float(path[:, k].mean()), "pathwise_sd": float(path[:, k].std(ddof=1))}
    return out


def heun_stability(n: int = 32, films: int = 4, seed: int = 1) -> dict:
    """A film of A_ex = 1.8 x permalloy, alpha = 0.01, K_u = 300 J/m^3 at dt = 1e-13 s (below
    drivers.stable_time_step) and at 5e-14 s: its nearest-neighbour m_z covariances (docs/fit.md)."""
    from jaxmag.drivers import stable_time_step
    from jaxmag.fit_stats import film_statistics, statistic_names
    from jaxmag.grid import Grid
    from jaxmag.material import Material
    from jaxmag.simulate import MovieSpec

    grid = Grid(n, n, 1, 4e-9, 4e-9, 4e-9, "periodic")
    mat = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11 * 1.8, K_u=300.0, alpha=0.01, temperature=300.0)
    m0 = jax.numpy.broadcast_to(jax.numpy.asarray([1.0, 0.0, 0.0], jax.numpy.float32), grid.vector_shape)
    keys = jax.random.split(jax.random.key(seed), films)
    names = statistic_names("xz")
    out = {"stable_time_step_s": stable_time_step(grid, mat), "heun_time_step_s": fit_steps.heun_time_step(grid, mat,
           ("exchange", "anisotropy", "zeeman", "demag")), "films": films, "n": n}
    for k in (1, 2):
        spec = MovieSpec(dt=1e-13 / k, burn_in_steps=1000 * k, steps_per_frame=100 * k, num_frames=100, components="xz")
        sim = fit.simulator(grid, spec, "xz")
        s = np.asarray(jax.jit(jax.vmap(lambda kk: film_statistics(sim(mat, m0, kk), periodic=True)))(keys))
        out[f"dt={spec.dt:g}"] = {nm: float(v) for nm, v in zip(names, s.mean(0)) if nm.startswith("cov m_z lag 0")}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true", help="one 32 x 32, 20-frame case (a smoke run)")
    p.add_argument("--cases", type=str, default=None, help="comma-separated case indices to run (default all)")
    p.add_argument("--heun", action="store_true", help="only the Heun-stability check (JSON to --out)")
    p.add_argument("--jacobian", action="store_true", help="only the pathwise-derivative scatter (JSON to --out)")
    p.add_argument("--profile", action="store_true", help="only the misfit profiles (docs/fit/profile.png, --out's stem)")
    args = p.parse_args()
    if args.profile:
        print(json.dumps(profile(args.out), indent=1))
        return
    if args.heun:
        record = heun_stability()
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps(record, indent=1))
        return
    if args.jacobian:
        record = jacobian_scatter()
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps(record, indent=1))
        return
    cases = QUICK if args.quick else CASES
    if args.cases:
        cases = [cases[int(i)] for i in args.cases.split(",")]
    frames = 20 if args.quick else 100
    results = []
    for case in cases:
        r = run_case(case, frames, args.quick)
        results.append(r)
        bg = "; ".join(f"{b['name']} {b['fit']:.3g}/{b['truth']:.3g} (+-{b['rel_std']:.0%})" for b in r["background"])
        df = "; ".join(f"{d['fit']:.2f}/{d['truth']:.2f}" for d in r["defects"])
        print(f"{r['n']}x{r['n']} {r['boundary']} noise {r['noise_variance']:g} seed {r['seed']}: {bg} | defects {df} "
              f"| film fit {r['film_fit_s']:.0f} s ({r['film_fit_films']} films), defect fit {r['defect_fit_s']:.0f} s "
              f"({r['defect_fit_films']} films)", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"cases": results, "summary": summary(results)}, indent=1, default=float) + "\n")
    print(json.dumps(summary(results), indent=1))


def summary(results: list[dict]) -> dict:
    out = {}
    for name in fit.PARAMETERS:
        rows = [b for r in results for b in r["background"] if b["name"] == name]
        out[name] = {"within_20pct": sum(b["within_20pct"] for b in rows),
                     "within_2sd": sum(b["within_2sd"] for b in rows),
                     "both": sum(b["within_20pct"] and b["within_2sd"] for b in rows), "films": len(rows)}
    d = [x for r in results for x in r["defects"]]
    out["defects"] = {"right_side_and_x1.5": sum(x["right_side_of_1"] and x["within_x1.5"] for x in d),
                      "right_side": sum(x["right_side_of_1"] for x in d), "count": len(d)}
    out["wall_s"] = {"film_fit": [r["film_fit_s"] for r in results], "defect_fit": [r["defect_fit_s"] for r in results]}
    return out


if __name__ == "__main__":
    main()
