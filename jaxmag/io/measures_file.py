"""Measure maps of a whole simulated dataset, streamed in chunks, resumable.

Input (written by ``jaxmag simulate``): ``/m`` float (N, T, C, ny, nx) with root attribute
``components`` (e.g. ``"xz"``), ``/labels`` uint8 (N, ny, nx), ``/done`` bool (N,), optional
``/run_index`` (N,) (global run index of each row; default the row number), root attributes
``config`` (TOML text) and ``seed``.

Output: ``/<condition>/<measure>/<component>`` float32 (N, ny, nx) for every condition
(``clean`` always, then e.g. ``gaussian_1e-2``), ``/<condition>/done`` bool (N,), ``/labels``
copied as stored, and root attributes with the measure options, the noise seed and the
source's config hash. Maps of runs not yet computed hold NaN.

**Recorded films** (``recording``, a ``jaxmag.recording.RecordingPlan``: the config's
``[instrument]``): the maps are those of what the detector records of each run, the calibrated
record ŝ (units of Ms), the one component ``"p"`` (``jaxmag.channels.PROBE_COMPONENT``), at
the detector's pixel shape ``(N, ny_pix, nx_pix)``; ``/labels`` are the labels binned onto the
pixels (``jaxmag.recording.pixel_labels``: 0/1) and the root attribute ``recording`` (JSON: the
instrument, its calibration, the cell and pixel grids, the films' components, the key rule)
says so. Run ``r`` is recorded once, with ``split(fold_in(fold_in(key(noise_seed),
RECORD_STREAM), r))[0]`` (``fixed_records``: the fixed records of
``jaxmag.learn.sources.recorded.RecordedSource`` too), and every condition's measurement noise
is added to that record with the usual keying (component ``"p"``): ``clean`` is the detector's
own shot and read noise only.

Every dataset has ``axes`` (``run,y,x``) and ``units`` attributes (``1``: the maps of m are
dimensionless; latent entropy in nats), the maps also ``measure`` and ``component``; the root
has ``jaxmag_version``.

Runs are read ``chunk`` at a time, once for all conditions, so an interrupted job resumes where
it stopped (``resume=True``) and reproduces the same numbers, since each run's noise key depends
only on (noise seed, run index, condition). Crash safety is the dataset's
(``jaxmag.io.dataset``): the output is built complete (every condition, map and ``done`` mask,
maps NaN) under a temporary name and renamed into place; then, per chunk, the maps' bytes are
written at offsets fixed at creation (``jaxmag.io.atomic.RawFile``: pwrite, fsync, read back)
and only then the ``done`` flags, so HDF5 never changes the file after creation. A kill -9, a
full disk or Ctrl-C leaves a file that ``--resume`` continues; with ``force`` the new file is
written as ``NAME.incomplete.h5`` beside the old one and replaces it only when complete
(``jaxmag.io.rowfile``).

Reading: ``MeasuresFile(path)`` (layout, condition names, ``read(condition, channels, rows)``,
labels); ``write_maps`` writes a small file of given maps (tests, synthetic data) atomically.
Readers accept any file in this layout, also one without the root attributes.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from jaxmag import __version__
from jaxmag.channels import noisy_movie_maps
from jaxmag.io import rowfile
from jaxmag.io.atomic import create_hdf5
from jaxmag.io.dataset import FORMAT as DATASET_FORMAT, DatasetInfo, open_dataset, read_labels, read_movies
from jaxmag.io.errors import InputError, open_h5
from jaxmag.layout import measure_from_stored
from jaxmag.measures import MEASURES, MeasureOptions
from jaxmag.noise import CLEAN, NoiseSpec, condition_hash, parse_noise_spec
from jaxmag.progress import bar as progress_bar
from jaxmag.recording import PROBE_COMPONENT, RecordingPlan, pixel_labels, record_signal

FORMAT = "jaxmag-measures-1"
RECORD_STREAM = 0x5EC0  # folded into key(noise_seed) for the fixed record of every run (module docstring)
CELL_LABELS = "as stored in the dataset: 0 background, 1..4 defect blob id"
PIXEL_LABELS = "detector pixels: 1 where defect cells cover at least half of the pixel (jaxmag.recording.pixel_labels)"


def _source_info(path: Path) -> DatasetInfo:
    """The dataset to measure (``jaxmag.io.dataset.open_dataset``), which must also hold labels
    and the ``config`` it was simulated with."""
    info = open_dataset(path)
    if not info.has_labels:
        raise InputError(f"{path}: not a jaxmag dataset (missing /labels)")
    if info.config_text is None:
        raise InputError(f"{path}: not a jaxmag dataset (missing root attribute 'config')")
    return info


@functools.partial(jax.jit, static_argnames=("spec_kind", "components", "options", "measures"))
def _chunk_measures(m, run_index, seed, cond_hash, variance, *, spec_kind: str, components: str,
                    options: tuple[MeasureOptions, ...], measures: tuple[str, ...]):
    """(n, T, C, ny, nx) -> {measure: (n, C, ny, nx) float32}, noise keyed per (run, component).

    The noise is ``jaxmag.noise.add_measurement_noise`` (the keying rule the online generator
    shares), the maps ``jaxmag.channels.movie_maps``; ``options`` holds one ``MeasureOptions``
    per component. Only the kind is static: the conditions of one kind share a compiled kernel
    (seed, condition hash and variance are traced).
    """
    spec = CLEAN if spec_kind == "clean" else NoiseSpec(spec_kind, 1.0)  # variance passed traced
    maps = noisy_movie_maps(measure_from_stored(m), spec, seed, run_index, components, measures, options,
                            cond_hash=cond_hash, level=variance)
    return {k: v.astype(jnp.float32) for k, v in maps.items()}


def fixed_records(movies, run_index, noise_seed, plan: RecordingPlan) -> jax.Array:
    """The fixed record ŝ ``(n, T, ny_pix, nx_pix)`` float32 (units of Ms) of films ``movies (n, T,
    C, ny, nx)`` (stored layout, on cells) with run indices ``run_index (n,)``: run ``r`` recorded
    with ``split(fold_in(fold_in(key(noise_seed), RECORD_STREAM), r))[0]``, the key rule of
    ``RecordedSource``'s validation and test records, so both give the same record. Traceable."""
    base = jax.random.fold_in(jax.random.key(noise_seed), RECORD_STREAM)

    def one(r, film):
        k_rec, _ = jax.random.split(jax.random.fold_in(base, r))
        return record_signal(k_rec, film[None], plan)[0]

    return jax.vmap(one)(jnp.asarray(run_index), jnp.asarray(movies))


