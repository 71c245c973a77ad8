"""Tests of the demagnetising field: Newell tensor vs OOMMF, analytic prisms, FFT vs direct sums,
periodic images, dtypes and JAX transformations."""
from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag.constants import MU0
from jaxmag.fields.demag import (
    asymptotic_radius,
    demag,
    demag_kernel_newell,
    kernel_layout,
    newell_tensor,
)
from jaxmag.grid import Grid
from jaxmag.material import Material

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
OOMMF_TENSOR = FIXTURES / "ovf" / "demag_tensor_oommf.omf"
MS = 8e5  # A/m


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def read_ovf2_binary8(path: Path) -> np.ndarray:
    """Minimal OVF 2.0 Binary 8 reader: returns ``(znodes, ynodes, xnodes, valuedim)``."""
    raw = path.read_bytes()
    marker = b"# Begin: Data Binary 8"
    start = raw.index(marker)
    start = raw.index(b"\n", start) + 1
    header = {}
    for line in raw[: raw.index(marker)].decode("ascii").splitlines():
        if line.startswith("#") and ":" in line:
            key, value = line[1:].split(":", 1)
            header[key.strip().lower()] = value.strip()
    nx, ny, nz, dim = (int(header[k]) for k in ("xnodes", "ynodes", "znodes", "valuedim"))
    check = np.frombuffer(raw, "<f8", count=1, offset=start)[0]
    assert check == 123456789012345.0, f"bad OVF Binary 8 check value {check!r}"
    values = np.frombuffer(raw, "<f8", count=nx * ny * nz * dim, offset=start + 8)
    return values.reshape(nz, ny, nx, dim)  # x fastest, then y, then z, components innermost


def aharoni_nzz(lx: float, ly: float, lz: float) -> float:
    """Demagnetising factor N_zz of a uniformly magnetised prism (Aharoni, JAP 83, 3432, 1998)."""
    a, b, c = lx / 2, ly / 2, lz / 2
    r = np.sqrt(a * a + b * b + c * c)
    ab, bc, ac = np.sqrt(a * a + b * b), np.sqrt(b * b + c * c), np.sqrt(a * a + c * c)
    s = (
        (b * b - c * c) / (2 * b * c) * np.log((r - a) / (r + a))
        + (a * a - c * c) / (2 * a * c) * np.log((r - b) / (r + b))
        + b / (2 * c) * np.log((ab + a) / (ab - a))
        + a / (2 * c) * np.log((ab + b) / (ab - b))
        + c / (2 * a) * np.log((bc - b) / (bc + b))
        + c / (2 * b) * np.log((ac - a) / (ac + a))
        + 2 * np.arctan(a * b / (c * r))
        + (a**3 + b**3 - 2 * c**3) / (3 * a * b * c)
        + (a * a + b * b - 2 * c * c) / (3 * a * b * c) * r
        + c / (a * b) * (ac + bc)
        - (ab**3 + bc**3 + ac**3) / (3 * a * b * c)
    )
    return float(s / np.pi)


def full_tensor(n6: np.ndarray) -> np.ndarray:
    """(..., 6) in order xx, yy, zz, xy, xz, yz -> symmetric (..., 3, 3)."""
    xx, yy, zz, xy, xz, yz = np.moveaxis(n6, -1, 0)
    return np.stack([np.stack([xx, xy, xz], -1), np.stack([xy, yy, yz], -1), np.stack([xz, yz, zz], -1)], -2)


