"""Exchange field: against a direct numpy evaluation, harmonic-mean links, boundaries, and the
analytic width of a 1-D domain wall."""
import numpy as np
import jax
import jax.numpy as jnp
import pytest

from jaxmag.drivers import relax
from jaxmag.fields.anisotropy import uniaxial_anisotropy
from jaxmag.fields.exchange import exchange
from jaxmag.grid import Grid
from jaxmag.material import Material


def exchange_reference(m, A, Ms, d, periodic):
    """Loop-based reference: B_i = 2/Ms_i Σ_j 2A_iA_j/(A_i+A_j) (m_j − m_i)/d²."""
    nz, ny, nx, _ = m.shape
    B = np.zeros_like(m)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                for axis, (dz, dy, dx) in enumerate([(0, 0, 1), (0, 0, -1), (0, 1, 0), (0, -1, 0), (1, 0, 0), (-1, 0, 0)]):
                    zz, yy, xx = z + dz, y + dy, x + dx
                    inplane = axis < 4
                    if periodic and inplane:
                        yy %= ny
                        xx %= nx
                    if not (0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx):
                        continue
                    a1, a2 = A[z, y, x], A[zz, yy, xx]
                    link = 2 * a1 * a2 / (a1 + a2) if a1 + a2 > 0 else 0.0
                    dist = d[axis // 2]  # pairs of offsets along x, y, z
                    B[z, y, x] += link * (m[zz, yy, xx] - m[z, y, x]) / dist**2
                B[z, y, x] *= 2 / Ms[z, y, x]
    return B


@pytest.mark.parametrize("boundary", ["open", "periodic"])
def test_exchange_matches_reference_with_per_cell_A(boundary):
    grid = Grid(5, 4, 2, 2e-9, 3e-9, 4e-9, boundary)
    rng = np.random.default_rng(0)
    m = rng.normal(size=grid.vector_shape)
    m /= np.linalg.norm(m, axis=-1, keepdims=True)
    A = rng.uniform(0.5e-11, 2e-11, grid.shape)
    Ms = rng.uniform(5e5, 9e5, grid.shape)
    material = Material.uniform(grid, Ms=1.0, A_ex=1.0).replace(A_ex=jnp.asarray(A, jnp.float32), Ms=jnp.asarray(Ms, jnp.float32))
    B = np.asarray(exchange(grid)(jnp.asarray(m, jnp.float32), material))
    ref = exchange_reference(m, A, Ms, grid.cell_size, boundary == "periodic")
    np.testing.assert_allclose(B, ref, rtol=2e-4, atol=1e-4 * np.abs(ref).max())


def test_uniform_state_has_no_exchange_field():
    grid = Grid(8, 8, 1, 4e-9, 4e-9, 4e-9, "open")
    material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11)
    m = jnp.zeros(grid.vector_shape).at[..., 2].set(1.0)
    assert float(jnp.abs(exchange(grid)(m, material)).max()) == 0.0


def test_vacuum_cells_cut_exchange_links():
    grid = Grid(4, 1, 1, 1e-9, 1e-9, 1e-9, "open")
    material = Material.uniform(grid, Ms=8e5, A_ex=1e-11)
    material = material.replace(Ms=material.Ms.at[0, 0, 2].set(0.0), A_ex=material.A_ex.at[0, 0, 2].set(0.0))
    m = jnp.asarray(np.array([[[[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]]]], dtype=np.float32))
    B = np.asarray(exchange(grid)(m, material))
    assert np.all(B[0, 0, 2] == 0)  # vacuum gets no field
    assert np.all(B[0, 0, 3] == 0)  # its only neighbour is vacuum
    assert np.all(np.isfinite(B))


def test_domain_wall_width_matches_sqrt_A_over_K():
    """A 1-D wall along x (no demag) relaxes to m_x = −tanh((x − x0)/δ), δ = sqrt(A/K)."""
    n, dx = 120, 0.5e-9
    A, K = 1.3e-11, 5e5  # δ = 5.10 nm = 10.2 cells
    with jax.enable_x64(True):
        grid = Grid(n, 1, 1, dx, dx, dx, "open")
        material = Material.uniform(grid, Ms=8e5, A_ex=A, K_u=K, easy_axis=(1, 0, 0), dtype=jnp.float64)
        x = (np.arange(n) - (n - 1) / 2) * dx
        theta = np.pi / 2 * (1 + np.tanh(x / 3e-9))  # a wall of the wrong width, rotating through +y
        m0 = np.stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)], -1)[None, None]
        m, info = relax(grid, material, jnp.asarray(m0), torque_tol=1e-6, terms=(exchange(grid), uniaxial_anisotropy(grid)))
        assert info["converged"], info
        mx = np.asarray(m)[0, 0, :, 0]
    # Fit δ by least squares on the profile (centre fixed by symmetry).
    deltas = np.linspace(4e-9, 6.5e-9, 2501)
    errors = [np.sum((mx + np.tanh(x / d)) ** 2) for d in deltas]
    delta = deltas[int(np.argmin(errors))]
    expected = np.sqrt(A / K)
    assert abs(delta / expected - 1) < 0.02, (delta, expected)
