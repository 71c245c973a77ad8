"""3x3 "SAME" convolutions by Winograd's F(4x4, 3x3) algorithm: 4x fewer multiplications on CPU.

A direct 3x3 convolution spends 9 multiply-adds per output pixel, input channel and output
channel. Winograd's minimal filtering algorithm F(4x4, 3x3) (Lavin & Gray, "Fast algorithms
for convolutional neural networks", CVPR 2016) computes a 4x4 tile of outputs from the 6x6
tile of inputs around it as

    Y = Aᵀ [ (G K Gᵀ) ⊙ (Bᵀ X B) ] A,

summed over input channels. With the 36 points ξ of a 6x6 tile as a batch axis, the sum over
channels is 36 matrix products ``V_ξ (tiles x C_in) @ U_ξ (C_in x C_out)``: 36 multiplications
for 16 outputs instead of 16 x 9 = 144. The transforms ``Bᵀ · B`` (input), ``G · Gᵀ`` (kernel)
and ``Aᵀ · A`` (output) are fixed linear maps, done as elementwise passes.

Every step is linear, so the backward pass stays in the Winograd domain: the output gradient
is taken to tiles by the transpose of the output transform (``dM``), the input gradient is
``dV = dM Uᵀ`` taken back by the transpose of the input transform (overlapping tiles add up),
and the kernel gradient is ``dU = Vᵀ dM`` taken back by the transpose of the kernel transform.
Forward, input gradient and kernel gradient thus all run on 4x fewer multiplications.

Why here, and how it is laid out for XLA:CPU:

- The forward convolution and its input gradient already run near the machine's peak in
  XLA:CPU (YNNPACK); a training step can only get faster by doing less arithmetic. Measured on
  the paper U-Net at 128x128, batch 32, one core: the step takes 0.55x the time of the direct
  convolutions (docs/performance.md).
- The transforms are memory-bound, and XLA:CPU runs fusions that read several large strided
  operands at a fraction of the memory speed. So forward and backward run over chunks of
  about ``CHUNK_BYTES`` of images (``lax.scan``): each chunk's tiles stay in cache from
  transform through product to back-transform.
- XLA:CPU fuses a cheap producer into every consumer, which would recompute the first pass of
  each two-pass transform for each of the six taps of the second. ``jaxmag.fusion.materialized``
  makes each first pass once (a conditional on a predicate XLA cannot fold; CPU only).

Numerics: the transform matrices hold exact small rationals (4, 5, 8, 1/6, 1/24); in float32
the results differ from a direct convolution by about 3e-6 of their scale (tests hold 2e-5).

Layout: inputs ``(B, H, W, C)``, kernels ``(3, 3, C, C_out)`` (NHWC / HWIO, ``nnx.Conv``'s),
outputs ``(B, H, W, C_out)``; any ``H, W >= 1`` (sides are padded up to whole tiles).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxmag.fusion import materialized
from jaxmag.models.chunks import largest_chunk, split_batch

# Bᵀ (6 x 6), G (6 x 3), Aᵀ (4 x 6) for the interpolation points 0, ±1, ±2 and infinity
INPUT_TRANSFORM = np.array(
    [[4, 0, -5, 0, 1, 0],
     [0, -4, -4, 1, 1, 0],
     [0, 4, -4, -1, 1, 0],
     [0, -2, -1, 2, 1, 0],
     [0, 2, -1, -2, 1, 0],
     [0, 4, 0, -5, 0, 1]], dtype=np.float64)
KERNEL_TRANSFORM = np.array(
    [[1 / 4, 0, 0],
     [-1 / 6, -1 / 6, -1 / 6],
     [-1 / 6, 1 / 6, -1 / 6],
     [1 / 24, 1 / 12, 1 / 6],
     [1 / 24, -1 / 12, 1 / 6],
     [0, 0, 1]], dtype=np.float64)
OUTPUT_TRANSFORM = np.array(
    [[1, 1, 1, 1, 1, 0],
     [0, 1, -1, 2, -2, 0],
     [0, 1, 1, 4, 4, 0],
     [0, 1, -1, 8, -8, 1]], dtype=np.float64)
TILE = 4  # outputs per tile side; input tiles are TILE + 2 = 6 wide and overlap by 2
POINTS = 36  # 6 x 6 points of a tile in the Winograd domain
# images per chunk: the largest batch divisor whose images take at most this many bytes (at
# the wider of C_in, C_out). The chunk's tiles (2.25x that) then stay in the 32 MB L3 cache.
CHUNK_BYTES = 2 * 2**20
# Chunks cost one pass over the kernel gradient's (36, C_in, C_out) accumulator each; when a
# chunk holds fewer tiles than this many times min(C_in, C_out), that costs more than the cache
# saves, and the whole batch is one chunk (measured on the paper U-Net's layers at batch 32:
# the 8x8, 16x16 and 32x32 x 512 ones; docs/performance.md).
CHUNK_MIN_TILES_PER_CHANNEL = 0.5


def _tiles(n: int) -> int:
    return -(-n // TILE)


def _combine(mat: np.ndarray, a: jax.Array, axis: int, out_axis: int, tiles: int | None = None) -> jax.Array:
    """``sum_k mat[:, k] * tap_k(a)``, the new axis (``mat``'s rows) at ``out_axis``.

    ``tap_k`` is index ``k`` of ``axis`` (which it removes), or with ``tiles`` the stride-4
    slice of ``tiles`` entries starting at ``k`` (the k-th pixel of each overlapping 6-wide
    tile). One broadcast sum, so XLA emits one fusion; zero coefficients are skipped.
    """
    rows = mat.shape[0]
    total = None
    for k in range(mat.shape[1]):
        column = mat[:, k]
        if not column.any():
            continue
        if tiles is None:
            tap = lax.index_in_dim(a, k, axis, keepdims=False)
        else:
            tap = lax.slice_in_dim(a, k, k + TILE * (tiles - 1) + 1, TILE, axis)
        tap = jnp.expand_dims(tap, out_axis)
        shape = [1] * tap.ndim
        shape[out_axis] = rows
        term = jnp.asarray(column, a.dtype).reshape(shape) * tap
        total = term if total is None else total + term
    return total


def _token(kernel: jax.Array) -> jax.Array:
    """A run-time integer for ``materialized`` (its value does not matter)."""
    return lax.bitcast_convert_type(kernel.reshape(-1)[0].astype(jnp.float32), jnp.uint32)


def input_tiles(x: jax.Array, token: jax.Array) -> jax.Array:
    """``Bᵀ X B`` of every 6x6 input tile: ``(B, H, W, C) -> (36, B*th*tw, C)``."""
    b, h, w, c = x.shape
    th, tw = _tiles(h), _tiles(w)
    padded = jnp.pad(x, ((0, 0), (1, 1 + TILE * th - h), (1, 1 + TILE * tw - w), (0, 0)))
    rows = materialized(_combine(INPUT_TRANSFORM, padded, 1, 0, th), token)  # (6, b, th, w+, c)
    return _combine(INPUT_TRANSFORM, rows, 3, 1, tw).reshape(POINTS, b * th * tw, c)


def input_tiles_transpose(dv: jax.Array, shape: tuple[int, int, int, int], token: jax.Array) -> jax.Array:
    """The transpose of ``input_tiles``: ``(36, T, C) -> (B, H, W, C)``, overlapping tiles summed."""
    b, h, w, c = shape
    th, tw = _tiles(h), _tiles(w)
    dv = dv.reshape(6, 6, b, th, tw, c)
    cols = materialized(_combine(INPUT_TRANSFORM.T, dv, 1, 4), token)  # (6r, b, th, tw, 6l, c)
    z = materialized(_combine(INPUT_TRANSFORM.T, cols, 0, 2), token)  # (b, th, 6k, tw, 6l, c)
    # tile (t, u) pixel (k, l) sits at padded (4t + k, 4u + l): pixels 4 and 5 of a tile are
    # pixels 0 and 1 of the next, so each 4x4 block adds up to four tiles' parts
    z = jnp.pad(z, ((0, 0), (0, 1), (0, 0), (0, 1), (0, 0), (0, 0)))  # a tile row and column of zeros

    def part(k0: int, l0: int) -> jax.Array:
        block = z[:, :, k0:k0 + TILE, :, l0:l0 + TILE]
        pad_k, pad_l = TILE - block.shape[2], TILE - block.shape[4]
        shift_t, shift_u = k0 // TILE, l0 // TILE  # parts of the previous tile row / column
        return lax.pad(block, jnp.zeros((), block.dtype),
                       ((0, 0, 0), (shift_t, -shift_t, 0), (0, pad_k, 0), (shift_u, -shift_u, 0), (0, pad_l, 0), (0, 0, 0)))

    image = part(0, 0) + part(TILE, 0) + part(0, TILE) + part(TILE, TILE)
    image = image.reshape(b, TILE * (th + 1), TILE * (tw + 1), c)
    return image[:, 1:h + 1, 1:w + 1]


def kernel_tiles(kernel: jax.Array) -> jax.Array:
    """``G K Gᵀ``: ``(3, 3, C, C_out) -> (36, C, C_out)``."""
    u = _combine(KERNEL_TRANSFORM, _combine(KERNEL_TRANSFORM, kernel, 0, 0), 1, 1)
    return u.reshape(POINTS, *kernel.shape[2:])


def kernel_tiles_transpose(du: jax.Array) -> jax.Array:
    """The transpose of ``kernel_tiles``: ``(36, C, C_out) -> (3, 3, C, C_out)``."""
    du = du.reshape(6, 6, *du.shape[1:])
    return _combine(KERNEL_TRANSFORM.T, _combine(KERNEL_TRANSFORM.T, du, 0, 0), 1, 1)


def output_from_tiles(m: jax.Array, shape: tuple[int, int, int], token: jax.Array) -> jax.Array:
    """``Aᵀ M A`` of every tile, tiles laid side by side: ``(36, T, O) -> (B, H, W, O)``."""
    b, h, w = shape
    th, tw = _tiles(h), _tiles(w)
    o = m.shape[-1]
    m = m.reshape(6, 6, b, th, tw, o)
    rows = materialized(_combine(OUTPUT_TRANSFORM, m, 0, 0), token)  # (4i, 6, b, th, tw, o)
    y = _combine(OUTPUT_TRANSFORM, rows, 1, 4)  # (4i, b, th, tw, 4j, o)
    y = y.transpose(1, 2, 0, 3, 4, 5).reshape(b, TILE * th, TILE * tw, o)
    return y[:, :h, :w]


def output_from_tiles_transpose(g: jax.Array, token: jax.Array) -> jax.Array:
    """The transpose of ``output_from_tiles``: ``(B, H, W, O) -> (36, T, O)``."""
    b, h, w, o = g.shape
    th, tw = _tiles(h), _tiles(w)
    g = jnp.pad(g, ((0, 0), (0, TILE * th - h), (0, TILE * tw - w), (0, 0))).reshape(b, th, TILE, tw, TILE, o)
    rows = materialized(_combine(OUTPUT_TRANSFORM.T, g, 2, 0), token)  # (6, b, th, tw, 4j, o)
    return _combine(OUTPUT_TRANSFORM.T, rows, 4, 1).reshape(POINTS, b * th * tw, o)


def _batched_product(a: jax.Array, b: jax.Array, contract: tuple[int, int]) -> jax.Array:
    """The 36 products over the leading Winograd-point axis."""
    return lax.dot_general(a, b, (((contract[0],), (contract[1],)), ((0,), (0,))))


def images_per_chunk(x_shape: tuple[int, ...], c_out: int) -> int:
    """Images per ``lax.scan`` chunk (a divisor of the batch; see ``CHUNK_BYTES``)."""
    b, h, w, c = x_shape
    if b <= 1:
        return b
    chunk = largest_chunk(b, h * w * max(c, c_out) * 4, CHUNK_BYTES)
    if chunk * _tiles(h) * _tiles(w) < CHUNK_MIN_TILES_PER_CHANNEL * min(c, c_out):
        return b
    return chunk


def _forward(x: jax.Array, kernel: jax.Array) -> jax.Array:
    b, h, w, _ = x.shape
    c_out = kernel.shape[-1]
    token = _token(kernel)
    u = kernel_tiles(kernel)
    chunk = images_per_chunk(x.shape, c_out)

    def one_chunk(xc):
        return output_from_tiles(_batched_product(input_tiles(xc, token), u, (2, 1)), (chunk, h, w), token)

    if chunk == b:
        return one_chunk(x)
    return lax.map(one_chunk, split_batch(x, chunk)).reshape(b, h, w, c_out)


@jax.custom_vjp
def conv3x3_winograd(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """3x3 "SAME" convolution, stride 1 (NHWC / HWIO, float32), by Winograd F(4x4, 3x3).

    Equal to ``lax.conv_general_dilated(x, kernel, (1, 1), "SAME")`` to float32 rounding of
    the transforms, with forward, input gradient and kernel gradient all in the Winograd
    domain. Reverse-mode differentiable (a custom VJP), not forward-mode.
    """
    return _forward(x, kernel)


def _fwd(x, kernel):
    return _forward(x, kernel), (x, kernel)


def _bwd(residuals, g):
    x, kernel = residuals
    b, h, w, c = x.shape
    c_out = kernel.shape[-1]
    token = _token(kernel)
    u = kernel_tiles(kernel)
    chunk = images_per_chunk(x.shape, c_out)

    def one_chunk(du, xg):
        xc, gc = xg
        dm = output_from_tiles_transpose(gc, token)
        dx = input_tiles_transpose(_batched_product(dm, u, (2, 2)), (chunk, h, w, c), token)
        du = du + _batched_product(input_tiles(xc, token), dm, (1, 1))  # recomputed: cheaper than keeping
        return du, dx

    du0 = jnp.zeros((POINTS, c, c_out), jnp.float32)
    if chunk == b:
        du, dx = one_chunk(du0, (x, g))
    else:
        du, dx = lax.scan(one_chunk, du0, (split_batch(x, chunk), split_batch(g, chunk)))
        dx = dx.reshape(b, h, w, c)
    return dx, kernel_tiles_transpose(du).astype(kernel.dtype)


conv3x3_winograd.defvjp(_fwd, _bwd)
