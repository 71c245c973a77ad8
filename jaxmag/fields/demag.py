"""Demagnetising field: Newell kernel, convolved with ``Ms m`` by FFT.

Contract: ``demag(grid)`` returns a ``FieldFn`` ``(m, material) -> B_demag`` (T, shape
``(nz, ny, nx, 3)``) with ``B_demag = -MU0 * (N * (Ms m))``, where ``*`` is the discrete
convolution over cells and ``N`` the cell-averaged demagnetisation tensor (dimensionless,
OOMMF sign convention ``H = -N M``) of Newell, Williams & Dunlop, J. Geophys. Res. 98, 9551
(1993). Everything about the kernel (tensor, padding, periodic images, its FFT) is computed
once per ``Grid`` in float64 NumPy and cached; the returned function is pure JAX and works
under ``jit``, ``vmap`` and ``grad``, in the dtype of its inputs.

Tensor (``newell_tensor``): components in the order ``xx, yy, zz, xy, xz, yz``.

* Near the source cell (centre distance ``R < asymptotic_radius(cell_size)``) it is the exact
  Newell formula: the 27-point second difference of the f (diagonal) and g (off-diagonal)
  functions, in float64.
* Further out the exact formula loses digits to cancellation (its 27 terms grow like ``R^3``
  while the result falls like ``R^-3``), so the tensor is the multipole expansion of the
  cell-pair average of the point-dipole kernel: ``N_ij(r) = -V E[d_i d_j phi(r + s)]`` with
  ``phi = 1 / (4 pi |r|)`` and ``s`` distributed as the difference of two points of one cell
  (a product of triangle densities), Taylor-expanded in the moments of ``s`` up to order
  ``2 * _ASYMPTOTIC_ORDER`` = 8 (truncation error ~ ``(d / R)^10``). The switch radius
  (``asymptotic_radius``, 9.1 cells for a cube) balances the two errors; both stay below ~1e-9
  relative there for a cube and below ~1e-8 for cells as flat as 1:1:0.1.

Convolution layout: an axis with ``n > 1`` cells is zero-padded to the smallest 2-3-5-smooth
size ``>= 2n - 1`` (open boundary), an axis with one cell is not padded. With
``grid.boundary == "periodic"`` and ``grid.pbc_images = P >= 1`` the x and y axes are not
padded; instead the kernel sums every source offset ``|i| <= P n - 1`` wrapped modulo ``n``,
which is exactly MuMax3's ``SetPBC(P, P, 0)`` (``mag/demagkernel.go``, ``kernelRanges``).
``P = 0`` means no images: the demag field is that of the lone sample (open), while other
terms such as exchange may still wrap. z is always open.
"""
from __future__ import annotations

import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.constants import MU0
from jaxmag.fields import FieldFn
from jaxmag.grid import Grid
from jaxmag.material import Material

COMPONENTS: tuple[str, ...] = ("xx", "yy", "zz", "xy", "xz", "yz")
"""Order of the six unique tensor components in every ``(..., 6)`` array of this module."""

# Index pairs (i, j) of each component in COMPONENTS.
_PAIRS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))

# Highest moment order of the far-field expansion is 2 * _ASYMPTOTIC_ORDER: terms up to R^-11.
_ASYMPTOTIC_ORDER = 4

Method = Literal["auto", "exact", "asymptotic"]


# --------------------------------------------------------------------------------------------
# Exact Newell formula
# --------------------------------------------------------------------------------------------
def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``den != 0``, else 0 (the terms using it then vanish)."""
    nonzero = den != 0
    return np.where(nonzero, num / np.where(nonzero, den, 1.0), 0.0)


def _newell_f(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Newell's f (even in x, y, z); its second differences give N_xx."""
    x, y, z = np.abs(x), np.abs(y), np.abs(z)
    x2, y2, z2 = x * x, y * y, z * z
    r = np.sqrt(x2 + y2 + z2)
    # Every term whose asinh/atan argument is undefined has a prefactor that is zero there.
    out = (2.0 * x2 - y2 - z2) * r / 6.0
    out += 0.5 * y * (z2 - x2) * np.arcsinh(_safe_ratio(y, np.sqrt(x2 + z2)))
    out += 0.5 * z * (y2 - x2) * np.arcsinh(_safe_ratio(z, np.sqrt(x2 + y2)))
    out -= x * y * z * np.arctan(_safe_ratio(y * z, x * r))
    return out


