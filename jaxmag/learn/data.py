"""Data sources for training: one interface, three implementations.

A source yields **normalised, globally sharded** batches, channel-last:

- ``train_batches(epoch, key)`` -> iterator of ``(inputs (B, ny, nx, C) float32,
  labels (B, ny, nx) int32)``, ``B`` the global batch, sharded over the mesh's ``"data"`` axis;
  the order is a pure function of ``key`` (the loop derives it from (seed, epoch));
- ``val_set()`` / ``test_set()`` -> an ``EvalSet`` whose ``batches()`` add a ``mask (B,)`` that
  marks the padding of the last batch;
- ``norm_stats`` (``jaxmag.learn.normalization``), ``input_names`` (``("mean:x", ...)``),
  ``train_condition`` and ``describe()`` (JSON-able, stored in ``run.json``).

``HDF5Source`` reads a measures file written by ``jaxmag measures``::

    /<condition>/<measure>/<component>   (N, ny, nx) float32   condition "clean", "gaussian_1e-2", ...
    /labels                              (N, ny, nx) uint8     0 background, > 0 defect blob id

``MovieSource`` holds the clean movies of a ``jaxmag simulate`` dataset and makes every batch on
the device: symmetry augmentation, a fresh noise draw, the measures, normalisation (see its
docstring).

``OnlineSource`` wraps a jittable generator ``make_batch(key) -> (inputs, labels)`` (for
example the solver + measures + noise, all on the accelerator): each step's batch is generated
on device, sharded like any batch, and never visits the host.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
from pathlib import Path
from typing import Callable, Iterator

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxmag.layout import measure_from_stored
from jaxmag.learn import normalization, sharding
from jaxmag.learn.splits import epoch_permutation, split_indices

Batch = tuple[jax.Array, jax.Array]


# ---------------------------------------------------------------------------------------------
# evaluation sets


@dataclasses.dataclass
class EvalSet:
    """A fixed set of normalised images for validation or testing.

    Either host arrays (``inputs (N, ny, nx, C)``, ``labels (N, ny, nx)``, NumPy; every process
    holds all of them and loads its slice of each batch) or ``device_batches``, a list of
    already sharded full batches ``(inputs, labels)`` (online source).
    """

    inputs: np.ndarray | None = None
    labels: np.ndarray | None = None
    indices: np.ndarray | None = None  # sample indices in the source file, if any
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
# HDF5 measures files


def channel_name(measure: str, component: str) -> str:
    return f"{measure}:{component}"


def _layout(f: h5py.File) -> dict[str, dict[str, list[str]]]:
    """``{condition: {measure: [components]}}`` of an open measures file."""
    out: dict[str, dict[str, list[str]]] = {}
    for cond, group in f.items():
        if not isinstance(group, h5py.Group):
            continue
        out[cond] = {m: sorted(g.keys()) for m, g in group.items() if isinstance(g, h5py.Group)}
    return out


def _describe_layout(layout: dict) -> str:
    parts = []
    for cond, measures in sorted(layout.items()):
        inner = ", ".join(f"{m}:{'/'.join(c)}" for m, c in sorted(measures.items()))
        parts.append(f"{cond} ({inner or 'empty'})")
    return "; ".join(parts) or "nothing"


def resolve_condition(available: list[str], spec: str) -> str:
    """Map ``"clean"``, ``"gaussian_1e-2"`` or ``"gaussian:1e-2"`` to a condition group name.

    ``kind:variance`` matches a group ``kind_<v>`` with the same numeric variance, whatever
    way it was written (``1e-2`` and ``0.01`` are the same). Raises ``ValueError`` listing the
    conditions that exist.
    """
    if spec in available:
        return spec
    kind, sep, var = spec.replace("_", ":", 1).partition(":")
    if sep:
        try:
            wanted = float(var)
        except ValueError:
            wanted = None
        if wanted is not None:
            for name in available:
                k, _, v = name.partition("_")
                try:
                    if k == kind and math.isclose(float(v), wanted, rel_tol=1e-9):
                        return name
                except ValueError:
                    continue
    raise ValueError(f"noise condition {spec!r} is not in the measures file; it has: {', '.join(sorted(available))}")


def _set_file_inputs(source, path, what: str, inputs, batch_size: int, mesh: Mesh | None) -> None:
    """The checks and attributes every file-backed source starts with: ``path`` (must exist),
    ``inputs``/``input_names`` (at least one), ``batch_size`` and ``mesh`` (the batch must split
    over its devices)."""
    source.path = Path(path)
    if not source.path.is_file():
        raise FileNotFoundError(f"{what} not found: {source.path}")
    if not inputs:
        raise ValueError("at least one input (measure, component) is required")
    source.inputs = tuple(tuple(i) for i in inputs)
    source.input_names = tuple(channel_name(m, c) for m, c in source.inputs)
    source.batch_size = int(batch_size)
    source.mesh = mesh if mesh is not None else sharding.data_mesh()
    sharding.check_batch_size(source.batch_size, source.mesh)


def labels_digest(labels: np.ndarray) -> str:
    """SHA-256 (16 hex digits) of a label array: identifies the dataset a split belongs to."""
    h = hashlib.sha256(str(labels.shape).encode())
    h.update(np.ascontiguousarray(labels).tobytes())
    return h.hexdigest()[:16]


class HDF5Source:
    """Training data from a measures HDF5 file (see the module docstring for its layout).

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
    ):
        _set_file_inputs(self, path, "measures file", inputs, batch_size, mesh)
        try:
            f = h5py.File(self.path, "r")
        except OSError as exc:
            raise ValueError(f"cannot read measures file {self.path}: {exc}") from None
        with f:
            if f.attrs.get("format") == "jaxmag.dataset":
                raise ValueError(f"{self.path} is a simulated dataset, not a measures file: run "
                                 f"`jaxmag measures {self.path} --out measures.h5` and pass that file")
            if "labels" not in f or not isinstance(f["labels"], h5py.Dataset):
                raise ValueError(f"measures file {self.path} has no /labels dataset")
            labels = f["labels"]
            if labels.ndim != 3:
                raise ValueError(f"/labels in {self.path} must be (N, ny, nx), got shape {labels.shape}")
            self.shape = tuple(labels.shape)
            self.layout = _layout(f)
            self.train_condition = resolve_condition(list(self.layout), train_condition)
            self._check_condition("clean")
            self._check_condition(self.train_condition)
            self._labels = (labels[...] > 0).astype(np.int32)
        self.labels_sha256 = labels_digest(self._labels)
        n = self.shape[0]
        if indices is None:
            indices = split_indices(n, tuple(split), seed)
        self.indices = {k: np.asarray(v, np.int64) for k, v in indices.items()}
        for k, v in self.indices.items():
            if v.size and (v.min() < 0 or v.max() >= n):
                raise ValueError(f"stored {k} split indices do not fit the {n} samples of {self.path}")
        if norm_stats is None:
            norm_stats = normalization.compute_stats(self._read("clean", self.indices["train"]), list(self.input_names))
        if list(norm_stats["channels"]) != list(self.input_names):
            raise ValueError(f"normalisation statistics are for {norm_stats['channels']}, inputs are {list(self.input_names)}")
        self.norm_stats = norm_stats
        self._train = None
        if load_train:
            n_train = self.indices["train"].size
            if n_train < self.batch_size:
                raise ValueError(
                    f"the training split has {n_train} samples, fewer than the batch size {self.batch_size}; "
                    "lower training.batch_size or use more data"
                )
            self._train = self._load(self.train_condition, "train")
        self.steps_per_epoch = self.indices["train"].size // self.batch_size

    # -- reading ------------------------------------------------------------------------------

    def _check_condition(self, condition: str) -> None:
        have = self.layout.get(condition, {})
        missing = [channel_name(m, c) for m, c in self.inputs if c not in have.get(m, [])]
        if condition not in self.layout or missing:
            raise ValueError(
                f"measures file {self.path} lacks {', '.join(f'/{condition}/' + x.replace(':', '/') for x in missing) or '/' + condition} "
                f"(it has: {_describe_layout(self.layout)})"
            )

    def _read(self, condition: str, idx: np.ndarray) -> np.ndarray:
        """Raw channels ``(len(idx), ny, nx, C)`` float32 of the given samples."""
        self._check_condition(condition)
        chans = []
        with h5py.File(self.path, "r") as f:
            for m, c in self.inputs:
                ds = f[condition][m][c]
                if tuple(ds.shape) != self.shape:
                    raise ValueError(
                        f"/{condition}/{m}/{c} in {self.path} has shape {tuple(ds.shape)} but /labels has {self.shape}"
                    )
                chans.append(np.asarray(ds[...], np.float32)[idx])
        x = np.stack(chans, axis=-1)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"measures file {self.path} has NaN or inf in condition {condition}")
        return x

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
        cond = self.train_condition if condition is None else resolve_condition(list(self.layout), condition)
        x, y = self._load(cond, "test")
        return EvalSet(x, y, self.indices["test"], condition=cond)

    def describe(self) -> dict:
        return {
            "kind": "hdf5",
            "path": str(self.path.resolve()),
            "labels_sha256": self.labels_sha256,
            "num_samples": self.shape[0],
            "image_shape": list(self.shape[1:]),
            "conditions": sorted(self.layout),
        }


