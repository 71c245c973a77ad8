"""The U-Net of Knapman et al. (2026, appendix A), in Flax NNX.

Layout is channel-last everywhere: inputs ``(B, ny, nx, C)`` float, logits ``(B, ny, nx, K)``
with ``K = num_classes`` (channel 0 background; the paper's ``K = 2``: channel 1 defect; the
training library's class schemes, ``jaxmag.learn.classes``, say what the others are). ``ny``
and ``nx`` must be divisible by ``2**depth``.

Architecture (Ronneberger et al. 2015, padded "same" convolutions):

- encoder level ``i`` (``i = 0 .. depth-1``) has ``base_features * 2**i`` channels;
- the bottleneck has ``base_features * 2**depth`` channels;
- every block (encoder, bottleneck, decoder) is Conv3x3 + ReLU, spatial (channel-wise)
  dropout, Conv3x3 + ReLU; the dropout mask is drawn per (image, channel) and shared over
  pixels, as in ``torch.nn.Dropout2d``;
- 2x2 max pooling down, 2x2 stride-2 transposed convolution up, skip connections by
  concatenation, and a final 1x1 convolution to ``num_classes`` logits (2 in the paper).

Typed models (K > 2) may take the ``"hierarchical"`` head (``HEADS``): a 1x1 convolution to the
two logits of detection (background, any defect) and another to the K - 1 logits of the defect's
type, composed as ``l_0 = b_0`` and ``l_k = b_1 + log_softmax(t)_k``. The K-class cross-entropy
then splits exactly into the binary model's detection loss and a type loss on the defect pixels,
and the type head reads the decoder's features through ``stop_gradient``: the trunk learns only
detection, as a binary model's does, so typing costs no detection Dice (issue 30's measurement:
the joint head cost 0.007-0.029 at the quick budget, the hierarchical one 0.012 at most: ``docs/detect.md``).

The paper configuration (``in_channels=1, base_features=64, depth=4``: levels 64-128-256-512,
bottleneck 1024) has **31,030,658** parameters (checked in ``tests/test_unet.py``).

Dropout takes its randomness from an explicit ``rngs`` argument at call time, so the model
holds parameters only and training stays a pure function of (params, key).

``input_norm="per_image"`` standardises each input map by its own spatial mean and standard
deviation before the first convolution (no parameters). A film's mean magnetisation and its
overall fluctuation level vary from film to film far more than the defects' contrast does;
the non-learned baseline removes them per image (robust z-score), and so does this option,
which the ``robust`` recipes use (ablation in ``docs/training.md``). The paper's model has
none (``"none"``, the default).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmag.models.conv import conv_general_dilated

PAPER_PARAMETER_COUNT = 31_030_658
INPUT_NORMS = ("none", "per_image")


def standardize_per_image(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """Each map of ``x (B, H, W, C)`` minus its spatial mean, over its spatial std (+ ``eps``)."""
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    std = jnp.sqrt(jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True))
    return (x - mean) / (std + eps)


class ConvBlock(nnx.Module):
    """Conv3x3 + ReLU, spatial dropout, Conv3x3 + ReLU: ``(B, H, W, c_in) -> (B, H, W, c_out)``."""

    def __init__(self, c_in: int, c_out: int, dropout: float, *, dtype, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(c_in, c_out, (3, 3), padding="SAME", dtype=dtype, conv_general_dilated=conv_general_dilated, rngs=rngs)
        # broadcast over H and W: one keep/drop decision per (image, channel).
        self.dropout = nnx.Dropout(dropout, broadcast_dims=(1, 2))
        self.conv2 = nnx.Conv(c_out, c_out, (3, 3), padding="SAME", dtype=dtype, conv_general_dilated=conv_general_dilated, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool, rngs: nnx.Rngs | None) -> jax.Array:
        x = nnx.relu(self.conv1(x))
        x = self.dropout(x, deterministic=not train, rngs=rngs)
        return nnx.relu(self.conv2(x))


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling, stride 2: ``(B, H, W, C) -> (B, H/2, W/2, C)``.

    A reshape and a max instead of ``nnx.max_pool`` (``reduce_window``), whose gradient is a
    select-and-scatter that is slow on CPU. Ties split the gradient instead of sending it to
    the first maximum; after a ReLU the only likely ties are zeros, whose gradient the ReLU
    drops anyway.
    """
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class UpConv2x2(nnx.Module):
    """2x2 transposed convolution with stride 2: ``(B, H, W, c_in) -> (B, 2H, 2W, c_out)``.

    With stride equal to the kernel size the output 2x2 blocks do not overlap, so each is one
    matrix product of the input pixel with ``kernel[i, j]``. Written as an einsum instead of
    ``nnx.ConvTranspose`` (a convolution over a zero-dilated input, 4x the work) it trains
    about 1.8x faster on CPU; same parameters (kernel ``(2, 2, c_in, c_out)`` + bias), same
    default initialisation.
    """

    def __init__(self, c_in: int, c_out: int, *, dtype, rngs: nnx.Rngs):
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (2, 2, c_in, c_out), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((c_out,), jnp.float32))
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, _ = x.shape
        k = self.kernel[...].astype(self.dtype)
        y = jnp.einsum("bhwc,ijcd->bhiwjd", x.astype(self.dtype), k)
        return y.reshape(b, 2 * h, 2 * w, k.shape[-1]) + self.bias[...].astype(self.dtype)


