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
    # u along x: the row flip and the column flip, each with FLIP_SIGNS (the table of earlier versions)
    assert [(g.rows, g.cols, g.signs, g.reverses_time) for g in sym.generators] == [
        (True, False, (1.0, -1.0, -1.0), False), (False, True, (1.0, -1.0, -1.0), False)]
    assert tuple(FLIP_SIGNS[c] for c in "xyz") == (1.0, -1.0, -1.0)
    codes, shifts = sym.draw(jax.random.key(0), jax.random.key(1), (NY, NX), (16,))
    assert codes.shape == shifts.shape == (16, 2) and codes.dtype == jnp.bool_
    assert int(shifts.min()) >= 0 and int(shifts.max()) < NY
    # bit-identical to the earlier draw (one Bernoulli bit per flip), and the codes are the flips
    np.testing.assert_array_equal(codes, jax.random.bernoulli(jax.random.key(0), 0.5, (16, 2)))
    np.testing.assert_array_equal(sym.flips(codes), codes)
    factors = np.asarray(sym.component_factors(codes, jnp.float32))
    odd = np.asarray(codes[:, 0] ^ codes[:, 1])
    np.testing.assert_array_equal(factors, np.where(odd[:, None], [1.0, -1.0], [1.0, 1.0]))
    assert film_symmetries("xz", periodic=False).draw(jax.random.key(0), jax.random.key(1), (NY, NX))[1] is None
    with pytest.raises(ValueError, match="component 'w'"):
        film_symmetries("xw", periodic=True)
    with pytest.raises(ValueError, match="easy_axis"):
        film_symmetries("xz", periodic=True, easy_axis=(0, 0, 0))


TILTED = (float(np.sin(0.4)), 0.0, float(np.cos(0.4)))
AXES = {"x": (1.0, 0.0, 0.0), "z": (0.0, 0.0, 1.0), "tilted": TILTED}


@pytest.mark.parametrize("axis, size, moves", [
    ("x", 4, {(False, False), (True, False), (False, True), (True, True)}),
    ("z", 4, {(False, False), (True, True)}),          # no single flip: each reverses m_z
    ("tilted", 2, {(False, False), (True, True)}),     # the inversion only
])
def test_group_keeps_the_magnetisation_along_the_easy_axis(axis, size, moves):
    u = np.asarray(AXES[axis])
    sym = film_symmetries("xyz", periodic=False, easy_axis=u)
    elements = sym.elements()
    assert len(elements) == size == len({e[:3] for e in elements})
    assert {(r, c) for r, c, _, _ in elements} == moves
    for _, _, signs, back in elements:
        np.testing.assert_array_equal(np.asarray(signs) * u, u)  # m0 = +u stays +u: no film of the other domain
        assert not back
    if axis == "z":  # M_z: (-m_x, -m_y, m_z) with no pixel move; C2z: the same with both flips
        assert (False, False, (-1.0, -1.0, 1.0), False) in elements
        assert (True, True, (-1.0, -1.0, 1.0), False) in elements
    # a field off the axis removes the elements that would change it
    assert len(film_symmetries("xyz", False, u, applied_field=(0.0, 1e-3, 0.0)).elements()) < size or axis == "tilted"


def test_augment_movies_of_a_perpendicular_film(movie):
    mv, lab = movie
    sym = film_symmetries("xz", periodic=False, easy_axis=AXES["z"])
    codes = jnp.array([[True, False], [False, True], [True, True]])
    out, out_lab = sym.augment_movies(mv, lab, codes, None)
    flips = np.asarray(sym.flips(codes))
    # the generators: the inversion (both flips, m unchanged) and C2z (both flips, -m_x, -m_y);
    # their product is M_z (no pixel move, -m_x, -m_y)
    np.testing.assert_array_equal(flips, [[True, True], [True, True], [False, False]])
    np.testing.assert_array_equal(out[0], mv[0][..., ::-1, ::-1])
    np.testing.assert_array_equal(out[1, :, 0], -mv[1, :, 0, ::-1, ::-1])
    np.testing.assert_array_equal(out[1, :, 1], mv[1, :, 1, ::-1, ::-1])
    np.testing.assert_array_equal(out[2, :, 0], -mv[2, :, 0])
    np.testing.assert_array_equal(out[2, :, 1], mv[2, :, 1])
    np.testing.assert_array_equal(out_lab[2], lab[2])
    # with time reversal the single flips come back, with the frames reversed
    tr = film_symmetries("xz", periodic=False, easy_axis=AXES["z"], time_reversal=True)
    assert tr.reverses_time and len(tr.elements()) == 8
    row = next(i for i, e in enumerate(tr.elements()) if e[:2] == (True, False) and e[2][0] < 0)
    bits = jnp.array([[b == "1" for b in format(row, f"0{len(tr.generators)}b")]])
    back, _ = tr.augment_movies(mv[:1], lab[:1], bits, None)
    np.testing.assert_array_equal(back[0, :, 0], -mv[0, ::-1, 0, ::-1, :])  # (-m_x, m_y, m_z), rows, time reversed
    np.testing.assert_array_equal(back[0, :, 1], mv[0, ::-1, 1, ::-1, :])


# -- physics: an exact symmetry of the energy and of the dynamics -----------------------------


