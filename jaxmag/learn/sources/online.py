"""``OnlineSource``: batches generated on the accelerator at every step.

It wraps a jittable generator ``make_batch(key) -> (inputs, labels)`` (for example the solver +
measures + noise of ``jaxmag.learn.online``, all on the device): each step's batch is generated
on device, sharded like any batch, and never visits the host. Validation and test sets are
fixed batches of the same generator under keys of their own.
"""
from __future__ import annotations

from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxmag.learn import normalization, sharding
from jaxmag.learn.sources import Batch, EvalSet, batch_mesh
from jaxmag.noise.pool import key_from_bits, stream_bits, stream_key


class OnlineSource:
    """Batches generated on the accelerator at every step by ``make_batch``.

    Args:
        make_batch: jittable ``make_batch(key) -> (inputs (B, ny, nx, C) float32 raw, labels
            (B, ny, nx) int, > 0 is defect)`` with ``B == batch_size``, producing the training
            condition (clean or noisy). It is traced once and jitted with the batch sharding as
            output sharding, so generation itself is split over the devices.
        input_names: channel names, e.g. ``("std:z",)``.
        batch_size: the global batch ``B``.
        steps_per_epoch: generated batches per epoch.
        num_val_batches, num_test_batches: size of the fixed validation/test sets, in batches.
        seed: fixes the validation, test and calibration keys.
        make_clean_batch: the same generator without noise, for the normalisation statistics
            (defaults to ``make_batch``, right when training on clean data).
        norm_stats: stored statistics (resume); otherwise computed from one clean calibration
            batch generated from a fixed key.
        train_condition: a name for the condition ``make_batch`` produces ("clean", ...).

    Keys: the batch of step ``s`` in an epoch with data key ``k`` is ``make_batch(fold_in(k, s))``;
    validation batch ``i`` uses ``fold_in(fold_in(key(seed), 1), i)``, test ``... 2 ...``, the
    calibration batch ``fold_in(key(seed), 3)`` (``jaxmag.noise_pool.stream_key``).
    """

    indices = None  # no stored split: every set is generated

    def __init__(
        self,
        make_batch: Callable[[jax.Array], Batch],
        input_names: tuple[str, ...],
        *,
        batch_size: int,
        steps_per_epoch: int,
        num_val_batches: int = 4,
        num_test_batches: int = 4,
        seed: int = 0,
        make_clean_batch: Callable[[jax.Array], Batch] | None = None,
        norm_stats: dict | None = None,
        train_condition: str = "clean",
        mesh: Mesh | None = None,
    ):
        if steps_per_epoch < 1 or num_val_batches < 1 or num_test_batches < 1:
            raise ValueError("steps_per_epoch, num_val_batches and num_test_batches must be >= 1")
        self.input_names = tuple(input_names)
        self.steps_per_epoch = int(steps_per_epoch)
        self.num_val_batches = int(num_val_batches)
        self.num_test_batches = int(num_test_batches)
        self.seed = int(seed)
        self.train_condition = train_condition
        self.batch_size, self.mesh = batch_mesh(batch_size, mesh)
        self._check_generator(make_batch)
        if make_clean_batch is not None:
            self._check_generator(make_clean_batch)
        clean = make_batch if make_clean_batch is None else make_clean_batch
        self.norm_stats = self._calibrate(clean) if norm_stats is None else norm_stats
        bsh = sharding.batch_sharding(self.mesh)

        def generate(a, b, step):
            # the key is rebuilt on device from scalars: no host array enters the jitted call,
            # which multi-process jit requires.
            x, y = make_batch(key_from_bits(a, b, step))
            return normalization.normalize(x, self.norm_stats), (y > 0).astype(jnp.int32)

        self._generate = jax.jit(generate, out_shardings=(bsh, bsh))
        self._fixed = jax.jit(lambda stream, i: generate(*stream_bits(self.seed, stream), i), out_shardings=(bsh, bsh))

    def _check_generator(self, fn) -> None:
        x, y = jax.eval_shape(fn, jax.random.key(0))
        c = len(self.input_names)
        if x.ndim != 4 or x.shape[0] != self.batch_size or x.shape[-1] != c:
            raise ValueError(f"make_batch must return inputs (B={self.batch_size}, ny, nx, C={c}), got {x.shape}")
        if tuple(y.shape) != tuple(x.shape[:3]):
            raise ValueError(f"make_batch labels shape {tuple(y.shape)} does not match inputs {tuple(x.shape[:3])}")
        self.image_shape = tuple(x.shape[1:3])

    def _calibrate(self, clean: Callable[[jax.Array], Batch]) -> dict:
        """Normalisation statistics of one clean batch generated from the calibration key."""
        calib = jax.jit(lambda: _channel_moments(clean(stream_key(self.seed, 3))[0]),
                        out_shardings=sharding.replicated(self.mesh))
        mean, std = (np.asarray(a, np.float64) for a in calib())
        for name, s in zip(self.input_names, std):
            if not s > 0:
                raise ValueError(f"generated input channel {name} is constant over the calibration batch")
        return {"channels": list(self.input_names), "mean": mean.tolist(), "std": std.tolist()}

    def train_batches(self, epoch: int, key: jax.Array) -> Iterator[Batch]:
        a, b = (int(v) for v in np.asarray(jax.random.key_data(key)).ravel()[:2])
        for s in range(self.steps_per_epoch):
            yield self._generate(np.uint32(a), np.uint32(b), s)

    def _fixed_set(self, stream: int, n: int, name: str) -> EvalSet:
        return EvalSet(device_batches=[self._fixed(stream, i) for i in range(n)], condition=name)

    def val_set(self) -> EvalSet:
        return self._fixed_set(1, self.num_val_batches, self.train_condition)

    def test_set(self, condition: str | None = None) -> EvalSet:
        """The fixed test batches; the generator makes its training condition only."""
        if condition not in (None, self.train_condition):
            raise ValueError(f"the online source generates {self.train_condition} only, not {condition}")
        return self._fixed_set(2, self.num_test_batches, self.train_condition)

    def describe(self) -> dict:
        return {
            "kind": "online",
            "seed": self.seed,
            "steps_per_epoch": self.steps_per_epoch,
            "num_val_batches": self.num_val_batches,
            "num_test_batches": self.num_test_batches,
            "image_shape": list(self.image_shape),
        }


def _channel_moments(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = x.astype(jnp.float32)
    return jnp.mean(x, axis=(0, 1, 2)), jnp.std(x, axis=(0, 1, 2))
