"""Per-channel input normalisation: ``x_norm = (x - mean) / std``.

Statistics are computed per (measure, component) channel over all pixels of the **clean
training subset** only, then stored with the run (``run.json``) and applied unchanged to every
noise condition, as in Knapman et al. (2026, appendix A). Arrays are channel-last
``(N, ny, nx, C)``; statistics are dicts ``{"mean": [C floats], "std": [C floats],
"channels": ["mean:x", ...]}``.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def compute_stats(clean_train: np.ndarray, channels: list[str]) -> dict:
    """Mean and std of each channel of ``clean_train (N, ny, nx, C)`` (float64 accumulation).

    Raises ``ValueError`` for non-finite data or a constant channel (std 0 cannot normalise).
    """
    x = np.asarray(clean_train)
    if x.ndim != 4 or x.shape[-1] != len(channels):
        raise ValueError(f"expected clean training inputs (N, ny, nx, {len(channels)}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("clean training inputs contain NaN or inf; cannot compute normalisation")
    mean = x.mean(axis=(0, 1, 2), dtype=np.float64)
    std = x.std(axis=(0, 1, 2), dtype=np.float64)
    for name, s in zip(channels, std):
        if not s > 0:
            raise ValueError(f"input channel {name} is constant over the clean training set (std 0)")
    return {"channels": list(channels), "mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def normalize(x, stats: dict):
    """Apply stored statistics to ``x (..., C)``: NumPy in, NumPy out; jax in, jax out (float32)."""
    mean = np.asarray(stats["mean"], np.float32)
    std = np.asarray(stats["std"], np.float32)
    if x.shape[-1] != mean.shape[0]:
        raise ValueError(f"inputs have {x.shape[-1]} channels but the statistics are for {stats['channels']}")
    if isinstance(x, np.ndarray):
        return ((x.astype(np.float32) - mean) / std).astype(np.float32)
    return (jnp.asarray(x, jnp.float32) - mean) / std