def _film(grid, seed, u, field=True):
    """A random state near +u and random material maps (easy axes near u, field along u): (m, material)."""
    rng = np.random.default_rng(seed)
    shape, u = grid.shape, np.asarray(u)
    m = normalize(jnp.asarray(rng.normal(size=grid.vector_shape) + 1.5 * u, jnp.float32))
    axis = normalize(jnp.asarray(rng.normal(scale=0.3, size=grid.vector_shape) + u, jnp.float32))
    B = rng.uniform(0, 0.02, shape)[..., None] * u if field else np.zeros(grid.vector_shape)
    material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=5e3, alpha=0.1, dtype=jnp.float32).replace(
        A_ex=jnp.asarray(rng.uniform(0.5e-11, 2e-11, shape), jnp.float32),
        K_u=jnp.asarray(rng.uniform(0, 1e4, shape), jnp.float32),
        easy_axis=axis,
        B_ext=jnp.asarray(B, jnp.float32))
    return m, material


def _transform(m, material, flips, shift, vector_signs):
    """The film under a pixel move (rows, columns of (nz, ny, nx[, 3]) arrays) and ``vector_signs``
    on the axial vectors m, the easy axis and the applied field."""
    move = lambda a: mirror_and_shift(a, flips, shift, axes=(1, 2))  # noqa: E731
    signs = jnp.asarray(vector_signs, jnp.float32)
    moved = material.replace(A_ex=move(material.A_ex), K_u=move(material.K_u), Ms=move(material.Ms),
                             easy_axis=move(material.easy_axis) * signs, B_ext=move(material.B_ext) * signs)
    return move(m) * signs, moved


def _physics(grid):
    names = ("exchange", "anisotropy", "zeeman", "demag")
    energy = jax.jit(total_energy(grid, names))
    field = effective_field([TERMS[n].factory(grid) for n in names])
    torque = jax.jit(lambda m, mat: llg_torque(m, field(m, mat), mat.alpha))
    return energy, torque


@pytest.mark.parametrize("boundary", ["open", "periodic"])
@pytest.mark.parametrize("axis", ["x", "z", "tilted"])
def test_every_element_is_a_symmetry_of_energy_and_llg(boundary, axis):
    grid = Grid(NX, NY, 1, 4e-9, 4e-9, 4e-9, boundary=boundary, pbc_images=1)
    energy, torque = _physics(grid)
    m, material = _film(grid, 1, AXES[axis])
    e0, t0 = float(energy(m, material)), torque(m, material)
    sym = film_symmetries("xyz", grid.periodic, AXES[axis])
    shift = jnp.array([3, 5]) if grid.periodic else None
    for rows, cols, signs, _ in sym.elements()[1:]:
        flips = jnp.array([rows, cols])
        gm, gmat = _transform(m, material, flips, shift, signs)
        assert float(energy(gm, gmat)) == pytest.approx(e0, rel=2e-5)
        # the dynamics commute with it: the torque of the moved film is the moved torque
        want = mirror_and_shift(t0, flips, shift, axes=(1, 2)) * jnp.asarray(signs)
        np.testing.assert_allclose(torque(gm, gmat), want, atol=2e-5 * float(jnp.abs(t0).max()))
    # a wrong sign rule is caught: the mirror y -> -y taken as (m_x, -m_y, +m_z) keeps the
    # energy without a field but reverses the precession
    flips, polar = jnp.array([True, False]), jnp.array([1.0, -1.0, 1.0])
    m, material = _film(grid, 2, AXES[axis], field=False)
    e0, t0 = float(energy(m, material)), torque(m, material)
    gm, gmat = _transform(m, material, flips, shift, polar)
    assert float(energy(gm, gmat)) == pytest.approx(e0, rel=2e-5)
    want = mirror_and_shift(t0, flips, shift, axes=(1, 2)) * polar
    assert float(jnp.abs(torque(gm, gmat) - want).max()) > 0.1 * float(jnp.abs(t0).max())


def test_time_reversing_elements_keep_the_energy_and_reverse_the_precession():
    """With m -> -m the elements of ``time_reversal=True`` keep the energy (no field) and map the
    undamped torque to minus the moved torque: the dynamics run backwards, as time reversal asks."""
    grid = Grid(NX, NY, 1, 4e-9, 4e-9, 4e-9, boundary="open")
    energy, torque = _physics(grid)
    m, material = _film(grid, 3, AXES["z"], field=False)
    material = material.replace(alpha=jnp.zeros_like(material.alpha))
    e0, t0 = float(energy(m, material)), torque(m, material)
    sym = film_symmetries("xyz", False, AXES["z"], time_reversal=True)
    reversing = [e for e in sym.elements() if e[3]]
    assert len(reversing) == 4 and {(r, c) for r, c, _, _ in reversing} == {
        (True, False), (False, True)}
    for rows, cols, signs, _ in reversing:
        flips = jnp.array([rows, cols])
        gm, gmat = _transform(m, material, flips, None, signs)
        assert float(energy(gm, gmat)) == pytest.approx(e0, rel=2e-5)
        want = -mirror_and_shift(t0, flips, None, axes=(1, 2)) * jnp.asarray(signs)
        np.testing.assert_allclose(torque(gm, gmat), want, atol=2e-5 * float(jnp.abs(t0).max()))
    # a field along the axis rules time reversal out
    assert not film_symmetries("xyz", False, AXES["z"], applied_field=(0, 0, 0.1), time_reversal=True).reverses_time
