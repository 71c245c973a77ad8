"""jaxmag: JAX-native stochastic micromagnetics and defect detection in magnetic thin films.

The curated public API, one name per line: ``from jaxmag import Grid, Material, movie_simulator``.
Names are loaded on first use (PEP 562 ``__getattr__``), so ``import jaxmag`` stays light and
this facade sits above every layer without tying them together (docs/architecture.md). Every
other name is importable from its own module.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    # physics
    "Grid": "jaxmag.grid",
    "Material": "jaxmag.material",
    "effective_field": "jaxmag.fields",
    "movie_simulator": "jaxmag.drivers",
    "trajectory": "jaxmag.drivers",
    "relax": "jaxmag.drivers",
    # films, measures, noise
    "DefectParams": "jaxmag.defects",
    "generate_defects": "jaxmag.defects",
    "MeasureOptions": "jaxmag.measures",
    "compute_measures": "jaxmag.measures",
    "NoiseSpec": "jaxmag.noise",
    "parse_noise_spec": "jaxmag.noise",
    "Channel": "jaxmag.channels",
    "parse_channels": "jaxmag.channels",
    # configuration and its assembly
    "Config": "jaxmag.config",
    "load_config": "jaxmag.config",
    "assemble": "jaxmag.assemble",
    "simulate": "jaxmag.assemble",
    "compute_measures_file": "jaxmag.assemble",
    # models and uses of trained runs
    "UNet": "jaxmag.models",
    "train_and_evaluate": "jaxmag.learn.loop",
    "load_trained": "jaxmag.learn.evaluation",
    "predict_movie": "jaxmag.learn.predict",
    "finetune": "jaxmag.learn.finetune",
    "detect": "jaxmag.learn.detect",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'jaxmag' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
