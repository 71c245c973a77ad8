"""A drop-in ``conv_general_dilated`` for ``nnx.Conv`` that trains fast on CPU.

On XLA:CPU the forward 3x3 convolution and its input gradient run as YNNPACK convolutions near
the core's peak, so a training step only gets faster with less arithmetic or a better kernel
gradient. ``conv_general_dilated`` below, on the CPU backend, for float32 stride-1 "SAME"
NHWC/HWIO convolutions:

- 3x3 with enough channels and pixels (``takes_winograd``): Winograd's F(4x4, 3x3)
  (``jaxmag.models.winograd``), 4x fewer multiplications in the forward pass and both
  gradients;
- other 3x3: ``lax`` forward and input gradient, and a kernel gradient (a convolution whose
  "window" is the whole image and whose contracted feature axis is the batch, which XLA:CPU
  runs at a quarter of the forward's speed) as one large matrix product (``kernel_gradient``);
- 1x1 as a ``dot`` (``conv1x1``);

and it leaves every other case, and every non-CPU backend (cuDNN), to
``lax.conv_general_dilated``. Parameters, shapes and dtypes are unchanged; results agree with
``lax`` to float32 rounding (``tests/test_unet.py``, ``tests/test_winograd.py``).

Layout: inputs ``(B, H, W, C)``, kernels ``(3, 3, C, C_out)`` (``nnx.Conv``'s NHWC / HWIO).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxmag.models.chunks import largest_chunk, split_batch
from jaxmag.models.winograd import conv3x3_winograd

_NHWC = ("NHWC", "HWIO", "NHWC")
# below this many pixels per image, or input channels, XLA's own kernel gradient is as fast or
# faster (measured: 16x16 at 512 channels; 1 input channel at 128x128)
MIN_PIXELS_FOR_GEMM_GRADIENT = 32 * 32
MIN_CHANNELS_FOR_GEMM_GRADIENT = 8
# Winograd F(4x4, 3x3) for 3x3 layers with at least this many input and output channels and
# this many flops per image (18 H W C_in C_out). Measured per layer (forward and both
# gradients, batch 32, one core): every layer of the paper U-Net (0.6-1.2 GFLOP per image) is
# 1.5-3.4x faster. The quick model's layers (2-5 MFLOP per image) gain a little alone, but its
# training step did not measurably (3 alternating rounds) while its compilation took 2.5x as
# long; the bound keeps such small models, the tests' included, on the direct path.
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_FLOPS_PER_IMAGE = 50_000_000
# images per chunk of the kernel gradient: the tap copies of ~4 MB of input stay in cache and
# their buffers are reused, instead of 6 fresh image-sized copies per layer (page faults)
CHUNK_BYTES = 4 * 2**20


def _lax_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_NHWC)


def kernel_gradient(x: jax.Array, g: jax.Array) -> jax.Array:
    """``d/dkernel`` of ``sum(g * conv3x3_same(x, kernel))``: ``(3, 3, C, C_out)``, as one GEMM.

    ``dk[i, j] = sum_p x[p + (i-1, j-1)] (x) g[p]``. Both images are zero-padded and flattened,
    so a tap ``(i, j)`` is a shift of the flat pixel index by ``(i-1)*wp + (j-1)`` (``wp`` the
    padded row length, a multiple of 3). Grouping flat pixels three by three, the three column
    taps ``j`` of a pixel are one row of ``x`` reshaped to ``(n/3, 3C)`` (free), for each of the
    three residues ``r`` of the pixel index mod 3; the row taps ``i`` become row shifts of ``g``.
    So ``dk`` is a single ``(3 C_out, K) @ (K, 3C)`` product over ``K ~ n`` pixels, built from 3
    shifted copies of ``x`` and 9 of ``g`` (each a third of ``g``): GEMM-shaped work where
    XLA:CPU's own kernel-gradient convolution is 2-3x slower.
    """
    b, h, w, c = x.shape
    c_out = g.shape[-1]
    wp = -(-(w + 2) // 3) * 3  # padded row length, a multiple of 3 so rows keep their residue
    pads = ((0, 0), (1, 1), (1, wp - w - 1), (0, 0))
    n = b * (h + 2) * wp
    rows = wp // 3  # one image row, in groups of three pixels
    u = n // 3 + 2 * rows  # groups needed to reach the last pixel's lowest row tap
    margin = wp + 1  # zeros before/after the flat image: every tap of every pixel stays in range
    x_flat = jnp.pad(jnp.pad(x, pads).reshape(n, c), ((margin, margin), (0, 0)))
    # residue r: group q holds the pixels 3q+r-1, 3q+r, 3q+r+1 (taps j = 0, 1, 2), one row up
    x_taps = jnp.concatenate(
        [x_flat[r + margin - 1 - wp : r + margin - 1 - wp + 3 * u].reshape(u, 3 * c) for r in range(3)], axis=0
    )
    g_res = jnp.pad(g, pads).reshape(n // 3, 3, c_out)
    # row tap i: g moved down by i rows, so it meets x_taps' group q + i*rows
    g_taps = jnp.stack(
        [
            jnp.concatenate([jnp.pad(g_res[:, r], ((i * rows, (2 - i) * rows), (0, 0))) for r in range(3)], axis=0)
            for i in range(3)
        ],
        axis=1,
    ).reshape(3 * u, 3 * c_out)
    dk = lax.dot_general(g_taps, x_taps, (((0,), (0,)), ((), ())))  # (i, o) x (j, c)
    return dk.reshape(3, c_out, 3, c).transpose(0, 2, 3, 1)


def chunked_kernel_gradient(x: jax.Array, g: jax.Array) -> jax.Array:
    """``kernel_gradient`` summed over chunks of images (``lax.scan``), ~``CHUNK_BYTES`` each."""
    chunk = largest_chunk(x.shape[0], x[0].size * x.dtype.itemsize, CHUNK_BYTES)
    xs, gs = split_batch(x, chunk), split_batch(g, chunk)

    def add_chunk(dk, xg):
        return dk + kernel_gradient(*xg), None

    dk0 = jnp.zeros((3, 3, x.shape[-1], g.shape[-1]), jnp.promote_types(x.dtype, g.dtype))
    return lax.scan(add_chunk, dk0, (xs, gs))[0]


@jax.custom_vjp
def conv3x3_same_cpu(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``lax`` 3x3 "SAME" convolution (stride 1, NHWC/HWIO) with the GEMM kernel gradient."""
    return _lax_conv(x, kernel)


