"""Data sources for training: one interface (``DataSource``), three implementations.

A source yields **normalised, globally sharded** batches, channel-last:

- ``train_batches(epoch, key)`` -> iterator of ``steps_per_epoch`` batches ``(inputs (B, ny, nx,
  C) float32, labels (B, ny, nx) int32)``, ``B`` the global batch, sharded over the mesh's
  ``"data"`` axis; the order is a pure function of ``key`` (the loop derives it from (seed, epoch));
- ``val_set()`` / ``test_set()`` -> an ``EvalSet`` whose ``batches()`` add a ``mask (B,)`` that
  marks the padding of the last batch;
- ``norm_stats`` (``jaxmag.learn.normalization``), ``input_names`` (``("mean:x", ...)``),
  ``batch_size``, ``steps_per_epoch``, ``train_condition``, ``indices`` (the stored split, or
  ``None``) and ``describe()`` (JSON-able, stored in ``run.json``; ``image_shape`` among its keys).

The sources, one module each:

- ``measures.MeasuresSource``: the maps of a measures file (``jaxmag measures``), read once
  through ``jaxmag.io.measures_file.MeasuresFile``;
- ``movies.MovieSource``: clean movies (arrays, or ``MovieSource.from_dataset`` on a ``jaxmag
  simulate`` dataset) made into every batch on the device: symmetry (``jaxmag.symmetry``), a
  fresh noise draw (``jaxmag.noise.pool``), the measures, normalisation;
- ``online.OnlineSource``: a jittable generator ``make_batch(key) -> (inputs, labels)`` run on the
  device at every step (the solver + noise + measures of ``jaxmag.learn.online``).

This module holds what they share: the interface, ``EvalSet``, ``Batch`` and the checks every
source makes on its inputs, split, batch size and normalisation statistics.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Iterator, Protocol

import jax
import numpy as np
from jax.sharding import Mesh

from jaxmag.learn import sharding
from jaxmag.learn.splits import split_indices

Batch = tuple[jax.Array, jax.Array]
PARTS = ("train", "val", "test")


class DataSource(Protocol):
    """What ``jaxmag.learn.loop.train_and_evaluate`` reads from a source (module docstring)."""

    input_names: tuple[str, ...]
    batch_size: int
    steps_per_epoch: int
    train_condition: str
    norm_stats: dict
    indices: dict[str, np.ndarray] | None

    def train_batches(self, epoch: int, key: jax.Array) -> Iterator[Batch]: ...

    def val_set(self) -> "EvalSet": ...

    def test_set(self, condition: str | None = None) -> "EvalSet": ...

    def describe(self) -> dict: ...


@dataclasses.dataclass
class EvalSet:
    """A fixed set of normalised images for validation or testing.

    Either host arrays (``inputs (N, ny, nx, C)``, ``labels (N, ny, nx)``, NumPy; every process
    holds all of them and loads its slice of each batch) or ``device_batches``, a list of
    already sharded full batches ``(inputs, labels)`` (online source).
    """

    inputs: np.ndarray | None = None
    labels: np.ndarray | None = None
    indices: np.ndarray | None = None  # sample indices in the source, if any
    device_batches: list[Batch] | None = None
    condition: str = "clean"

    def __len__(self) -> int:
        if self.device_batches is not None:
            return sum(int(b[1].shape[0]) for b in self.device_batches)
        return int(self.labels.shape[0])

    def batches(self, batch_size: int, mesh: Mesh) -> Iterator[tuple[jax.Array, jax.Array, jax.Array]]:
        """Global ``(inputs, labels, mask)`` batches of ``batch_size``; the last one padded (mask 0)."""
        bsh = sharding.batch_sharding(mesh)
        if self.device_batches is not None:
            for x, y in self.device_batches:
                ones = np.ones((y.shape[0],), np.float32)[sharding.process_slice(y.shape[0])]
                yield x, y, sharding.global_batch(ones, bsh, y.shape[0])
            return
        n = len(self)
        rows = sharding.process_slice(batch_size)
        for start in range(0, n, batch_size):
            idx = np.arange(start, start + batch_size)
            mask = (idx < n).astype(np.float32)
            idx = np.minimum(idx, n - 1)[rows]  # padding repeats the last image, masked out
            yield (
                sharding.global_batch(self.inputs[idx], bsh, batch_size),
                sharding.global_batch(self.labels[idx], bsh, batch_size),
                sharding.global_batch(mask[rows], bsh, batch_size),
            )

    def examples(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` images ``(inputs, labels)`` as host arrays (for figures)."""
        if self.device_batches is not None:
            from jax.experimental import multihost_utils

            xs, ys = zip(*self.device_batches)
            x = np.concatenate([np.asarray(multihost_utils.process_allgather(a, tiled=True)) for a in xs])
            y = np.concatenate([np.asarray(multihost_utils.process_allgather(a, tiled=True)) for a in ys])
            return x[:k], y[:k]
        return self.inputs[:k], self.labels[:k]


