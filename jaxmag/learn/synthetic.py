"""Synthetic segmentation data: random disc-shaped defects whose maps have a known contrast.

Used by the tests, the benchmark and as a stand-in while no simulated data exist. Not physics:
a measure map is ``background + contrast * mask + noise_std * N(0, 1)`` per channel.

- ``disc_labels(centres, radii, ny, nx)``: ``(B, K, 2)`` centres (row, col) and ``(B, K)`` radii
  in cells -> ``(B, ny, nx)`` int32 mask of the union of discs;
- ``make_disc_batch_fn(...)``: a jittable ``make_batch(key) -> (inputs (B, ny, nx, C),
  labels (B, ny, nx))`` for ``jaxmag.learn.sources.online.OnlineSource``; ``disc_geometry(key, ...)`` gives
  the discs that a key draws, so tests can check labels against them;
- ``write_measures_file(path, ...)``: a small measures HDF5 file in the layout of
  ``jaxmag measures`` (``/<condition>/<measure>/<component>``, ``/labels``), written by
  ``jaxmag.io.measures_file.write_maps`` (atomically).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.io.measures_file import write_maps


def disc_labels(centres: jax.Array, radii: jax.Array, ny: int, nx: int) -> jax.Array:
    """Union of discs: ``centres (B, K, 2)``, ``radii (B, K)`` -> ``(B, ny, nx)`` int32 in {0, 1}."""
    yy = jnp.arange(ny, dtype=jnp.float32)[None, None, :, None]
    xx = jnp.arange(nx, dtype=jnp.float32)[None, None, None, :]
    cy = centres[..., 0][..., None, None]
    cx = centres[..., 1][..., None, None]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radii[..., None, None] ** 2
    return jnp.any(inside, axis=1).astype(jnp.int32)


def disc_geometry(key: jax.Array, batch: int, ny: int, nx: int, num_discs: int, radius: tuple[float, float]):
    """The ``(centres (B, K, 2), radii (B, K))`` drawn from ``key`` (the first half of its split)."""
    k_c, k_r = jax.random.split(jax.random.split(key)[0])
    centres = jax.random.uniform(k_c, (batch, num_discs, 2)) * jnp.array([ny, nx], jnp.float32)
    radii = jax.random.uniform(k_r, (batch, num_discs), minval=radius[0], maxval=radius[1])
    return centres, radii


def make_disc_batch_fn(
    batch: int,
    ny: int,
    nx: int,
    *,
    channels: int = 1,
    num_discs: int = 4,
    radius: tuple[float, float] = (1.5, 3.5),
    contrast: float = 1.0,
    noise_std: float = 0.3,
    background: float = 0.5,
):
    """A jittable ``make_batch(key) -> (inputs (B, ny, nx, C) float32, labels (B, ny, nx) int32)``.

    Channel ``c`` has contrast ``contrast / (c + 1)`` (so channels differ); the noise uses the
    second half of the key's split, the discs the first (``disc_geometry``).
    """

    def make_batch(key):
        centres, radii = disc_geometry(key, batch, ny, nx, num_discs, radius)
        labels = disc_labels(centres, radii, ny, nx)
        scale = contrast / (1.0 + jnp.arange(channels, dtype=jnp.float32))
        noise = jax.random.normal(jax.random.split(key)[1], (batch, ny, nx, channels))
        inputs = background + labels[..., None] * scale + noise_std * noise
        return inputs.astype(jnp.float32), labels

    return make_batch


def write_measures_file(
    path: str | Path,
    num: int = 40,
    ny: int = 16,
    nx: int = 16,
    *,
    measures: tuple[str, ...] = ("mean", "std"),
    components: tuple[str, ...] = ("x", "z"),
    conditions: dict[str, float] | None = None,
    seed: int = 0,
    num_discs: int = 2,
    radius: tuple[float, float] = (1.5, 3.0),
    contrast: float = 1.0,
) -> Path:
    """Write a synthetic measures file; ``conditions`` maps group name -> extra noise std.

    Default conditions: ``{"clean": 0.0, "gaussian_1e-2": 0.5}``. Labels carry blob ids
    1..K (not just 0/1) as the real files do. Each (measure, component) map has its own offset
    and scale so normalisation matters.
    """
    conditions = {"clean": 0.0, "gaussian_1e-2": 0.5} if conditions is None else conditions
    key = jax.random.key(seed)
    centres, radii = disc_geometry(key, num, ny, nx, num_discs, radius)
    ids = np.zeros((num, ny, nx), np.uint8)
    for k in range(num_discs):
        one = np.asarray(disc_labels(centres[:, k : k + 1], radii[:, k : k + 1], ny, nx))
        ids[(one > 0) & (ids == 0)] = k + 1
    mask = (ids > 0).astype(np.float32)
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.2, (num, ny, nx)).astype(np.float32)
    maps: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for cond, extra in conditions.items():
        for i, m in enumerate(measures):
            for j, c in enumerate(components):
                offset, scale = 3.0 * i - 1.0 * j, 0.5 + i + j
                noise = rng.normal(0, extra, (num, ny, nx)) if extra > 0 else 0.0
                data = offset + scale * (base + contrast * mask + noise)
                maps.setdefault(cond, {}).setdefault(m, {})[c] = np.asarray(data, np.float32)
    return write_maps(path, ids, maps)