@functools.partial(jax.jit, static_argnames=("spec_kind", "plan", "options", "measures"))
def _chunk_record_measures(m, run_index, seed, cond_hash, variance, *, spec_kind: str, plan: RecordingPlan,
                           options: tuple[MeasureOptions, ...], measures: tuple[str, ...]):
    """(n, T, C, ny, nx) films -> {measure: (n, 1, ny_pix, nx_pix) float32}: the maps of the record
    ``fixed_records`` with the condition's measurement noise added to it (component ``"p"``)."""
    spec = CLEAN if spec_kind == "clean" else NoiseSpec(spec_kind, 1.0)  # variance passed traced
    s = fixed_records(m, run_index, seed, plan)
    maps = noisy_movie_maps(s[:, None], spec, seed, run_index, PROBE_COMPONENT, measures, options,
                            cond_hash=cond_hash, level=variance)
    return {k: v.astype(jnp.float32) for k, v in maps.items()}


def recording_attr(plan: RecordingPlan, film_components: str) -> str:
    """The root attribute ``recording`` (JSON) of a measures file of recorded films."""
    i = plan.instrument
    return json.dumps({
        "component": PROBE_COMPONENT,
        "film_components": film_components,
        "instrument": {k: getattr(i, k) for k in i.__dataclass_fields__},
        "calibration": {"level": plan.calibration.level, "scale": plan.calibration.scale},
        "cell_shape": list(plan.cell_shape), "cell_m": list(plan.cell_m), "periodic": plan.periodic,
        "pixel_shape": list(plan.pixel_shape), "pixel_m": plan.pixel_m,
        "record_key": f"split(fold_in(fold_in(key(noise_seed), {RECORD_STREAM:#x}), run_index))[0]",
    }, sort_keys=True)