# ---------------------------------------------------------------------------------------------
# on-the-fly generation


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
    calibration batch ``fold_in(key(seed), 3)``.
    """

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
        self.batch_size = int(batch_size)
        self.steps_per_epoch = int(steps_per_epoch)
        self.num_val_batches = int(num_val_batches)
        self.num_test_batches = int(num_test_batches)
        self.seed = int(seed)
        self.train_condition = train_condition
        self.mesh = mesh if mesh is not None else sharding.data_mesh()
        sharding.check_batch_size(self.batch_size, self.mesh)
        self._check_generator(make_batch)
        clean = make_batch if make_clean_batch is None else make_clean_batch
        if make_clean_batch is not None:
            self._check_generator(make_clean_batch)
        bsh = sharding.batch_sharding(self.mesh)
        rep = sharding.replicated(self.mesh)

        if norm_stats is None:
            calib = jax.jit(lambda: _channel_moments(clean(_key(self.seed, 3, None, None, None))[0]), out_shardings=rep)
            mean, std = (np.asarray(a, np.float64) for a in calib())
            for name, s in zip(self.input_names, std):
                if not s > 0:
                    raise ValueError(f"generated input channel {name} is constant over the calibration batch")
            norm_stats = {"channels": list(self.input_names), "mean": mean.tolist(), "std": std.tolist()}
        self.norm_stats = norm_stats

        def generate(a, b, step):
            # the key is rebuilt on device from scalars: no host array enters the jitted call,
            # which multi-process jit requires.
            x, y = make_batch(_key(None, None, a, b, step))
            return normalization.normalize(x, self.norm_stats), (y > 0).astype(jnp.int32)

        self._generate = jax.jit(generate, out_shardings=(bsh, bsh))
        self._fixed = jax.jit(lambda stream, i: generate(*_fixed_bits(self.seed, stream), i), out_shardings=(bsh, bsh))

    def _check_generator(self, fn) -> None:
        x, y = jax.eval_shape(fn, jax.random.key(0))
        c = len(self.input_names)
        if x.ndim != 4 or x.shape[0] != self.batch_size or x.shape[-1] != c:
            raise ValueError(f"make_batch must return inputs (B={self.batch_size}, ny, nx, C={c}), got {x.shape}")
        if tuple(y.shape) != tuple(x.shape[:3]):
            raise ValueError(f"make_batch labels shape {tuple(y.shape)} does not match inputs {tuple(x.shape[:3])}")
        self.image_shape = tuple(x.shape[1:3])

    def train_batches(self, epoch: int, key: jax.Array) -> Iterator[Batch]:
        a, b = (int(v) for v in np.asarray(jax.random.key_data(key)).ravel()[:2])
        for s in range(self.steps_per_epoch):
            yield self._generate(np.uint32(a), np.uint32(b), s)

    def _fixed_set(self, stream: int, n: int, name: str) -> EvalSet:
        return EvalSet(device_batches=[self._fixed(stream, i) for i in range(n)], condition=name)

    def val_set(self) -> EvalSet:
        return self._fixed_set(1, self.num_val_batches, self.train_condition)

    def test_set(self) -> EvalSet:
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


def _fixed_bits(seed: int, stream: int) -> tuple[jax.Array, jax.Array]:
    data = jax.random.key_data(jax.random.fold_in(jax.random.key(seed), stream))
    return data[0], data[1]


def _key(seed, stream, a, b, step) -> jax.Array:
    """A typed key from raw bits ``(a, b)`` (or from ``seed``/``stream`` with a=b=0), folded with ``step``."""
    if seed is not None:
        key = jax.random.fold_in(jax.random.key(seed), stream)
    else:
        key = jax.random.wrap_key_data(jnp.stack([jnp.asarray(a, jnp.uint32), jnp.asarray(b, jnp.uint32)]))
    return key if step is None else jax.random.fold_in(key, step)


def _channel_moments(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = x.astype(jnp.float32)
    return jnp.mean(x, axis=(0, 1, 2)), jnp.std(x, axis=(0, 1, 2))


# ---------------------------------------------------------------------------------------------
# clean movies, with noise, augmentation and measures made on the device per batch


def movie_noise_keys(seed, cond_hash, run_index, components: str) -> jax.Array:
    """Noise keys ``(B, C)`` of the one keying rule (``jaxmag.noise``): per run
    ``condition_keys(seed, hash(condition), run_index)``, the component letter folded in."""
    from jaxmag.noise import component_keys, condition_keys

    return component_keys(condition_keys(seed, cond_hash, run_index), components)


def _mirror_and_shift(arr: jax.Array, f: jax.Array, sh: jax.Array | None) -> jax.Array:
    """One sample's mirrors ``f (2,)`` (rows, columns) and cyclic shift ``sh (2,)`` of the last two axes."""
    arr = jnp.where(f[0], jnp.flip(arr, -2), arr)
    arr = jnp.where(f[1], jnp.flip(arr, -1), arr)
    return arr if sh is None else jnp.roll(arr, (sh[0], sh[1]), axis=(-2, -1))


