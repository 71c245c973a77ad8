"""Measurement noise: the kinds, noise conditions, keyed draws and a background level estimator.

Noise is applied to every frame independently, before measures are computed. Today's kinds:
  - Gaussian (additive):       y = x + n,
  - speckle (multiplicative):  y = x + x n,
with n ~ N(0, sigma^2) i.i.d. over every array element; the level is sigma^2 (dimensionless for
speckle, in the squared units of x for Gaussian noise). The draws are a pure function of the
key: same key, same noise, whatever the batch or device.

* ``models``: one ``NoiseModel`` record per kind in ``NOISE_MODELS`` (its formula in
  standard-normal draws, the name and range of its parameter, its estimator); adding a kind is
  one record there, and every path below picks it up.
* ``conditions``: ``NoiseSpec(kind, level)``, its ``label`` (``"gaussian:1e-2"``, what is printed
  and typed) and ``name`` (``"gaussian_1e-2"``, naming HDF5 groups and files), ``parse_noise_spec``
  (either spelling), ``condition_label`` and the
  ``[noise]`` section's ``NoiseSweep`` (levels per kind, seed).
* ``draw``: the one keying rule, ``fold_in(fold_in(fold_in(key(seed), hash(condition name)), r),
  ord(c))`` for run r and component c (``add_measurement_noise``), used by the measures file,
  the online generator and prediction alike; ``apply_noise_draws`` for given draws.
* ``estimate``: ``estimate_noise_variance`` reads a kind's level from the defect-free background
  of a noisy movie (docs/measures.md), refusing by name a kind without an estimator.
* ``pool``: fresh training draws (the keys of each draw and an epoch's pool of standard-normal
  fields), imported as ``jaxmag.noise.pool`` by the sources that need it.
"""
from __future__ import annotations

from jaxmag.noise.conditions import (
    CLEAN,
    NoiseSpec,
    NoiseSweep,
    accepted_forms,
    condition_label,
    condition_name,
    format_level,
    parse_noise_spec,
)
from jaxmag.noise.draw import (
    add_gaussian,
    add_measurement_noise,
    add_speckle,
    apply_noise,
    apply_noise_draws,
    component_keys,
    condition_hash,
    condition_keys,
    noise_key,
)
from jaxmag.noise.estimate import estimate_noise_variance, estimate_noise_variances
from jaxmag.noise.models import (
    NOISE_MODELS,
    NoiseEstimateUndefined,
    NoiseEstimator,
    NoiseModel,
    gaussian_from_draws,
    noise_model,
    speckle_from_draws,
)

__all__ = [
    "CLEAN", "NOISE_MODELS", "NoiseEstimateUndefined", "NoiseEstimator", "NoiseModel", "NoiseSpec", "NoiseSweep",
    "accepted_forms", "add_gaussian", "add_measurement_noise", "add_speckle", "apply_noise", "apply_noise_draws",
    "component_keys", "condition_hash", "condition_keys", "condition_label", "condition_name", "estimate_noise_variance",
    "estimate_noise_variances", "format_level", "gaussian_from_draws", "noise_key", "noise_model",
    "parse_noise_spec", "speckle_from_draws",
]
