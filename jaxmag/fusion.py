"""Values an integration step computes once: fusion boundaries for XLA:CPU.

XLA:CPU fuses a cheap elementwise producer into every consumer instead of writing it to
memory. In an LLG step that means the Heun predictor ``normalize(m + dt k1)`` is recomputed
inside each of exchange's four shifted neighbour copies and inside the demag input, the
effective field is recomputed for every component of the torque's cross products (each
component of the output needs two of B's, and each of those sums exchange, anisotropy,
the demag output and the thermal field), and the thermal draw's inverse-error-function
polynomial runs once in each Heun stage. Measured at 128 × 128 (``scripts/profile_step.py
solver``) this redundant work was about a quarter of the step.

``jax.lax.optimization_barrier`` does not prevent it on CPU (XLA:CPU drops the barrier before
fusion), so ``materialized`` puts the value through a conditional on a predicate that is
true for every counter value but that XLA does not fold (``(counter >> 31) <= 1`` for the
counter as uint32): a conditional's operands and results are buffers, so the value is
computed once and read from memory by its consumers. The predicate is a tautology, so the
false branch (zeros) can never be taken, whatever the counter; were XLA ever to fold it, only
the speed would change. On other backends (GPU) the value passes through untouched: their
fusion heuristics differ and a conditional there can cost a device-to-host synchronisation.
The result equals the input bit for bit; only where it is computed changes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _through_conditional(counter: jax.Array, tree):
    top_bit = jnp.asarray(counter).astype(jnp.uint32) >> 31
    return jax.lax.cond(top_bit <= 1, lambda t: t, lambda t: jax.tree.map(jnp.zeros_like, t), tree)


def _untouched(counter: jax.Array, tree):
    return tree


def materialized(tree, counter: jax.Array):
    """``tree`` (arrays), computed once and held in memory on CPU; unchanged elsewhere.

    ``counter``: an integer that is only known at run time (the integration's step counter),
    so that XLA cannot resolve the conditional at compile time; its value does not matter.
    Differentiable, and under ``jax.vmap`` the conditional stays one (the counter is not
    batched).
    """
    counter = jnp.asarray(counter)
    return jax.lax.platform_dependent(counter, tree, cpu=_through_conditional, default=_untouched)