def _newell_g(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Newell's g (odd in x and y, even in z); its second differences give N_xy."""
    x2, y2, z2 = x * x, y * y, z * z
    r = np.sqrt(x2 + y2 + z2)
    out = x * y * z * np.arcsinh(_safe_ratio(z, np.sqrt(x2 + y2)))
    out += y / 6.0 * (3.0 * z2 - y2) * np.arcsinh(_safe_ratio(x, np.sqrt(y2 + z2)))
    out += x / 6.0 * (3.0 * z2 - x2) * np.arcsinh(_safe_ratio(y, np.sqrt(x2 + z2)))
    out -= z2 * z / 6.0 * np.arctan(_safe_ratio(x * y, z * r))
    out -= 0.5 * z * y2 * np.arctan(_safe_ratio(x * z, y * r))
    out -= 0.5 * z * x2 * np.arctan(_safe_ratio(y * z, x * r))
    out -= x * y * r / 3.0
    return out


def _stencil(fn, x, y, z, dx: float, dy: float, dz: float) -> np.ndarray:
    """``-(1 / 4 pi V)`` times the product of second differences of ``fn`` at ``(x, y, z)``.

    The 27 weights are ``w_a w_b w_c`` with ``w_0 = 2, w_{+-1} = -1`` (Newell eq. 19/20).
    Each 1-D second difference is formed before the next one, so that terms of similar size
    cancel first.
    """

    def diff(values):  # values indexed by shift -1, 0, +1
        return 2.0 * values[1] - values[0] - values[2]

    shifts = (-1.0, 0.0, 1.0)
    total = diff([
        diff([
            diff([fn(x + a * dx, y + b * dy, z + c * dz) for c in shifts]) for b in shifts
        ])
        for a in shifts
    ])
    return total / (4.0 * math.pi * dx * dy * dz)


def _tensor_exact(x: np.ndarray, y: np.ndarray, z: np.ndarray, d) -> np.ndarray:
    """Exact Newell tensor ``(..., 6)`` at non-negative centre offsets ``x, y, z`` (length)."""
    dx, dy, dz = d
    return np.stack(
        [
            _stencil(_newell_f, x, y, z, dx, dy, dz),
            _stencil(_newell_f, y, x, z, dy, dx, dz),
            _stencil(_newell_f, z, y, x, dz, dy, dx),
            _stencil(_newell_g, x, y, z, dx, dy, dz),
            _stencil(_newell_g, x, z, y, dx, dz, dy),
            _stencil(_newell_g, y, z, x, dy, dz, dx),
        ],
        axis=-1,
    )


# --------------------------------------------------------------------------------------------
# Far-field (multipole) expansion
# --------------------------------------------------------------------------------------------
Poly = dict[tuple[int, int, int], int]


@functools.lru_cache(maxsize=None)
def _inverse_r_derivative(alpha: tuple[int, int, int]) -> tuple[tuple[tuple[int, int, int], int], ...]:
    """Homogeneous polynomial ``P`` (integer coefficients) with ``d^alpha (1/R) = P / R^(2|alpha|+1)``.

    Recursion: ``d_a (P / R^(2n+1)) = (R^2 d_a P - (2n+1) x_a P) / R^(2n+3)``. Returned as a
    tuple of ``((px, py, pz), coefficient)`` so that it is hashable and immutable.
    """
    if sum(alpha) == 0:
        return (((0, 0, 0), 1),)
    axis = next(a for a in range(3) if alpha[a] > 0)
    lower = list(alpha)
    lower[axis] -= 1
    poly = dict(_inverse_r_derivative(tuple(lower)))
    n = sum(lower)
    out: Poly = {}

    def add(power, coeff):
        out[power] = out.get(power, 0) + coeff

    for power, coeff in poly.items():
        if power[axis] > 0:  # R^2 d_a P
            dp = list(power)
            dp[axis] -= 1
            for b in range(3):
                q = list(dp)
                q[b] += 2
                add(tuple(q), coeff * power[axis])
        q = list(power)  # -(2n+1) x_a P
        q[axis] += 1
        add(tuple(q), -(2 * n + 1) * coeff)
    return tuple((p, c) for p, c in sorted(out.items()) if c != 0)


def _triangle_moment(order: int, d: float) -> float:
    """``E[s^order]`` for ``s`` = difference of two uniform points on ``[0, d]``."""
    if order % 2:
        return 0.0
    return 2.0 * d**order / ((order + 1) * (order + 2))


def _even_multi_indices(total: int):
    """Multi-indices ``beta`` with even entries summing to ``total``."""
    for a in range(0, total + 1, 2):
        for b in range(0, total - a + 1, 2):
            yield (a, b, total - a - b)


@functools.lru_cache(maxsize=None)
def _asymptotic_polynomials(d: tuple[float, float, float]) -> tuple:
    """Per component and expansion order k, monomial powers and float coefficients.

    ``N_ij(r) = -(V / 4 pi) sum_k Q_ijk(u) / R^(2k+3)`` with ``u = r / R``, where
    ``Q_ijk = sum_{|beta| = 2k} E[s^beta] / beta! P_{e_i + e_j + beta}``.
    """
    result = []
    for i, j in _PAIRS:
        orders = []
        for k in range(_ASYMPTOTIC_ORDER + 1):
            acc: dict[tuple[int, int, int], float] = {}
            for beta in _even_multi_indices(2 * k):
                weight = 1.0
                for axis in range(3):
                    weight *= _triangle_moment(beta[axis], d[axis]) / math.factorial(beta[axis])
                alpha = list(beta)
                alpha[i] += 1
                alpha[j] += 1
                for power, coeff in _inverse_r_derivative(tuple(alpha)):
                    acc[power] = acc.get(power, 0.0) + weight * coeff
            powers = np.array(list(acc.keys()), dtype=np.int64).reshape(-1, 3)
            coeffs = np.array(list(acc.values()), dtype=np.float64)
            orders.append((powers, coeffs))
        result.append(tuple(orders))
    return tuple(result)


def _tensor_asymptotic(x: np.ndarray, y: np.ndarray, z: np.ndarray, d) -> np.ndarray:
    """Far-field tensor ``(..., 6)`` at offsets ``x, y, z`` (length, not all zero)."""
    d = tuple(float(v) for v in d)
    flat = [np.ravel(a) for a in (x, y, z)]
    out = np.empty((flat[0].size, 6))
    # Chunks keep the cached monomials of one chunk small (and in cache) for huge PBC windows.
    for start in range(0, flat[0].size, _CHUNK):
        stop = start + _CHUNK
        out[start:stop] = _asymptotic_chunk(flat[0][start:stop], flat[1][start:stop], flat[2][start:stop], d)
    return out.reshape(np.shape(x) + (6,))


_CHUNK = 1 << 15


def _asymptotic_chunk(x: np.ndarray, y: np.ndarray, z: np.ndarray, d: tuple[float, float, float]) -> np.ndarray:
    r = np.sqrt(x * x + y * y + z * z)
    u = (x / r, y / r, z / r)
    top = 2 * _ASYMPTOTIC_ORDER + 2
    powers_of_u = [[np.ones_like(r)] for _ in range(3)]
    for axis in range(3):
        for _ in range(top):
            powers_of_u[axis].append(powers_of_u[axis][-1] * u[axis])
    zero_axis = [not np.any(u[axis]) for axis in range(3)]  # e.g. z for a film: skip monomials
    monomials: dict[tuple[int, int, int], np.ndarray] = {}  # shared by the six components

    def monomial(px: int, py: int, pz: int) -> np.ndarray:
        key = (px, py, pz)
        if key not in monomials:
            monomials[key] = powers_of_u[0][px] * powers_of_u[1][py] * powers_of_u[2][pz]
        return monomials[key]

    inv_r2 = 1.0 / (r * r)
    volume = d[0] * d[1] * d[2]
    out = np.empty(r.shape + (6,))
    for comp, orders in enumerate(_asymptotic_polynomials(d)):
        total = np.zeros_like(r)
        scale = inv_r2 / r  # R^-(2k+3), starting at k = 0
        for powers, coeffs in orders:
            poly = np.zeros_like(r)
            for (px, py, pz), c in zip(powers.tolist(), coeffs.tolist()):
                if (px and zero_axis[0]) or (py and zero_axis[1]) or (pz and zero_axis[2]):
                    continue
                poly += c * monomial(px, py, pz)
            total += poly * scale
            scale = scale * inv_r2
        out[:, comp] = -volume / (4.0 * math.pi) * total
    return out


# --------------------------------------------------------------------------------------------
# Public tensor
# --------------------------------------------------------------------------------------------
def asymptotic_radius(cell_size) -> float:
    """Centre distance, in units of the largest cell edge, beyond which the expansion is used.

    Error model, fitted to 60-digit (mpmath) evaluations of the exact formula for cells from
    1:1:1 to 1:1:0.1: the float64 exact formula has relative error ~ ``2 eps R^6 / v^2``
    (``v`` = cell volume over the largest edge cubed), the expansion ~ ``R^-(2K+2)`` nearly
    independent of the aspect ratio. The switch is where they meet: 9.1 for a cube (both
    errors ~4e-10 there), 6.8 for a 1:1:0.1 cell (~5e-9).
    """
    d = np.asarray(cell_size, dtype=np.float64)
    v = float(np.prod(d / d.max()))
    top = 2 * _ASYMPTOTIC_ORDER + 2
    return float((v * v / (2.0 * np.finfo(np.float64).eps)) ** (1.0 / (6 + top)))


def _check_cell_size(cell_size) -> tuple[float, float, float]:
    d = np.asarray(cell_size, dtype=np.float64)
    if d.shape != (3,) or not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ValueError(f"cell_size must be three positive finite lengths (dx, dy, dz), got {cell_size!r}")
    return tuple(float(v) for v in d / d.max())  # N is scale free; O(1) numbers keep f tame


def _tensor_octant(i: np.ndarray, j: np.ndarray, k: np.ndarray, d, method: Method) -> np.ndarray:
    """Tensor at non-negative integer offsets ``(i, j, k)`` (any broadcastable shape)."""
    i, j, k = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (i, j, k)))
    shape = i.shape
    x, y, z = np.ravel(i) * d[0], np.ravel(j) * d[1], np.ravel(k) * d[2]
    if method == "exact":
        return _tensor_exact(x, y, z, d).reshape(shape + (6,))
    r2 = x * x + y * y + z * z
    radius = 0.0 if method == "asymptotic" else asymptotic_radius(d)
    near = np.nonzero((r2 < radius * radius) | (r2 == 0))  # the expansion diverges at 0
    # The expansion everywhere (the origin moved out of harm's way), then the few near
    # offsets overwritten: cheaper than masked copies of the large far set.
    origin = r2 == 0
    out = _tensor_asymptotic(np.where(origin, 1.0, x), y, z, d)
    out[near] = _tensor_exact(x[near], y[near], z[near], d)
    return out.reshape(shape + (6,))


