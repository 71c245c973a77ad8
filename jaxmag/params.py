"""Parameter records: the one error they raise when a value is out of range.

Every layer owns a frozen dataclass of its parameters (``defects.DefectParams``,
``measures.MeasureOptions``, ``noise.NoiseSweep``, the config sections) and checks it in its own
``__post_init__``. They raise ``ParamError`` naming the field, so that whoever built the record
(``jaxmag.config`` reading a TOML file, or a user in Python) can say where the value came from:
the config layer rewrites it as ``<file>: key '<section>.<field>' <what>``.
"""
from __future__ import annotations


class ParamError(ValueError):
    """A parameter record holds an invalid value: ``key`` (the field) and ``what`` is wrong with it."""

    def __init__(self, key: str, what: str):
        super().__init__(f"{key} {what}")
        self.key = key
        self.what = what


def require(condition: bool, key: str, what: str) -> None:
    """Raise ``ParamError(key, what)`` unless ``condition``."""
    if not condition:
        raise ParamError(key, what)
