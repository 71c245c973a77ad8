"""Per-cell material parameter maps, as a pytree so they can be vmapped and differentiated.

All maps have the grid's scalar shape ``(nz, ny, nx)`` (vectors: ``(nz, ny, nx, 3)``), in SI
units with MuMax3's meaning:

=============  ===========  ==============================================
field          unit         MuMax3 name
=============  ===========  ==============================================
``Ms``         A/m          ``Msat`` (0 marks a vacuum cell)
``A_ex``       J/m          ``Aex``
``K_u``        J/m³         ``Ku1`` (first-order uniaxial)
``easy_axis``  unit vector  ``AnisU``
``alpha``      1            ``alpha`` (Gilbert damping)
``temperature``K            ``Temp``
``B_ext``      T            ``B_ext``
=============  ===========  ==============================================
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.grid import Grid
from jaxmag.pytree import pytree_dataclass

Array = jax.Array


@pytree_dataclass
class Material:
    Ms: Array
    A_ex: Array
    K_u: Array
    easy_axis: Array
    alpha: Array
    temperature: Array
    B_ext: Array

    @classmethod
    def uniform(
        cls,
        grid: Grid,
        *,
        Ms: float,
        A_ex: float,
        K_u: float = 0.0,
        easy_axis: Any = (1.0, 0.0, 0.0),
        alpha: float = 0.02,
        temperature: float = 0.0,
        B_ext: Any = (0.0, 0.0, 0.0),
        dtype: Any = None,
    ) -> "Material":
        """Material with the same parameters in every cell (then edit maps with ``replace``)."""
        dtype = dtype or jnp.zeros(()).dtype  # float64 when jax_enable_x64 is on
        shape = grid.shape
        u = np.asarray(easy_axis, dtype=np.float64)
        norm = np.linalg.norm(u)
        if norm == 0:
            u = np.zeros(3)
        else:
            u = u / norm

        def full(value: float) -> Array:
            return jnp.full(shape, value, dtype=dtype)

        return cls(
            Ms=full(Ms),
            A_ex=full(A_ex),
            K_u=full(K_u),
            easy_axis=jnp.broadcast_to(jnp.asarray(u, dtype), grid.vector_shape),
            alpha=full(alpha),
            temperature=full(temperature),
            B_ext=jnp.broadcast_to(jnp.asarray(B_ext, dtype), grid.vector_shape),
        )

    def replace(self, **changes: Any) -> "Material":
        return dataclasses.replace(self, **changes)


_SCALAR_FIELDS = ("Ms", "A_ex", "K_u", "alpha", "temperature")
_VECTOR_FIELDS = ("easy_axis", "B_ext")
_NON_NEGATIVE = ("Ms", "A_ex", "alpha", "temperature")


def validate_material(material: Material, grid: Grid, *, batched: bool = False) -> None:
    """Raise ``ValueError`` naming the offending field if ``material`` is unusable on ``grid``.

    Checks shapes, finiteness and signs. Call it at API boundaries on concrete arrays (it is
    skipped for traced values, since exceptions cannot be raised inside jitted code).
    ``batched=True`` allows one leading batch axis on every map.
    """
    lead = 1 if batched else 0
    for name in _SCALAR_FIELDS + _VECTOR_FIELDS:
        value = getattr(material, name)
        if isinstance(value, jax.core.Tracer):
            return
        want = grid.shape if name in _SCALAR_FIELDS else grid.vector_shape
        shape = tuple(np.shape(value))
        if shape[lead:] != want or len(shape) != len(want) + lead:
            raise ValueError(
                f"Material.{name} has shape {shape}, expected "
                f"{'(batch, ) + ' if batched else ''}{want} for a grid of (nz, ny, nx) = {grid.shape}"
            )
        arr = np.asarray(value)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"Material.{name} contains NaN or inf values")
        if name in _NON_NEGATIVE and np.any(arr < 0):
            raise ValueError(f"Material.{name} must be non-negative (min {arr.min()!r})")
    if np.any((np.asarray(material.alpha) <= 0) & (np.asarray(material.temperature) > 0)):
        raise ValueError("Material.alpha must be > 0 wherever temperature > 0 (thermal field ∝ sqrt(alpha))")