def _move_pixels(arr, labels, flips, shifts):
    """``_mirror_and_shift`` per sample of ``arr`` and ``labels``."""
    if shifts is None:
        move = jax.vmap(lambda a, f: _mirror_and_shift(a, f, None))
        return move(arr, flips), move(labels, flips)
    move = jax.vmap(_mirror_and_shift)
    return move(arr, flips, shifts), move(labels, flips, shifts)


def augment_movies(movies: jax.Array, labels: jax.Array, flips: jax.Array, shifts: jax.Array | None, components: str):
    """The exact symmetries of a periodic film one cell thick, applied to ``movies (B, T, C, ny, nx)``
    and ``labels (B, ny, nx)``: ``flips (B, 2)`` bool mirror rows (y -> -y) / columns (x -> -x);
    each mirror maps m to (m_x, -m_y, -m_z) (``jaxmag.learn.online``), so an odd number of them
    flips the sign of the y and z components (``mirror_signs``); ``shifts (B, 2)`` int are cyclic
    shifts in (y, x) (periodic films only; ``None`` for none)."""
    return _move_pixels(movies * mirror_signs(flips, components, movies.dtype), labels, flips, shifts)


def mirror_signs(flips: jax.Array, components: str, dtype) -> jax.Array:
    """``(B, 1, C, 1, 1)`` factors on stored movies ``(B, T, C, ny, nx)``: the component signs of
    ``augment_movies``' mirrors ``flips (B, 2)`` (y and z flip where one mirror is applied)."""
    odd = flips[:, 0] ^ flips[:, 1]
    sign = jnp.array([1.0 if c == "x" else -1.0 for c in components], dtype)
    return jnp.where(odd[:, None], sign[None, :], jnp.ones_like(sign)[None, :])[:, None, :, None, None]


