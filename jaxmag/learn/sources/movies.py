"""``MovieSource``: clean movies made into every training batch on the device.

Per training batch, in one jitted function: gather the batch's clean movies, apply a random
exact symmetry of the film (``jaxmag.symmetry``: flips with the component signs, cyclic shifts
on periodic films; ``augment``), add a noise realisation of the training condition, compute the
measure maps (``jaxmag.measures``) and normalise them with the clean-training statistics.

The movies are arrays (``MovieSource(movies, labels, components, ...)``: films simulated in
memory, as ``jaxmag detect`` does) or the movies of a ``jaxmag simulate`` dataset
(``MovieSource.from_dataset(path, ...)``, read through ``jaxmag.io.dataset``).

Noise keys: with ``fresh_noise`` the noise of run ``r`` at step ``s`` of an epoch whose data key
is ``k`` uses ``movie_noise_keys(seed_s, hash(condition), r)`` (``jaxmag.noise_pool``) with
``seed_s`` the first 32 bits of ``fold_in(k, s)``: a new draw every step, a pure function of
(seed, epoch, step), so resume is exact. Gaussian noise on mean/std inputs is then drawn from
the maps' exact sampling distribution (``jaxmag.channels.sampled_noisy_movie_maps``: three draws
per pixel, not T); any other noise from the epoch's pool (``noise_pool``, ``pooled_draws``).
Without it (the paper's protocol) every film keeps the measures file's one draw (``noise_seed``,
its run index), and an unaugmented run equals ``MeasuresSource`` on that file. Validation and
test sets always use those fixed draws (computed once), so their Dice is comparable across runs
and with the measures file.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxmag.channels import (
    Channel,
    gaussian_sufficient_stats,
    movie_maps_from_draws,
    noisy_movie_maps,
    sample_gaussian_maps,
    sampled_noisy_movie_maps,
    stack_channels,
)
from jaxmag.io.dataset import read_labels, read_movies
from jaxmag.layout import measure_from_stored
from jaxmag.learn import normalization, sharding
from jaxmag.learn.classes import class_scheme
from jaxmag.learn.sources import (
    open_movie_dataset,
    Batch,
    EvalSet,
    batch_mesh,
    check_norm_stats,
    check_train_size,
    input_channels,
    labels_digest,
    split_of,
)
from jaxmag.learn.splits import epoch_order
from jaxmag.measures import MEASURE_FUNCTIONS, MeasureOptions
from jaxmag.noise import CLEAN, NoiseSpec, condition_hash, parse_noise_spec
from jaxmag.noise.pool import movie_noise_keys, noise_pool, pooled_draws
from jaxmag.symmetry import FilmSymmetries, film_symmetries, move_channel_pixels

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
    x = measure_from_stored(movies)
    if draws is not None:
        return stack_channels(movie_maps_from_draws(x, spec, draws, measures, options), channels, components)
    kw = {} if cond_hash is None else {"cond_hash": cond_hash}
    maps_of = sampled_noisy_movie_maps if sampled else noisy_movie_maps
    maps = maps_of(x, spec, seed, run_index, components, measures, options, **kw)
    return stack_channels(maps, channels, components)


@functools.partial(jax.jit, static_argnames=("spec", "kernel"))
def _fixed_kernel(movies, run_index, seed, *, spec, kernel):
    return kernel(movies, spec, seed, run_index)


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


def _noise_spec(condition: str) -> NoiseSpec:
    """``"clean"``, ``"gaussian:1e-2"`` or a group name ``"gaussian_1e-2"`` as a ``NoiseSpec``."""
    return parse_noise_spec(condition.replace("_", ":", 1) if condition != "clean" else "clean")


# ---------------------------------------------------------------------------------------------
# where the clean movies are: host arrays, or a dataset file read batch by batch


class _HostMovies:
    """Movies ``(N, T, C, ny, nx)`` in host memory with the stored ``components``."""

    def __init__(self, movies, components: str):
        self.array = movies if hasattr(movies, "dtype") else np.asarray(movies)
        self.components = str(components)
        shape = tuple(np.shape(self.array))
        if len(shape) != 5 or shape[2] != len(self.components):
            raise ValueError(f"movies must be (N, T, C, ny, nx) with C = {len(self.components)} components "
                             f"({self.components}), got shape {shape}")
        self.shape, self.itemsize, self.origin = shape, np.dtype(self.array.dtype).itemsize, None

    def read(self, rows, components: str) -> np.ndarray:
        picks = [self.components.index(c) for c in components]
        rows = np.asarray(rows, np.int64)
        if rows.size == self.shape[0] and np.array_equal(rows, np.arange(rows.size)):
            return np.asarray(self.array[:, :, picks])
        return np.asarray(self.array[rows][:, :, picks])


class _FileMovies:
    """The movies of a dataset file, read on demand (``jaxmag.io.dataset.read_movies``)."""

    def __init__(self, info):
        self.path, self.components, self.shape = info.path, info.components, info.shape
        self.itemsize, self.origin = np.dtype(info.dtype).itemsize, info.path

    def read(self, rows, components: str) -> np.ndarray:
        return read_movies(self.path, rows, components)


class MovieSource:
    """Training data made on the device from clean movies (module docstring).

    Memory: the needed components of every movie (``N * T * C * ny * nx`` values) live on the
    device when they fit in ``device_budget_bytes`` (default: half the device memory); larger
    sets need ``stream=True`` (each batch's movies are sent from the host, or read from the
    dataset file by ``from_dataset``).

    Args:
        movies: clean movies ``(N, T, C, ny, nx)`` (float32 or float16), the stored layout.
        labels: ``(N, ny, nx)`` blob ids (0 background, ``1..num_a`` the "a" blobs, then the "b" ones).
        components: the letters of the movies' C axis (``"xz"``).
        inputs: ``((measure, component), ...)``.
        measure_options: ``{component: MeasureOptions}`` (``jaxmag.assemble.measure_options``).
        run_index: ``(N,)`` run indices keying the fixed noise (default ``arange(N)``).
        train_condition: ``"clean"`` or a noise spec (``"gaussian:1e-2"``).
        split, seed: fractions and seed of ``split_indices``; ``indices``: the split as given
            ``{"train", "val", "test"}`` index arrays instead (a stored or the caller's own).
        noise_seed: seed of the fixed draws (the measures file's, ``[noise] seed``).
        periodic: whether the film is periodic (cyclic shifts allowed).
        easy_axis: the film's easy axis (its magnetisation's direction), which picks the film's
            symmetries (``jaxmag.symmetry.film_symmetries``); default +x, the paper's film.
        augment, fresh_noise: random symmetries; a fresh noise draw every step.
        steps_per_epoch: batches per epoch (default: as many as the training films fill once).
        classes, num_a: the class scheme the labels are read with (``jaxmag.learn.classes``:
            ``"binary"``, labels > 0, the default; ``"typed"``, 0/1/2 by blob group, which needs
            ``num_a``, ``[defects] num_a``).
        norm_stats: stored statistics; computed from the clean training maps if ``None``.
    """

    def __init__(
        self,
        movies,
        labels,
        components: str,
        inputs: tuple[tuple[str, str], ...],
        measure_options: Mapping[str, MeasureOptions],
        *,
        run_index=None,
        train_condition: str = "clean",
        batch_size: int = 32,
        split: tuple[float, float, float] = (0.70, 0.15, 0.15),
        seed: int = 0,
        noise_seed: int = 0,
        periodic: bool = True,
        easy_axis: tuple[float, float, float] = (1.0, 0.0, 0.0),
        augment: bool = True,
        fresh_noise: bool = True,
        indices: dict | None = None,
        norm_stats: dict | None = None,
        steps_per_epoch: int | None = None,
        stream: bool = False,
        device_budget_bytes: int | None = None,
        mesh: Mesh | None = None,
        chunk: int = 16,
        classes: str = "binary",
        num_a: int | None = None,
    ):
        self.classes, self.num_a = class_scheme(classes).name, num_a
        store = movies if isinstance(movies, _FileMovies) else _HostMovies(movies, components)
        self.path = store.origin
        self.inputs, self.input_names = input_channels(inputs)
        self.batch_size, self.mesh = batch_mesh(batch_size, mesh)
        self.spec = self._training_spec(train_condition)
        self.train_condition = self.spec.name
        self.noise_seed, self.seed, self.periodic = int(noise_seed), int(seed), bool(periodic)
        self.augment, self.fresh_noise = bool(augment), bool(fresh_noise)
        self.stream, self.chunk = bool(stream), int(chunk)
        N, T, _, ny, nx = store.shape
        self.shape, self._num_frames = (N, ny, nx), T
        self._labels, self.run_index = self._check_labels(labels, run_index)
        self.labels_sha256 = labels_digest(self._labels)
        self.components = self._needed_components(store.components)
        self.symmetries: FilmSymmetries = film_symmetries(self.components, self.periodic, easy_axis)
        self._measures, self._options = self._measure_plan(measure_options)
        self._set_split(split, indices, steps_per_epoch)
        self._place_movies(store, device_budget_bytes)
        self._kernel = functools.partial(movie_measure_maps, components=self.components, measures=self._measures,
                                         options=self._options, channels=tuple(Channel(m, c) for m, c in self.inputs))
        if norm_stats is None:
            norm_stats = normalization.compute_stats(self._fixed_maps(self.indices["train"], noisy=False),
                                                     list(self.input_names))
        self.norm_stats = check_norm_stats(norm_stats, self.input_names)
        self._choose_batch_path()

    @classmethod
    def from_dataset(cls, path: str | Path, inputs: tuple[tuple[str, str], ...],
                     measure_options: Mapping[str, MeasureOptions], *, stream: bool = False, **kw) -> "MovieSource":
        """The source of the movies of a ``jaxmag simulate`` dataset (``/m``, ``/labels``, the
        ``components`` attribute, its run indices); ``stream``: read each batch's movies from the
        file instead of holding them all on the device. ``kw``: as ``MovieSource``."""
        path = Path(path)
        info = open_movie_dataset(path)
        movies = _FileMovies(info)
        return cls(movies, read_labels(path), info.components, inputs, measure_options, run_index=info.run_index,
                   stream=stream, **kw)

    # -- construction, step by step -----------------------------------------------------------

    @staticmethod
    def _training_spec(condition: str) -> NoiseSpec:
        try:
            return _noise_spec(condition)
        except ValueError as exc:
            raise ValueError(f"the movie source cannot make the training condition {condition!r}: {exc}") from None

    def _check_labels(self, labels, run_index) -> tuple[np.ndarray, np.ndarray]:
        """Class labels ``(N, ny, nx)`` int32 (``self.classes``) and run indices ``(N,)`` int64, checked
        against the movies."""
        labels = np.asarray(labels)
        if labels.shape != self.shape:
            raise ValueError(f"labels must be (N, ny, nx) = {self.shape} to match the movies, got {labels.shape}")
        run_index = np.arange(self.shape[0]) if run_index is None else np.asarray(run_index, np.int64)
        if run_index.shape != self.shape[:1]:
            raise ValueError(f"run_index must be ({self.shape[0]},), one per movie, got {run_index.shape}")
        return class_scheme(self.classes).labels(labels, self.num_a).astype(np.int32), run_index

    def _needed_components(self, stored: str) -> str:
        """The stored components the inputs read, in stored order (unknown measures refused)."""
        where = f"{self.path}" if self.path is not None else "the movies"
        for m, c in self.inputs:
            if m not in MEASURE_FUNCTIONS:
                raise ValueError(f"unknown measure {m!r}: expected one of {', '.join(MEASURE_FUNCTIONS)}")
            if c not in stored:
                raise ValueError(f"{where} stores the components {', '.join(stored)} only, so it cannot "
                                 f"give {m}:{c}; simulate with {c} among the stored components, or train on "
                                 "a measures file that has it")
        return "".join(c for c in stored if c in {c for _, c in self.inputs})

    def _measure_plan(self, measure_options: Mapping[str, MeasureOptions]) -> tuple[tuple, tuple]:
        """The measures the inputs need and one ``MeasureOptions`` per needed component, checked for T."""
        measures = tuple(dict.fromkeys(m for m, _ in self.inputs))
        missing = [c for c in self.components if c not in measure_options]
        if missing:
            raise ValueError(f"measure_options has no options for component {missing[0]!r}")
        by_comp = tuple(measure_options[c] for c in self.components)
        for opts in by_comp:
            opts.check(self._num_frames, measures)
        return measures, by_comp

    def _set_split(self, split, indices: dict | None, steps_per_epoch: int | None) -> None:
        what = str(self.path) if self.path is not None else "the movies"
        self.indices = split_of(self.shape[0], split, self.seed, indices, what)
        n_train = self.indices["train"].size
        check_train_size(n_train, self.batch_size)
        self.steps_per_epoch = n_train // self.batch_size if steps_per_epoch is None else int(steps_per_epoch)
        if self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")

    def _place_movies(self, store, device_budget_bytes: int | None) -> None:
        """Every movie on the device when it fits the budget, else (``stream``) read per batch."""
        N, ny, nx = self.shape
        self._store = store
        self.movie_bytes = N * self._num_frames * len(self.components) * ny * nx * store.itemsize
        budget = _device_budget_bytes() if device_budget_bytes is None else int(device_budget_bytes)
        if not self.stream and self.movie_bytes > budget:
            where = self.path if self.path is not None else "the movies"
            raise ValueError(
                f"the movies of {where} ({self.movie_bytes / 2**20:.0f} MiB for components {self.components}) "
                f"do not fit the device budget of {budget / 2**20:.0f} MiB; stream them from the file "
                "(MovieSource(..., stream=True) from Python) or train on fewer components"
            )
        self._movies = None if self.stream else jax.device_put(self._read_movies(np.arange(N)))

    def _choose_batch_path(self) -> None:
        """Which of the three batch functions ``train_batches`` calls (all draw the same symmetries
        and keys; ``_make_batch`` documents them)."""
        bsh = sharding.batch_sharding(self.mesh)
        self._train_fn = jax.jit(self._make_batch, out_shardings=(bsh, bsh))
        # Fresh Gaussian noise on mean/std inputs: the maps depend on each clean movie only
        # through its per-pixel (mean, |P x|) (jaxmag.channels.sample_gaussian_maps), computed
        # once here, so a batch never touches the movies (same batches as from the movies,
        # to float rounding).
        self._stats = None
        if self.fresh_noise and self.spec.kind == "gaussian" and set(self._measures) <= {"mean", "std"}:
            self._stats = self._clean_stats(np.arange(self.shape[0]))
            self._stats_fn = jax.jit(self._make_batch_from_stats, out_shardings=(bsh, bsh))
        # Any other fresh noise needs T frames of draws per sample, which cost more than the
        # U-Net step on CPU: draw one pool of B fields per epoch and give every sample a random
        # shift and sign of its slot's field (``pooled_draws``: the exact law per sample).
        self._pool_shape = None
        if self.fresh_noise and self._stats is None and self.spec.kind != "clean":
            self._pool_shape = (self.batch_size, len(self.components), self._num_frames, *self.shape[1:])
            self._pool_fn = jax.jit(noise_pool, static_argnums=1)

    # -- movies -------------------------------------------------------------------------------

    def _read_movies(self, idx: np.ndarray) -> np.ndarray:
        """Clean movies ``(len(idx), T, C, ny, nx)`` of the needed components."""
        return self._store.read(np.asarray(idx), self.components)

    def _movies_of(self, idx: np.ndarray):
        if self._movies is not None:
            return jnp.take(self._movies, jnp.asarray(idx), axis=0)
        return jnp.asarray(self._read_movies(idx))

    def _fixed_maps(self, idx: np.ndarray, *, noisy: bool, spec: NoiseSpec | None = None) -> np.ndarray:
        """Raw maps ``(len(idx), ny, nx, C)`` with the fixed (measures-file) noise of ``spec``."""
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
            movies = movies * self.symmetries.component_factors(symmetry[0], movies.dtype)[:, None, :, None, None]
        if pool is not None:
            x = self._kernel(movies, self.spec, None, run_index, draws=pooled_draws(pool, k_noise))
        else:
            seed = jax.random.bits(k_noise, (), jnp.uint32) if self.fresh_noise else jnp.uint32(self.noise_seed)
            # fresh draws need only the noise's distribution: the exact, cheaper sampled maps
            x = self._kernel(movies, self.spec, seed, run_index, sampled=self.fresh_noise)
        if symmetry is not None:
            x, labels = move_channel_pixels(x, labels, self.symmetries.flips(symmetry[0]), symmetry[1])
        return normalization.normalize(x, self.norm_stats), labels

    def _batch_draws(self, idx, key_bits):
        """What every training batch draws, whichever way its maps are made: the labels and run
        indices of ``idx``, the symmetry ``(codes, shifts)`` (``None`` without ``augment``) and
        the noise key, all from ``key_bits``."""
        labels = jnp.take(jnp.asarray(self._labels), idx, axis=0)
        run_index = jnp.take(jnp.asarray(self.run_index, jnp.uint32), idx)
        k_flip, k_shift, k_noise = jax.random.split(jax.random.wrap_key_data(key_bits), 3)
        if not self.augment:
            return labels, run_index, None, k_noise
        return labels, run_index, self.symmetries.draw(k_flip, k_shift, self.shape[1:], (idx.shape[0],)), k_noise

    def _clean_stats(self, idx: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """``gaussian_sufficient_stats`` of the clean movies ``idx``: two ``(len(idx), C, ny, nx)``."""
        stats = jax.jit(lambda m: gaussian_sufficient_stats(measure_from_stored(m)))
        parts = [stats(self._movies_of(idx[i:i + self.chunk])) for i in range(0, len(idx), self.chunk)]
        return tuple(jnp.concatenate([p[k] for p in parts]) for k in (0, 1))

    def _make_batch_from_stats(self, mean_all, spread_all, idx, key_bits):
        """``_make_batch`` from the clean statistics: the same keys, symmetries and noise law."""
        mean, spread = jnp.take(mean_all, idx, axis=0), jnp.take(spread_all, idx, axis=0)
        labels, run_index, symmetry, k_noise = self._batch_draws(idx, key_bits)
        if symmetry is not None:  # the mean is odd in the component signs, the spread even
            mean = mean * self.symmetries.component_factors(symmetry[0], mean.dtype)[:, :, None, None]
        seed = jax.random.bits(k_noise, (), jnp.uint32)
        keys = movie_noise_keys(seed, condition_hash(self.spec), run_index, self.components)
        maps = sample_gaussian_maps(mean, spread, self._num_frames, self.spec.level, keys, self._measures,
                                    self._options)
        x = stack_channels(maps, tuple(Channel(m, c) for m, c in self.inputs), self.components)
        if symmetry is not None:
            x, labels = move_channel_pixels(x, labels, self.symmetries.flips(symmetry[0]), symmetry[1])
        return normalization.normalize(x, self.norm_stats), labels

    def epoch_order(self, key: jax.Array) -> np.ndarray:
        """The training sample indices of an epoch, in order: the permutation of ``key``, followed
        (when ``steps_per_epoch`` batches need more) by those of ``splits.ORDER_STREAM``."""
        return epoch_order(self.indices["train"], self.steps_per_epoch * self.batch_size, key)

    def train_batches(self, epoch: int, key: jax.Array) -> Iterator[Batch]:
        """``steps_per_epoch`` batches; step ``s`` draws its augmentation and noise from ``fold_in(key, s)``
        (and, for pooled draws, its shifts of the epoch's pool ``noise_pool(key)``)."""
        if jax.process_count() > 1:
            raise NotImplementedError("MovieSource runs on one process; use MeasuresSource for several hosts")
        order = self.epoch_order(key)
        pool = None if self._pool_shape is None else self._pool_fn(key, self._pool_shape)
        for s in range(self.steps_per_epoch):
            idx = order[s * self.batch_size:(s + 1) * self.batch_size]
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
        spec = self.spec if condition is None else _noise_spec(condition)
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
            "path": None if self.path is None else str(Path(self.path).resolve()),
            "labels_sha256": self.labels_sha256,
            "num_samples": self.shape[0],
            "image_shape": list(self.shape[1:]),
            "components": self.components,
            "augment": self.augment,
            "fresh_noise": self.fresh_noise,
            "noise_seed": self.noise_seed,
            "stream": self.stream,
            **({} if self.classes == "binary" else {"classes": self.classes, "num_a": self.num_a}),
        }
