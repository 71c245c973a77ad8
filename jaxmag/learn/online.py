"""On-device training data: solver -> noise -> measures in one jittable ``make_batch(key)``.

``make_online_generator(config, inputs, noise_spec, batch_size) -> make_batch`` returns a pure
function ``make_batch(key) -> (inputs (B, ny, nx, C) float32 raw measure maps, labels (B, ny, nx)
int32 in {0, 1})`` for ``jaxmag.learn.data.OnlineSource``. One call simulates ``B`` thermal movies with
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
* a mirror in x and/or y (probability 1/2 each) with the easy axis mapped to (u_x, -u_y, -u_z).
  For a film one cell thick these are exact symmetries that keep m0 along +x: the mirror
  x -> -x acts on the pseudovectors m and u as (m_x, -m_y, -m_z), and y -> -y is the rotation
  by pi about the x axis (z -> -z changes nothing in one layer). The films that come out are
  ones the defect generator could have drawn, since its positions are uniform and its angle
  distribution symmetric. Mirrored films show m_y and m_z with the opposite sign, which their
  statistics do not see;
* with periodic boundaries, a random cyclic shift in x and y (the physics is translation
  invariant on a torus; with open edges shifts would break ``defects.margin``, so none).

That gives ``pool_size * 4 * ny * nx`` distinct films on a periodic grid, and a fresh thermal
history and noise draw every time. It is not the generator's full distribution: a model can
still fit the pool's blob shapes, so keep ``pool_size`` well above the number of training images
you would otherwise use.

Keys: ``make_batch`` splits its key into (pool choice, mirrors, shifts, thermal, noise), so the
batch is a pure function of the key.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag import drivers
from jaxmag.config import Config
from jaxmag.defects import defect_rng, generate_defects, material_maps
from jaxmag.measures import MEASURES, check_options, measure_options, measures_kernel
from jaxmag.noise import CLEAN, NoiseSpec, apply_noise, parse_noise_spec
from jaxmag.simulate import _compute_dtype, background_material, step_counts

Batch = tuple[jax.Array, jax.Array]


@dataclasses.dataclass(frozen=True)
class DefectPool:
    """``P`` defect films drawn on the host: ``A_ex``, ``K_u`` (P, ny, nx), ``easy_axis`` (P, ny, nx, 3), ``labels`` (P, ny, nx) uint8."""

    A_ex: np.ndarray
    K_u: np.ndarray
    easy_axis: np.ndarray
    labels: np.ndarray
    run_indices: np.ndarray


def defect_pool(config: Config, pool_size: int, *, seed: int | None = None, first_index: int | None = None) -> DefectPool:
    """Draw ``pool_size`` defect films of ``config`` (runs ``first_index ...`` of ``defect_rng(seed, .)``)."""
    if pool_size < 1:
        raise ValueError(f"pool_size must be >= 1, got {pool_size}")
    seed = config.dataset.seed if seed is None else int(seed)
    first = config.dataset.num_runs if first_index is None else int(first_index)
    g, mat = config.grid, config.material
    maps = []
    for i in range(first, first + pool_size):
        d = generate_defects(config.defects, g.ny, g.nx, defect_rng(seed, i), periodic=g.boundary == "periodic")
        maps.append((*material_maps(d, A_ex=mat.A_ex, K_u=mat.K_u, easy_axis=mat.easy_axis), d.labels))
    A, K, u, labels = (np.stack(x) for x in zip(*maps))
    return DefectPool(A, K, u, labels, np.arange(first, first + pool_size))


def _needed(inputs: Sequence[tuple[str, str]]) -> tuple[tuple[str, ...], str]:
    measures = tuple(dict.fromkeys(m for m, _ in inputs))
    components = "".join(dict.fromkeys(c for _, c in inputs))
    for m in measures:
        if m not in MEASURES:
            raise ValueError(f"unknown measure {m!r} in inputs: expected one of {', '.join(MEASURES)}")
    if not set(components) <= set("xyz"):
        raise ValueError(f"input components must be x, y or z, got {components!r}")
    return measures, components


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
        config: grid, material, defects, simulation and measures sections are used.
        inputs: ``((measure, component), ...)`` channels, e.g. ``(("std", "z"),)``.
        noise_spec: measurement noise added to every frame before the measures (``"clean"``,
            ``"gaussian:1e-2"`` or a ``NoiseSpec``).
        batch_size: ``B``.
        pool_size, seed, first_index: the host-drawn defect pool (module docstring).
        augment: random mirrors (and shifts on periodic grids) of the pool entries.
    """
    noise_spec = parse_noise_spec(noise_spec) if isinstance(noise_spec, str) else noise_spec
    inputs = tuple((str(m), str(c)) for m, c in inputs)
    if not inputs:
        raise ValueError("at least one input (measure, component) is required")
    measures, components = _needed(inputs)
    grid = config.grid.to_grid()
    if grid.nz != 1:
        raise ValueError(f"online generation needs a film one cell thick: grid.nz must be 1, got {grid.nz}")
    s = config.simulation
    burn, spf = step_counts(config)
    dtype = _compute_dtype(config)
    pool = defect_pool(config, pool_size, seed=seed, first_index=first_index)
    mat = config.material
    background = background_material(config)
    # the stiffest pool film bounds the stable step of every batch (checked once, on the host)
    stiff = int(np.argmax(pool.A_ex.max(axis=(1, 2)) + pool.K_u.max(axis=(1, 2))))
    drivers.check_time_step(grid, background.replace(A_ex=jnp.asarray(pool.A_ex[stiff][None], dtype),
                                                     K_u=jnp.asarray(pool.K_u[stiff][None], dtype)), s.dt)
    simulate = drivers.movie_simulator(grid, dt=s.dt, burn_in_steps=burn, steps_per_frame=spf,
                                       num_frames=s.num_frames, demag=s.demag, components=components)
    u = np.asarray(mat.easy_axis, np.float64)
    m0 = jnp.broadcast_to(jnp.asarray(u / np.linalg.norm(u), dtype), grid.vector_shape)
    pool_A = jnp.asarray(pool.A_ex, dtype)
    pool_K = jnp.asarray(pool.K_u, dtype)
    pool_u = jnp.asarray(pool.easy_axis, dtype)
    pool_labels = jnp.asarray(pool.labels > 0, jnp.int32)
    periodic = grid.periodic
    B, ny, nx = int(batch_size), grid.ny, grid.nx
    channel_index = [(m, components.index(c)) for m, c in inputs]
    comp_options = [measure_options(config.measures, c) for c in components]  # per-component fixed ranges
    for opts in comp_options:
        check_options(num_frames=s.num_frames, measures=measures, **{k: v for k, v in opts.items() if k != "normalize"})

    def one_film(key):
        k_pick, k_flip, k_shift = jax.random.split(key, 3)
        i = jax.random.randint(k_pick, (), 0, pool_A.shape[0])
        A, K, axis, lab = pool_A[i], pool_K[i], pool_u[i], pool_labels[i]
        if augment:
            fy, fx = jax.random.bernoulli(k_flip, 0.5, (2,))
            sign = jnp.where(fy ^ fx, -1.0, 1.0).astype(dtype)  # an odd number of mirrors flips u_y, u_z

            def mirror(a, flag, axis_):
                return jnp.where(flag, jnp.flip(a, axis_), a)

            A, K, axis, lab = (mirror(mirror(a, fy, 0), fx, 1) for a in (A, K, axis, lab))
            axis = axis * jnp.stack([jnp.ones((), dtype), sign, sign])
            if periodic:
                sy, sx = jax.random.randint(k_shift, (2,), 0, jnp.array([ny, nx]))
                A, K, axis, lab = (jnp.roll(a, (sy, sx), axis=(0, 1)) for a in (A, K, axis, lab))
        material = background.replace(A_ex=A[None], K_u=K[None], easy_axis=axis[None])
        return material, lab

    def make_batch(key: jax.Array) -> Batch:
        k_films, k_thermal, k_noise = jax.random.split(key, 3)
        materials, labels = jax.vmap(one_film)(jax.random.split(k_films, B))
        frames = jax.vmap(lambda m, k: simulate(m, m0, k))(materials, jax.random.split(k_thermal, B))
        movies = jnp.moveaxis(frames[:, :, 0], -1, 1)  # (B, T, ny, nx, C) -> (B, C, T, ny, nx)
        movies = apply_noise(movies, noise_spec, k_noise)
        per_comp = [measures_kernel(movies[:, c], measures=measures, **opts) for c, opts in enumerate(comp_options)]
        maps = {m: jnp.stack([o[m] for o in per_comp], axis=1) for m in measures}  # {m: (B, C, ny, nx)}
        x = jnp.stack([maps[m][:, c] for m, c in channel_index], axis=-1)
        return x.astype(jnp.float32), labels

    return make_batch