def _fwd(x, kernel):
    return _lax_conv(x, kernel), (x, kernel)


def _bwd(res, g):
    x, kernel = res
    # input gradient: the convolution of g with the flipped, transposed kernel (fast on CPU)
    dx = _lax_conv(g, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
    if x.shape[1] * x.shape[2] >= MIN_PIXELS_FOR_GEMM_GRADIENT and x.shape[3] >= MIN_CHANNELS_FOR_GEMM_GRADIENT:
        dk = chunked_kernel_gradient(x, g)
    else:
        dk = jax.vjp(lambda k: _lax_conv(x, k), kernel)[1](g)[0]
    return dx, dk.astype(kernel.dtype)


conv3x3_same_cpu.defvjp(_fwd, _bwd)


def takes_winograd(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...]) -> bool:
    """Whether a CPU float32 3x3 "SAME" convolution of these shapes runs as Winograd F(4x4, 3x3).

    Decided from the image and channel sizes only, not the batch, so an image's result does
    not depend on the batch it came in.
    """
    _, h, w, c = x_shape
    c_out = kernel_shape[-1]
    return min(c, c_out) >= WINOGRAD_MIN_CHANNELS and 18 * h * w * c * c_out >= WINOGRAD_MIN_FLOPS_PER_IMAGE


def _is_plain_nhwc(size: int, lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                   feature_group_count, kwargs) -> bool:
    """A float32 ``size`` x ``size`` NHWC/HWIO convolution, stride 1, no dilation, "SAME"."""
    if lhs.ndim != 4 or rhs.shape[:2] != (size, size) or lhs.dtype != jnp.float32 or rhs.dtype != jnp.float32:
        return False
    if tuple(window_strides) != (1, 1) or feature_group_count != 1 or any(v is not None for v in kwargs.values()):
        return False
    if any(d is not None and tuple(d) != (1, 1) for d in (lhs_dilation, rhs_dilation)):
        return False
    half = (size - 1) // 2
    explicit = (not isinstance(padding, str)) and [tuple(p) for p in padding] == [(half, half), (half, half)]
    same = padding == "SAME" or explicit or (size == 1 and padding == "VALID")
    # nnx.Conv passes NHWC / HWIO as ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
    nhwc = lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
    return same and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) == nhwc


def conv1x1(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A 1x1 convolution (NHWC/HWIO) as the matrix product over channels that it is.

    XLA:CPU runs the kernel gradient of a 1x1 ``conv_general_dilated`` by transposing the whole
    activation to channel-major first: for the U-Net's 64 -> 2 head at 128x128, batch 32, that
    transpose and a 0.13 GFLOP gradient took 0.48 s of a 29 s training step. As a ``dot`` its
    forward and both gradients are plain GEMMs.
    """
    return lax.dot_general(x, kernel[0, 0], (((3,), (0,)), ((), ())))


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """``lax.conv_general_dilated``, but on CPU float32 3x3 "SAME" NHWC convolutions use
    ``conv3x3_winograd`` (``takes_winograd``) or ``conv3x3_same_cpu``, and 1x1 ones
    ``conv1x1``. Chosen at trace time by ``jax.default_backend()``: GPUs keep cuDNN."""
    if precision is None and jax.default_backend() == "cpu":
        plain = (lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
                 kwargs)
        if _is_plain_nhwc(3, *plain):
            if takes_winograd(lhs.shape, rhs.shape):
                return conv3x3_winograd(lhs, rhs)
            return conv3x3_same_cpu(lhs, rhs)
        if _is_plain_nhwc(1, *plain):
            return conv1x1(lhs, rhs)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                    rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                    feature_group_count=feature_group_count, precision=precision, **kwargs)