def _conditions(noise_specs: Sequence[NoiseSpec | str]) -> tuple[NoiseSpec, ...]:
    specs = [s if isinstance(s, NoiseSpec) else parse_noise_spec(s) for s in noise_specs]
    unique = {CLEAN.name: CLEAN}
    for s in specs:
        unique.setdefault(s.name, s)
    return tuple(unique.values())


def _shared_options(by_comp: Sequence[MeasureOptions]) -> dict[str, Any]:
    """The options all components share (the fixed ranges, which may differ, are stored apart)."""
    shared = [{k: v for k, v in o.kwargs().items() if k != "fixed_range"} for o in by_comp]
    if any(s != shared[0] for s in shared):
        raise ValueError(f"the components' measure options may differ only in fixed_range, got {list(by_comp)}")
    return shared[0]


def _root_attrs(options: dict[str, Any], measures: tuple[str, ...], components: str, source_hash: str,
                seed: int, fixed_ranges: dict[str, list[float]]) -> dict[str, Any]:
    return {
        "fixed_ranges": json.dumps(fixed_ranges, sort_keys=True),
        "format": FORMAT,
        "measures": ",".join(measures),
        "components": components,
        "measure_options": json.dumps(options, sort_keys=True),
        "source_config_hash": source_hash,
        "noise_seed": int(seed),
        "latent_entropy_definition": "jaxmag: plug-in H(s[t+lag] | s[t]) in nats (docs/measures.md)",
    }


def _check_resume(out: h5py.File, out_path: Path, expected: dict[str, Any], shape: tuple[int, int, int]) -> None:
    for key, value in expected.items():
        stored = out.attrs.get(key)
        if isinstance(stored, bytes):
            stored = stored.decode()
        if isinstance(stored, np.generic):
            stored = stored.item()
        if stored != value:
            raise ValueError(f"{out_path}: cannot resume: attribute '{key}' is {stored!r} in the file but "
                             f"{value!r} now (use --force to start over)")
    if "labels" not in out or out["labels"].shape != shape:
        raise ValueError(f"{out_path}: cannot resume: /labels missing or not of shape {shape}")


def _preallocated(group: h5py.Group, name: str, data=None, *, shape=None, dtype=None, fill=None,
                  axes: str = "run,y,x", units: str = "1", **attrs) -> h5py.Dataset:
    """A contiguous dataset whose file space is allocated (and filled) now: rows sit at fixed offsets."""
    shape = np.shape(data) if data is not None else shape
    dtype = np.asarray(data).dtype if data is not None else dtype
    d = rowfile.preallocated(group, name, shape, dtype, fill=fill)
    if data is not None:
        d[...] = data
    d.attrs["axes"] = axes
    d.attrs["units"] = units
    for key, value in attrs.items():
        d.attrs[key] = value
    return d


def _write_skeleton(out: h5py.File, attrs: dict[str, Any], labels: np.ndarray, conditions: Sequence[NoiseSpec],
                    measures: tuple[str, ...], components: str, meaning: str = CELL_LABELS) -> None:
    """The whole output file, every map NaN and every run not done."""
    out.attrs.update(attrs)
    N, ny, nx = labels.shape
    _preallocated(out, "labels", labels, meaning=meaning)
    for spec in conditions:
        group = out.create_group(spec.name, track_order=False)
        group.attrs["kind"] = spec.kind
        group.attrs["variance"] = float(spec.level)
        _preallocated(group, "done", shape=(N,), dtype=bool, fill=False, axes="run")
        for m in measures:
            for c in components:
                _preallocated(group, f"{m}/{c}", shape=(N, ny, nx), dtype=np.float32, fill=np.nan,
                              units="nats" if m == "latent_entropy" else "1", measure=m, component=c)


_RESUME_HINT = "free some space and rerun the same command with --resume (finished chunks are kept)"


