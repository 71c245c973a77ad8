"""Zeeman term: the applied field ``material.B_ext`` (T, per cell, MuMax3's ``B_ext``).

Energy E_Zeeman = −Σ Ms m·B_ext V (factor −1, not −½: the field does not depend on m).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmag.fields import FieldFn
from jaxmag.grid import Grid
from jaxmag.material import Material


def zeeman(grid: Grid | None = None) -> FieldFn:
    """Applied-field term; vacuum cells (Ms = 0) get no field."""

    def field(m: jax.Array, material: Material) -> jax.Array:
        present = (material.Ms > 0)[..., None]
        return jnp.where(present, material.B_ext, 0.0).astype(m.dtype)

    return field
