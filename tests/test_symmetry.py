"""jaxmag.symmetry: the film's symmetries form a group, and the sign rule is an exact symmetry of
the energy and of the LLG dynamics (the law of the thermal movies is mapped to itself)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag.energy import total_energy
from jaxmag.fields import effective_field
from jaxmag.fields.terms import TERMS
from jaxmag.grid import Grid
from jaxmag.llg import llg_torque, normalize
from jaxmag.material import Material
from jaxmag.symmetry import (
    FLIP_SIGNS,
    augment_movies,
    film_symmetries,
    mirror_and_shift,
    move_channel_pixels,
)

B, T, C, NY, NX = 3, 4, 2, 8, 8
FLIPS = jnp.array([[True, False], [False, True], [True, True]])


@pytest.fixture(scope="module")
def movie():
    rng = np.random.default_rng(0)
    return (jnp.asarray(rng.normal(size=(B, T, C, NY, NX)), jnp.float32),
            jnp.asarray(rng.integers(0, 2, (B, NY, NX)), jnp.int32))


def test_flips_are_involutions_that_compose_as_a_group(movie):
    mv, lab = movie
    once = augment_movies(mv, lab, FLIPS, None, "xz")
    twice = augment_movies(*once, FLIPS, None, "xz")
    np.testing.assert_array_equal(twice[0], mv)
    np.testing.assert_array_equal(twice[1], lab)
    # flips commute and compose by XOR (their signs multiply)
    other = jnp.array([[True, True], [True, False], [False, True]])
    composed = augment_movies(*once, other, None, "xz")
    direct = augment_movies(mv, lab, FLIPS ^ other, None, "xz")
    np.testing.assert_array_equal(composed[0], direct[0])
    np.testing.assert_array_equal(composed[1], direct[1])
    # both flips: the inversion, which changes no sign of an axial vector
    np.testing.assert_array_equal(once[0][2], mv[2][..., ::-1, ::-1])
    # one flip: m_x kept, m_z reversed (FLIP_SIGNS)
    np.testing.assert_array_equal(once[0][0, :, 0], mv[0, :, 0, ::-1, :])
    np.testing.assert_array_equal(once[0][0, :, 1], -mv[0, :, 1, ::-1, :])


def test_cyclic_shifts_invert_and_maps_follow_labels(movie):
    mv, lab = movie
    none = jnp.zeros((B, 2), bool)
    shifts = jnp.array([[1, 2], [3, 0], [7, 5]])
    moved = augment_movies(mv, lab, none, shifts, "xz")
    back = augment_movies(*moved, none, (-shifts) % jnp.array([NY, NX]), "xz")
    np.testing.assert_array_equal(back[0], mv)
    np.testing.assert_array_equal(back[1], lab)
    # channel maps move exactly as the labels do (the pixel moves, no signs)
    maps = jnp.stack([lab, 2 * lab], axis=-1).astype(jnp.float32)
    mmaps, mlab = move_channel_pixels(maps, lab, FLIPS, shifts)
    np.testing.assert_array_equal(mmaps[..., 0], mlab)
    np.testing.assert_array_equal(mmaps[..., 1], 2 * mlab)


def test_film_symmetries_table_and_draws():
    sym = film_symmetries("xz", periodic=True)
    assert sym.signs == (FLIP_SIGNS["x"], FLIP_SIGNS["z"]) == (1.0, -1.0)
    flips, shifts = sym.draw(jax.random.key(0), jax.random.key(1), (NY, NX), (16,))
    assert flips.shape == shifts.shape == (16, 2) and flips.dtype == jnp.bool_
    assert int(shifts.min()) >= 0 and int(shifts.max()) < NY
    factors = np.asarray(sym.component_factors(flips, jnp.float32))
    odd = np.asarray(flips[:, 0] ^ flips[:, 1])
    np.testing.assert_array_equal(factors, np.where(odd[:, None], [1.0, -1.0], [1.0, 1.0]))
    assert film_symmetries("xz", periodic=False).draw(jax.random.key(0), jax.random.key(1), (NY, NX))[1] is None
    with pytest.raises(ValueError, match="component 'w'"):
        film_symmetries("xw", periodic=True)


# -- physics: an exact symmetry of the energy and of the dynamics -----------------------------


def _film(grid, seed):
    """A random state and random material maps (easy axis near x, field along x): (m, material)."""
    rng = np.random.default_rng(seed)
    shape = grid.shape
    m = normalize(jnp.asarray(rng.normal(size=grid.vector_shape) + [1.5, 0, 0], jnp.float32))
    axis = normalize(jnp.asarray(rng.normal(scale=0.3, size=grid.vector_shape) + [1, 0, 0], jnp.float32))
    material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=5e3, alpha=0.1, dtype=jnp.float32).replace(
        A_ex=jnp.asarray(rng.uniform(0.5e-11, 2e-11, shape), jnp.float32),
        K_u=jnp.asarray(rng.uniform(0, 1e4, shape), jnp.float32),
        easy_axis=axis,
        B_ext=jnp.asarray(np.stack([rng.uniform(0, 0.02, shape), np.zeros(shape), np.zeros(shape)], -1), jnp.float32))
    return m, material


def _transform(m, material, flips, shift, vector_signs):
    """The film under a pixel move (rows, columns of (nz, ny, nx[, 3]) arrays) and ``vector_signs``
    on the axial vectors m, the easy axis and the applied field."""
    move = lambda a: mirror_and_shift(a, flips, shift, axes=(1, 2))  # noqa: E731
    signs = jnp.asarray(vector_signs, jnp.float32)
    moved = material.replace(A_ex=move(material.A_ex), K_u=move(material.K_u), Ms=move(material.Ms),
                             easy_axis=move(material.easy_axis) * signs, B_ext=move(material.B_ext) * signs)
    return move(m) * signs, moved


@pytest.mark.parametrize("boundary", ["open", "periodic"])
def test_sign_rule_is_a_symmetry_of_energy_and_llg(boundary):
    grid = Grid(NX, NY, 1, 4e-9, 4e-9, 4e-9, boundary=boundary, pbc_images=1)
    names = ("exchange", "anisotropy", "zeeman", "demag")
    energy = jax.jit(total_energy(grid, names))
    field = effective_field([TERMS[n].factory(grid) for n in names])
    torque = jax.jit(lambda m, mat: llg_torque(m, field(m, mat), mat.alpha))
    m, material = _film(grid, 1)
    e0, t0 = float(energy(m, material)), torque(m, material)
    sym = film_symmetries("xyz", grid.periodic)
    shift = jnp.array([3, 5]) if grid.periodic else None
    for flips in ([True, False], [False, True], [True, True]):
        flips = jnp.array(flips)
        signs = sym.component_factors(flips, jnp.float32)
        gm, gmat = _transform(m, material, flips, shift, signs)
        assert float(energy(gm, gmat)) == pytest.approx(e0, rel=2e-5)
        # the dynamics commute with it: the torque of the moved film is the moved torque
        want = mirror_and_shift(t0, flips, shift, axes=(1, 2)) * signs
        np.testing.assert_allclose(torque(gm, gmat), want, atol=2e-5 * float(jnp.abs(t0).max()))
    # the other candidate for a row flip, the mirror with m -> -m ((m_x, -m_y, +m_z)), keeps the
    # energy but reverses the precession: not a symmetry of the forward dynamics
    flips, polar = jnp.array([True, False]), jnp.array([1.0, -1.0, 1.0])
    gm, gmat = _transform(m, material, flips, shift, polar)
    assert float(energy(gm, gmat)) == pytest.approx(e0, rel=2e-5)
    want = mirror_and_shift(t0, flips, shift, axes=(1, 2)) * polar
    assert float(jnp.abs(torque(gm, gmat) - want).max()) > 0.1 * float(jnp.abs(t0).max())