def compute_measures_file(
    dataset_path: str | Path,
    out_path: str | Path,
    noise_specs: Sequence[NoiseSpec | str] = (),
    *,
    options: Mapping[str, MeasureOptions],
    noise_seed: int,
    source_hash: str,
    measures: Sequence[str] = MEASURES,
    chunk: int = 16,
    resume: bool = False,
    force: bool = False,
    allow_partial: bool = False,
    progress: bool = True,
    recording: RecordingPlan | None = None,
) -> Path:
    """Compute ``/<condition>/<measure>/<component>`` maps of every finished run; returns ``out_path``.

    ``noise_specs``: conditions besides ``clean`` (``NoiseSpec`` or text like ``"gaussian:1e-2"``).
    ``options``: ``{component: MeasureOptions}`` for (at least) the dataset's components;
    ``noise_seed`` keys the noise; ``source_hash`` (the dataset's config hash) is recorded and
    checked on resume. ``jaxmag.assemble.compute_measures_file`` takes these from a config.
    Refuses an existing ``out_path`` unless ``resume`` (continue, same options) or ``force``
    (start over); refuses unfinished runs unless ``allow_partial`` (they are skipped).
    ``recording``: the instrument on the dataset's grid (recording the dataset's components):
    the maps are then those of each run's record, component ``"p"`` only, on the detector's
    pixels (module docstring); ``options`` needs ``"p"``.
    """
    dataset_path, out_path = Path(dataset_path), Path(out_path)
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of runs, got {chunk}")
    if resume and force:
        raise ValueError("choose one of resume (continue the output) and force (overwrite it)")
    if not dataset_path.exists():
        raise FileNotFoundError(f"dataset not found: {dataset_path}")
    if dataset_path.resolve() == out_path.resolve():
        raise ValueError("the output file must differ from the dataset")
    conditions = _conditions(noise_specs)
    measures = tuple(dict.fromkeys(measures))
    src = _source_info(dataset_path)
    components, (N, T, _, ny, nx), done = src.components, src.shape, src.done
    if recording is not None:
        _check_recording(recording, src)
        components, (ny, nx) = PROBE_COMPONENT, recording.pixel_shape
    seed = int(noise_seed)
    missing = [c for c in components if c not in options]
    if missing:
        raise ValueError(f"no measure options for component {missing[0]!r} (options are for {', '.join(options)})")
    by_comp = tuple(options[c] for c in components)
    for opts in by_comp:
        opts.check(T, measures)
    shared = _shared_options(by_comp)
    if not done.all() and not allow_partial:
        missing = np.flatnonzero(~done)
        raise ValueError(f"{dataset_path}: {missing.size} of {N} runs are not done (first: run {missing[0]}); "
                         "finish the dataset or pass --allow-partial to skip them")
    if not done.any():
        raise ValueError(f"{dataset_path}: no finished runs to measure")
    attrs = _root_attrs(shared, measures, components, source_hash, seed,
                        {c: list(o.fixed_range) for c, o in zip(components, by_comp)})
    if recording is not None:  # only then: the attributes (and resume checks) of other files stay as they were
        attrs["recording"] = recording_attr(recording, src.components)
    work = _prepare_output(out_path, resume, force, attrs, conditions, measures, components, (N, ny, nx),
                           dataset_path, recording)
    _stream(src, work, conditions, seed, measures, by_comp, chunk, progress, recording)
    # a --force run: replace the old file only now that the new one is complete
    return rowfile.promote(work, out_path)


def _check_recording(plan: RecordingPlan, src: DatasetInfo) -> None:
    """The plan must record the dataset's films: its components and grid."""
    if plan.components != src.components or plan.cell_shape != src.image_shape:
        raise ValueError(f"{src.path}: films of components {src.components!r} on {src.image_shape[0]} x "
                         f"{src.image_shape[1]} cells, but the recording plan is for components {plan.components!r} "
                         f"on {plan.cell_shape[0]} x {plan.cell_shape[1]} cells")


