"""The exact symmetries of a simulated film, derived from its easy axis: used by every data source.

A jaxmag film is one cell thick, on a rectangular grid, with exchange, uniaxial anisotropy along
the easy axis u, demag, the thermal field and an applied field B (if any); its clean movies are
samples of a law, that of the stochastic LLG equation started from ``m0 = +u`` on a defect map
drawn by ``jaxmag.defects``. A data source may train on a transformed movie instead of the
original when the transformation maps that law to itself: the transformed movie is then just
another sample of the same law, and so are its temporal statistics.

**The candidates.** The point group of a film one cell thick on a rectangular grid is D2h, the
products ``M_x^a M_y^b M_z^c`` of the three mirrors (a, b, c in {0, 1}). ``M_x`` (x -> -x) flips
the columns, ``M_y`` (y -> -y) the rows, and ``M_z`` (z -> -z) moves no cell: the film's mid-plane
is its mirror plane. The magnetisation is an axial vector: under ``R = diag((-1)^a, (-1)^b,
(-1)^c)`` it maps as ``m'(r) = det(R) R m(R^-1 r)``, so the element changes the component signs

    (m_x, m_y, m_z) -> ((-1)^(b+c) m_x, (-1)^(a+c) m_y, (-1)^(a+b) m_z).

For example the column flip ``M_x`` gives (m_x, -m_y, -m_z); the row flip as the rotation by pi
about x (``C2x = M_y M_z``) gives (m_x, -m_y, -m_z), as the mirror ``M_y`` (-m_x, m_y, -m_z);
both flips are the rotation ``C2z`` ((-m_x, -m_y, m_z)) or the inversion (m unchanged); ``M_z``
alone, no pixel move, gives (-m_x, -m_y, m_z).

**Why every candidate is exact for the physics.** Move the material with the pixels and change
the signs of the easy axis and the field as those of m. The exchange ``A |grad m|^2`` and the
anisotropy ``-K_u (u . m)^2`` are scalars; the Newell demag kernel of a rectangular cell has the
mirror symmetries of the cell (and a film one layer thick is symmetric under z -> -z); the
Zeeman term ``-Ms B . m`` is invariant since B is axial too. The LLG right-hand side is built of
cross products, and for any orthogonal g, ``(det g g a) x (det g g b) = det g g (a x b)``: the
torque of axial vectors is axial, so the dynamics commute with the element. The thermal field is
isotropic white noise, whose law is invariant under any orthogonal map and any permutation of
the cells. ``tests/test_symmetry.py`` checks the energy and the torque of every element on small
films with u along x, along z and tilted.

**Which candidates are symmetries of this film** (``film_symmetries``). The element must map the
background to itself and ``m0 = +u`` to itself (a change of sign of m along u would make films of
the other domain), and keep B: its sign must be +1 on every component where u or B is non-zero.
The defect law is invariant under every pixel move (uniform positions; an open film's margin is
symmetric), and the blobs' easy axes, u rotated about z by a normal angle, map to u rotated by
plus or minus the angle. The result (``tests/test_symmetry.py``):

* **u along x** (permalloy): the column flip and the row flip, each (m_x, -m_y, -m_z), and both
  (the inversion, m unchanged): the table of earlier versions, drawn from the same random bits;
* **u along y**: each flip gives (-m_x, m_y, -m_z), both none;
* **u along z** (perpendicular films): both flips, with m unchanged (inversion) or (-m_x, -m_y,
  m_z) (``C2z``), and the sign change (-m_x, -m_y, m_z) without a pixel move (``M_z``). No single
  flip: every one reverses m_z;
* **a tilted axis** (two or three non-zero components): the identity and the inversion only;
* **cyclic shifts** in y and x on periodic films, for every axis (translations of the torus; with
  open edges a shift would move the border into the interior and break ``defects.margin``).

**The statistics.** The models read the mean, std and latent entropy of each component: per-pixel
functions of each pixel's series, taken forward in time, so they follow the movie. Computing them
on the transformed movie, or moving the pixels of the maps after changing the signs of the movie
(``move_channel_pixels``), gives a sample of the statistics' law: no time reversal and no
equilibrium is assumed. (Where the group changes a component's sign without moving a pixel, as
``M_z`` does m_x and m_y of a perpendicular film, that component's law is symmetric about 0 at
every pixel: its temporal mean carries no defect contrast.)

**Time reversal** (``time_reversal=True``, not used by the data sources). With m -> -m and the
time reversed, the energy without an applied field is unchanged, and the stochastic LLG in
equilibrium obeys detailed balance with m odd under time reversal: the stationary law of
``-m(t_end - t)`` is that of ``m(t)``. Combined with the elements above that reverse m along u,
this gives the single flips of a perpendicular film: the column flip with (-m_x, m_y, m_z) (``M_x``
then m -> -m) or (m_x, -m_y, m_z) (``C2y`` then m -> -m), and the same two for the row flip
(``FilmSymmetries.augment_movies`` then reverses the frames too, so the latent entropy, a
function of the frame order, is covered). It is exact only for the stationary law: the mean and
the std are the same on the reversed frames, and the stationary ``H(s[t+1] | s[t]) = H(s[t] |
s[t+1])``. A simulated film is not stationary: it starts from the uniform ``m0``. On a
perpendicular CoFeB-like film 0.1 ns after the start, the background's temporal std of m_x still
grows by 4.5 % from the first to the second half of a 0.3 ns movie, and its soft blobs tilt over
about 1 ns (docs/detect.md). So the sources keep to the exact group.

Left out: the 90 degree rotations and diagonal mirrors of a square grid. For u along z, ``C4z``
maps m to (-m_y, m_x, m_z): it turns m_x into m_y, which the stored movies (``"xz"``) do not hold.

Layouts: movies ``(..., T, C, ny, nx)`` with a components string (``"xz"``), maps ``(B, ny, nx,
K)``, labels ``(B, ny, nx)``; an element is drawn as ``codes (B, G)`` bool, one bit per generator
of the group (``FilmSymmetries.generators``), with its pixel moves ``flips (B, 2)`` bool (rows,
columns) and ``shifts (B, 2)`` int (y, x) or ``None``. For u along x the generators are the row
flip and the column flip, so ``codes`` are the flips themselves.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

AXES = "xyz"
X_AXIS = (1.0, 0.0, 0.0)

FLIP_SIGNS = {"x": 1.0, "y": -1.0, "z": -1.0}
"""The sign of each magnetisation component under one flip of rows or of columns, for u along x."""


def flip_signs(components: str) -> tuple[float, ...]:
    """``FLIP_SIGNS`` of each letter of ``components``; ``ValueError`` for another letter."""
    _check_components(components)
    return tuple(FLIP_SIGNS[c] for c in components)


def _check_components(components: str) -> None:
    for c in components:
        if c not in AXES:
            raise ValueError(f"unknown magnetisation component {c!r} in {components!r}: expected x, y or z")


# -- pixel moves --------------------------------------------------------------------------------

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


def move_channel_pixels(maps: jax.Array, labels: jax.Array, flips: jax.Array, shifts: jax.Array | None):
    """The pixel moves of ``augment_movies`` (flips, cyclic shifts; no signs) on channel maps
    ``(B, ny, nx, K)`` and ``labels (B, ny, nx)``.

    Every measure is a per-pixel function of the pixel's time series and the noise is i.i.d. over
    pixels, so moving the pixels of the noisy maps has the law of the maps of the moved movie,
    with the signs applied to the movie first (``component_factors``): ``augment_movies`` then the
    maps, at a fraction of its cost (moving whole movies dominated a speckle batch on CPU). With
    the same draws the two agree exactly where the noise is unkeyed (clean)."""
    moved, labels = move_pixels(jnp.moveaxis(maps, -1, 1), labels, flips, shifts)
    return jnp.moveaxis(moved, 1, -1), labels


# -- the group ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Generator:
    """One generator of a film's group: its pixel move (``rows``, ``cols`` flipped), the signs of
    (m_x, m_y, m_z) and whether it reverses time (m -> -m included in ``signs``)."""

    rows: bool
    cols: bool
    signs: tuple[float, float, float]
    reverses_time: bool = False


def _d2h_signs(a: int, b: int, c: int, t: int) -> tuple[float, float, float]:
    """Component signs of ``M_x^a M_y^b M_z^c`` on an axial vector, times -1 with time reversal ``t``."""
    flip = (-1.0) ** t
    return (flip * (-1.0) ** (b + c), flip * (-1.0) ** (a + c), flip * (-1.0) ** (a + b))


def group_generators(easy_axis: Sequence[float] = X_AXIS, applied_field: Sequence[float] = (0.0, 0.0, 0.0),
                     time_reversal: bool = False) -> tuple[Generator, ...]:
    """A basis (over XOR) of the elements of D2h (and, with ``time_reversal`` and no field, their
    products with m -> -m) whose signs are +1 wherever ``easy_axis`` or ``applied_field`` is
    non-zero (module docstring).

    Chosen greedily in a fixed order, rows-only, columns-only, both, no pixel move, fewer sign
    changes first and no time reversal first, so that for u along x the generators are the row
    flip and the column flip."""
    u = np.asarray(easy_axis, np.float64)
    if u.shape != (3,) or not np.all(np.isfinite(u)) or not np.any(u):
        raise ValueError(f"easy_axis must be a non-zero 3-vector, got {tuple(np.ravel(easy_axis))}")
    field = np.asarray(applied_field, np.float64)
    fixed = (np.abs(u) > 1e-9 * np.abs(u).max()) | (np.abs(field) > 0)
    times = (0, 1) if time_reversal and not np.any(field) else (0,)
    move_order = {(1, 0): 0, (0, 1): 1, (1, 1): 2, (0, 0): 3}  # (rows, cols)
    candidates = []
    for a, b, c, t in itertools.product((0, 1), (0, 1), (0, 1), times):
        signs = _d2h_signs(a, b, c, t)
        if (a, b, c, t) != (0, 0, 0, 0) and all(s > 0 for s, f in zip(signs, fixed) if f):
            rank = (move_order[(b, a)], sum(s < 0 for s in signs), t)
            candidates.append((rank, (b, a, tuple(s < 0 for s in signs), t)))
    basis: list[tuple] = []
    span = {(0, 0, (False,) * 3, 0)}
    for _, elem in sorted(candidates):
        if elem in span:
            continue
        basis.append(elem)
        span |= {_compose(e, elem) for e in span}
    return tuple(Generator(bool(r), bool(col), tuple(-1.0 if n else 1.0 for n in neg), bool(t))
                 for r, col, neg, t in basis)


def _compose(e1: tuple, e2: tuple) -> tuple:
    """The product of two elements ``(rows, cols, negated components, time)``: every part XORs."""
    return (e1[0] ^ e2[0], e1[1] ^ e2[1], tuple(p ^ q for p, q in zip(e1[2], e2[2])), e1[3] ^ e2[3])


@dataclasses.dataclass(frozen=True)
class FilmSymmetries:
    """The group a source draws its augmentation from (``film_symmetries``): its ``generators``,
    the stored ``components`` the signs act on, and whether cyclic shifts are allowed."""

    components: str
    generators: tuple[Generator, ...]
    periodic: bool
    easy_axis: tuple[float, float, float] = X_AXIS

    @property
    def reverses_time(self) -> bool:
        """Whether some element reverses time (then the frames of a movie must be reversed too)."""
        return any(g.reverses_time for g in self.generators)

    def draw(self, k_flip: jax.Array, k_shift: jax.Array, image_shape: tuple[int, int], batch: tuple[int, ...] = ()):
        """A random element per sample, uniform over the group: ``codes batch + (G,)`` (each
        generator with probability 1/2, from ``k_flip``) and ``shifts batch + (2,)`` uniform over
        the image (from ``k_shift``; ``None`` on open films)."""
        codes = jax.random.bernoulli(k_flip, 0.5, batch + (len(self.generators),))
        if not self.periodic:
            return codes, None
        return codes, jax.random.randint(k_shift, batch + (2,), 0, jnp.array(image_shape))

    def _parity(self, codes: jax.Array, table: np.ndarray) -> jax.Array:
        """``(..., K)`` bool: the XOR over the generators drawn in ``codes (..., G)`` of ``table (G, K)``."""
        if table.shape[0] == 0:
            return jnp.zeros(codes.shape[:-1] + table.shape[1:], bool)
        hits = codes[..., :, None] & jnp.asarray(table, bool)
        return jnp.sum(hits, axis=-2, dtype=jnp.int32) % 2 == 1

    def flips(self, codes: jax.Array) -> jax.Array:
        """The pixel moves ``(..., 2)`` bool (rows, columns) of the elements ``codes (..., G)``."""
        return self._parity(codes, np.array([[g.rows, g.cols] for g in self.generators], bool).reshape(-1, 2))

    def time_reversed(self, codes: jax.Array) -> jax.Array:
        """``(...)`` bool: whether the element ``codes (..., G)`` reverses time."""
        table = np.array([[g.reverses_time] for g in self.generators], bool).reshape(-1, 1)
        return self._parity(codes, table)[..., 0]

    def component_factors(self, codes: jax.Array, dtype) -> jax.Array:
        """``(..., C)`` factors of ``components`` for the elements ``codes (..., G)``."""
        idx = [AXES.index(c) for c in self.components]
        table = np.array([[g.signs[i] < 0 for i in idx] for g in self.generators], bool).reshape(-1, len(idx))
        return jnp.where(self._parity(codes, table), jnp.asarray(-1.0, dtype), jnp.asarray(1.0, dtype))

    def augment_movies(self, movies: jax.Array, labels: jax.Array, codes: jax.Array, shifts: jax.Array | None):
        """The elements ``codes (B, G)`` and ``shifts`` applied to ``movies (B, T, C, ny, nx)``
        (signs, pixel moves, and the frame order where an element reverses time) and ``labels
        (B, ny, nx)`` (pixel moves)."""
        movies = movies * self.component_factors(codes, movies.dtype)[:, None, :, None, None]
        if self.reverses_time:
            back = self.time_reversed(codes)[:, None, None, None, None]
            movies = jnp.where(back, jnp.flip(movies, axis=1), movies)
        return move_pixels(movies, labels, self.flips(codes), shifts)

    def elements(self) -> list[tuple[bool, bool, tuple[float, float, float], bool]]:
        """Every element ``(rows, cols, signs of (m_x, m_y, m_z), reverses time)``, identity first."""
        out = []
        for bits in itertools.product((0, 1), repeat=len(self.generators)):
            e = (0, 0, (False,) * 3, 0)
            for bit, g in zip(bits, self.generators):
                if bit:
                    e = _compose(e, (int(g.rows), int(g.cols), tuple(s < 0 for s in g.signs), int(g.reverses_time)))
            out.append((bool(e[0]), bool(e[1]), tuple(-1.0 if n else 1.0 for n in e[2]), bool(e[3])))
        return out

    def describe(self) -> str:
        """One line per element besides the identity, e.g. ``columns: (m_x, -m_y, -m_z)``."""
        lines = []
        for rows, cols, signs, back in self.elements()[1:]:
            move = {(True, False): "rows", (False, True): "columns", (True, True): "rows and columns"}.get(
                (rows, cols), "no pixel move")
            comps = ", ".join(("-" if s < 0 else "") + f"m_{a}" for s, a in zip(signs, AXES))
            lines.append(f"{move}: ({comps})" + (", time reversed" if back else ""))
        lines.append("cyclic shifts" if self.periodic else "no shifts (open edges)")
        return "\n".join(lines)


def film_symmetries(components: str, periodic: bool, easy_axis: Sequence[float] = X_AXIS, *,
                    applied_field: Sequence[float] = (0.0, 0.0, 0.0), time_reversal: bool = False) -> FilmSymmetries:
    """The exact symmetries of a film one cell thick magnetised along +``easy_axis`` (module
    docstring), acting on the stored ``components``; cyclic shifts only where ``periodic``;
    ``applied_field`` (any units) removes the elements that would change it; ``time_reversal``
    adds the equilibrium elements with m -> -m (not exact for every statistic: module docstring)."""
    _check_components(components)
    gens = group_generators(easy_axis, applied_field, time_reversal)
    u = tuple(float(v) for v in np.asarray(easy_axis, np.float64) / np.linalg.norm(easy_axis))
    return FilmSymmetries(components, gens, bool(periodic), u)


# -- the x-axis table, as free functions (u along x: codes are the flips) -------------------------

def component_signs(flips: jax.Array, components: str, dtype) -> jax.Array:
    """``(..., C)`` factors of the components for flips ``(..., 2)`` of a film along x: ``flip_signs``
    where an odd number of flips applies, 1 elsewhere."""
    return film_symmetries(components, periodic=False).component_factors(flips, dtype)


def mirror_signs(flips: jax.Array, components: str, dtype) -> jax.Array:
    """``(B, 1, C, 1, 1)`` factors on stored movies ``(B, T, C, ny, nx)`` for flips ``(B, 2)`` (u along x)."""
    return component_signs(flips, components, dtype)[:, None, :, None, None]


def augment_movies(movies: jax.Array, labels: jax.Array, flips: jax.Array, shifts: jax.Array | None, components: str):
    """The symmetry ``(flips, shifts)`` of a film along x applied to ``movies (B, T, C, ny, nx)``
    (signs and pixel moves) and ``labels (B, ny, nx)`` (pixel moves)."""
    return move_pixels(movies * mirror_signs(flips, components, movies.dtype), labels, flips, shifts)
