"""Input channels: a (measure, component) pair, and movies turned into stacked channel maps.

A ``Channel`` is ``("mean", "x")``, written ``"mean:x"`` in configs, run folders and on the
command line; ``parse_channels("mean:x,std:z")`` is the one parser of that text.

The one path "movie -> measurement noise -> per-component measures -> stacked channels", used
by the measures file (``jaxmag.io.measures_file``), the online generator
(``jaxmag.learn.online``) and prediction on users' movies (``jaxmag.learn.predict``):

* ``movie_maps(movies (n, C, T, ny, nx), measures, options) -> {measure: (n, C, ny, nx)}``, one
  ``MeasureOptions`` per component (they differ in the fixed binning range);
* ``noisy_movie_maps(...)``: the same after ``jaxmag.noise.add_measurement_noise``;
* ``sampled_noisy_movie_maps(...)``: maps with the same *distribution* as ``noisy_movie_maps``
  but drawn more cheaply where an exact identity allows it (Gaussian noise, mean/std maps:
  three draws per pixel instead of T); for fresh training noise, where only the distribution
  matters, never for the keyed draws of the measures file;
* ``movie_maps_from_draws(...)``: ``noisy_movie_maps`` with the standard-normal draws given
  (the movie source's pooled training draws, ``jaxmag.learn.sources.movies.MovieSource``);
* ``stack_channels(maps, channels, components) -> (n, ny, nx, K)`` float32, channel-last.
All are traceable (compose with jit and vmap); checks happen at the callers' boundaries.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from jaxmag.measures import MEASURE_FUNCTIONS, MeasureOptions, measure_maps, working_float
from jaxmag.noise import (NoiseSpec, add_measurement_noise, apply_noise_draws, component_keys, condition_hash,
                          condition_keys)

PROBE_COMPONENT = "p"
"""The recorded signal along an instrument's probe, calibrated to units of Ms (``jaxmag.recording``)."""
COMPONENTS = ("x", "y", "z", PROBE_COMPONENT)


class Channel(NamedTuple):
    """One input channel: ``measure`` in ``MEASURES``, ``component`` in x, y, z or p (the recorded
    probe signal of ``jaxmag.recording``)."""

    measure: str
    component: str

    @property
    def name(self) -> str:
        """``"mean:x"``."""
        return f"{self.measure}:{self.component}"


def parse_channels(text: str | Sequence[str]) -> tuple[Channel, ...]:
    """``"mean:x,std:z"`` (or ``["mean:x", "std:z"]``) -> ``(Channel("mean", "x"), Channel("std", "z"))``.

    Raises ``ValueError`` naming the accepted form.
    """
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text)]
    out = []
    for part in parts:
        measure, _, comp = part.partition(":")
        if measure not in MEASURE_FUNCTIONS or comp not in COMPONENTS:
            raise ValueError(
                f"invalid input spec {text!r}: expected comma-separated 'measure:component' with measure in "
                f"{tuple(MEASURE_FUNCTIONS)} and component in x, y, z (or p, the recorded probe signal)"
            )
        out.append(Channel(measure, comp))
    if not out:
        raise ValueError(f"invalid input spec {text!r}: no channel")
    return tuple(out)


def as_channels(channels: Sequence[Any]) -> tuple[Channel, ...]:
    """Channels from ``Channel``s, ``(measure, component)`` pairs or ``"measure:component"`` names."""
    return tuple(c if isinstance(c, Channel) else (parse_channels(c)[0] if isinstance(c, str) else Channel(*c))
                 for c in channels)


def needed(channels: Sequence[Channel]) -> tuple[tuple[str, ...], str]:
    """The measures and the component letters (first-seen order) the channels need."""
    for m, c in channels:
        if m not in MEASURE_FUNCTIONS:
            raise ValueError(f"unknown measure {m!r} in inputs: expected one of {', '.join(MEASURE_FUNCTIONS)}")
        if c not in COMPONENTS:
            raise ValueError(f"input components must be x, y, z or p (the recorded probe signal), got {c!r}")
    return tuple(dict.fromkeys(m for m, _ in channels)), "".join(dict.fromkeys(c for _, c in channels))


def movie_maps(movies: jax.Array, measures: tuple[str, ...], options: Sequence[MeasureOptions]) -> dict[str, jax.Array]:
    """``movies (n, C, T, ny, nx)`` -> ``{measure: (n, C, ny, nx)}`` with ``options[c]`` for component c."""
    if len(options) != movies.shape[1]:
        raise ValueError(f"one MeasureOptions per component: {movies.shape[1]} components, {len(options)} options")
    per_comp = [measure_maps(movies[:, c], tuple(measures), options=opts) for c, opts in enumerate(options)]
    return {m: jnp.stack([o[m] for o in per_comp], axis=1) for m in measures}


def noisy_movie_maps(movies: jax.Array, spec: NoiseSpec, seed: Any, run_index: jax.Array, components: str,
                     measures: tuple[str, ...], options: Sequence[MeasureOptions], **noise: Any) -> dict[str, jax.Array]:
    """``movie_maps`` of the movies after the measurement noise of ``spec`` for ``run_index`` (n,).

    ``noise``: ``cond_hash`` / ``level`` passed on (traced) to ``add_measurement_noise``.
    """
    x = working_float(movies)
    return movie_maps(add_measurement_noise(x, spec, seed, run_index, components, **noise), measures, options)


