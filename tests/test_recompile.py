"""JAX contract: the second call of the hot compiled functions compiles nothing.

Counted with a ``jax.monitoring`` listener on backend compilations (every XLA compile reports
one), so a recompile from a changed static argument, a weak type or a sharding that differs
between the output of one call and the input of the next is caught.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.assemble import batch_simulator, resolve_config, simulation_setup
from jaxmag.config import loads_config
from jaxmag.learn import sharding
from jaxmag.learn.loop import _jitted_train_step, create_train_state
from jaxmag.simulate import _stack_inputs, build_run, local_mesh

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.toml"
_EVENT = "/jax/core/compile/backend_compile_duration"
_compiles = [0]
jax.monitoring.register_event_duration_secs_listener(
    lambda name, _secs, **_kw: _compiles.__setitem__(0, _compiles[0] + (name == _EVENT)))


@contextlib.contextmanager
def compiles():
    """``with compiles() as n: ...`` then ``n[0]`` is the number of backend compilations inside."""
    count, start = [0], _compiles[0]
    try:
        yield count
    finally:
        count[0] = _compiles[0] - start


def test_second_batch_of_the_simulator_compiles_nothing():
    config = resolve_config(TINY, num=4, batch=2)
    mesh = local_mesh()
    step = batch_simulator(config, mesh)
    setup = simulation_setup(config)
    first = _stack_inputs([build_run(setup, i, 7) for i in (0, 1)], 2)
    second = _stack_inputs([build_run(setup, i, 7) for i in (2, 3)], 2)
    jax.block_until_ready(step(*first))
    with compiles() as n:
        frames = jax.block_until_ready(step(*second))
        # another seed and run count: the same compiled simulator
        again = batch_simulator(resolve_config(TINY, num=9, seed=3), mesh)
    assert n[0] == 0 and again is step
    assert frames.shape == (2, 4, 2, 16, 16)


def test_second_train_step_compiles_nothing():
    config = loads_config("[model]\nbase_features = 4\ndepth = 1\n[training]\nbatch_size = 2\nepochs = 1\n")
    mesh = sharding.data_mesh(jax.local_devices()[:1])
    state = create_train_state(config, 1, jax.random.key(0), 10, mesh)
    step = _jitted_train_step(mesh)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 1)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, (2, 8, 8)), jnp.int32)
    x2 = jax.block_until_ready(x + 1.0)  # (an eager op compiles too: outside the count)
    state, metrics = step(state, x, y)
    jax.block_until_ready(metrics)
    with compiles() as n:
        # the state returned by one step is a valid input of the next: same types and shardings
        state, metrics = step(state, x2, y)
        jax.block_until_ready(metrics)
    assert n[0] == 0
    assert int(state.step) == 2
