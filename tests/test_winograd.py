"""Winograd F(4x4, 3x3) convolution (jaxmag.models.winograd) against lax's direct convolution."""
from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxmag.models import conv, winograd

# float32 rounding in the transforms: ~3e-6 of the result's scale measured
RTOL = 2e-5


def _lax_conv(x, k):
    return lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    precision=lax.Precision.HIGHEST)


def _value_and_gradients(fn, x, k, g):
    def run(x, k, g):
        y, vjp = jax.vjp(fn, x, k)
        return (y, *vjp(g))

    return jax.jit(run)(x, k, g)


def _assert_close(got, want):
    for name, a, b in zip(("output", "input gradient", "kernel gradient"), got, want):
        scale = float(jnp.abs(b).max())
        err = float(jnp.abs(a - b).max())
        assert err <= RTOL * scale, f"{name}: max error {err:.3g} vs scale {scale:.3g}"


def _random(shape, c_out, seed=0):
    kx, kk, kg = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, shape, jnp.float32)
    k = jax.random.normal(kk, (3, 3, shape[-1], c_out), jnp.float32) / np.sqrt(9 * shape[-1])
    g = jax.random.normal(kg, (*shape[:3], c_out), jnp.float32)
    return x, k, g


# whole tiles; ragged, non-square sides (padded up to tiles); one pixel
@pytest.mark.parametrize("shape, c_out", [((2, 8, 8, 6), 5), ((3, 13, 7, 5), 4), ((1, 1, 1, 3), 2)])
def test_winograd_matches_lax_forward_and_both_gradients(shape, c_out):
    x, k, g = _random(shape, c_out)
    _assert_close(_value_and_gradients(winograd.conv3x3_winograd, x, k, g), _value_and_gradients(_lax_conv, x, k, g))


def test_chunked_batches_give_the_whole_batch_result(monkeypatch):
    x, k, g = _random((3, 9, 10, 4), 5, seed=1)
    whole = _value_and_gradients(winograd.conv3x3_winograd, x, k, g)
    assert winograd.images_per_chunk(x.shape, 5) == 3
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)  # one image a chunk
    monkeypatch.setattr(winograd, "CHUNK_MIN_TILES_PER_CHANNEL", 0)
    assert winograd.images_per_chunk(x.shape, 5) == 1
    chunked = _value_and_gradients(winograd.conv3x3_winograd, x, k, g)
    _assert_close(chunked, whole)  # the kernel gradient adds the chunks in another order
    _assert_close(chunked, _value_and_gradients(_lax_conv, x, k, g))


def test_chunks_follow_bytes_and_the_kernel_accumulator():
    mib = 2**20
    # paper U-Net at batch 32: a 4 MiB image is its own chunk; 64 tiles of 16x16 x 512 are
    # too few against the (36, 512, 512) accumulator, so the batch is one chunk
    assert winograd.images_per_chunk((32, 128, 128, 64), 64) == 1
    assert winograd.images_per_chunk((32, 64, 64, 128), 128) * 64 * 64 * 128 * 4 <= winograd.CHUNK_BYTES
    assert winograd.images_per_chunk((32, 16, 16, 512), 512) == 32
    assert winograd.images_per_chunk((6, 32, 32, 8), 8) * 32 * 32 * 8 * 4 <= max(winograd.CHUNK_BYTES, mib)


def test_largest_chunk_is_the_largest_batch_divisor_within_the_budget():
    """The chunk rule both CPU convolution paths share (``jaxmag.models.chunks``)."""
    from jaxmag.models.chunks import largest_chunk, split_batch

    assert largest_chunk(32, 2**20, 2 * 2**20) == 2
    assert largest_chunk(12, 1, 5) == 4  # 5 does not divide 12
    assert largest_chunk(7, 1, 5) == 1  # prime batch: only 1 fits
    assert largest_chunk(8, 10 * 2**20, 2**20) == 1  # one image over the budget is still a chunk
    assert largest_chunk(8, 1, 100) == 8
    a = jnp.arange(24.0).reshape(6, 4)
    assert split_batch(a, 2).shape == (3, 2, 4)
    assert (split_batch(a, 2)[1, 0] == a[2]).all()


@pytest.mark.parametrize("forward, transpose, in_shape", [
    (lambda a, t: winograd.input_tiles(a, t), lambda a, t: winograd.input_tiles_transpose(a, (2, 7, 9, 3), t),
     (2, 7, 9, 3)),
    (lambda a, t: winograd.output_from_tiles(a, (2, 7, 9), t), lambda a, t: winograd.output_from_tiles_transpose(a, t),
     (36, 2 * 2 * 3, 3)),
    (lambda a, t: winograd.kernel_tiles(a), lambda a, t: winograd.kernel_tiles_transpose(a), (3, 3, 4, 2)),
])
def test_each_transpose_is_the_adjoint_of_its_transform(forward, transpose, in_shape):
    """<T a, b> = <a, Tᵀ b>: the backward pass uses the exact transposes."""
    token = jnp.uint32(7)
    a = jax.random.normal(jax.random.key(2), in_shape)
    b = jax.random.normal(jax.random.key(3), jax.eval_shape(lambda v: forward(v, token), a).shape)
    lhs = float(jnp.vdot(jax.jit(forward)(a, token), b))
    rhs = float(jnp.vdot(a, jax.jit(transpose)(b, token)))
    assert abs(lhs - rhs) <= 1e-4 * (abs(lhs) + 1.0)