def _prepare_output(out_path: Path, resume: bool, force: bool, attrs: dict[str, Any],
                    conditions: Sequence[NoiseSpec], measures: tuple[str, ...], components: str,
                    shape: tuple[int, int, int], dataset_path: Path, recording: RecordingPlan | None = None) -> Path:
    """The file to write: checked for ``resume``, else created complete (atomically)."""
    staging = rowfile.staging_path(out_path)
    rowfile.refuse_folder(out_path, "measures.h5")
    if resume and (out_path.exists() or staging.exists()):
        work = rowfile.resume_target(out_path)
        with open_h5(work, "jaxmag measures file") as out:
            if out.attrs.get("format") != FORMAT:
                raise ValueError(f"{work}: cannot resume: not a jaxmag measures file")
            _check_resume(out, work, attrs, shape)
            stored = _stored_conditions(out, work, measures, components)
        added = [spec for spec in conditions if spec.name not in stored]
        if added:
            work = _with_added_conditions(work, staging, added, measures, components, shape)
        return work
    # the skeleton fills every map with NaN at creation, so all of its bytes are written then
    maps = len(conditions) * (len(measures) * len(components) * 4 * int(np.prod(shape)) + shape[0])
    labels = read_labels(dataset_path)
    meaning = CELL_LABELS
    if recording is not None:
        labels, meaning = np.asarray(pixel_labels(labels, recording), np.uint8), PIXEL_LABELS
    attrs = {**attrs, "source": str(dataset_path), "jaxmag_version": __version__}
    return rowfile.create(out_path,
                          lambda out: _write_skeleton(out, attrs, labels, conditions, measures, components, meaning),
                          force=force, example="measures.h5", eager_bytes=maps + labels.nbytes)


def _stored_conditions(out: h5py.File, path: Path, measures: tuple[str, ...], components: str) -> list[str]:
    """The conditions of a file being resumed, each checked to hold every map asked for."""
    names = [name for name in out if name != "labels"]
    for name in names:
        for m in measures:
            for c in components:
                if f"{name}/{m}/{c}" not in out:
                    raise ValueError(f"{path}: cannot resume: it has no /{name}/{m}/{c} (use --force to start over)")
    return names


def _with_added_conditions(work: Path, staging: Path, added: Sequence[NoiseSpec], measures: tuple[str, ...],
                           components: str, shape: tuple[int, int, int]) -> Path:
    """A resumed file that lacks some conditions (``[noise]`` changed since it was written):
    its content and the new, empty conditions are written to the staging file, created
    complete and atomically, so the finished file stays as it was until the new one replaces
    it at the end. Returns the staging file, which the streaming then continues."""
    with open_h5(work, "jaxmag measures file") as old:
        attrs = dict(old.attrs)
        kept = [(name, old[name].attrs["kind"], float(old[name].attrs["variance"])) for name in old if name != "labels"]
        labels = np.asarray(old["labels"][...])
        meaning = old["labels"].attrs.get("meaning", CELL_LABELS)
        meaning = meaning.decode() if isinstance(meaning, bytes) else str(meaning)
    specs = [NoiseSpec(kind, variance) if kind != "clean" else CLEAN for _, kind, variance in kept]
    specs += [s for s in added if s.name not in {name for name, _, _ in kept}]
    per_map = 4 * int(np.prod(shape))
    eager = len(specs) * (len(measures) * len(components) * per_map + shape[0]) + labels.nbytes
    target = staging if work != staging else staging.with_name(staging.stem + ".grow" + staging.suffix)

    def fill(out: h5py.File) -> None:
        _write_skeleton(out, attrs, labels, specs, measures, components, meaning)
        with open_h5(work, "jaxmag measures file") as old:
            for name, _, _ in kept:  # one map at a time: paper-scale files need not fit in memory twice
                out[f"{name}/done"][...] = old[f"{name}/done"][...]
                for m in measures:
                    for c in components:
                        out[f"{name}/{m}/{c}"][...] = old[f"{name}/{m}/{c}"][...]

    create_hdf5(target, fill, eager_bytes=eager, hint=_RESUME_HINT)
    # resuming an interrupted --force run that itself gains conditions: grown beside it, then moved
    return rowfile.promote(target, staging)


def _done_masks(path: Path, conditions: Sequence[NoiseSpec]) -> np.ndarray:
    """``(conditions, N)`` bool: which runs of the output already hold each condition's maps."""
    with open_h5(path, "jaxmag measures file") as f:
        return np.stack([np.asarray(f[f"{spec.name}/done"][...], bool) for spec in conditions])