def _apply_signs(octant: np.ndarray, i: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Extend octant values to signed offsets: N_ab is odd in a and in b for a != b.

    ``np.sign(0) = 0`` makes off-diagonal entries on symmetry planes exactly zero.
    """
    si, sj, sk = np.sign(i), np.sign(j), np.sign(k)
    out = octant.copy()
    out[..., 3] *= si * sj
    out[..., 4] *= si * sk
    out[..., 5] *= sj * sk
    return out


def newell_tensor(offsets, cell_size, *, method: Method = "auto") -> np.ndarray:
    """Demagnetisation tensor between two cells, float64, shape ``offsets.shape[:-1] + (6,)``.

    Args:
      offsets: integer cell offsets ``(..., 3)`` as ``(i, j, k)`` along (x, y, z)
        (destination minus source).
      cell_size: ``(dx, dy, dz)`` in any one length unit (m in jaxmag); only ratios matter.
      method: ``"auto"`` (exact below ``asymptotic_radius``, expansion beyond), or force
        ``"exact"`` / ``"asymptotic"`` (the latter still exact at offset 0), for testing.

    Returns:
      ``(..., 6)`` dimensionless components ``xx, yy, zz, xy, xz, yz``, OOMMF sign
      convention ``H_dest = -N M_source`` (so ``N(0)`` has trace 1 and ``N_xx(1, 0, 0) < 0``).
    """
    if method not in ("auto", "exact", "asymptotic"):
        raise ValueError(f"method must be 'auto', 'exact' or 'asymptotic', got {method!r}")
    offsets = np.asarray(offsets)
    if offsets.ndim < 1 or offsets.shape[-1] != 3:
        raise ValueError(f"offsets must have shape (..., 3), got {offsets.shape}")
    if not np.issubdtype(offsets.dtype, np.integer):
        raise ValueError(f"offsets must be integers (cell offsets), got dtype {offsets.dtype}")
    d = _check_cell_size(cell_size)
    i, j, k = offsets[..., 0], offsets[..., 1], offsets[..., 2]
    octant = _tensor_octant(np.abs(i), np.abs(j), np.abs(k), d, method)
    return _apply_signs(octant, i, j, k)


# --------------------------------------------------------------------------------------------
# Kernel on the FFT grid
# --------------------------------------------------------------------------------------------
def _fft_size(n: int) -> int:
    """Smallest 2-3-5-smooth integer ``>= n`` (sizes FFT libraries handle fastest)."""
    size = n
    while True:
        rest = size
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return size
        size += 1


def _axis_layout(n: int, periodic: bool, images: int) -> tuple[int, int]:
    """``(padded_size, window)`` for one axis: FFT length and largest source offset |i|."""
    if periodic and images > 0:
        return n, images * n - 1
    if n == 1:
        return 1, 0
    return _fft_size(2 * n - 1), n - 1


def kernel_layout(grid: Grid) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """``((Pz, Py, Px), (Wz, Wy, Wx))``: FFT shape and largest offset summed per axis."""
    periodic = grid.periodic
    lz = _axis_layout(grid.nz, False, 0)
    ly = _axis_layout(grid.ny, periodic, grid.pbc_images)
    lx = _axis_layout(grid.nx, periodic, grid.pbc_images)
    return (lz[0], ly[0], lx[0]), (lz[1], ly[1], lx[1])


def _fold(values: np.ndarray, axis: int, window: int, size: int) -> np.ndarray:
    """Place signed offsets ``-window..window`` (along ``axis``) on an FFT axis of ``size``.

    Offset ``o`` goes to index ``o mod size``; offsets landing on the same index add, which is
    the periodic image sum (for open axes ``size >= 2 window + 1`` and nothing collides).
    """
    values = np.moveaxis(values, axis, 0)
    count = values.shape[0]  # 2 window + 1
    reps = -(-count // size)
    padded = np.zeros((reps * size,) + values.shape[1:])
    padded[:count] = values
    # row t of the sum holds offsets -window + t + q size, i.e. index (t - window) mod size
    folded = padded.reshape((reps, size) + values.shape[1:]).sum(axis=0)
    return np.moveaxis(np.roll(folded, -window, axis=0), 0, axis)


def _signed_full(octant: np.ndarray, axis: int, odd_components: tuple[int, ...]) -> np.ndarray:
    """Mirror octant values (offsets ``0..W`` along ``axis``) to ``-W..W`` with parity."""
    mirrored = np.flip(np.take(octant, np.arange(1, octant.shape[axis]), axis=axis), axis=axis).copy()
    mirrored[..., list(odd_components)] *= -1.0
    return np.concatenate([mirrored, octant], axis=axis)


@functools.lru_cache(maxsize=16)
def _kernel_cached(grid: Grid) -> np.ndarray:
    (pz, py, px), (wz, wy, wx) = kernel_layout(grid)
    d = _check_cell_size(grid.cell_size)
    k, j, i = np.meshgrid(np.arange(wz + 1), np.arange(wy + 1), np.arange(wx + 1), indexing="ij")
    octant = _tensor_octant(i, j, k, d, "auto")  # (Wz+1, Wy+1, Wx+1, 6)
    # Mirror and fold one axis at a time so the full (2W+1)^3 block never exists for large P.
    for axis, window, size, odd in (
        (2, wx, px, (3, 4)),  # x: xy, xz are odd in x
        (1, wy, py, (3, 5)),  # y: xy, yz
        (0, wz, pz, (4, 5)),  # z: xz, yz
    ):
        octant = _fold(_signed_full(octant, axis, odd), axis, window, size)
    octant.setflags(write=False)
    return octant


def demag_kernel_newell(grid: Grid) -> np.ndarray:
    """Real-space demag kernel on the FFT grid, float64, shape ``(Pz, Py, Px, 6)``.

    Entry ``[kz, ky, kx, c]`` is the sum of ``newell_tensor`` component ``c`` over all signed
    offsets ``(i, j, k)`` with ``|i| <= Wx, |j| <= Wy, |k| <= Wz`` that are congruent to
    ``(kx, ky, kz)`` modulo ``(Px, Py, Pz)`` (see ``kernel_layout``). Cached per grid; the
    returned array is read-only.
    """
    return _kernel_cached(grid)


@functools.lru_cache(maxsize=16)
def _kernel_fft(grid: Grid) -> tuple[np.ndarray, ...]:
    """Real parts of the kernel's ``rfftn`` over the padded axes, per needed component.

    The kernel is even or odd in every axis, so its transform is real (the imaginary part is
    rounding noise). For a single layer (``nz == 1``) xz and yz vanish and z is not transformed.
    """
    kernel = demag_kernel_newell(grid)
    if grid.nz == 1:
        spectrum = np.fft.rfftn(kernel[0, ..., :4], axes=(0, 1))  # (Py, Px//2+1, 4)
    else:
        spectrum = np.fft.rfftn(kernel, axes=(0, 1, 2))
    real = np.ascontiguousarray(np.moveaxis(spectrum.real, -1, 0))
    real.setflags(write=False)
    return real


def _spectrum_pruned_layout(grid: Grid) -> np.ndarray:
    """``_kernel_fft`` in the order ``_convolve_*`` hold the transformed magnetisation: the
    kx axis first, the last-transformed axis last: ``(k, kx, ky)`` or ``(k, kx, ky, kz)``."""
    spectrum = _kernel_fft(grid)
    order = (0, 2, 1) if spectrum.ndim == 3 else (0, 3, 2, 1)
    return np.ascontiguousarray(np.transpose(spectrum, order))


# The two convolutions below compute irfftn(N · rfftn(Ms m)) cut to the grid, as 1-D FFTs that
# skip the padding: the source is zero outside the grid and only the grid's part of the result
# is kept, so the forward x transform runs over the unpadded rows only and the inverse y (and
# z) transforms are cut before the inverse x transform (a quarter less FFT work than rfftn over
# the padded box in 2-D, more in 3-D). Each FFT runs over the last, contiguous axis.
def _convolve_2d(c: jax.Array, spectrum: jax.Array, padded: tuple[int, int]) -> jax.Array:
    """``c`` (3, ny, nx) in A/m, ``spectrum`` (4, kx, Py) -> (3, ny, nx) in A/m."""
    py, px = padded
    ny, nx = c.shape[1:]
    X = jnp.fft.fft(jnp.swapaxes(jnp.fft.rfft(c, n=px, axis=-1), 1, 2), n=py, axis=-1)  # (3, kx, Py)
    nxx, nyy, nzz, nxy = spectrum

    def tensor_times(part: jax.Array) -> jax.Array:  # real spectrum times one real part of X
        mx, my, mz = part
        return jnp.stack([nxx * mx + nxy * my, nxy * mx + nyy * my, nzz * mz])

    # N is real: multiplying real and imaginary parts separately avoids XLA's promotion of N to
    # complex (a full complex product), which does not vectorise on CPU (measured 30 % faster).
    H = jax.lax.complex(tensor_times(jnp.real(X)), tensor_times(jnp.imag(X)))
    H = jnp.fft.ifft(H, axis=-1)[..., :ny]  # (3, kx, ny)
    return jnp.fft.irfft(jnp.swapaxes(H, 1, 2), n=px, axis=-1)[..., :nx]


def _convolve_3d(c: jax.Array, spectrum: jax.Array, padded: tuple[int, int, int]) -> jax.Array:
    """``c`` (3, nz, ny, nx) in A/m, ``spectrum`` (6, kx, Py, Pz) -> (3, nz, ny, nx) in A/m."""
    pz, py, px = padded
    nz, ny, nx = c.shape[1:]
    X = jnp.transpose(jnp.fft.rfft(c, n=px, axis=-1), (0, 3, 1, 2))  # (3, kx, nz, ny)
    X = jnp.swapaxes(jnp.fft.fft(X, n=py, axis=-1), 2, 3)  # (3, kx, Py, nz)
    X = jnp.fft.fft(X, n=pz, axis=-1)  # (3, kx, Py, Pz)
    nxx, nyy, nzz, nxy, nxz, nyz = spectrum

    def tensor_times(part: jax.Array) -> jax.Array:  # as in _convolve_2d
        mx, my, mz = part
        return jnp.stack([
            nxx * mx + nxy * my + nxz * mz,
            nxy * mx + nyy * my + nyz * mz,
            nxz * mx + nyz * my + nzz * mz,
        ])

    H = jax.lax.complex(tensor_times(jnp.real(X)), tensor_times(jnp.imag(X)))
    H = jnp.swapaxes(jnp.fft.ifft(H, axis=-1)[..., :nz], 2, 3)  # (3, kx, nz, Py)
    H = jnp.transpose(jnp.fft.ifft(H, axis=-1)[..., :ny], (0, 2, 3, 1))  # (3, nz, ny, kx)
    return jnp.fft.irfft(H, n=px, axis=-1)[..., :nx]


def demag(grid: Grid) -> FieldFn:
    """Demagnetising field term for ``grid`` (kernel and its FFT are built here, once).

    Returns ``field(m, material) -> B_demag`` (T), ``m`` of shape ``(nz, ny, nx, 3)`` and
    ``material.Ms`` (A/m) of shape ``(nz, ny, nx)``. The computation runs in the dtype of
    ``m * Ms`` (float32 by default); the cached float64 kernel is cast to it.
    """
    if not isinstance(grid, Grid):
        raise TypeError(f"demag expects a jaxmag Grid, got {type(grid).__name__}")
    spectrum64 = _spectrum_pruned_layout(grid)
    (pz, py, px), _ = kernel_layout(grid)
    two_d = grid.nz == 1

    def field(m: jax.Array, material: Material) -> jax.Array:
        # Shapes are static, so this check runs at trace time, never inside compiled code.
        if tuple(m.shape) != grid.vector_shape or tuple(material.Ms.shape) != grid.shape:
            raise ValueError(
                f"demag field: m has shape {tuple(m.shape)} and Ms {tuple(material.Ms.shape)}, expected "
                f"{grid.vector_shape} and {grid.shape} for this grid (use jax.vmap for batches)"
            )
        magnetisation = m * material.Ms[..., None]  # A/m, (nz, ny, nx, 3)
        spectrum = jnp.asarray(spectrum64, dtype=magnetisation.dtype)
        comps = jnp.moveaxis(magnetisation, -1, 0)  # (3, nz, ny, nx)
        if two_d:
            h = _convolve_2d(comps[:, 0], spectrum, (py, px))[:, None]
        else:
            h = _convolve_3d(comps, spectrum, (pz, py, px))
        return (-MU0) * jnp.moveaxis(h, 0, -1)

    return field


def demag_stiffness(grid: Grid, material: Material) -> np.ndarray:
    """Per-cell stiffness (T, float64, (nz, ny, nx); 0 in vacuum): μ0 Ms, the bound on the
    demagnetising field of a cell (the tensor's eigenvalues lie in [0, 1])."""
    Ms = np.asarray(material.Ms, np.float64)
    return MU0 * Ms
