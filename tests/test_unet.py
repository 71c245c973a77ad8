"""The U-Net: shapes, parameter count, spatial dropout, compute dtype, input checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmag.models import PAPER_PARAMETER_COUNT, UNet, count_parameters


def _conv(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def expected_parameters(in_channels, base, depth, classes=2):
    """Closed-form count of the paper architecture (convs with biases, no normalisation)."""
    w = [base * 2**i for i in range(depth + 1)]
    n, c = 0, in_channels
    for i in range(depth):
        n += _conv(3, c, w[i]) + _conv(3, w[i], w[i])
        c = w[i]
    n += _conv(3, w[depth - 1], w[depth]) + _conv(3, w[depth], w[depth])
    for i in range(depth):
        n += _conv(2, w[i + 1], w[i]) + _conv(3, 2 * w[i], w[i]) + _conv(3, w[i], w[i])
    return n + _conv(1, w[0], classes)


def test_paper_parameter_count():
    # eval_shape: the paper model's shapes without allocating or initialising 31M parameters
    model = nnx.eval_shape(lambda: UNet(1, base_features=64, depth=4, rngs=nnx.Rngs(0)))
    assert count_parameters(model) == expected_parameters(1, 64, 4) == PAPER_PARAMETER_COUNT == 31_030_658
    # a second input channel adds one 3x3x64 kernel slice
    model3 = nnx.eval_shape(lambda: UNet(3, base_features=64, depth=4, rngs=nnx.Rngs(0)))
    assert count_parameters(model3) == PAPER_PARAMETER_COUNT + 2 * 9 * 64


@pytest.mark.parametrize("in_channels", [1, 3])
def test_output_shape_and_dtype(in_channels):
    model = UNet(in_channels, base_features=4, depth=2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 16, 32, in_channels))
    y = model(x)
    assert y.shape == (2, 16, 32, 2) and y.dtype == jnp.float32
    assert count_parameters(model) == expected_parameters(in_channels, 4, 2)


def test_dropout_is_spatial_and_keyed():
    model = UNet(1, base_features=4, depth=2, dropout=0.5, rngs=nnx.Rngs(0))
    x = jnp.ones((2, 8, 8, 4))
    block = model.down[0]
    dropped = block.dropout(x, deterministic=False, rngs=nnx.Rngs(dropout=3))
    # one decision per (image, channel), shared by every pixel
    flat = np.asarray(dropped).reshape(2, 64, 4)
    assert np.all(flat == flat[:, :1, :])
    assert set(np.unique(flat)) <= {0.0, 2.0} and len(np.unique(flat)) == 2
    img = jax.random.normal(jax.random.key(2), (2, 16, 16, 1))
    a = model(img, train=True, rngs=nnx.Rngs(dropout=1))
    b = model(img, train=True, rngs=nnx.Rngs(dropout=1))
    c = model(img, train=True, rngs=nnx.Rngs(dropout=2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(model(img), model(img))  # eval: deterministic, no key needed


def test_bfloat16_compute_close_to_float32():
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 1))
    f32 = UNet(1, base_features=4, depth=2, rngs=nnx.Rngs(0))
    bf16 = UNet(1, base_features=4, depth=2, compute_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert jax.tree.leaves(nnx.state(bf16, nnx.Param))[0].dtype == jnp.float32  # params stay f32
    y32, y16 = f32(x), bf16(x)
    assert y16.dtype == jnp.float32
    np.testing.assert_allclose(y16, y32, atol=0.05 * float(jnp.abs(y32).max()) + 1e-3)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="in_channels"):
        UNet(0, base_features=4, depth=2, rngs=nnx.Rngs(0))
    model = UNet(1, base_features=4, depth=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="divisible by 4"):
        model(jnp.ones((1, 18, 16, 1)))
    with pytest.raises(ValueError, match=r"\(B, ny, nx, 1\)"):
        model(jnp.ones((1, 16, 16, 2)))


def test_up_convolution_is_a_stride_two_transposed_convolution():
    from jaxmag.models.unet import UpConv2x2

    up = UpConv2x2(3, 5, dtype=jnp.float32, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 4, 6, 3))
    # out[2h+i, 2w+j] = x[h, w] @ kernel[i, j] (PyTorch ConvTranspose2d convention); lax flips the kernel
    ref = jax.lax.conv_transpose(x, up.kernel[...][::-1, ::-1], (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(up(x), ref, atol=1e-5)
    assert up(x).shape == (2, 8, 12, 5)


@pytest.mark.parametrize("shape", [(2, 32, 32, 8, 5), (1, 33, 40, 16, 3)])
def test_cpu_convolution_matches_lax_forward_and_gradients(shape):
    # the custom-VJP 3x3 convolution (GEMM kernel gradient) against lax, at sizes that take the
    # GEMM path (>= 32x32 pixels, >= 8 input channels), odd sizes included
    from jaxmag.models import conv

    b, h, w, c_in, c_out = shape
    assert h * w >= conv.MIN_PIXELS_FOR_GEMM_GRADIENT and c_in >= conv.MIN_CHANNELS_FOR_GEMM_GRADIENT
    x = jax.random.normal(jax.random.key(0), (b, h, w, c_in))
    k = jax.random.normal(jax.random.key(1), (3, 3, c_in, c_out))
    g = jax.random.normal(jax.random.key(2), (b, h, w, c_out))

    def ref(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    y_ref, vjp_ref = jax.vjp(ref, x, k)
    y, vjp = jax.vjp(conv.conv3x3_same_cpu, x, k)
    for got, want in zip((y, *vjp(g)), (y_ref, *vjp_ref(g))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.abs(want).max()))
    np.testing.assert_allclose(conv.kernel_gradient(x, g), vjp_ref(g)[1], rtol=1e-5, atol=1e-5 * float(jnp.abs(vjp_ref(g)[1]).max()))


def test_1x1_convolution_as_dot_matches_lax_forward_and_gradients():
    from jaxmag.models import conv

    x = jax.random.normal(jax.random.key(0), (2, 9, 7, 6))
    k = jax.random.normal(jax.random.key(1), (1, 1, 6, 2))
    g = jax.random.normal(jax.random.key(2), (2, 9, 7, 2))

    def ref(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    y_ref, vjp_ref = jax.vjp(ref, x, k)
    for fn in (conv.conv1x1, lambda x, k: conv.conv_general_dilated(
            x, k, (1, 1), "SAME", dimension_numbers=jax.lax.conv_dimension_numbers(x.shape, k.shape, ("NHWC", "HWIO", "NHWC")))):
        y, vjp = jax.vjp(fn, x, k)
        for got, want in zip((y, *vjp(g)), (y_ref, *vjp_ref(g))):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.abs(want).max()))
    # a strided 1x1 convolution is not a per-pixel product: it keeps lax's path
    strided = conv.conv_general_dilated(x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert strided.shape == (2, 5, 4, 2)


def test_unet_convolutions_take_the_cpu_path_and_pooling_is_max():
    from jaxmag.models import conv
    from jaxmag.models.unet import max_pool_2x2

    model = UNet(1, base_features=4, depth=2, rngs=nnx.Rngs(0))
    assert model.down[0].conv1.conv_general_dilated is conv.conv_general_dilated
    assert model.head.conv_general_dilated is conv.conv_general_dilated
    jaxpr = str(jax.make_jaxpr(lambda x: model(x))(jnp.zeros((1, 8, 8, 1))))
    assert jaxpr.count("conv_general_dilated") == 2 * 5 and "dot_general" in jaxpr  # 10 3x3 convs; the head a dot
    x = jax.random.normal(jax.random.key(1), (2, 8, 6, 3))
    np.testing.assert_array_equal(max_pool_2x2(x), nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2)))


def test_per_image_input_norm_makes_the_model_blind_to_each_maps_offset_and_scale():
    from jaxmag.models.unet import UNet

    model = UNet(2, base_features=4, depth=1, dropout=0.0, input_norm="per_image", rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 2)).astype(np.float32)
    scale = np.array([2.0, 0.5, 7.0], np.float32)[:, None, None, None] * np.array([1.0, 3.0], np.float32)
    offset = np.array([1.0, -4.0, 0.3], np.float32)[:, None, None, None] * np.array([1.0, -1.0], np.float32)
    np.testing.assert_allclose(np.asarray(model(x * scale + offset)), np.asarray(model(x)), atol=2e-4)
    plain = UNet(2, base_features=4, depth=1, dropout=0.0, rngs=nnx.Rngs(0))
    assert not np.allclose(np.asarray(plain(x * scale + offset)), np.asarray(plain(x)), atol=1e-2)
    with pytest.raises(ValueError, match="input_norm"):
        UNet(1, base_features=4, depth=1, input_norm="batch", rngs=nnx.Rngs(0))


def test_hierarchical_head_detects_like_a_binary_model_and_types_without_steering_the_trunk():
    """Typed (K = 3) hierarchical head: the any-defect margin is the detection logits' b_1 - b_0,
    whatever the type head says; the type loss's gradient reaches the type head only; K = 2
    hierarchical is the joint head."""
    from jaxmag.learn.classes import any_defect_margin
    from jaxmag.learn.metrics import cross_entropy

    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
    model = UNet(1, base_features=4, depth=1, num_classes=3, head="hierarchical", rngs=nnx.Rngs(0))
    logits = model(x)
    assert logits.shape == (2, 8, 8, 3)
    margin = any_defect_margin(logits)
    model.type_head.bias[...] = model.type_head.bias[...] + jnp.asarray([3.0, -2.0])  # other types, same detection
    np.testing.assert_allclose(any_defect_margin(model(x)), margin, atol=1e-5)
    labels = jax.random.randint(jax.random.key(2), (2, 8, 8), 1, 3)  # every pixel a defect: the loss is the type's + detection's

    def type_loss(m):
        out = m(x)
        return jnp.mean(cross_entropy(out, labels)) + jnp.mean(jax.nn.log_sigmoid(any_defect_margin(out)))  # = -log q(type)

    grads = nnx.grad(type_loss)(model)
    trunk = [g for path, g in nnx.to_flat_state(nnx.state(grads, nnx.Param)) if path[0] not in ("head", "type_head")]
    assert max(float(jnp.max(jnp.abs(g[...]))) for g in trunk) < 1e-6  # the trunk does not learn the types
    assert float(jnp.max(jnp.abs(grads.type_head.kernel[...]))) > 0
    binary = UNet(1, base_features=4, depth=1, num_classes=2, head="hierarchical", rngs=nnx.Rngs(0))
    joint = UNet(1, base_features=4, depth=1, num_classes=2, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(binary(x), joint(x))
    with pytest.raises(ValueError, match="head"):
        UNet(1, base_features=4, depth=1, head="separate", rngs=nnx.Rngs(0))
