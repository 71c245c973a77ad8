"""Zeeman term: the applied field ``material.B_ext`` (T, per cell, MuMax3's ``B_ext``).

Energy E_Zeeman = −Σ Ms m·B_ext V (factor −1, not −½: the field does not depend on m).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmag.fields import FieldFn
from jaxmag.grid import Grid
from jaxmag.material import Material


def zeeman(grid: Grid | None = None) -> FieldFn:
    """Applied-field term; vacuum cells (Ms = 0) get no field."""

    def field(m: jax.Array, material: Material) -> jax.Array:
        present = (material.Ms > 0)[..., None]
        return jnp.where(present, material.B_ext, 0.0).astype(m.dtype)

    return field


def zeeman_stiffness(grid: Grid, material: Material) -> np.ndarray:
    """Per-cell field scale (T, float64, (nz, ny, nx); 0 in vacuum): |B_ext|. The term does not
    depend on m, but it sets the precession frequency γ|B_ext|."""
    Ms = np.asarray(material.Ms, np.float64)
    B = np.linalg.norm(np.asarray(material.B_ext, np.float64), axis=-1)
    return np.where(Ms > 0, B, 0.0)
