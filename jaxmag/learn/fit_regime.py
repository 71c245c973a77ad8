"""From a movie to its fitted material: ``fit_regime(movie, out) -> FitRegimeResult`` (``jaxmag fit-regime``).

Stages: read the movie and build its regime as ``detect`` does (``jaxmag.learn.regime``: grid, cell
size, frame interval and count, boundary, temperature, the starting material); fit the film's
background parameters by differentiable simulation of that regime (``jaxmag.fit.fit_film``); write

* ``regime.toml``: the regime with the fitted values in ``[material]``, headed by comments with
  each value's uncertainty and the statistics before and after the fit (``jaxmag detect --regime``
  and ``jaxmag simulate`` read it as any config);
* ``fit.json``: the values, uncertainties, correlation, identifiability, statistics, warnings,
  the number of simulated films and the wall time.

Both are written atomically (``jaxmag.io.atomic``) into an ``out`` claimed first (``jaxmag.io.outdir``).
The temperature trades off against the energy constants in the thermal spread: it is the user's
(``--temperature``, else the material's), never fitted; Ms is the material's.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jaxmag.assemble import simulation_setup
from jaxmag.config import Config, load_config
from jaxmag.fit import FitResult, background_weights, check_names, fit_film
from jaxmag.io import outdir
from jaxmag.io.atomic import write_text
from jaxmag.learn import regime as rg
from jaxmag.progress import stage

REGIME_FILE = "regime.toml"
FIT_FILE = "fit.json"
OUTPUTS = (REGIME_FILE, FIT_FILE)
UNITS = {"K_u": "J/m^3", "A_ex": "J/m", "alpha": ""}


@dataclasses.dataclass(frozen=True)
class FitRegimeResult:
    """The fitted regime (``config``: its ``[material]`` holds the fitted values), the fit, and the files."""

    config: Config
    fit: FitResult
    facts: rg.MovieFacts
    files: tuple[Path, ...]
    warnings: tuple[str, ...]


def parse_fit(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"K_u,A_ex,alpha"`` (or a sequence) -> validated parameter names (``jaxmag.fit.PARAMETERS``)."""
    names = text.split(",") if isinstance(text, str) else list(text)
    return check_names(names)


def movie_array(movies: dict, components: str) -> np.ndarray:
    """(F, ny, nx, C) float32 of the components ``components`` of ``read_movies``' result."""
    return np.stack([np.asarray(movies[c].data, np.float32) for c in components], axis=-1)


def fitted_config(config: Config, result: FitResult) -> Config:
    """``config`` with the fitted values in ``[material]``."""
    values = dict(zip(result.names, result.values))
    return config.replace(material=dataclasses.replace(config.material, **values))


def regime_text(config: Config, result: FitResult, description: str, facts: rg.MovieFacts) -> str:
    """``regime.toml``: comments (the movie, each fitted value ± its standard deviation, the statistics
    before and after, the warnings) and the config."""
    lines = ["# Material fitted to a movie by differentiable thermal simulation: `jaxmag fit-regime` (docs/fit.md).",
             f"# movie: {description}",
             f"# regime: {facts.ny} x {facts.nx} cells of {facts.cell_size_m:g} m, {facts.num_frames} frames of "
             f"{facts.frame_interval_s:g} s, {facts.boundary}; temperature {config.material.temperature:g} K (given, "
             "not fitted); Ms from the material",
             "# fitted (value, relative standard deviation; the rest of [material] as started):"]
    for name, value, s in zip(result.names, result.values, result.std_log):
        lines.append(f"#   {name} = {value:.4g} {UNITS.get(name, '')} +- {math.expm1(s):.0%}")
    lines.append(f"# weighted misfit chi2 over {len(result.stat_names)} statistics: {result.chi2_before:.3g} at the "
                 f"start, {result.chi2_after:.3g} after; {result.num_films} simulated films, {result.wall_s:.0f} s")
    lines.append("# statistic: movie | films before | films after (film spread)")
    for n, o, b, a, sp in zip(result.stat_names, result.observed, result.before, result.after, result.spread):
        lines.append(f"#   {n}: {o:.4g} | {b:.4g} | {a:.4g} ({sp:.2g})")
    lines += [f"# warning: {w}" for w in result.warnings]
    lines.append("# Use it: jaxmag detect MOVIE --regime THIS_FILE --out DIR; jaxmag simulate THIS_FILE --out d.h5")
    return "\n".join(lines) + "\n" + config.to_toml()