def _stream(src: DatasetInfo, work: Path, conditions, seed, measures, by_comp, chunk, progress,
            recording: RecordingPlan | None = None) -> None:
    components = src.components if recording is None else PROBE_COMPONENT
    names = [f"{spec.name}/done" for spec in conditions]
    names += [f"{spec.name}/{m}/{c}" for spec in conditions for m in measures for c in components]
    pending = src.done & ~_done_masks(work, conditions)  # (conditions, N)
    out = rowfile.RowWriter(work, names, what="jaxmag measures file", hint=_RESUME_HINT)
    try:
        todo = np.flatnonzero(pending.any(axis=0))
        # Noise keys use the global run index (files written in parts hold rows run_start..), so a
        # run gets the same noise in a part file and in the merged dataset.
        run_ids = src.run_index
        bar = progress_bar(int(pending.sum()), unit="run", desc="measures", enabled=progress)
        try:
            for start in range(0, todo.size, chunk):
                idx = todo[start:start + chunk]
                m = read_movies(src.path, idx)  # sorted indices: one h5py read per chunk
                # Pad the last chunk to the full size so every chunk reuses one compiled kernel.
                pad = chunk - idx.size
                padded_idx = run_ids[np.concatenate([idx, np.repeat(idx[-1:], pad)])]
                m = np.concatenate([m, np.repeat(m[-1:], pad, axis=0)]) if pad else m
                finished = []
                for ci, spec in enumerate(conditions):
                    rows = pending[ci, idx]
                    if not rows.any():
                        continue
                    if recording is None:
                        maps = _chunk_measures(jnp.asarray(m), jnp.asarray(padded_idx, jnp.uint32), seed,
                                               condition_hash(spec), spec.level, spec_kind=spec.kind,
                                               components=components, options=by_comp, measures=measures)
                    else:
                        maps = _chunk_record_measures(jnp.asarray(m), jnp.asarray(padded_idx, jnp.uint32), seed,
                                                      condition_hash(spec), spec.level, spec_kind=spec.kind,
                                                      plan=recording, options=by_comp, measures=measures)
                    maps = {k: np.asarray(v)[: idx.size] for k, v in maps.items()}
                    for name in measures:
                        for c_i, comp in enumerate(components):
                            out.put(f"{spec.name}/{name}/{comp}", idx[rows], maps[name][rows, c_i])
                    finished.append((spec, idx[rows]))
                out.commit()  # the maps are on disk and read back ...
                for spec, rows in finished:
                    out.put(f"{spec.name}/done", rows, np.ones(rows.size, bool))
                out.commit()  # ... before they are marked done
                bar.update(sum(int(rows.size) for _, rows in finished))
        finally:
            bar.close()
    finally:
        out.close()


# -- reading ---------------------------------------------------------------------------------------

Layout = dict[str, dict[str, list[str]]]  # {condition: {measure: [components]}}


