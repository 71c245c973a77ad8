"""Reproducible train/validation/test splits of sample indices.

``split_indices(n, fractions, seed)`` permutes ``range(n)`` with a NumPy generator seeded by
``seed`` and cuts it into three sorted index arrays of sizes ``floor(f_train n)``,
``floor(f_val n)`` and the rest. The same (n, fractions, seed) always gives the same split;
the indices are stored with the run (``run.json``) so evaluation reuses them exactly.
"""
from __future__ import annotations

import jax
import numpy as np


def split_indices(n: int, fractions: tuple[float, float, float], seed: int) -> dict[str, np.ndarray]:
    """Split ``range(n)`` into ``{"train", "val", "test"}`` sorted int64 index arrays.

    Raises ``ValueError`` if any part would be empty.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"split fractions must be three positive numbers summing to 1, got {fractions}")
    n_train = int(np.floor(fractions[0] * n))
    n_val = int(np.floor(fractions[1] * n))
    n_test = n - n_train - n_val
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(
            f"{n} samples are too few for the split {tuple(fractions)}: it gives "
            f"{n_train} train / {n_val} validation / {n_test} test samples (each needs at least 1)"
        )
    perm = np.random.default_rng(seed).permutation(n)
    return {
        "train": np.sort(perm[:n_train]),
        "val": np.sort(perm[n_train : n_train + n_val]),
        "test": np.sort(perm[n_train + n_val :]),
    }


def epoch_permutation(n: int, key: jax.Array) -> np.ndarray:
    """The order in which one epoch visits ``n`` training samples, from that epoch's data key.

    The training loop derives the key from (seed, epoch) only, so a resumed run sees the same
    data order as an uninterrupted one. The shuffle runs on the host (NumPy, seeded by the
    key's bits) because the samples are gathered on the host.
    """
    bits = np.asarray(jax.random.key_data(key)).astype(np.uint64).ravel().tolist()
    return np.random.default_rng(bits).permutation(n)


ORDER_STREAM = 0xFFFFFFFE
"""An epoch that asks for more samples than its training set holds goes on with the permutations of
``fold_in(fold_in(epoch_key, ORDER_STREAM), r)``, r = 1, 2, ...; training steps fold in ``s <
steps_per_epoch`` and noise pools their own stream, neither of which reaches it."""


def epoch_order(train: np.ndarray, num_samples: int, key: jax.Array) -> np.ndarray:
    """The training sample indices of an epoch, in order: ``train`` permuted by ``key``, followed (when
    ``num_samples`` need more) by its permutations of ``ORDER_STREAM``; at least ``num_samples`` long."""
    n = train.size
    perms = [epoch_permutation(n, key)]
    more = jax.random.fold_in(key, ORDER_STREAM)
    for r in range(1, -(-num_samples // n)):
        perms.append(epoch_permutation(n, jax.random.fold_in(more, r)))
    return train[np.concatenate(perms)]
