"""jaxmag: JAX-native stochastic micromagnetics and defect detection in magnetic thin films."""

__version__ = "0.1.0"
