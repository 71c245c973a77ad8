"""Physical constants in SI units, in one place.

Values follow MuMax3 (``engine/constants.go``) so that cross-validation compares physics,
not constants.
"""
import math

MU0: float = 4e-7 * math.pi  # vacuum permeability, T m / A
KB: float = 1.380649e-23  # Boltzmann constant, J / K
GAMMA_LL: float = 1.7595e11  # gyromagnetic ratio used by MuMax3, rad / (T s)