def test_the_transforms_reproduce_one_tile_exactly():
    """Aᵀ[(G k Gᵀ) ⊙ (Bᵀ d B)]A is the valid 3x3 correlation of a 6x6 tile (float64)."""
    rng = np.random.default_rng(0)
    d, k = rng.normal(size=(6, 6)), rng.normal(size=(3, 3))
    bt, g, at = winograd.INPUT_TRANSFORM, winograd.KERNEL_TRANSFORM, winograd.OUTPUT_TRANSFORM
    y = at @ ((g @ k @ g.T) * (bt @ d @ bt.T)) @ at.T
    want = np.array([[np.sum(d[i:i + 3, j:j + 3] * k) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(y, want, atol=1e-12)


def test_large_layers_take_winograd_and_small_ones_the_direct_path():
    big = jnp.zeros((1, 32, 32, 32)), jnp.zeros((3, 3, 32, 32))  # 18 * 32^2 * 32^2 = 18.9 MFLOP / image
    assert not conv.takes_winograd(big[0].shape, big[1].shape)
    paper = (1, 16, 16, 512), (3, 3, 512, 512)
    assert conv.takes_winograd(*paper)
    assert not conv.takes_winograd((1, 128, 128, 1), (3, 3, 1, 64))  # one input channel
    layer = jnp.zeros((1, 16, 16, 128)), jnp.zeros((3, 3, 128, 128))
    assert conv.takes_winograd(layer[0].shape, layer[1].shape)

    def through_nnx_signature(x, k):
        return conv.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    jaxpr = str(jax.make_jaxpr(jax.grad(lambda x, k: through_nnx_signature(x, k).sum(), (0, 1)))(*layer))
    assert "conv_general_dilated" not in jaxpr and "dot_general" in jaxpr
    assert "conv_general_dilated" in str(jax.make_jaxpr(through_nnx_signature)(*big))


def test_a_unet_with_winograd_layers_matches_lax(monkeypatch):
    """A whole U-Net with every 3x3 layer of >= 8 channels on Winograd, against lax (forward;
    the gradients are checked layer by layer above)."""
    from flax import nnx

    from jaxmag.models.unet import UNet

    model = UNet(1, base_features=8, depth=1, dropout=0.0, rngs=nnx.Rngs(params=jax.random.key(0)))
    x = jax.random.normal(jax.random.key(1), (2, 12, 12, 1))
    monkeypatch.setattr(conv, "WINOGRAD_MIN_CHANNELS", 8)
    monkeypatch.setattr(conv, "WINOGRAD_MIN_FLOPS_PER_IMAGE", 0)
    assert str(jax.make_jaxpr(lambda v: model(v))(x)).count("conv_general_dilated") == 1  # the 1-channel input layer
    wino = nnx.jit(lambda m, v: m(v))(model, x)
    monkeypatch.setattr(conv, "WINOGRAD_MIN_CHANNELS", 10**9)
    direct = nnx.jit(lambda m, v: m(v))(model, x)
    assert float(jnp.abs(wino - direct).max()) <= RTOL * float(jnp.abs(direct).max())


SHARDED = r"""
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jaxmag.models import winograd
assert jax.device_count() == 2
winograd.CHUNK_BYTES, winograd.CHUNK_MIN_TILES_PER_CHANNEL = 1, 0  # one image a chunk: 2 per device
x = jax.random.normal(jax.random.key(0), (4, 9, 8, 3)); k = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
g = jax.random.normal(jax.random.key(2), (4, 9, 8, 4))
def run(x, k, g):
    y, vjp = jax.vjp(winograd.conv3x3_winograd, x, k)
    return (y, *vjp(g))
one = jax.jit(run)(x, k, g)
mesh = Mesh(np.array(jax.devices()), ("data",))
batch, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
two = jax.jit(run, in_shardings=(batch, rep, batch), out_shardings=(batch, batch, rep))(
    jax.device_put(x, batch), jax.device_put(k, rep), jax.device_put(g, batch))
for a, b in zip(one, two):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
print("ok")
"""


def test_batch_sharded_over_two_devices_equals_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    res = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]


def test_bench_conv_reports_each_layer_and_the_dispatch():
    """scripts/bench_conv.py (the per-layer evidence for the thresholds) runs and keeps its keys."""
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "JAX_PLATFORMS": "cpu"}
    res = subprocess.run([sys.executable, str(repo / "scripts" / "bench_conv.py"), "--base-features", "4", "--depth", "1",
                          "--size", "8", "--batch", "2", "--rounds", "1", "--repeats", "1",
                          "--only", "down0.conv2,up0.conv1"], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    layers, summary = lines[:-1], lines[-1]
    assert [(l["layer"], l["c_in"], l["c_out"]) for l in layers] == [("down0.conv2", 4, 4), ("up0.conv1", 8, 4)]
    assert all(l["direct_ms"] > 0 and l["winograd_ms"] > 0 and l["takes_winograd"] is False for l in layers)
    assert summary["summary"] is True and summary["as_dispatched_ms"] == summary["direct_ms"]