def move_channel_pixels(maps: jax.Array, labels: jax.Array, flips: jax.Array, shifts: jax.Array | None):
    """The pixel moves of ``augment_movies`` (mirrors, cyclic shifts; no signs) on channel maps
    ``(B, ny, nx, K)`` and ``labels (B, ny, nx)``.

    Every measure is a per-pixel function of the pixel's time series and the noise is i.i.d. over
    pixels, so moving the pixels of the noisy maps has the law of the maps of the moved movie,
    with the signs applied to the movie first (``mirror_signs``): ``augment_movies`` then the
    maps, at a fraction of its cost (moving whole movies dominated a speckle batch on CPU). With
    the same draws the two agree exactly where the noise is unkeyed (clean)."""
    moved, labels = _move_pixels(jnp.moveaxis(maps, -1, 1), labels, flips, shifts)
    return jnp.moveaxis(moved, 1, -1), labels


def movie_measure_maps(movies, spec, seed, run_index, *, components: str, measures: tuple, options: tuple,
                       channels: tuple, cond_hash=None, sampled: bool = False, draws=None) -> jax.Array:
    """``movies (B, T, C, ny, nx)`` -> raw input channels ``(B, ny, nx, len(channels))``.

    The one path of ``jaxmag.channels``: ``jaxmag.noise.add_measurement_noise`` of ``spec``
    keyed by (``seed``, ``cond_hash``, ``run_index (B,)``, component), then the measures with
    ``options`` (one ``MeasureOptions`` per component) and the channels stacked. ``seed`` may be
    traced (fresh draws); the measures file's seed and run indices reproduce its maps.
    ``sampled``: draw the maps through ``jaxmag.channels.sampled_noisy_movie_maps`` (same
    distribution, another realisation, much cheaper): for fresh training noise only.
    ``draws``: standard-normal draws ``(B, C, T, ny, nx)`` to make the noise from instead of the
    keys (``pooled_draws``; ``seed``, ``run_index`` and ``sampled`` are then unused).
    """
    from jaxmag.channels import movie_maps_from_draws, noisy_movie_maps, sampled_noisy_movie_maps, stack_channels

    x = measure_from_stored(movies)
    if draws is not None:
        return stack_channels(movie_maps_from_draws(x, spec, draws, measures, options), channels, components)
    kw = {} if cond_hash is None else {"cond_hash": cond_hash}
    maps_of = sampled_noisy_movie_maps if sampled else noisy_movie_maps
    maps = maps_of(x, spec, seed, run_index, components, measures, options, **kw)
    return stack_channels(maps, channels, components)