def movie_maps_from_draws(movies: jax.Array, spec: NoiseSpec, draws: jax.Array, measures: tuple[str, ...],
                          options: Sequence[MeasureOptions]) -> dict[str, jax.Array]:
    """``noisy_movie_maps`` with the standard-normal ``draws`` (shape of ``movies (n, C, T, ny,
    nx)``) given instead of keyed: the same noise formula (``jaxmag.noise.apply_noise_draws``)."""
    x = working_float(movies)
    return movie_maps(apply_noise_draws(x, spec, draws.astype(x.dtype)), measures, options)


def sampled_noisy_movie_maps(movies: jax.Array, spec: NoiseSpec, seed: Any, run_index: jax.Array, components: str,
                             measures: tuple[str, ...], options: Sequence[MeasureOptions],
                             *, cond_hash: Any = None) -> dict[str, jax.Array]:
    """Maps distributed exactly as those of ``noisy_movie_maps`` (another realisation of the noise).

    For additive Gaussian noise of variance s2 and only the mean and std maps it samples them
    from sufficient statistics instead of drawing T noise frames. With y = x + n, n ~ N(0, s2 I_T)
    and, per pixel, P the centring projection, a = |P x| (so std(x) = a / sqrt(T - ddof)):

    * mean(y) = mean(x) + sqrt(s2 / T) z0;
    * |P y|^2 = (a + sqrt(s2) z1)^2 + s2 chi2(T - 2),

    with z0, z1 standard normal and the chi-square independent (n splits into its parts along
    the constant vector, along P x and orthogonal to both; also right for a = 0). On CPU this
    costs ~1/25 of the noise frames at T = 100. Any other kind or measure goes through
    ``noisy_movie_maps``. Keys come from the one keying rule (``jaxmag.noise``), split per draw.
    """
    if spec.kind != "gaussian" or not set(measures) <= {"mean", "std"}:
        kw = {} if cond_hash is None else {"cond_hash": cond_hash}
        return noisy_movie_maps(movies, spec, seed, run_index, components, measures, options, **kw)
    if len(options) != movies.shape[1]:
        raise ValueError(f"one MeasureOptions per component: {movies.shape[1]} components, {len(options)} options")
    mean, spread = gaussian_sufficient_stats(movies)
    keys = component_keys(condition_keys(seed, condition_hash(spec) if cond_hash is None else cond_hash, run_index),
                          components)
    return sample_gaussian_maps(mean, spread, movies.shape[2], spec.level, keys, measures, options)


def gaussian_sufficient_stats(movies: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``movies (n, C, T, ny, nx)`` -> (temporal mean, |P x| = sqrt(sum_t (x_t - mean)^2)), each
    ``(n, C, ny, nx)``: all that the mean and std maps under Gaussian noise depend on."""
    x = working_float(movies)
    mean = jnp.mean(x, axis=2)
    return mean, jnp.sqrt(jnp.sum(jnp.square(x - mean[:, :, None]), axis=2))


def sample_gaussian_maps(mean: jax.Array, spread: jax.Array, num_frames: int, variance: Any, keys: jax.Array,
                         measures: tuple[str, ...], options: Sequence[MeasureOptions]) -> dict[str, jax.Array]:
    """The mean/std maps of movies with sufficient statistics ``(mean, spread)`` (``(n, C, ny,
    nx)``, ``gaussian_sufficient_stats``) after additive Gaussian noise of ``variance``, drawn
    with ``keys (n, C)`` (three draws per pixel; ``sampled_noisy_movie_maps`` gives the identity)."""
    T, dtype = int(num_frames), mean.dtype
    ddof = jnp.array([o.ddof for o in options], dtype)[None, :, None, None]

    def draws(key):
        k0, k1, k2 = jax.random.split(key, 3)
        shape = mean.shape[-2:]
        chi2 = 2.0 * jax.random.gamma(k2, (T - 2) / 2.0, shape, dtype) if T > 2 else jnp.zeros(shape, dtype)
        return jax.random.normal(k0, shape, dtype), jax.random.normal(k1, shape, dtype), chi2

    z0, z1, chi2 = jax.vmap(jax.vmap(draws))(keys)  # (n, C, ny, nx) each
    s2 = jnp.asarray(variance, dtype)
    out = {}
    if "mean" in measures:
        out["mean"] = mean + jnp.sqrt(s2 / T) * z0
    if "std" in measures:
        out["std"] = jnp.sqrt((jnp.square(spread + jnp.sqrt(s2) * z1) + s2 * chi2) / (T - ddof))
    return {m: out[m] for m in measures}


def stack_channels(maps: dict[str, jax.Array], channels: Sequence[Channel], components: str) -> jax.Array:
    """``{measure: (n, C, ny, nx)}`` -> ``(n, ny, nx, K)`` float32, channel k = ``channels[k]``."""
    return jnp.stack([maps[m][:, components.index(c)] for m, c in channels], axis=-1).astype(jnp.float32)
