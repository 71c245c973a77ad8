"""On-device training data: solver -> noise -> measures in one jittable ``make_batch(key)``.

``make_online_generator(config, inputs, noise_spec, batch_size) -> make_batch`` (the config is
assembled once, ``jaxmag.assemble``; ``online_generator(assembly, ...)`` takes the plain objects)
returns a pure function ``make_batch(key) -> (inputs (B, ny, nx, C) float32 raw measure maps, labels (B, ny, nx)
int32 in {0, 1})`` for ``jaxmag.learn.sources.online.OnlineSource``. One call simulates ``B`` thermal movies with
the stochastic Heun solver of ``config`` (``jaxmag.drivers.movie_simulator``, as ``jaxmag
simulate`` does), adds the measurement noise of ``noise_spec`` to every frame
(``jaxmag.noise.apply_noise``), and reduces each movie to the measure maps named by ``inputs``
(``jaxmag.measures.measures_kernel`` with the options of ``config.measures``). Nothing leaves
the device between the key and the batch.

Defects: a pool, honestly. ``jaxmag.defects`` grows its irregular blobs by Eden growth with a
NumPy generator, which is not jittable. So ``pool_size`` defect maps are drawn **once on the
host** when the generator is built (run indices ``first_index .. first_index + pool_size - 1``
of ``defect_rng(seed, i)``; by default ``first_index = config.dataset.num_runs``, so the pool
never repeats the defects of the simulated dataset with that seed, and its test split stays
unseen), stored on the device, and sampled there. Each batch entry then draws, on device:

* a pool entry (uniformly);
* a random exact symmetry of the film (``jaxmag.symmetry``, the group of its easy axis, as in
  every data source): for a film along x a flip of the rows and/or columns (probability 1/2
  each), the easy axis, an axial vector like m, mapped to (u_x, -u_y, -u_z) by an odd number of
  flips; for a perpendicular film both flips or none, with or without (u_x, -u_y) -> (-u_x,
  -u_y); with periodic boundaries a random cyclic shift in x and y. The films that come out are
  ones the defect generator could have drawn, since its positions are uniform and its angle
  distribution symmetric;

That gives up to ``pool_size * 4 * ny * nx`` distinct films on a periodic grid (for a film along x), and a fresh thermal
history and noise draw every time. It is not the generator's full distribution: a model can
still fit the pool's blob shapes, so keep ``pool_size`` well above the number of training images
you would otherwise use.

Keys: ``make_batch`` splits its key into (films, thermal, noise), so the batch is a pure
function of the key. The measurement noise follows the one keying rule of ``jaxmag.noise``:
each entry draws a run id from the noise key and gets exactly the noise the measures file gives
run ``run id`` under the same condition and ``[noise] seed`` (``tests/test_noise_paths.py``).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag import drivers
from jaxmag.assemble import Assembly, assemble
from jaxmag.channels import Channel, as_channels, needed, noisy_movie_maps, stack_channels
from jaxmag.config import Config
from jaxmag.defects import defect_rng, generate_defects, material_maps
from jaxmag.layout import measure_from_solver
from jaxmag.material import Material
from jaxmag.noise import CLEAN, NoiseSpec, parse_noise_spec
from jaxmag.symmetry import film_symmetries, mirror_and_shift

Batch = tuple[jax.Array, jax.Array]


@dataclasses.dataclass(frozen=True)
class DefectPool:
    """``P`` defect films drawn on the host: ``A_ex``, ``K_u`` (P, ny, nx), ``easy_axis`` (P, ny, nx, 3), ``labels`` (P, ny, nx) uint8."""

    A_ex: np.ndarray
    K_u: np.ndarray
    easy_axis: np.ndarray
    labels: np.ndarray
    run_indices: np.ndarray


def draw_pool(assembly: Assembly, pool_size: int, seed: int, first_index: int) -> DefectPool:
    """Draw ``pool_size`` defect films: runs ``first_index ...`` of ``defect_rng(seed, .)``."""
    if pool_size < 1:
        raise ValueError(f"pool_size must be >= 1, got {pool_size}")
    setup, grid = assembly.simulation, assembly.grid
    maps = []
    for i in range(first_index, first_index + pool_size):
        d = generate_defects(setup.defects, grid.ny, grid.nx, defect_rng(seed, i), periodic=grid.periodic)
        maps.append((*material_maps(d, A_ex=setup.A_ex, K_u=setup.K_u, easy_axis=setup.easy_axis), d.labels))
    A, K, u, labels = (np.stack(x) for x in zip(*maps))
    return DefectPool(A, K, u, labels, np.arange(first_index, first_index + pool_size))


def defect_pool(config: Config, pool_size: int, *, seed: int | None = None, first_index: int | None = None) -> DefectPool:
    """Draw ``pool_size`` defect films of ``config`` (default: seed ``[dataset] seed``, runs from
    ``[dataset] num_runs`` on, so the pool never repeats the dataset's films)."""
    seed = config.dataset.seed if seed is None else int(seed)
    first = config.dataset.num_runs if first_index is None else int(first_index)
    return draw_pool(assemble(config), pool_size, seed, first)


def _check_stable(assembly: Assembly, pool: DefectPool) -> None:
    # the stiffest pool film bounds the stable step of every batch (checked once, on the host)
    stiff = int(np.argmax(pool.A_ex.max(axis=(1, 2)) + pool.K_u.max(axis=(1, 2))))
    dtype = assembly.dtype
    drivers.check_time_step(assembly.grid, assembly.background.replace(
        A_ex=jnp.asarray(pool.A_ex[stiff][None], dtype), K_u=jnp.asarray(pool.K_u[stiff][None], dtype)),
        assembly.movie.dt)


def _film_sampler(assembly: Assembly, pool: DefectPool, augment: bool) -> Callable[[jax.Array], tuple[Material, jax.Array]]:
    """``one_film(key) -> (material, labels (ny, nx) int32)``: a pool entry under a random
    symmetry (``jaxmag.symmetry``: the maps' pixels move, the easy axis changes sign like m)."""
    dtype, grid, background = assembly.dtype, assembly.grid, assembly.background
    pool_A, pool_K, pool_u = (jnp.asarray(a, dtype) for a in (pool.A_ex, pool.K_u, pool.easy_axis))
    pool_labels = jnp.asarray(pool.labels > 0, jnp.int32)
    # the group of the film's easy axis, keeping every component of the applied field it has
    field = np.abs(np.asarray(background.B_ext)).reshape(-1, 3).max(axis=0)
    symmetries = film_symmetries("xyz", grid.periodic, assembly.simulation.easy_axis, applied_field=field)

    def one_film(key):
        k_pick, k_flip, k_shift = jax.random.split(key, 3)
        i = jax.random.randint(k_pick, (), 0, pool_A.shape[0])
        A, K, axis, lab = pool_A[i], pool_K[i], pool_u[i], pool_labels[i]
        if augment:
            codes, shift = symmetries.draw(k_flip, k_shift, (grid.ny, grid.nx))
            flips = symmetries.flips(codes)
            A, K, axis, lab = (mirror_and_shift(a, flips, shift, axes=(0, 1)) for a in (A, K, axis, lab))
            axis = axis * symmetries.component_factors(codes, dtype)
        return background.replace(A_ex=A[None], K_u=K[None], easy_axis=axis[None]), lab

    return one_film


def channels_fn(assembly: Assembly, channels: Sequence[Channel], noise_spec: NoiseSpec
                ) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``channels_of(movies (B, C, T, ny, nx), run_ids (B,)) -> (B, ny, nx, K)`` float32.

    The measurement noise of ``noise_spec`` for runs ``run_ids`` under ``[noise] seed`` (the
    measures file's keying), then the measures with the per-component options, stacked; C are
    the components the channels need, in first-seen order (``jaxmag.channels.needed``).
    """
    measures, components = needed(channels)
    options = assembly.options_for(components)  # per-component fixed ranges
    for opts in options:
        opts.check(assembly.movie.num_frames, measures)
    seed = assembly.noise_seed

    def channels_of(movies: jax.Array, run_ids: jax.Array) -> jax.Array:
        maps = noisy_movie_maps(movies, noise_spec, seed, run_ids, components, measures, options)
        return stack_channels(maps, channels, components)

    return channels_of


def online_generator(
    assembly: Assembly,
    channels: Sequence[Channel],
    noise_spec: NoiseSpec,
    batch_size: int,
    pool: DefectPool,
    *,
    augment: bool = True,
) -> Callable[[jax.Array], Batch]:
    """``make_batch(key)`` from plain objects (``make_online_generator`` documents the contract)."""
    channels = as_channels(channels)
    if not channels:
        raise ValueError("at least one input (measure, component) is required")
    _, components = needed(channels)
    if assembly.grid.nz != 1:
        raise ValueError(f"online generation needs a film one cell thick: grid.nz must be 1, got {assembly.grid.nz}")
    channels_of = channels_fn(assembly, channels, noise_spec)
    _check_stable(assembly, pool)
    simulate = assembly.simulator(components)
    one_film = _film_sampler(assembly, pool, augment)
    m0, B = assembly.m0, int(batch_size)

    def make_batch(key: jax.Array) -> Batch:
        k_films, k_thermal, k_noise = jax.random.split(key, 3)
        materials, labels = jax.vmap(one_film)(jax.random.split(k_films, B))
        frames = jax.vmap(lambda m, k: simulate(m, m0, k))(materials, jax.random.split(k_thermal, B))
        movies = measure_from_solver(frames)
        run_ids = jax.random.bits(k_noise, (B,), jnp.uint32)  # the noise of these "runs" (module docstring)
        return channels_of(movies, run_ids), labels

    return make_batch


def make_online_generator(
    config: Config,
    inputs: Sequence[tuple[str, str]],
    noise_spec: NoiseSpec | str = CLEAN,
    batch_size: int = 8,
    *,
    pool_size: int = 256,
    seed: int | None = None,
    first_index: int | None = None,
    augment: bool = True,
) -> Callable[[jax.Array], Batch]:
    """A jittable ``make_batch(key) -> (inputs (B, ny, nx, C) float32, labels (B, ny, nx) int32)``.

    Args:
        config: grid, material, defects, simulation, measures and the noise seed are used.
        inputs: ``((measure, component), ...)`` channels, e.g. ``(("std", "z"),)``.
        noise_spec: measurement noise added to every frame before the measures (``"clean"``,
            ``"gaussian:1e-2"`` or a ``NoiseSpec``).
        batch_size: ``B``.
        pool_size, seed, first_index: the host-drawn defect pool (module docstring).
        augment: random mirrors (and shifts on periodic grids) of the pool entries.
    """
    noise_spec = parse_noise_spec(noise_spec) if isinstance(noise_spec, str) else noise_spec
    channels = as_channels(inputs)
    assembly = assemble(config)
    seed = config.dataset.seed if seed is None else int(seed)
    first = config.dataset.num_runs if first_index is None else int(first_index)
    return online_generator(assembly, channels, noise_spec, batch_size, draw_pool(assembly, pool_size, seed, first),
                            augment=augment)