POOL_STREAM = 0xFFFFFFFF
"""``fold_in(epoch_key, POOL_STREAM)`` keys an epoch's noise pool; steps fold in their index
``s < steps_per_epoch``, which never reaches it."""


def noise_pool(epoch_key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """An epoch's pool of standard-normal fields ``shape = (B, C, T, ny, nx)`` (``jaxmag.rng``'s
    counter-based draws, a pure function of the epoch key)."""
    from jaxmag.rng import normal_draws

    return normal_draws(jax.random.fold_in(epoch_key, POOL_STREAM), 0, shape)


def pooled_draws(pool: jax.Array, key: jax.Array) -> jax.Array:
    """One step's noise draws from an epoch's ``pool (B, C, T, ny, nx)``: sample b takes field b
    under a random cyclic shift in time and a random sign, both drawn from ``key``.

    A shift and a sign change map i.i.d. N(0, 1) values to i.i.d. N(0, 1) values, so every
    sample's noise has exactly the condition's law, and a film, seen once an epoch, meets a
    new pool every epoch. What is shared: the films of one epoch in one batch slot get shifted
    copies of one field (independent of the films, not of each other). It saves the draws, which
    cost more than the U-Net step on CPU at the quick size (``docs/training.md``); the shift is a
    gather of whole frames because shifts in y and x cost several times more on CPU.
    """
    B, _, T = pool.shape[:3]
    k_shift, k_sign = jax.random.split(key)
    shift = jax.random.randint(k_shift, (B,), 0, T)
    frames = (jnp.arange(T)[None, :] + shift[:, None]) % T
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (B,)), 1.0, -1.0).astype(pool.dtype)
    return sign[:, None, None, None, None] * jnp.take_along_axis(pool, frames[:, None, :, None, None], axis=2)


def _device_budget_bytes() -> int:
    """Half the memory of the first device (GPU/TPU ``bytes_limit``; on CPU half the free host memory)."""
    dev = jax.local_devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) // 2
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 2
    except (ValueError, OSError, AttributeError):
        return 2**33


