"""``RecordedSource``: films recorded by an instrument, made into every training batch on the device.

Per training batch, in one jitted function: gather the batch's clean films (cells, the stored
layout), apply a random exact symmetry of the film (``jaxmag.symmetry``: component signs and
pixel moves on the *cells*, before the instrument, since blurring and binning commute with
neither shifts nor flips of a non-integer pixel grid), record them (``jaxmag.recording``: probe
projection, PSF, detector pixels, fresh shot and read noise, calibration to units of Ms), add an
optional measurement noise to the record, compute the measures of the record (component ``p``)
and normalise them; the labels are moved with the cells and binned onto the detector pixels.

Sampled batches: the mean and std maps of a record depend on each pixel's temporal mean and spread
of the optical signal (``jaxmag.channels.gaussian_sufficient_stats``) and on the detector's noise,
which in its normal limit (``jaxmag.instrument.NORMAL_LIMIT_PHOTONS``) is Gaussian with variance
``(gain² I0 (1 + c o) + read² + 1/12) / scale²`` in units of Ms. Where that holds (mean/std inputs
only, every pixel in the normal limit, no saturation, whole-pixel moves that commute with the
optics), training batches are drawn from per-film statistics computed once for every sign pattern
the film's symmetries give the components (``jaxmag.channels.sample_gaussian_maps``: three draws
per pixel, not T frames), the variance taken at the pixel's mean level (its frame-to-frame change,
a fraction c·std(o) ≈ 2 % of it, is neglected), and periodic shifts drawn in whole pixels. Any
other case records every frame.

Keys: training step ``s`` of an epoch whose key is ``k`` draws everything from ``fold_in(k, s)``
(a pure function of the seed, epoch and step, so resume is exact). The validation and test sets
are recorded once, film ``r`` with ``fold_in(key(noise_seed), r)``; their Dice is comparable
across runs. The normalisation statistics are those of the recorded training films (a detector
has no clean record), computed once with the same fixed keys.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxmag.channels import (PROBE_COMPONENT, Channel, gaussian_sufficient_stats, movie_maps, sample_gaussian_maps,
                             stack_channels)
from jaxmag.instrument import NORMAL_LIMIT_PHOTONS
from jaxmag.io.dataset import read_labels, read_movies
from jaxmag.learn import normalization, sharding
from jaxmag.learn.classes import class_scheme, pixel_classes
from jaxmag.learn.sources import (open_movie_dataset, Batch, EvalSet, batch_mesh, check_norm_stats, check_train_size, input_channels,
                                  labels_digest, split_of)
from jaxmag.learn.splits import epoch_order
from jaxmag.measures import MeasureOptions
from jaxmag.noise import CLEAN, NoiseSpec, apply_noise, parse_noise_spec
from jaxmag.recording import RecordingPlan, pixel_labels, record_signal
from jaxmag.symmetry import film_symmetries, move_channel_pixels

EVAL_STREAM = 0x5EC0  # folded into the noise seed's key for the fixed evaluation records


def recorded_maps(key: jax.Array, movies: jax.Array, plan: RecordingPlan, spec: NoiseSpec, measures: tuple[str, ...],
                  options: tuple[MeasureOptions, ...], channels: tuple[Channel, ...]) -> jax.Array:
    """Films ``(B, T, C, ny, nx)`` -> raw channel maps ``(B, ny_pix, nx_pix, K)`` of one record each:
    the instrument (``record_signal`` with the first half of ``key``), then ``spec``'s noise (the
    second half), then the ``measures`` of the record stacked as ``channels``."""
    k_rec, k_noise = jax.random.split(key)
    s = record_signal(k_rec, movies, plan)
    if spec.kind != "clean":
        s = apply_noise(s, spec, k_noise)
    return stack_channels(movie_maps(s[:, None], measures, options), channels, PROBE_COMPONENT)


def fixed_record_maps(noise_seed: int, movies: jax.Array, rows: jax.Array, **maps_kw) -> jax.Array:
    """The fixed evaluation records: film ``rows[i]`` (``movies[i]``) recorded with
    ``fold_in(fold_in(key(noise_seed), EVAL_STREAM), rows[i])``, through ``recorded_maps(**maps_kw)``.
    Any source or plan with the same seed, films and instrument gets the same draws."""
    base = jax.random.fold_in(jax.random.key(noise_seed), EVAL_STREAM)
    keys = jax.vmap(lambda r: jax.random.fold_in(base, r))(rows)
    return jax.vmap(lambda k, m: recorded_maps(k, m[None], **maps_kw)[0])(keys, movies)


class RecordedSource:
    """Training data from clean films seen through an instrument (module docstring).

    Args:
        movies: clean films ``(N, T, C, ny, nx)`` on cells, the stored layout.
        labels: ``(N, ny, nx)`` cell labels, blob ids (0 background).
        plan: the instrument on the films' grid (``jaxmag.recording.recording_plan``; its
            ``components`` are the movies' C axis).
        inputs: ``((measure, "p"), ...)``: measures of the recorded signal.
        measure_options: ``{"p": MeasureOptions}``.
        noise: measurement noise added to the calibrated record (``"clean"`` default: the
            detector's own shot and read noise only).
        indices: ``{"train", "val", "test"}`` film indices (else ``split``/``seed``).
        augment: random exact symmetries per training sample.
        easy_axis: picks the film's symmetries.
        norm_stats: given, else from the recorded training films.
        classes, num_a: the class scheme of the labels (``jaxmag.learn.classes``): ``"binary"``
            (> 0; pixel labels ``jaxmag.recording.pixel_labels``) or ``"typed"`` (0/1/2 by blob
            group, ``num_a`` = ``[defects] num_a``; a pixel is a defect where defect cells cover
            half of it, of the class covering most of it: ``jaxmag.learn.classes.pixel_classes``).
    """

    def __init__(self, movies, labels, plan: RecordingPlan, inputs, measure_options: Mapping[str, MeasureOptions], *,
                 noise: str = "clean", batch_size: int = 16, indices: dict | None = None,
                 split: tuple[float, float, float] = (0.70, 0.15, 0.15), seed: int = 0, noise_seed: int = 0,
                 augment: bool = True, easy_axis=(1.0, 0.0, 0.0), norm_stats: dict | None = None,
                 steps_per_epoch: int | None = None, mesh: Mesh | None = None, chunk: int = 8,
                 classes: str = "binary", num_a: int | None = None):
        movies = np.asarray(movies, np.float32)
        if movies.ndim != 5 or movies.shape[2] != len(plan.components) or movies.shape[3:] != plan.cell_shape:
            raise ValueError(f"films must be (N, T, {len(plan.components)}, {plan.cell_shape[0]}, {plan.cell_shape[1]}) "
                             f"for the recording plan, got {movies.shape}")
        labels = np.asarray(labels)
        if labels.shape != (movies.shape[0],) + plan.cell_shape:
            raise ValueError(f"labels must be (N, ny, nx) = {(movies.shape[0],) + plan.cell_shape}, got {labels.shape}")
        self.inputs, self.input_names = input_channels(inputs)
        others = sorted({c for _, c in self.inputs} - {PROBE_COMPONENT})
        if others:
            raise ValueError(f"a recorded movie has one signal, component {PROBE_COMPONENT!r}; inputs ask for {others}")
        self.plan, self.chunk = plan, int(chunk)
        self.shape_frames = int(movies.shape[1])
        self.batch_size, self.mesh = batch_mesh(batch_size, mesh)
        self.spec: NoiseSpec = CLEAN if noise == "clean" else parse_noise_spec(noise)
        self.train_condition = self.spec.name
        self.noise_seed, self.seed, self.augment = int(noise_seed), int(seed), bool(augment)
        self.shape = (movies.shape[0],) + plan.pixel_shape
        self.classes, self.num_a = class_scheme(classes).name, num_a
        self._labels_cells = class_scheme(classes).labels(labels, num_a).astype(np.int32)
        self.labels = np.asarray(self._pixel_labels(self._labels_cells), np.int32)
        self.labels_sha256 = labels_digest(self.labels)
        self.indices = split_of(movies.shape[0], split, self.seed, indices, "the films")
        check_train_size(self.indices["train"].size, self.batch_size)
        self.steps_per_epoch = int(steps_per_epoch or self.indices["train"].size // self.batch_size)
        self.symmetries = film_symmetries(plan.components, plan.periodic, easy_axis)
        self._measures = tuple(dict.fromkeys(m for m, _ in self.inputs))
        self._options = (measure_options[PROBE_COMPONENT],)
        for opts in self._options:
            opts.check(movies.shape[1], self._measures)
        self._channels = tuple(Channel(m, c) for m, c in self.inputs)
        self._movies = jnp.asarray(movies)
        self._cell_labels = jnp.asarray(self._labels_cells)
        self._eval_cache: dict[str, np.ndarray] = {}
        self._fixed_fn = jax.jit(self._fixed_kernel)
        if norm_stats is None:
            norm_stats = normalization.compute_stats(self._fixed_maps(self.indices["train"]), list(self.input_names))
        self.norm_stats = check_norm_stats(norm_stats, self.input_names)
        bsh = sharding.batch_sharding(self.mesh)
        self._stats = self._sampling_stats()
        self._train_fn = jax.jit(self._make_batch if self._stats is None else self._sampled_batch, out_shardings=(bsh, bsh))

    @classmethod
    def from_dataset(cls, path: str | Path, inputs, measure_options: Mapping[str, MeasureOptions],
                     plan: RecordingPlan | Callable[[str], RecordingPlan], **kw) -> "RecordedSource":
        """The source of the films of a ``jaxmag simulate`` dataset (``/m``, ``/labels``, the
        ``components`` attribute), all read into memory. ``plan``: the recording plan, or a function
        of the dataset's components that builds it (``jaxmag.assemble.instrument_plan``).
        ``kw``: as ``RecordedSource``. The fixed records key film ``r`` by its row, which is its
        run index in a whole (not a part) dataset: the validation and test records are then those
        of the measures file's ``clean`` condition (``jaxmag.io.measures_file.fixed_records``)."""
        path = Path(path)
        info = open_movie_dataset(path)
        plan = plan if isinstance(plan, RecordingPlan) else plan(info.components)
        movies = read_movies(path, np.arange(info.num_rows))
        return cls(movies, read_labels(path), plan, inputs, measure_options, **kw)

    # -- the device functions -----------------------------------------------------------------

    def _pixel_labels(self, cell_labels):
        """Cell classes -> detector-pixel classes (NumPy or jax): ``pixel_labels`` for binary labels."""
        if self.classes == "binary":
            return pixel_labels(cell_labels, self.plan)
        return pixel_classes(cell_labels, self.plan, len(class_scheme(self.classes)))

    def _maps(self, key: jax.Array, movies: jax.Array) -> jax.Array:
        """Films ``(B, T, C, ny, nx)`` -> raw channel maps of their record ``(B, ny_pix, nx_pix, K)``."""
        return recorded_maps(key, movies, self.plan, self.spec, self._measures, self._options, self._channels)

    def _make_batch(self, movies, cell_labels, rows, key_bits):
        key = jax.random.wrap_key_data(key_bits)
        k_flip, k_shift, k_rec = jax.random.split(key, 3)
        m, lab = movies[rows], cell_labels[rows]
        if self.augment:
            codes, shifts = self.symmetries.draw(k_flip, k_shift, self.plan.cell_shape, (rows.shape[0],))
            m, lab = self.symmetries.augment_movies(m, lab, codes, shifts)
        x = self._maps(k_rec, m)
        return normalization.normalize(x, self.norm_stats), self._pixel_labels(lab).astype(jnp.int32)

    # -- sampled batches (module docstring) ---------------------------------------------------

    def _pixel_ratio(self) -> int | None:
        """Cells per pixel when whole-pixel moves commute with the optics (an integer ratio that tiles the grid)."""
        ratio = self.plan.pixel_m / self.plan.cell_m[1]
        k = int(round(ratio))
        fits = abs(ratio - k) < 1e-9 and all(n == k * p for n, p in zip(self.plan.cell_shape, self.plan.pixel_shape))
        return k if fits and abs(self.plan.pixel_m / self.plan.cell_m[0] - k) < 1e-9 else None

    def sampled(self) -> bool:
        """Whether training batches are drawn from per-film statistics (module docstring)."""
        return self._stats is not None

    def _sampling_stats(self):
        """``(mean, spread)`` of the optical record, ``(P, N, ny_pix, nx_pix)`` for every sign pattern
        p of the components, and the noise's ``(alpha, beta)`` (variance = alpha + beta · mean, units
        of Ms²); None where batches must record every frame."""
        i, cal = self.plan.instrument, self.plan.calibration
        if not (i.records_counts and set(self._measures) <= {"mean", "std"} and self.spec.kind in ("clean", "gaussian")
                and i.photons_per_pixel * (1 - abs(i.contrast)) >= NORMAL_LIMIT_PHOTONS and self._pixel_ratio()
                and not i.psf_image):  # a PSF image need not be mirror-symmetric: record the moved film
            return None
        top = i.gain * i.photons_per_pixel * (1 + abs(i.contrast)) + i.offset
        if top + 6 * (i.gain**2 * i.photons_per_pixel * (1 + abs(i.contrast)) + i.read_noise**2) ** 0.5 >= i.full_scale:
            return None  # saturation clips the counts: record them
        optics = dataclasses.replace(i, photons_per_pixel=0.0)
        plan = dataclasses.replace(self.plan, instrument=optics)
        C = len(self.plan.components)
        means, spreads = [], []
        for pattern in range(2**C):
            factors = jnp.asarray([-1.0 if pattern >> c & 1 else 1.0 for c in range(C)], jnp.float32)
            m_s, s_s = [], []
            for start in range(0, self._movies.shape[0], self.chunk):
                o = record_signal(jax.random.key(0), self._movies[start:start + self.chunk] * factors[:, None, None], plan)
                mean, spread = gaussian_sufficient_stats(o[:, None])
                m_s.append(mean[:, 0])
                s_s.append(spread[:, 0])
            means.append(jnp.concatenate(m_s))
            spreads.append(jnp.concatenate(s_s))
        # the calibrated record: mean A' + B' o, noise variance (ADU²) / scale²
        b = i.gain * i.photons_per_pixel * i.contrast / cal.scale
        a = (i.gain * i.photons_per_pixel + i.offset - cal.level) / cal.scale
        alpha = (i.gain**2 * i.photons_per_pixel + i.read_noise**2 + 1 / 12) / cal.scale**2
        beta = i.gain**2 * i.photons_per_pixel * i.contrast / cal.scale**2
        if self.spec.kind == "gaussian":
            alpha += self.spec.level
        return jnp.stack(means), jnp.stack(spreads), (a, b, alpha, beta)

    def _sampled_batch(self, movies, cell_labels, rows, key_bits):
        del movies, cell_labels  # the statistics stand for them
        means, spreads, (a, b, alpha, beta) = self._stats
        key = jax.random.wrap_key_data(key_bits)
        k_flip, k_shift, k_rec = jax.random.split(key, 3)
        B = rows.shape[0]
        labels = jnp.asarray(self.labels)[rows]
        pattern = jnp.zeros((B,), jnp.int32)
        flips = shifts = None
        if self.augment:
            codes, cell_shifts = self.symmetries.draw(k_flip, k_shift, self.plan.cell_shape, (B,))
            negative = self.symmetries.component_factors(codes, jnp.float32) < 0  # (B, C)
            pattern = jnp.sum(negative * (2 ** jnp.arange(negative.shape[-1])), axis=-1).astype(jnp.int32)
            flips = self.symmetries.flips(codes)
            shifts = None if cell_shifts is None else cell_shifts // self._pixel_ratio()
        mean, spread = means[pattern, rows], spreads[pattern, rows]  # (B, ny_pix, nx_pix)
        mean_hat, spread_hat = a + b * mean, abs(b) * spread
        variance = alpha + beta * mean
        keys = jax.random.split(k_rec, B)[:, None]
        maps = sample_gaussian_maps(mean_hat[:, None], spread_hat[:, None], self.shape_frames, variance[:, None], keys,
                                    self._measures, self._options)
        x = stack_channels(maps, self._channels, PROBE_COMPONENT)
        if self.augment:
            x, labels = move_channel_pixels(x, labels, flips, shifts)
        return normalization.normalize(x, self.norm_stats), labels.astype(jnp.int32)

    def _fixed_kernel(self, movies, rows):
        return fixed_record_maps(self.noise_seed, movies, rows, plan=self.plan, spec=self.spec, measures=self._measures,
                                 options=self._options, channels=self._channels)

    def _fixed_maps(self, idx: np.ndarray) -> np.ndarray:
        """Raw maps ``(len(idx), ny_pix, nx_pix, K)`` of the fixed records of films ``idx``."""
        fn = self._fixed_fn
        out = []
        for start in range(0, idx.size, self.chunk):
            rows = jnp.asarray(idx[start:start + self.chunk], jnp.int32)
            out.append(np.asarray(fn(self._movies[rows], rows)))
        return np.concatenate(out) if out else np.zeros((0,) + self.shape[1:] + (len(self.inputs),), np.float32)

    # -- the DataSource interface -------------------------------------------------------------

    def train_batches(self, epoch: int, key: jax.Array) -> Iterator[Batch]:
        """``steps_per_epoch`` batches; step ``s`` draws its symmetries and noise from ``fold_in(key, s)``."""
        if jax.process_count() > 1:
            raise NotImplementedError("RecordedSource runs on one process")
        order = epoch_order(self.indices["train"], self.steps_per_epoch * self.batch_size, key)
        for s in range(self.steps_per_epoch):
            rows = jnp.asarray(order[s * self.batch_size:(s + 1) * self.batch_size], jnp.int32)
            yield self._train_fn(self._movies, self._cell_labels, rows, jax.random.key_data(jax.random.fold_in(key, s)))

    def _eval(self, part: str) -> EvalSet:
        idx = self.indices[part]
        if part not in self._eval_cache:
            self._eval_cache[part] = normalization.normalize(self._fixed_maps(idx), self.norm_stats)
        return EvalSet(self._eval_cache[part], self.labels[idx], idx, condition=self.train_condition)

    def val_set(self) -> EvalSet:
        """The validation films, each recorded once with its fixed key."""
        return self._eval("val")

    def test_set(self, condition: str | None = None) -> EvalSet:
        """The test films, recorded once with their fixed keys (``condition`` must be the training one)."""
        if condition not in (None, self.train_condition):
            raise ValueError(f"a recorded source tests in its own condition {self.train_condition!r}, not {condition!r}")
        return self._eval("test")

    def raw_maps(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """Unnormalised maps ``(n, ny_pix, nx_pix, K)`` and pixel labels of a split's fixed records (the baseline's inputs)."""
        idx = self.indices[part]
        return self._fixed_maps(idx), self.labels[idx]

    def describe(self) -> dict:
        i = self.plan.instrument
        return {
            "kind": "recorded",
            "labels_sha256": self.labels_sha256,
            "num_samples": self.shape[0],
            "image_shape": list(self.shape[1:]),
            "cell_shape": list(self.plan.cell_shape),
            "components": PROBE_COMPONENT,
            "film_components": self.plan.components,
            "instrument": {k: getattr(i, k) for k in i.__dataclass_fields__},
            "calibration": {"level": self.plan.calibration.level, "scale": self.plan.calibration.scale},
            "augment": self.augment,
            "noise": self.train_condition,
            "noise_seed": self.noise_seed,
            "sampled_batches": self.sampled(),
            **({} if self.classes == "binary" else {"classes": self.classes, "num_a": self.num_a}),
        }
