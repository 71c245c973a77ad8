"""``MeasuresSource``: training data from the maps of a measures file (``jaxmag measures``).

The file (read through ``jaxmag.io.measures_file.MeasuresFile``)::

    /<condition>/<measure>/<component>   (N, ny, nx) float32   condition "clean", "gaussian_1e-2", ...
    /labels                              (N, ny, nx) uint8     0 background, > 0 defect blob id
                                                               (classes: jaxmag.learn.classes)

Training and validation inputs come from the training condition's group, normalised with the
statistics of the clean training maps; the test set may be read in any condition the file holds.
The paper's protocol: each film keeps the one noise draw the file stores.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import jax
import numpy as np
from jax.sharding import Mesh

from jaxmag.io.measures_file import MeasuresFile
from jaxmag.learn import normalization, sharding
from jaxmag.learn.classes import class_scheme
from jaxmag.learn.sources import (
    Batch,
    EvalSet,
    batch_mesh,
    check_norm_stats,
    check_train_size,
    input_channels,
    labels_digest,
    split_of,
)
from jaxmag.learn.splits import epoch_permutation


class MeasuresSource:
    """Training data from a measures file (see the module docstring for its layout).

    Args:
        path: the measures file.
        inputs: ``((measure, component), ...)`` channels to stack, in order.
        train_condition: ``"clean"`` or a noise condition (``"gaussian:1e-2"`` or
            ``"gaussian_1e-2"``); training and validation inputs come from that group.
        batch_size: global batch; an epoch has ``n_train // batch_size`` steps (the remainder is
            dropped, differently each epoch since the order is reshuffled).
        split, seed: fractions and seed of ``split_indices`` (ignored if ``indices`` is given).
        indices: a stored split ``{"train", "val", "test"}`` (resume, evaluation).
        norm_stats: stored statistics; computed from the clean training subset if ``None``.
        mesh: device mesh (default: all devices).
        load_train: read the training maps (``False`` for evaluation only).
        classes, num_a: the class scheme the blob ids of ``/labels`` are read with
            (``jaxmag.learn.classes``: ``"binary"``, > 0, the default; ``"typed"``, 0/1/2 by blob
            group, which needs ``num_a``, ``[defects] num_a``).

    The whole train and validation arrays are read into host memory once.
    """

    def __init__(
        self,
        path: str | Path,
        inputs: tuple[tuple[str, str], ...],
        *,
        train_condition: str = "clean",
        batch_size: int = 32,
        split: tuple[float, float, float] = (0.70, 0.15, 0.15),
        seed: int = 0,
        indices: dict | None = None,
        norm_stats: dict | None = None,
        mesh: Mesh | None = None,
        load_train: bool = True,
        classes: str = "binary",
        num_a: int | None = None,
    ):
        self.classes, self.num_a = class_scheme(classes).name, num_a
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"measures file not found: {self.path}")
        self.inputs, self.input_names = input_channels(inputs)
        self.batch_size, self.mesh = batch_mesh(batch_size, mesh)
        self.file = MeasuresFile(self.path)
        self.shape, self.layout = self.file.shape, self.file.layout
        self.train_condition = self.file.resolve_condition(train_condition)
        self.file.check("clean", self.inputs)
        self.file.check(self.train_condition, self.inputs)
        self._labels = class_scheme(self.classes).labels(self.file.labels(), self.num_a).astype(np.int32)
        self.labels_sha256 = labels_digest(self._labels)
        self.indices = split_of(self.shape[0], split, seed, indices, str(self.path))
        if norm_stats is None:
            norm_stats = normalization.compute_stats(self._read("clean", self.indices["train"]), list(self.input_names))
        self.norm_stats = check_norm_stats(norm_stats, self.input_names)
        self._train = None
        if load_train:
            check_train_size(self.indices["train"].size, self.batch_size)
            self._train = self._load(self.train_condition, "train")
        self.steps_per_epoch = self.indices["train"].size // self.batch_size

    def _read(self, condition: str, idx: np.ndarray) -> np.ndarray:
        """Raw channels ``(len(idx), ny, nx, C)`` float32 of the given samples."""
        return self.file.read(condition, self.inputs, idx)

    def _load(self, condition: str, part: str) -> tuple[np.ndarray, np.ndarray]:
        idx = self.indices[part]
        return normalization.normalize(self._read(condition, idx), self.norm_stats), self._labels[idx]

    # -- the interface ------------------------------------------------------------------------

    def train_batches(self, epoch: int, key: jax.Array) -> Iterator[Batch]:
        """``steps_per_epoch`` global batches in the order given by ``key``."""
        x, y = self._train
        perm = epoch_permutation(x.shape[0], key)
        bsh = sharding.batch_sharding(self.mesh)
        rows = sharding.process_slice(self.batch_size)
        for s in range(self.steps_per_epoch):
            idx = perm[s * self.batch_size : (s + 1) * self.batch_size][rows]  # rows of the global batch
            yield sharding.global_batch(x[idx], bsh, self.batch_size), sharding.global_batch(y[idx], bsh, self.batch_size)

    def val_set(self) -> EvalSet:
        """The validation split, in the training condition."""
        x, y = self._load(self.train_condition, "val")
        return EvalSet(x, y, self.indices["val"], condition=self.train_condition)

    def test_set(self, condition: str | None = None) -> EvalSet:
        """The test split in ``condition`` (default: the training condition)."""
        cond = self.train_condition if condition is None else self.file.resolve_condition(condition)
        x, y = self._load(cond, "test")
        return EvalSet(x, y, self.indices["test"], condition=cond)

    def describe(self) -> dict:
        return {
            "kind": "hdf5",  # the name run.json files have always stored
            "path": str(self.path.resolve()),
            "labels_sha256": self.labels_sha256,
            "num_samples": self.shape[0],
            "image_shape": list(self.shape[1:]),
            "conditions": sorted(self.layout),
            **({} if self.classes == "binary" else {"classes": self.classes, "num_a": self.num_a}),
        }
