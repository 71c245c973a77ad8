"""The finite-difference grid: a static, hashable description of the mesh.

Array layout used everywhere in jaxmag (channel last, as Flax likes it):

* scalar maps: ``(nz, ny, nx)``
* vector fields (m, B): ``(nz, ny, nx, 3)`` with components (x, y, z)

``Grid`` is passed to factories and ``jax.jit`` as a static argument; it never holds arrays.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

Boundary = Literal["open", "periodic"]


@dataclasses.dataclass(frozen=True)
class Grid:
    """A rectangular mesh of ``nx × ny × nz`` cells of size ``dx × dy × dz`` (m).

    ``boundary`` applies in-plane (x and y); z is always open, as for a film.
    With ``boundary="periodic"`` exchange wraps around and the demagnetising field sums
    ``pbc_images`` repetitions of the sample on each side in x and y, the semantics of
    MuMax3's ``SetPBC(pbc_images, pbc_images, 0)``.
    """

    nx: int
    ny: int
    nz: int
    dx: float
    dy: float
    dz: float
    boundary: Boundary = "open"
    pbc_images: int = 4

    def __post_init__(self) -> None:
        for name in ("nx", "ny", "nz"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Grid.{name} must be a positive integer, got {value!r}")
        for name in ("dx", "dy", "dz"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"Grid.{name} (cell size, m) must be a positive number, got {value!r}")
            if value > 1e-6:
                raise ValueError(
                    f"Grid.{name} = {value!r} m is larger than 1 µm; cell sizes are in metres "
                    "(e.g. 4e-9 for 4 nm)"
                )
        if self.boundary not in ("open", "periodic"):
            raise ValueError(f"Grid.boundary must be 'open' or 'periodic', got {self.boundary!r}")
        if not isinstance(self.pbc_images, int) or self.pbc_images < 0:
            raise ValueError(f"Grid.pbc_images must be a non-negative integer, got {self.pbc_images!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of a scalar map, ``(nz, ny, nx)``."""
        return (self.nz, self.ny, self.nx)

    @property
    def vector_shape(self) -> tuple[int, int, int, int]:
        """Shape of a vector field, ``(nz, ny, nx, 3)``."""
        return (self.nz, self.ny, self.nx, 3)

    @property
    def cell_size(self) -> tuple[float, float, float]:
        """``(dx, dy, dz)`` in m."""
        return (self.dx, self.dy, self.dz)

    @property
    def cell_volume(self) -> float:
        """Volume of one cell, m³."""
        return self.dx * self.dy * self.dz

    @property
    def num_cells(self) -> int:
        return self.nx * self.ny * self.nz

    @property
    def periodic(self) -> bool:
        return self.boundary == "periodic"