class MovieSource:
    """Training data made on the device from the clean movies of a ``jaxmag simulate`` dataset.

    Per training batch, in one jitted function: gather the batch's clean movies, apply a random
    exact symmetry (mirrors with the right component signs, and cyclic shifts in x and y for
    periodic films; ``augment``), add a noise realisation of the training condition, compute the
    measure maps (``jaxmag.measures``) and normalise them with the clean-training statistics.

    Noise keys: with ``fresh_noise`` the noise of run ``r`` at step ``s`` of an epoch whose data
    key is ``k`` uses ``movie_noise_keys(seed_s, hash(condition), r)`` with ``seed_s`` the first
    32 bits of ``fold_in(k, s)``: a new draw every step, a pure function of (seed, epoch, step),
    so resume is exact. Gaussian noise on mean/std inputs is then drawn from the maps' exact
    sampling distribution (``jaxmag.channels.sampled_noisy_movie_maps``: three draws per pixel,
    not T), every other case frame by frame. Without it (the paper's protocol) every film keeps the measures file's
    one draw (``noise_seed``, its run index), and an unaugmented run equals ``HDF5Source`` on
    that file. Validation and test sets always use those fixed draws (computed once), so their
    Dice is comparable across runs and with the measures file.

    Memory: the needed components of every movie (``N * T * C * ny * nx`` values) live on the
    device when they fit in ``device_budget_bytes`` (default: half the device memory); larger
    datasets need ``stream=True`` (each batch's movies are read from the HDF5 file).

    Args:
        path: the dataset (``/m (N, T, C, ny, nx)``, ``/labels``, root attribute ``components``).
        inputs: ``((measure, component), ...)``.
        measures_config: ``[measures]`` options (``config.measures``).
        train_condition: ``"clean"`` or a noise spec (``"gaussian:1e-2"``).
        noise_seed: seed of the fixed draws (the measures file's, ``[noise] seed``).
        periodic: whether the film is periodic (shifts allowed).
    """

    def __init__(
        self,
        path: str | Path,
        inputs: tuple[tuple[str, str], ...],
        measures_config,
        *,
        train_condition: str = "clean",
        batch_size: int = 32,
        split: tuple[float, float, float] = (0.70, 0.15, 0.15),
        seed: int = 0,
        noise_seed: int = 0,
        periodic: bool = True,
        augment: bool = True,
        fresh_noise: bool = True,
        indices: dict | None = None,
        norm_stats: dict | None = None,
        stream: bool = False,
        device_budget_bytes: int | None = None,
        mesh: Mesh | None = None,
        chunk: int = 16,
    ):
        from jaxmag.channels import Channel
        from jaxmag.measures import MEASURES
        from jaxmag.noise import parse_noise_spec

        _set_file_inputs(self, path, "movie dataset", inputs, batch_size, mesh)
        try:
            self.spec = parse_noise_spec(train_condition.replace("_", ":", 1) if train_condition != "clean" else "clean")
        except ValueError as exc:
            raise ValueError(f"the movie source cannot make the training condition {train_condition!r}: {exc}") from None
        self.train_condition = self.spec.name
        self.noise_seed, self.seed, self.periodic = int(noise_seed), int(seed), bool(periodic)
        self.augment, self.fresh_noise, self.stream, self.chunk = bool(augment), bool(fresh_noise), bool(stream), int(chunk)
        with h5py.File(self.path, "r") as f:
            if "m" not in f or "labels" not in f or "components" not in f.attrs:
                raise ValueError(f"{self.path} is not a jaxmag movie dataset (needs /m, /labels and the "
                                 "'components' attribute written by `jaxmag simulate`)")
            stored = str(f.attrs["components"])
            shape = tuple(f["m"].shape)
            itemsize = f["m"].dtype.itemsize
            if "done" in f and not np.all(f["done"][...]):
                raise ValueError(f"{self.path} has unfinished runs; finish it with `jaxmag simulate --resume`")
            self._labels = (f["labels"][...] > 0).astype(np.int32)
            self.run_index = np.asarray(f["run_index"][...], np.int64) if "run_index" in f else np.arange(shape[0])
        for m, c in self.inputs:
            if m not in MEASURES:
                raise ValueError(f"unknown measure {m!r}: expected one of {', '.join(MEASURES)}")
            if c not in stored:
                raise ValueError(f"{self.path} stores the components {', '.join(stored)} only, so it cannot "
                                 f"give {m}:{c}; simulate with {c} among the stored components, or train on "
                                 "a measures file that has it")
        N, T, _, ny, nx = shape
        self.shape = (N, ny, nx)
        self.components = "".join(c for c in stored if c in {c for _, c in self.inputs})
        self._comp_rows = [stored.index(c) for c in self.components]
        measures = tuple(dict.fromkeys(m for m, _ in self.inputs))
        by_comp = tuple(measures_config.options(c) for c in self.components)
        for opts in by_comp:
            opts.check(T, measures)
        self.labels_sha256 = labels_digest(self._labels)
        if indices is None:
            indices = split_indices(N, tuple(split), seed)
        self.indices = {k: np.asarray(v, np.int64) for k, v in indices.items()}
        if self.indices["train"].size < self.batch_size:
            raise ValueError(f"the training split has {self.indices['train'].size} samples, fewer than the batch "
                             f"size {self.batch_size}; lower training.batch_size or use more data")
        self.steps_per_epoch = self.indices["train"].size // self.batch_size
        self.movie_bytes = N * T * len(self.components) * ny * nx * itemsize
        budget = _device_budget_bytes() if device_budget_bytes is None else int(device_budget_bytes)
        if not self.stream and self.movie_bytes > budget:
            raise ValueError(
                f"the movies of {self.path} ({self.movie_bytes / 2**20:.0f} MiB for components {self.components}) "
                f"do not fit the device budget of {budget / 2**20:.0f} MiB; stream them from the file "
                "(MovieSource(stream=True), `training.movie_stream = true`) or train on fewer components"
            )
        self._movies = None if self.stream else jax.device_put(self._read_movies(np.arange(N)))
        bsh = sharding.batch_sharding(self.mesh)
        self._kernel = functools.partial(movie_measure_maps, components=self.components, measures=measures,
                                         options=by_comp, channels=tuple(Channel(m, c) for m, c in self.inputs))
        if norm_stats is None:
            clean = self._fixed_maps(self.indices["train"], noisy=False)
            norm_stats = normalization.compute_stats(clean, list(self.input_names))
        if list(norm_stats["channels"]) != list(self.input_names):
            raise ValueError(f"normalisation statistics are for {norm_stats['channels']}, inputs are {list(self.input_names)}")
        self.norm_stats = norm_stats
        self._train_fn = jax.jit(self._make_batch, out_shardings=(bsh, bsh))
        # Fresh Gaussian noise on mean/std inputs: the maps depend on each clean movie only
        # through its per-pixel (mean, |P x|) (jaxmag.channels.sample_gaussian_maps), computed
        # once here, so a batch never touches the movies (same batches as from the movies,
        # to float rounding).
        self._stats = None
        if self.fresh_noise and self.spec.kind == "gaussian" and set(measures) <= {"mean", "std"}:
            self._measures, self._options, self._num_frames = measures, by_comp, T
            self._stats = self._clean_stats(np.arange(N))
            self._stats_fn = jax.jit(self._make_batch_from_stats, out_shardings=(bsh, bsh))
        # Any other fresh noise needs T frames of draws per sample, which cost more than the
        # U-Net step on CPU: draw one pool of B fields per epoch and give every sample a random
        # shift and sign of its slot's field (``pooled_draws``: the exact law per sample).
        self._pool_shape = None
        if self.fresh_noise and self._stats is None and self.spec.kind != "clean":
            self._pool_shape = (self.batch_size, len(self.components), T, ny, nx)
            self._pool_fn = jax.jit(noise_pool, static_argnums=1)

    # -- movies -------------------------------------------------------------------------------

    def _read_movies(self, idx: np.ndarray) -> np.ndarray:
        """Clean movies ``(len(idx), T, C, ny, nx)`` of the needed components (sorted reads)."""
        idx = np.asarray(idx)
        order = np.argsort(idx, kind="stable")
        with h5py.File(self.path, "r") as f:
            if idx.size == f["m"].shape[0] and np.array_equal(np.sort(idx), np.arange(idx.size)):
                data = f["m"][...]  # the whole dataset: one contiguous read
            else:
                data = f["m"][np.sort(idx).tolist()] if idx.size else np.zeros((0,) + f["m"].shape[1:], f["m"].dtype)
        out = np.empty_like(data)
        out[order] = data
        return out[:, :, self._comp_rows]

    def _movies_of(self, idx: np.ndarray):
        return jnp.take(self._movies, jnp.asarray(idx), axis=0) if self._movies is not None else jnp.asarray(self._read_movies(idx))

    def _fixed_maps(self, idx: np.ndarray, *, noisy: bool, spec=None) -> np.ndarray:
        """Raw maps ``(len(idx), ny, nx, C)`` with the fixed (measures-file) noise of ``spec``."""
        from jaxmag.noise import CLEAN

        spec = self.spec if spec is None else spec
        noisy = noisy and spec.kind != "clean"
        out = []
        for start in range(0, len(idx), self.chunk):
            part = np.asarray(idx[start:start + self.chunk])
            pad = self.chunk - part.size
            padded = np.concatenate([part, np.repeat(part[-1:], pad)])
            maps = _fixed_kernel(self._movies_of(padded), jnp.asarray(self.run_index[padded], jnp.uint32),
                                 self.noise_seed, spec=spec if noisy else CLEAN, kernel=self._kernel)
            out.append(np.asarray(maps)[: part.size])
        return np.concatenate(out) if out else np.zeros((0, *self.shape[1:], len(self.inputs)), np.float32)

    # -- the training batch -------------------------------------------------------------------

    def _make_batch(self, movies, movie_idx, idx, key_bits, pool=None):
        """(movies, their rows ``movie_idx`` (B,), sample indices ``idx`` (B,), key bits (2,) uint32,
        the epoch's noise pool or None) -> normalised (inputs, labels); jitted. ``movies`` is every
        movie (device-resident) or the batch's own (streamed, ``movie_idx = arange(B)``): the same
        function either way."""
        movies = jnp.take(movies, movie_idx, axis=0)
        labels, run_index, symmetry, k_noise = self._batch_draws(idx, key_bits)
        if symmetry is not None:  # the component signs on the movie, the pixel moves on the maps
            movies = movies * mirror_signs(symmetry[0], self.components, movies.dtype)
        if pool is not None:
            x = self._kernel(movies, self.spec, None, run_index, draws=pooled_draws(pool, k_noise))
        else:
            seed = jax.random.bits(k_noise, (), jnp.uint32) if self.fresh_noise else jnp.uint32(self.noise_seed)
            # fresh draws need only the noise's distribution: the exact, cheaper sampled maps
            x = self._kernel(movies, self.spec, seed, run_index, sampled=self.fresh_noise)
        if symmetry is not None:
            x, labels = move_channel_pixels(x, labels, *symmetry)
        return normalization.normalize(x, self.norm_stats), labels

    def _batch_draws(self, idx, key_bits):
        """What every training batch draws, whichever way its maps are made: the labels and run
        indices of ``idx``, the symmetry ``(flips, shifts)`` (``None`` without ``augment``) and
        the noise key, all from ``key_bits``."""
        labels = jnp.take(jnp.asarray(self._labels), idx, axis=0)
        run_index = jnp.take(jnp.asarray(self.run_index, jnp.uint32), idx)
        k_flip, k_shift, k_noise = jax.random.split(jax.random.wrap_key_data(key_bits), 3)
        if not self.augment:
            return labels, run_index, None, k_noise
        B, (ny, nx) = idx.shape[0], self.shape[1:]
        flips = jax.random.bernoulli(k_flip, 0.5, (B, 2))
        shifts = jax.random.randint(k_shift, (B, 2), 0, jnp.array([ny, nx])) if self.periodic else None
        return labels, run_index, (flips, shifts), k_noise

    def _clean_stats(self, idx: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """``gaussian_sufficient_stats`` of the clean movies ``idx``: two ``(len(idx), C, ny, nx)``."""
        from jaxmag.channels import gaussian_sufficient_stats

        stats = jax.jit(lambda m: gaussian_sufficient_stats(measure_from_stored(m)))
        parts = [stats(self._movies_of(idx[i:i + self.chunk])) for i in range(0, len(idx), self.chunk)]
        return tuple(jnp.concatenate([p[k] for p in parts]) for k in (0, 1))

    def _make_batch_from_stats(self, mean_all, spread_all, idx, key_bits):
        """``_make_batch`` from the clean statistics: the same keys, symmetries and noise law."""
        from jaxmag.channels import Channel, sample_gaussian_maps, stack_channels
        from jaxmag.noise import condition_hash

        mean, spread = jnp.take(mean_all, idx, axis=0), jnp.take(spread_all, idx, axis=0)
        labels, run_index, symmetry, k_noise = self._batch_draws(idx, key_bits)
        if symmetry is not None:  # the mean is odd in the component signs, the spread even
            mean = mean * mirror_signs(symmetry[0], self.components, mean.dtype)[:, 0]
        seed = jax.random.bits(k_noise, (), jnp.uint32)
        keys = movie_noise_keys(seed, condition_hash(self.spec), run_index, self.components)
        maps = sample_gaussian_maps(mean, spread, self._num_frames, self.spec.variance, keys, self._measures,
                                    self._options)
        x = stack_channels(maps, tuple(Channel(m, c) for m, c in self.inputs), self.components)
        if symmetry is not None:
            x, labels = move_channel_pixels(x, labels, *symmetry)
        return normalization.normalize(x, self.norm_stats), labels

    def batch_indices(self, epoch_key: jax.Array, step: int) -> np.ndarray:
        perm = epoch_permutation(self.indices["train"].size, epoch_key)
        return self.indices["train"][perm[step * self.batch_size:(step + 1) * self.batch_size]]

    def train_batches(self, epoch: int, key: jax.Array) -> Iterator[Batch]:
        """``steps_per_epoch`` batches; step ``s`` draws its augmentation and noise from ``fold_in(key, s)``
        (and, for pooled draws, its shifts of the epoch's pool ``noise_pool(key)``)."""
        if jax.process_count() > 1:
            raise NotImplementedError("MovieSource runs on one process; use HDF5Source for several hosts")
        perm = epoch_permutation(self.indices["train"].size, key)
        pool = None if self._pool_shape is None else self._pool_fn(key, self._pool_shape)
        for s in range(self.steps_per_epoch):
            idx = self.indices["train"][perm[s * self.batch_size:(s + 1) * self.batch_size]]
            bits = jax.random.key_data(jax.random.fold_in(key, s))
            rows = jnp.asarray(idx, jnp.int32)
            if self._stats is not None:
                yield self._stats_fn(*self._stats, rows, bits)
            elif self._movies is not None:
                yield self._train_fn(self._movies, rows, rows, bits, pool)
            else:
                yield self._train_fn(jnp.asarray(self._read_movies(idx)), jnp.arange(idx.size, dtype=jnp.int32), rows,
                                     bits, pool)

    # -- evaluation sets ----------------------------------------------------------------------

    def _eval(self, part: str, condition: str | None) -> EvalSet:
        from jaxmag.noise import parse_noise_spec

        spec = self.spec if condition is None else parse_noise_spec(condition.replace("_", ":", 1) if condition != "clean" else "clean")
        idx = self.indices[part]
        x = normalization.normalize(self._fixed_maps(idx, noisy=True, spec=spec), self.norm_stats)
        return EvalSet(x, self._labels[idx], idx, condition=spec.name)

    def val_set(self) -> EvalSet:
        """The validation split in the training condition, with the fixed (measures-file) noise."""
        return self._eval("val", None)

    def test_set(self, condition: str | None = None) -> EvalSet:
        """The test split in ``condition`` (default: the training condition), fixed noise."""
        return self._eval("test", condition)

    def describe(self) -> dict:
        return {
            "kind": "movies",
            "path": str(self.path.resolve()),
            "labels_sha256": self.labels_sha256,
            "num_samples": self.shape[0],
            "image_shape": list(self.shape[1:]),
            "components": self.components,
            "augment": self.augment,
            "fresh_noise": self.fresh_noise,
            "noise_seed": self.noise_seed,
            "stream": self.stream,
        }


@functools.partial(jax.jit, static_argnames=("spec", "kernel"))
def _fixed_kernel(movies, run_index, seed, *, spec, kernel):
    return kernel(movies, spec, seed, run_index)
