"""Block bootstrap over time, and over runs (seeds), for statistics of thermal movies.

Contract
--------
* ``block_weights(T, block, replicates, rng) -> (B, T)`` float64: for each replicate, how often
  each frame is drawn by a moving-block bootstrap (Künsch 1989; Lahiri 2003, ch. 2) that
  concatenates ``ceil(T / block)`` blocks of ``block`` consecutive frames with uniformly drawn
  starts and keeps the first ``T`` frames. The weights sum to ``T``. A statistic that is a
  function of weighted frame sums (means, variances, lagged products) is recomputed from them
  without copying frames.
* ``default_block(T) -> int``: ``ceil(T ** (1/2))`` frames (10 for the paper's 100 frames);
  the calibration (``scripts/calibrate_compare.py``, docs/mumax3.md) measured the false-alarm
  rate with this choice.
* ``hierarchical(per_run, rng) -> (B, S)``: runs (seeds) resampled with replacement, then
  averaged, given per-run replicates ``(R, B, S)`` from the time bootstrap: a two-stage
  bootstrap (Davison & Hinkley 1997, §3.8), which, if anything, overstates the variance.
  With one run it is the time bootstrap alone.

Blocks keep the short-time correlation of the frames, so the bootstrap spread estimates the
sampling error of correlated frames; fluctuations slower than a block are under-sampled, which
is what the calibration measures.
"""
from __future__ import annotations

import math

import numpy as np


def default_block(num_frames: int) -> int:
    """Block length (frames): ``ceil(sqrt(T))``, at least 1 and at most ``T``."""
    return max(1, min(num_frames, math.ceil(math.sqrt(num_frames))))


def block_weights(num_frames: int, block: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """``(replicates, num_frames)`` draw counts of a moving-block bootstrap (module docstring)."""
    if num_frames < 1 or not 1 <= block <= num_frames:
        raise ValueError(f"block length must be in [1, {num_frames}], got {block}")
    nblocks = -(-num_frames // block)
    starts = rng.integers(0, num_frames - block + 1, size=(replicates, nblocks))
    idx = (starts[:, :, None] + np.arange(block)).reshape(replicates, -1)[:, :num_frames]
    weights = np.zeros((replicates, num_frames))
    np.add.at(weights, (np.arange(replicates)[:, None], idx), 1.0)
    return weights


def hierarchical(per_run: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(B, S)`` replicates of the mean over runs, runs resampled (module docstring)."""
    per_run = np.asarray(per_run)
    runs, replicates = per_run.shape[:2]
    if runs == 1:
        return per_run[0]
    pick = rng.integers(0, runs, size=(replicates, runs))
    return per_run[pick, np.arange(replicates)[:, None]].mean(axis=1)