# ---------------------------------------------------------------------------------------------
# the checks every source makes


def channel_name(measure: str, component: str) -> str:
    return f"{measure}:{component}"


def input_channels(inputs) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """``(inputs, input_names)``: the ``((measure, component), ...)`` as tuples (at least one)
    and their names ``("mean:x", ...)``."""
    if not inputs:
        raise ValueError("at least one input (measure, component) is required")
    inputs = tuple(tuple(i) for i in inputs)
    return inputs, tuple(channel_name(m, c) for m, c in inputs)


def batch_mesh(batch_size: int, mesh: Mesh | None) -> tuple[int, Mesh]:
    """``(batch_size, mesh)`` (default: all devices), the batch checked to split over the mesh."""
    mesh = mesh if mesh is not None else sharding.data_mesh()
    sharding.check_batch_size(int(batch_size), mesh)
    return int(batch_size), mesh


def split_of(n: int, split, seed: int, indices: dict | None, what: str) -> dict[str, np.ndarray]:
    """The ``{"train", "val", "test"}`` sample indices: ``indices`` as given (a stored split, or
    one the caller chose), else ``split_indices(n, split, seed)``; every index must fit ``n``."""
    if indices is None:
        indices = split_indices(n, tuple(split), seed)
    missing = [k for k in PARTS if k not in indices]
    if missing:
        raise ValueError(f"the split of {what} needs train, val and test indices; {', '.join(missing)} missing")
    out = {k: np.asarray(v, np.int64).reshape(-1) for k, v in indices.items()}
    for k, v in out.items():
        if v.size and (v.min() < 0 or v.max() >= n):
            raise ValueError(f"stored {k} split indices do not fit the {n} samples of {what}")
    return out


def check_train_size(n_train: int, batch_size: int) -> None:
    """A training epoch needs at least one full batch."""
    if n_train < batch_size:
        raise ValueError(
            f"the training split has {n_train} samples, fewer than the batch size {batch_size}; "
            "lower training.batch_size or use more data"
        )


def check_norm_stats(norm_stats: dict, input_names: tuple[str, ...]) -> dict:
    """``norm_stats`` if they are for ``input_names``, in that order."""
    if list(norm_stats["channels"]) != list(input_names):
        raise ValueError(f"normalisation statistics are for {norm_stats['channels']}, inputs are {list(input_names)}")
    return norm_stats


def labels_digest(labels: np.ndarray) -> str:
    """SHA-256 (16 hex digits) of a label array: identifies the dataset a split belongs to."""
    h = hashlib.sha256(str(labels.shape).encode())
    h.update(np.ascontiguousarray(labels).tobytes())
    return h.hexdigest()[:16]


def open_movie_dataset(path):
    """The ``DatasetInfo`` of a finished ``jaxmag simulate`` dataset (``/m``, ``/labels``, the
    ``components`` attribute), for the sources that read its films; a clear error otherwise."""
    from pathlib import Path

    from jaxmag.io.dataset import open_dataset

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"movie dataset not found: {path}")
    info = open_dataset(path)
    if not info.has_labels:
        raise ValueError(f"{path} is not a jaxmag movie dataset (needs /m, /labels and the 'components' "
                         "attribute written by `jaxmag simulate`)")
    if not info.complete:
        raise ValueError(f"{path} has unfinished runs; finish it with `jaxmag simulate --resume`")
    return info