def resolve_condition(available: Sequence[str], spec: str) -> str:
    """Map ``"clean"``, ``"gaussian_1e-2"`` or ``"gaussian:1e-2"`` to one of the condition
    group names ``available``.

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


def describe_layout(layout: Layout) -> str:
    """One line: ``clean (mean:x/z, std:x/z); gaussian_1e-2 (...)``."""
    parts = []
    for cond, measures in sorted(layout.items()):
        inner = ", ".join(f"{m}:{'/'.join(c)}" for m, c in sorted(measures.items()))
        parts.append(f"{cond} ({inner or 'empty'})")
    return "; ".join(parts) or "nothing"


def _layout(f: h5py.File) -> Layout:
    out: Layout = {}
    for cond, group in f.items():
        if isinstance(group, h5py.Group):
            out[cond] = {m: sorted(g.keys()) for m, g in group.items() if isinstance(g, h5py.Group)}
    return out


class MeasuresFile:
    """A measures file opened for reading: its layout is read once here, the maps per ``read``
    (each call opens the file for the time of the read).

    Attributes: ``path``; ``shape`` ``(N, ny, nx)`` of ``/labels``; ``layout``
    ``{condition: {measure: [components]}}``; ``conditions`` (group names, file order).
    Raises ``InputError`` for a missing, unreadable or non-HDF5 file, and ``ValueError`` for a
    simulated dataset passed instead (it says which command makes a measures file) or a file
    without ``/labels`` (N, ny, nx).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open_h5(self.path, "measures file") as f:
            if f.attrs.get("format") == DATASET_FORMAT:
                raise ValueError(f"{self.path} is a simulated dataset, not a measures file: run "
                                 f"`jaxmag measures {self.path} --out measures.h5` and pass that file")
            if "labels" not in f or not isinstance(f["labels"], h5py.Dataset):
                raise ValueError(f"measures file {self.path} has no /labels dataset")
            if f["labels"].ndim != 3:
                raise ValueError(f"/labels in {self.path} must be (N, ny, nx), got shape {f['labels'].shape}")
            self.shape: tuple[int, int, int] = tuple(f["labels"].shape)
            self.layout: Layout = _layout(f)

    @property
    def conditions(self) -> tuple[str, ...]:
        return tuple(self.layout)

    def describe_layout(self) -> str:
        return describe_layout(self.layout)

    def resolve_condition(self, spec: str) -> str:
        """The group name of condition ``spec`` (``"clean"``, ``"gaussian:1e-2"``, ``"gaussian_0.01"``)."""
        return resolve_condition(self.conditions, spec)

    def check(self, condition: str, channels: Sequence[tuple[str, str]]) -> None:
        """``ValueError`` naming what is missing unless ``condition`` holds every ``(measure, component)``."""
        have = self.layout.get(condition, {})
        missing = [f"/{condition}/{m}/{c}" for m, c in channels if c not in have.get(m, [])]
        if condition not in self.layout or missing:
            raise ValueError(f"measures file {self.path} lacks {', '.join(missing) or '/' + condition} "
                             f"(it has: {self.describe_layout()})")

    def read(self, condition: str, channels: Sequence[tuple[str, str]], rows=None, *, dtype=np.float32) -> np.ndarray:
        """Maps ``(len(rows), ny, nx, C)`` (default all rows) of the ``channels`` ``((measure,
        component), ...)`` in condition ``condition`` (a group name: see ``resolve_condition``),
        stacked in order. ``ValueError`` for a missing map, one whose shape differs from
        ``/labels``, and NaN or inf among the rows read (runs not measured yet)."""
        self.check(condition, channels)
        idx = slice(None) if rows is None else np.asarray(rows, np.int64)
        chans = []
        with open_h5(self.path, "measures file") as f:
            for m, c in channels:
                ds = f[condition][m][c]
                if tuple(ds.shape) != self.shape:
                    raise ValueError(f"/{condition}/{m}/{c} in {self.path} has shape {tuple(ds.shape)} "
                                     f"but /labels has {self.shape}")
                chans.append(np.asarray(ds[...], dtype)[idx])  # whole maps, then any rows in any order
        x = np.stack(chans, axis=-1)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"measures file {self.path} has NaN or inf in condition {condition}")
        return x

    def labels(self, rows=None) -> np.ndarray:
        """``/labels`` of ``rows`` (default all) as stored: ``(len(rows), ny, nx)`` uint8, 0
        background, 1..4 defect blob id (``> 0`` is the defect mask)."""
        with open_h5(self.path, "measures file") as f:
            labels = np.asarray(f["labels"][...])
        return labels if rows is None else labels[np.asarray(rows, np.int64)]


def write_maps(path: str | Path, labels: np.ndarray, maps: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]) -> Path:
    """Write a measures file of given maps atomically (``jaxmag.io.atomic.create_hdf5``):
    ``/labels`` and ``/<condition>/<measure>/<component>`` from ``maps[condition][measure][component]``,
    each ``(N, ny, nx)`` as given (no attributes, no ``done`` masks: every run is complete).
    For tests and synthetic data; ``compute_measures_file`` writes the files of real datasets."""
    labels = np.asarray(labels)

    def fill(f: h5py.File) -> None:
        f.create_dataset("labels", data=labels)
        for cond, by_measure in maps.items():
            for m, by_comp in by_measure.items():
                for c, data in by_comp.items():
                    f.create_dataset(f"{cond}/{m}/{c}", data=np.asarray(data))

    nbytes = labels.nbytes + sum(np.asarray(d).nbytes for bm in maps.values() for bc in bm.values() for d in bc.values())
    return create_hdf5(path, fill, eager_bytes=nbytes)
