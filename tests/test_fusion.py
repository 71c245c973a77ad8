"""jaxmag.fusion.materialized: the value unchanged (also under grad and vmap), and on CPU a real
fusion boundary in the compiled solver step, which is what makes the step fast there."""
import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.drivers import field_terms
from jaxmag.fields import effective_field
from jaxmag.fields.thermal import thermal
from jaxmag.fusion import materialized
from jaxmag.grid import Grid
from jaxmag.integrators import stochastic_heun
from jaxmag.material import Material


def _consumers(y):
    return jnp.roll(y, 1) + y[::-1]


def _through(x, counter):
    return _consumers(materialized(jnp.sin(x) * 2.0, counter))


def _plain(x):
    return _consumers(jnp.sin(x) * 2.0)


def test_value_gradient_and_batching_are_those_of_the_unwrapped_value():
    x = jnp.linspace(-2.0, 2.0, 7)
    plain = _plain(x)
    # every counter value, including ones whose int32 view is negative, takes the value branch
    for counter in (0, 5, -7, 2**31 - 1, np.uint32(2**32 - 1)):
        np.testing.assert_array_equal(jax.jit(_through)(x, counter), plain)
    grad = jax.grad(lambda v: jnp.sum(_through(v, 3) ** 2))(x)
    grad_plain = jax.grad(lambda v: jnp.sum(_plain(v) ** 2))(x)
    np.testing.assert_allclose(grad, grad_plain, rtol=1e-6)
    batched = jax.vmap(_through, in_axes=(0, None))(jnp.stack([x, 2 * x]), 4)
    np.testing.assert_allclose(batched[1], _through(2 * x, 4), rtol=1e-6)
    batched_counter = jax.vmap(_through)(jnp.stack([x, x]), jnp.array([0, -3]))
    np.testing.assert_allclose(batched_counter[1], plain, rtol=1e-6)


def test_the_compiled_heun_step_has_its_fusion_boundaries_on_cpu():
    grid = Grid(8, 8, 1, 4e-9, 4e-9, 4e-9, "open")
    material = Material.uniform(grid, Ms=8e5, A_ex=1.3e-11, K_u=500.0, alpha=0.02, temperature=300.0)
    init, step = stochastic_heun(effective_field(field_terms(grid)), 1e-13, thermal=thermal(grid))
    state = init(jnp.zeros(grid.vector_shape).at[..., 0].set(1.0), jax.random.key(0))
    text = jax.jit(step).lower(state, material).compile().as_text()
    # thermal words and normals, B of each stage, the predictor: at least five conditionals
    # (XLA names each once where it is defined)
    defined = [line for line in text.splitlines() if " conditional(" in line]
    assert len(defined) >= 5, f"expected the step's fusion boundaries, found {len(defined)} conditionals"
    new = step(state, material)
    assert np.all(np.isfinite(np.asarray(new.m)))
    np.testing.assert_allclose(np.linalg.norm(np.asarray(new.m), axis=-1), 1.0, rtol=1e-6)