def fit_regime(movie: Any, out: str | Path, *, component: str | None = None, dataset: str | None = None,
               rescale: str = "none", max_abs: float | None = None, regime: str | Path | None = None,
               material: str | Path | None = None, boundary: str | None = None, cell_size: float | None = None,
               frame_interval: float | None = None, temperature: float | None = None,
               fit: str | Sequence[str] = "K_u,A_ex,alpha", labels: np.ndarray | None = None, seed: int = 0,
               films_per_step: int = 8, num_check: int = 4, max_iter: int = 3, force: bool = False,
               progress: bool = True) -> FitRegimeResult:
    """Fit the film of ``movie`` and write ``out/regime.toml`` and ``out/fit.json`` (module docstring).

    The movie and regime arguments are those of ``jaxmag.learn.detect.detect``. ``fit``: the
    parameters (``K_u``, ``A_ex``, ``alpha``); ``labels`` (ny, nx): known defect regions, left out
    of the background statistics (default: robust outliers of the movie, ``fit.background_weights``);
    ``films_per_step``, ``num_check``, ``max_iter``: the fit's cost (``jaxmag.fit.regression_fit``)."""
    from jaxmag.io.movie import MAX_ABS

    names = parse_fit(fit)
    out = Path(out)
    start = time.perf_counter()
    file_config, file_name = (None, "") if regime is None else (load_config(regime), str(regime))
    movies, description = rg.read_movies(movie, component=component, dataset=dataset, rescale=rescale,
                                         max_abs=MAX_ABS if max_abs is None else max_abs)
    facts = rg.movie_facts(movies, cell_size_m=cell_size, frame_interval_s=frame_interval, boundary=boundary,
                           regime=file_config, regime_name=file_name,
                           easy_axis=rg.regime_easy_axis(material, file_config))
    built = rg.build_regime(facts, regime=file_config, regime_name=file_name, material=material,
                            temperature=temperature, name="fit")
    config = built.config
    if config.grid.nz != 1:
        raise rg.RegimeError(f"fit-regime fits films one cell thick; the regime has nz = {config.grid.nz}")
    if config.material.temperature <= 0:
        raise rg.RegimeError("the fit reads thermal fluctuations: give --temperature in K (> 0)")
    outdir.claim(out, OUTPUTS, "fit-regime", force=force)
    components = facts.components
    m = movie_array(movies, components)
    setup = simulation_setup(config)
    weights = background_weights(m, labels=labels)
    stage(f"fit-regime: {facts.ny} x {facts.nx}, {facts.num_frames} frames, {facts.boundary}; fitting "
          f"{', '.join(names)} from {', '.join(f'm_{c}' for c in components)} ({int(weights.sum())} background pixels)",
          enabled=progress)

    def report(i: int, row: dict) -> None:
        vals = ", ".join(f"{n} x{math.exp(t):.3g}" for n, t in zip(names, row["theta"]))
        stage(f"fit-regime: step {i + 1}: {vals}; chi2 {row['chi2']:.3g}; {row['films']} films, "
              f"{row['wall_s']:.0f} s", enabled=progress)

    result = fit_film(m, setup.grid, setup.movie, setup.background, setup.m0, names=names, components=components,
                      weights=weights, films_per_step=films_per_step, num_check=num_check, max_iter=max_iter,
                      seed=seed, callback=report)
    fitted = fitted_config(config, result)
    regime_path = write_text(out / REGIME_FILE, regime_text(fitted, result, description, facts))
    record = {"movie": description, "facts": facts.to_dict(), "fit": result.to_dict(),
              "temperature_K": config.material.temperature, "Ms_A_per_m": config.material.Ms,
              "components": components, "background_pixels": int(weights.sum()),
              "wall_s": time.perf_counter() - start}
    fit_path = write_text(out / FIT_FILE, json.dumps(record, indent=1, default=_plain) + "\n")
    return FitRegimeResult(fitted, result, facts, (regime_path, fit_path), result.warnings)


FIT_MATERIAL = "fit"  # detect --material fit: the film's own fitted material (``fitted_material``)


def fitted_material(movie: Any, out: str | Path, *, progress: bool = True, **movie_kw) -> tuple[Path, FitRegimeResult]:
    """``jaxmag detect --material fit``: fit the film of ``movie`` (K_u, A_ex, alpha from permalloy,
    ``fit_regime``) into ``out`` and return the fitted ``regime.toml``, whose ``[material]`` and
    ``[defects]`` the detection then simulates, and the fit. ``movie_kw``: the movie and regime
    arguments of ``fit_regime`` (``material`` is the fit's start, permalloy unless given)."""
    result = fit_regime(movie, out, progress=progress, **movie_kw)
    return Path(out) / REGIME_FILE, result


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
