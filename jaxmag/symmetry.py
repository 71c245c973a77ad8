"""The exact symmetries of a simulated film: one sign rule, used by every data source.

A jaxmag film is one cell thick, magnetised along +x (``m0`` and the easy axis along x), with
exchange, uniaxial anisotropy, demag and the thermal field (an applied field, if any, along x;
no interfacial DMI and no field along z). Its clean movies are samples of a law, that of the
stochastic LLG equation started from ``m0`` on a defect map drawn by ``jaxmag.defects``. A data
source may train on a transformed movie instead of the original when the transformation maps
that law to itself: the transformed movie is then just another sample of the same law, and so
are its temporal statistics.

The group (``FilmSymmetries``), acting on the pixels and on the magnetisation m, an axial
vector (it transforms as ``m'(r) = det(g) g m(g^-1 r)``):

* **column flip** (x -> -x): the mirror through the y-z plane; m -> (m_x, -m_y, -m_z);
* **row flip** (y -> -y): the rotation by pi about the x axis, (x, y, z) -> (x, -y, -z); in a
  film one cell thick z -> -z moves no cell, so it flips the rows; m -> (m_x, -m_y, -m_z);
* **both**: the inversion through the film's centre, which leaves an axial vector unchanged;
* **cyclic shifts** in y and x, on periodic films only (translations of the torus; with open
  edges a shift would move the film's border into its interior and break ``defects.margin``).

**The sign rule**: a flip of rows or columns maps the components (m_x, m_y, m_z) to (m_x, -m_y,
-m_z); two flips change no sign (``FLIP_SIGNS``).

Why each is exact: every term of the energy is invariant when the material maps (A_ex, K_u,
the easy axis as an axis) move with the pixels. The exchange ``A |grad m|^2`` and the anisotropy
``-K_u (u . m)^2`` are scalars, the demag kernel of a rectangular cell has the mirror symmetries
of the cell (and a one-layer film is symmetric under z -> -z), a Zeeman term ``-Ms B . m`` with B
along x is invariant since B is axial too, and +x is fixed, so ``m0`` is. The LLG right-hand side
``m x B`` is a cross product of axial vectors, itself axial, so the dynamics commute with the
transformation; the thermal field is isotropic white noise, whose law is invariant under any
orthogonal map and any permutation of the cells. So the law of the movies given a defect map is
mapped to the law given the moved defect map, and the defect generator's law (uniform
positions, shapes drawn symmetrically) is invariant under the pixel moves: the joint law of
(movie, labels) is mapped to itself. The measurement noise keeps its law too (additive noise is
symmetric, speckle ``x + x n`` is odd in x). The statistics the models read, mean, std and latent
entropy of each component, are per-pixel functions of each pixel's time series, taken in the
forward time direction, so they follow the movie: computing them on the transformed movie, or
moving the pixels of the maps after changing the signs of the movie (``move_channel_pixels``),
gives a sample of the statistics' law. No time reversal and no equilibrium is assumed.

(The other candidate for the row flip, the mirror y -> -y, maps m to (-m_x, m_y, -m_z); composed
with the reversal m -> -m it keeps +x and gives (m_x, -m_y, +m_z). The reversal is a symmetry of
the energy without a field but not of the forward LLG dynamics (precession runs backwards), so
that rule is exact only for the equilibrium law and time-symmetric statistics. The rotation
needs neither, so it is the project's rule.)

A later easy axis or boundary (a perpendicular film, m0 along z) changes the table, not its
users: ``film_symmetries(components, periodic)`` is where the group is derived.

Layouts: movies ``(..., T, C, ny, nx)`` with a components string (``"xz"``), maps
``(B, ny, nx, K)``, labels ``(B, ny, nx)``; ``flips (B, 2)`` bool (rows, columns) and
``shifts (B, 2)`` int (y, x) or ``None``.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

FLIP_SIGNS = {"x": 1.0, "y": -1.0, "z": -1.0}
"""The sign of each magnetisation component under one flip of rows or of columns."""


def flip_signs(components: str) -> tuple[float, ...]:
    """``FLIP_SIGNS`` of each letter of ``components``; ``ValueError`` for another letter."""
    for c in components:
        if c not in FLIP_SIGNS:
            raise ValueError(f"unknown magnetisation component {c!r} in {components!r}: expected x, y or z")
    return tuple(FLIP_SIGNS[c] for c in components)


def component_signs(flips: jax.Array, components: str, dtype) -> jax.Array:
    """``(..., C)`` factors of the components for flips ``(..., 2)``: ``flip_signs`` where an odd
    number of flips applies, 1 elsewhere."""
    return film_symmetries(components, periodic=False).component_factors(flips, dtype)


def mirror_signs(flips: jax.Array, components: str, dtype) -> jax.Array:
    """``(B, 1, C, 1, 1)`` factors on stored movies ``(B, T, C, ny, nx)`` for flips ``(B, 2)``."""
    return component_signs(flips, components, dtype)[:, None, :, None, None]


def mirror_and_shift(arr: jax.Array, flips: jax.Array, shift: jax.Array | None,
                     axes: tuple[int, int] = (-2, -1)) -> jax.Array:
    """One sample's pixel move: flip the rows (``flips[0]``), then the columns (``flips[1]``),
    then shift cyclically by ``shift (2,)`` (``None``: no shift); ``axes`` are the (y, x) axes."""
    arr = jnp.where(flips[0], jnp.flip(arr, axes[0]), arr)
    arr = jnp.where(flips[1], jnp.flip(arr, axes[1]), arr)
    return arr if shift is None else jnp.roll(arr, (shift[0], shift[1]), axis=axes)


def move_pixels(arr: jax.Array, labels: jax.Array, flips: jax.Array, shifts: jax.Array | None):
    """``mirror_and_shift`` of the last two axes, per sample of ``arr`` and ``labels``."""
    if shifts is None:
        move = jax.vmap(lambda a, f: mirror_and_shift(a, f, None))
        return move(arr, flips), move(labels, flips)
    move = jax.vmap(mirror_and_shift)
    return move(arr, flips, shifts), move(labels, flips, shifts)


def augment_movies(movies: jax.Array, labels: jax.Array, flips: jax.Array, shifts: jax.Array | None, components: str):
    """The symmetry ``(flips, shifts)`` applied to ``movies (B, T, C, ny, nx)`` (signs and pixel
    moves) and ``labels (B, ny, nx)`` (pixel moves)."""
    return move_pixels(movies * mirror_signs(flips, components, movies.dtype), labels, flips, shifts)


def move_channel_pixels(maps: jax.Array, labels: jax.Array, flips: jax.Array, shifts: jax.Array | None):
    """The pixel moves of ``augment_movies`` (flips, cyclic shifts; no signs) on channel maps
    ``(B, ny, nx, K)`` and ``labels (B, ny, nx)``.

    Every measure is a per-pixel function of the pixel's time series and the noise is i.i.d. over
    pixels, so moving the pixels of the noisy maps has the law of the maps of the moved movie,
    with the signs applied to the movie first (``mirror_signs``): ``augment_movies`` then the
    maps, at a fraction of its cost (moving whole movies dominated a speckle batch on CPU). With
    the same draws the two agree exactly where the noise is unkeyed (clean)."""
    moved, labels = move_pixels(jnp.moveaxis(maps, -1, 1), labels, flips, shifts)
    return jnp.moveaxis(moved, 1, -1), labels


@dataclasses.dataclass(frozen=True)
class FilmSymmetries:
    """The group a source draws its augmentation from: the component signs of one flip
    (``signs``, in the order of ``components``) and whether cyclic shifts are allowed."""

    components: str
    signs: tuple[float, ...]
    periodic: bool

    def draw(self, k_flip: jax.Array, k_shift: jax.Array, image_shape: tuple[int, int], batch: tuple[int, ...] = ()):
        """A random element per sample: ``flips batch + (2,)`` (each flip with probability 1/2,
        from ``k_flip``) and ``shifts batch + (2,)`` uniform over the image (from ``k_shift``;
        ``None`` on open films)."""
        flips = jax.random.bernoulli(k_flip, 0.5, batch + (2,))
        if not self.periodic:
            return flips, None
        return flips, jax.random.randint(k_shift, batch + (2,), 0, jnp.array(image_shape))

    def component_factors(self, flips: jax.Array, dtype) -> jax.Array:
        """``(..., C)`` factors of ``components`` for flips ``(..., 2)``."""
        odd = flips[..., 0] ^ flips[..., 1]
        sign = jnp.array(self.signs, dtype)
        return jnp.where(odd[..., None], sign, jnp.ones_like(sign))


def film_symmetries(components: str, periodic: bool) -> FilmSymmetries:
    """The symmetries of a film one cell thick magnetised along +x (module docstring) for the
    stored ``components``; cyclic shifts only where ``periodic``."""
    return FilmSymmetries(components, flip_signs(components), bool(periodic))