HEADS = ("joint", "hierarchical")


class UNet(nnx.Module):
    """U-Net segmenter: ``(B, ny, nx, in_channels) -> (B, ny, nx, num_classes)`` float32 logits.

    Args:
        in_channels: number of input maps stacked channel-last (>= 1).
        base_features: channels of the first level (paper: 64).
        depth: number of pooling levels (paper: 4); the bottleneck has
            ``base_features * 2**depth`` channels.
        dropout: spatial dropout probability inside every block.
        compute_dtype: dtype of the convolutions (``jnp.float32`` or ``jnp.bfloat16``);
            parameters are always stored in float32 and logits are returned in float32.
        num_classes: logits per pixel (>= 2; channel 0 is the background).
        input_norm: ``"none"`` or ``"per_image"`` (each map minus its spatial mean, over its
            spatial standard deviation).
        head: ``"joint"`` (one 1x1 convolution to the K logits) or ``"hierarchical"`` (for K > 2:
            ``HEADS``, detection first and the type read from the detector's features).
        rngs: initialisation randomness (``nnx.Rngs(params=key)``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        *,
        base_features: int = 64,
        depth: int = 4,
        dropout: float = 0.1,
        compute_dtype=jnp.float32,
        num_classes: int = 2,
        input_norm: str = "none",
        head: str = "joint",
        rngs: nnx.Rngs,
    ):
        if in_channels < 1:
            raise ValueError(f"UNet in_channels must be >= 1, got {in_channels}")
        if base_features < 1 or depth < 1:
            raise ValueError(f"UNet base_features and depth must be >= 1, got {base_features}, {depth}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"UNet dropout must be in [0, 1), got {dropout}")
        if num_classes < 2:
            raise ValueError(f"UNet num_classes must be >= 2 (background and at least one defect class), got {num_classes}")
        if head not in HEADS:
            raise ValueError(f"UNet head must be one of {HEADS}, got {head!r}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"UNet input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        self.in_channels = in_channels
        self.depth = depth
        self.input_norm = input_norm
        widths = [base_features * 2**i for i in range(depth + 1)]
        dt = compute_dtype
        self.down = nnx.List(
            [
                ConvBlock(in_channels if i == 0 else widths[i - 1], widths[i], dropout, dtype=dt, rngs=rngs)
                for i in range(depth)
            ]
        )
        self.bottleneck = ConvBlock(widths[depth - 1], widths[depth], dropout, dtype=dt, rngs=rngs)
        self.up = nnx.List(
            [
                UpConv2x2(widths[i + 1], widths[i], dtype=dt, rngs=rngs)
                for i in reversed(range(depth))
            ]
        )
        # after concatenation with the skip, the decoder block sees 2 * widths[i] channels.
        self.up_blocks = nnx.List(
            [ConvBlock(2 * widths[i], widths[i], dropout, dtype=dt, rngs=rngs) for i in reversed(range(depth))]
        )
        self.hierarchical = head == "hierarchical" and num_classes > 2
        self.head = nnx.Conv(widths[0], 2 if self.hierarchical else num_classes, (1, 1), dtype=dt,
                             conv_general_dilated=conv_general_dilated, rngs=rngs)
        if self.hierarchical:
            self.type_head = nnx.Conv(widths[0], num_classes - 1, (1, 1), dtype=dt,
                                      conv_general_dilated=conv_general_dilated, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False, rngs: nnx.Rngs | None = None) -> jax.Array:
        """Logits ``(B, ny, nx, num_classes)`` float32 for inputs ``(B, ny, nx, in_channels)``.

        ``train=True`` enables dropout and needs ``rngs=nnx.Rngs(dropout=key)``.
        """
        if x.ndim != 4 or x.shape[-1] != self.in_channels:
            raise ValueError(f"UNet expects inputs (B, ny, nx, {self.in_channels}), got shape {x.shape}")
        factor = 2**self.depth
        if x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(
                f"UNet with depth {self.depth} needs image sides divisible by {factor}, got {x.shape[1]}x{x.shape[2]}"
            )
        if self.input_norm == "per_image":
            x = standardize_per_image(x)
        skips = []
        for block in self.down:
            x = block(x, train=train, rngs=rngs)
            skips.append(x)
            x = max_pool_2x2(x)
        x = self.bottleneck(x, train=train, rngs=rngs)
        for upconv, block, skip in zip(self.up, self.up_blocks, reversed(skips)):
            x = upconv(x)
            x = jnp.concatenate([skip.astype(x.dtype), x], axis=-1)
            x = block(x, train=train, rngs=rngs)
        logits = self.head(x).astype(jnp.float32)
        if not self.hierarchical:
            return logits
        # l_0 = b_0, l_k = b_1 + log p(type k | defect): the any-defect margin is b_1 - b_0 whatever
        # the types, and the type head reads the features without steering them (stop_gradient)
        types = jax.nn.log_softmax(self.type_head(jax.lax.stop_gradient(x)).astype(jnp.float32), axis=-1)
        return jnp.concatenate([logits[..., :1], logits[..., 1:2] + types], axis=-1)


def count_parameters(model: nnx.Module) -> int:
    """Number of scalar parameters of a model."""
    return sum(int(p.size) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