def direct_field(grid: Grid, m: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """Brute-force ``B = -MU0 sum_s N(d - s) Ms m(s)`` in float64 (tiny grids only).

    Periodic (P >= 1 images): every image ``s + (p nx, q ny, 0)`` contributes when its offset
    lies inside MuMax3's window ``|i| <= P nx - 1, |j| <= P ny - 1``.
    """
    nz, ny, nx = grid.shape
    mag = (m * ms[..., None]).reshape(-1, 3)
    cells = np.stack(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"), -1)
    cells = cells.transpose(2, 1, 0, 3).reshape(-1, 3)  # (i, j, k) in (z, y, x) C order
    offsets = cells[:, None, :] - cells[None, :, :]  # dest - source
    total = np.zeros((offsets.shape[0], offsets.shape[1], 3, 3))
    p_img = grid.pbc_images if grid.periodic else 0
    span = range(-p_img - 1, p_img + 2) if p_img else range(1)
    for p in span:
        for q in span:
            shifted = offsets - np.array([p * nx, q * ny, 0])
            if p_img:
                inside = (np.abs(shifted[..., 0]) <= p_img * nx - 1) & (np.abs(shifted[..., 1]) <= p_img * ny - 1)
            else:
                inside = np.ones(shifted.shape[:2], dtype=bool)
            tensor = full_tensor(newell_tensor(shifted, grid.cell_size))
            total += np.where(inside[..., None, None], tensor, 0.0)
    field = -MU0 * np.einsum("dsab,sb->da", total, mag)
    return field.reshape(nz, ny, nx, 3)


def uniform(grid: Grid, direction, ms=MS, dtype=jnp.float32):
    m = jnp.broadcast_to(jnp.asarray(direction, dtype), grid.vector_shape)
    return m, Material.uniform(grid, Ms=ms, A_ex=1.3e-11, dtype=dtype)


def random_state(grid: Grid, seed: int, dtype=np.float64, vacuum=True):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=grid.vector_shape)
    m /= np.linalg.norm(m, axis=-1, keepdims=True)
    ms = rng.uniform(2e5, 1e6, size=grid.shape)
    if vacuum:
        ms[rng.random(grid.shape) < 0.2] = 0.0
        m[ms == 0] = 0.0
    return m.astype(dtype), ms.astype(dtype)


# ------------------------------------------------------------------------------------------
# 1. the tensor against OOMMF
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def oommf():
    if not OOMMF_TENSOR.exists():
        pytest.skip(f"shared fixture {OOMMF_TENSOR} not found (expected ../shared/fixtures next to the checkout)")
    ref = read_ovf2_binary8(OOMMF_TENSOR)
    assert ref.shape == (3, 10, 20, 6)
    k, j, i = np.meshgrid(np.arange(3), np.arange(10), np.arange(20), indexing="ij")
    return np.stack([i, j, k], -1), ref


def assert_matches_oommf(ours: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None):
    big = np.abs(ref) > 1e-6
    if mask is not None:
        big_sel, small_sel = big & mask, ~big & mask
    else:
        big_sel, small_sel = big, ~big
    rel = np.abs(ours - ref)[big_sel] / np.abs(ref)[big_sel]
    absolute = np.abs(ours - ref)[small_sel]
    assert rel.size > 0
    assert rel.max() <= 1e-6, f"max relative error {rel.max():.3e} > 1e-6"
    if absolute.size:
        assert absolute.max() <= 1e-12, f"max absolute error {absolute.max():.3e} > 1e-12"


def test_fixture_spot_values(oommf):
    _, ref = oommf
    np.testing.assert_allclose(ref[0, 0, 0, :3], 1 / 3, rtol=1e-12)
    np.testing.assert_allclose(ref[0, 0, 1, 0], -0.13501718, rtol=1e-7)


def test_tensor_matches_oommf_everywhere(oommf):
    offsets, ref = oommf
    ours = newell_tensor(offsets, (1.0, 1.0, 1.0))
    assert ours.shape == ref.shape and ours.dtype == np.float64
    assert_matches_oommf(ours, ref)
    # scale free: the same cell in metres gives the same tensor
    np.testing.assert_allclose(newell_tensor(offsets, (3e-9, 3e-9, 3e-9)), ours, rtol=1e-12, atol=1e-15)


def test_asymptotic_region_within_bounds(oommf):
    offsets, ref = oommf
    r = np.linalg.norm(offsets, axis=-1)
    far = (r >= asymptotic_radius((1, 1, 1)))[..., None] & np.ones(6, bool)
    assert far[..., 0].sum() > 100, "the fixture should reach into the asymptotic region"
    # The expansion alone (forced everywhere beyond 6 cells) also meets the bounds ...
    forced = newell_tensor(offsets, (1, 1, 1), method="asymptotic")
    assert_matches_oommf(forced, ref, (r >= 6.0)[..., None] & np.ones(6, bool))
    assert_matches_oommf(newell_tensor(offsets, (1, 1, 1)), ref, far)
    # ... and it is a real expansion, not the exact formula: close in, its error is visible.
    near = np.array([[2, 1, 0]])
    err = np.abs(newell_tensor(near, (1, 1, 1), method="asymptotic") - ref[0, 1, 2]).max()
    assert err > 1e-8


def test_far_field_accurate_for_flat_cells():
    """Beyond the switch, the expansion agrees with a 40-digit evaluation of the exact formula."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40

    def f(x, y, z):
        x, y, z = abs(x), abs(y), abs(z)
        r = mp.sqrt(x * x + y * y + z * z)
        out = (2 * x * x - y * y - z * z) * r / 6
        if x or z:
            out += y / 2 * (z * z - x * x) * mp.asinh(y / mp.sqrt(x * x + z * z))
        if x or y:
            out += z / 2 * (y * y - x * x) * mp.asinh(z / mp.sqrt(x * x + y * y))
        if x:
            out -= x * y * z * mp.atan(y * z / (x * r))
        return out

    d = (mp.mpf(1), mp.mpf(1), mp.mpf(1) / 4)
    weights = {-1: -1, 0: 2, 1: -1}
    for offset in [(12, 3, 0), (7, 9, 1), (20, 0, 0), (0, 15, 2)]:
        x, y, z = (offset[a] * d[a] for a in range(3))
        acc = mp.mpf(0)
        for a, wa in weights.items():
            for b, wb in weights.items():
                for c, wc in weights.items():
                    acc += wa * wb * wc * f(x + a * d[0], y + b * d[1], z + c * d[2])
        exact_nxx = float(acc / (4 * mp.pi * d[0] * d[1] * d[2]))
        ours = newell_tensor(np.array(offset), (4e-9, 4e-9, 1e-9))[0]
        assert abs(ours - exact_nxx) <= 1e-8 * abs(exact_nxx), (offset, ours, exact_nxx)


def test_tensor_symmetries_and_self_terms():
    cell = (1.0, 2.0, 0.3)
    n0 = newell_tensor(np.zeros(3, int), cell)
    assert abs(n0[:3].sum() - 1.0) < 1e-12  # trace of the self tensor is 1 for any cuboid
    np.testing.assert_array_equal(n0[3:], 0.0)
    np.testing.assert_allclose(n0[2], aharoni_nzz(*cell), rtol=1e-10)
    np.testing.assert_allclose(n0[0], aharoni_nzz(cell[1], cell[2], cell[0]), rtol=1e-10)
    # parity: diagonal even, N_xy odd in i and j, ...
    o = np.array([3, 2, 1])
    base = newell_tensor(o, cell)
    for signs in ([-1, 1, 1], [1, -1, 1], [1, 1, -1], [-1, -1, -1]):
        s = np.array(signs)
        flipped = newell_tensor(o * s, cell)
        expect = base * np.array([1, 1, 1, s[0] * s[1], s[0] * s[2], s[1] * s[2]])
        np.testing.assert_array_equal(flipped, expect)
    # off-cell points of the lattice are traceless (the field is divergence- and curl-free)
    offs = np.array([[1, 0, 0], [2, 3, 1], [15, 4, 2], [30, 30, 3]])
    np.testing.assert_allclose(newell_tensor(offs, cell)[:, :3].sum(-1), 0.0, atol=1e-12)


def test_tensor_rejects_bad_input():
    with pytest.raises(ValueError, match="integers"):
        newell_tensor(np.array([1.5, 0, 0]), (1, 1, 1))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        newell_tensor(np.array([1, 0]), (1, 1, 1))
    with pytest.raises(ValueError, match="cell_size"):
        newell_tensor(np.array([1, 0, 0]), (1, 0, 1))
    with pytest.raises(ValueError, match="method"):
        newell_tensor(np.array([1, 0, 0]), (1, 1, 1), method="fast")


# ------------------------------------------------------------------------------------------
# 2. analytic fields
# ------------------------------------------------------------------------------------------
def test_single_cubic_cell_self_demag():
    grid = Grid(1, 1, 1, 2e-9, 2e-9, 2e-9)
    m = jnp.asarray([[[[0.6, -0.8, 0.0]]]], jnp.float32)
    mat = Material.uniform(grid, Ms=MS, A_ex=1e-11)
    b = demag(grid)(m, mat)
    np.testing.assert_allclose(np.asarray(b), -MU0 * MS * np.asarray(m) / 3, rtol=1e-6)


@pytest.fixture(scope="module")
def film():
    grid = Grid(64, 64, 1, 5e-9, 5e-9, 2e-9)
    return grid, jax.jit(demag(grid))


def test_thin_film_out_of_plane(film):
    grid, field = film
    b = np.asarray(field(*uniform(grid, (0, 0, 1))))
    centre = b[0, 28:36, 28:36]
    # 320 nm x 320 nm x 2 nm: centre field within 2 % of -MU0 Ms (the infinite-film value)
    np.testing.assert_allclose(centre[..., 2], -MU0 * MS, rtol=0.02)
    np.testing.assert_allclose(centre[..., :2], 0.0, atol=1e-6 * MU0 * MS)
    # the mean over the sample is exactly the prism's demagnetising factor
    n_zz = aharoni_nzz(320e-9, 320e-9, 2e-9)
    np.testing.assert_allclose(b[..., 2].mean(), -MU0 * MS * n_zz, rtol=2e-5)


def test_thin_film_in_plane(film):
    grid, field = film
    b = np.asarray(field(*uniform(grid, (1, 0, 0))))
    assert np.abs(b[0, 16:48, 16:48]).max() < 0.01 * MU0 * MS  # small interior field
    n_xx = aharoni_nzz(320e-9, 2e-9, 320e-9)  # N_xx of the film = N_zz with axes relabelled
    np.testing.assert_allclose(b[..., 0].mean(), -MU0 * MS * n_xx, rtol=2e-4)
    # edge charges: the field is strongest at the x edges and points against m
    assert b[0, 32, 0, 0] < 10 * b[0, 32, 32, 0] < 0


def test_nonuniform_cells_mean_field_is_prism_factor():
    grid = Grid(6, 4, 3, 3e-9, 4e-9, 1.5e-9)
    with jax.enable_x64(True):
        m, mat = uniform(grid, (0, 0, 1), dtype=jnp.float64)
        b = np.asarray(demag(grid)(m, mat))
    np.testing.assert_allclose(b[..., 2].mean(), -MU0 * MS * aharoni_nzz(18e-9, 16e-9, 4.5e-9), rtol=1e-10)


# ------------------------------------------------------------------------------------------
# 3. FFT convolution vs direct sum
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "grid",
    [
        Grid(5, 4, 3, 2e-9, 3e-9, 1e-9),
        Grid(7, 3, 1, 4e-9, 4e-9, 1e-9),
        Grid(4, 3, 2, 2e-9, 2e-9, 2e-9, boundary="periodic", pbc_images=2),
        Grid(5, 4, 1, 3e-9, 2e-9, 1e-9, boundary="periodic", pbc_images=1),
        Grid(3, 5, 1, 3e-9, 2e-9, 1e-9, boundary="periodic", pbc_images=3),
    ],
    ids=lambda g: f"{g.nx}x{g.ny}x{g.nz}-{g.boundary}{g.pbc_images if g.periodic else ''}",
)
def test_fft_equals_direct_sum(grid):
    m, ms = random_state(grid, seed=grid.nx * 7 + grid.nz)
    expect = direct_field(grid, m, ms)
    with jax.enable_x64(True):
        mat = Material.uniform(grid, Ms=1.0, A_ex=1e-11, dtype=jnp.float64).replace(Ms=jnp.asarray(ms))
        got = np.asarray(demag(grid)(jnp.asarray(m), mat))
    np.testing.assert_allclose(got, expect, rtol=1e-10, atol=1e-12 * MU0 * MS)


def test_periodic_without_images_is_open():
    m, ms = random_state(Grid(4, 3, 2, 2e-9, 2e-9, 2e-9), seed=3)
    b = []
    for boundary in ("open", "periodic"):
        grid = Grid(4, 3, 2, 2e-9, 2e-9, 2e-9, boundary=boundary, pbc_images=0)
        mat = Material.uniform(grid, Ms=1.0, A_ex=1e-11).replace(Ms=jnp.asarray(ms, jnp.float32))
        b.append(np.asarray(demag(grid)(jnp.asarray(m, jnp.float32), mat)))
    np.testing.assert_array_equal(b[0], b[1])


def test_kernel_layout():
    assert kernel_layout(Grid(64, 33, 1, 1e-9, 1e-9, 1e-9)) == ((1, 72, 128), (0, 32, 63))
    assert kernel_layout(Grid(16, 8, 4, 1e-9, 1e-9, 1e-9, boundary="periodic", pbc_images=3)) == (
        (8, 8, 16),
        (3, 23, 47),
    )
    kernel = demag_kernel_newell(Grid(5, 4, 3, 2e-9, 3e-9, 1e-9))
    assert kernel.shape == (5, 8, 9, 6) and not kernel.flags.writeable
    # entry at a negative offset wraps to the end of each axis
    np.testing.assert_allclose(kernel[-1, -2, 1], newell_tensor(np.array([1, -2, -1]), (2e-9, 3e-9, 1e-9)))


# ------------------------------------------------------------------------------------------
# 4. periodic films
# ------------------------------------------------------------------------------------------
def periodic_in_plane_residual(images: int) -> float:
    grid = Grid(16, 16, 1, 4e-9, 4e-9, 2e-9, boundary="periodic", pbc_images=images)
    b = np.asarray(demag(grid)(*uniform(grid, (1, 0, 0))))
    return float(np.abs(b[..., 0]).max() / (MU0 * MS))


def test_periodic_in_plane_film_field_vanishes():
    residual = [periodic_in_plane_residual(p) for p in (1, 2, 4, 8)]
    assert all(a > b for a, b in zip(residual, residual[1:])), residual
    # the window is a finite plate of side (2P n - 1) cells: residual ~ thickness / side ~ 1/P
    assert 1.5 < residual[0] / residual[1] < 2.5 and 1.5 < residual[2] / residual[3] < 2.5, residual
    assert residual[-1] < 2e-3
    open_grid = Grid(16, 16, 1, 4e-9, 4e-9, 2e-9)
    open_res = np.abs(np.asarray(demag(open_grid)(*uniform(open_grid, (1, 0, 0))))[..., 0]).max() / (MU0 * MS)
    assert residual[-1] < 0.02 * open_res


def test_periodic_out_of_plane_film_is_infinite_film():
    grid = Grid(16, 16, 1, 4e-9, 4e-9, 2e-9, boundary="periodic", pbc_images=8)
    b = np.asarray(demag(grid)(*uniform(grid, (0, 0, 1))))
    # uniform along z in a periodic film: every cell sees the same field, ~ -MU0 Ms
    np.testing.assert_allclose(b[..., 2], b[0, 0, 0, 2], rtol=1e-5)
    np.testing.assert_allclose(b[..., 2], -MU0 * MS, rtol=5e-3)


@pytest.mark.slow
def test_periodic_convergence_many_images():
    residual = [periodic_in_plane_residual(p) for p in (4, 16, 64)]
    assert residual[0] > residual[1] > residual[2]
    assert residual[2] < 2e-4


# ------------------------------------------------------------------------------------------
# 5. dtypes and JAX transformations
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    grid = Grid(12, 10, 2, 3e-9, 3e-9, 2e-9)
    return grid, demag(grid)


def test_float32_matches_float64(small):
    grid, field = small
    m, ms = random_state(grid, seed=5)
    mat32 = Material.uniform(grid, Ms=1.0, A_ex=1e-11, dtype=jnp.float32).replace(Ms=jnp.asarray(ms, jnp.float32))
    b32 = field(jnp.asarray(m, jnp.float32), mat32)
    assert b32.dtype == jnp.float32
    with jax.enable_x64(True):
        mat64 = Material.uniform(grid, Ms=1.0, A_ex=1e-11, dtype=jnp.float64).replace(Ms=jnp.asarray(ms))
        b64 = field(jnp.asarray(m), mat64)
        assert b64.dtype == jnp.float64
        b64 = np.asarray(b64)
    scale = np.abs(b64).max()
    err = np.abs(np.asarray(b32, np.float64) - b64).max() / scale
    assert err < 1e-5, err
    assert err > 0  # float32 really ran in float32


def test_jit_vmap(small):
    grid, field = small
    m, ms = random_state(grid, seed=6, dtype=np.float32)
    ms_batch = np.stack([ms, 0.5 * ms, np.roll(ms, 1, axis=2)])
    base = Material.uniform(grid, Ms=1.0, A_ex=1e-11)

    def batched(ms_b):
        return field(jnp.asarray(m), base.replace(Ms=ms_b))

    got = jax.jit(jax.vmap(batched))(jnp.asarray(ms_batch))
    for b in range(3):
        np.testing.assert_allclose(got[b], batched(jnp.asarray(ms_batch[b])), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], 0.5 * got[0], rtol=1e-5, atol=1e-7)  # linear in Ms


def test_grad_wrt_ms_uses_symmetric_operator(small):
    """d/dMs <c, B(m, Ms)> = m . B(c, 1): the convolution operator is symmetric."""
    grid, field = small
    m, ms = random_state(grid, seed=7)
    c, _ = random_state(grid, seed=8, vacuum=False)
    with jax.enable_x64(True):
        base = Material.uniform(grid, Ms=1.0, A_ex=1e-11, dtype=jnp.float64)

        def objective(ms_map):
            return jnp.sum(jnp.asarray(c) * field(jnp.asarray(m), base.replace(Ms=ms_map)))

        grad = np.asarray(jax.jit(jax.grad(objective))(jnp.asarray(ms)))
        expect = np.sum(m * np.asarray(field(jnp.asarray(c), base)), axis=-1)
    np.testing.assert_allclose(grad, expect, rtol=1e-9, atol=1e-12 * np.abs(expect).max())


def test_rejects_bad_arguments(small):
    grid, field = small
    with pytest.raises(TypeError, match="Grid"):
        demag((4, 4, 1))
    m, mat = uniform(grid, (1, 0, 0))
    with pytest.raises(ValueError, match="expected"):
        field(m[:, :, :-1], mat)
    with pytest.raises(ValueError, match="expected"):
        jax.jit(field)(m, mat.replace(Ms=mat.Ms[0]))


def test_kernel_build_time_128x128():
    """Not a timing assertion: prints the build time for the report, checks the kernel is sane."""
    grid = Grid(128, 128, 1, 4e-9, 4e-9, 1e-9)
    start = time.perf_counter()
    kernel = demag_kernel_newell(grid)
    print(f"kernel 128x128x1: {time.perf_counter() - start:.3f} s")
    assert kernel.shape == (1, 256, 256, 6)
    np.testing.assert_allclose(kernel[0, 0, 0], newell_tensor(np.zeros(3, int), grid.cell_size))
