"""Measure maps of a whole simulated dataset, streamed in chunks, resumable.

Input (written by ``jaxmag simulate``): ``/m`` float (N, T, C, ny, nx) with root attribute
``components`` (e.g. ``"xz"``), ``/labels`` uint8 (N, ny, nx), ``/done`` bool (N,), optional
``/run_index`` (N,) (global run index of each row; default the row number), root attributes
``config`` (TOML text) and ``seed``.

Output: ``/<condition>/<measure>/<component>`` float32 (N, ny, nx) for every condition
(``clean`` always, then e.g. ``gaussian_1e-2``), ``/<condition>/done`` bool (N,), ``/labels``
copied as stored, and root attributes with the measure options, the noise seed and the
source's config hash. Maps of runs not yet computed hold NaN.

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
written as ``NAME.incomplete.h5`` beside the old one and replaces it only when complete.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxmag import __version__
from jaxmag.channels import noisy_movie_maps
from jaxmag.io.atomic import RawFile, create_hdf5, fsync_dir
from jaxmag.io.errors import InputError, open_h5
from jaxmag.layout import measure_from_stored
from jaxmag.measures import MEASURES, MeasureOptions
from jaxmag.noise import CLEAN, NoiseSpec, condition_hash, parse_noise_spec

FORMAT = "jaxmag-measures-1"


def _read_source(src: h5py.File, path: Path) -> tuple[str, tuple[int, ...]]:
    """Validate the dataset layout; return (its components, m's shape)."""
    if src.attrs.get("format") == FORMAT:
        raise InputError(f"{path} is a measures file; `jaxmag measures` reads a dataset written by `jaxmag simulate`")
    for name in ("m", "labels", "done"):
        if name not in src:
            raise InputError(f"{path}: not a jaxmag dataset (missing /{name})")
    if "config" not in src.attrs or "components" not in src.attrs:
        raise InputError(f"{path}: not a jaxmag dataset (missing root attribute 'config' or 'components')")
    shape = src["m"].shape
    components = str(src.attrs["components"])
    if len(shape) != 5 or shape[2] != len(components):
        raise ValueError(f"{path}: /m must be (N, T, C, ny, nx) with C = len(components) = {len(components)}, "
                         f"got shape {shape}")
    N, _, _, ny, nx = shape
    if src["labels"].shape != (N, ny, nx) or src["done"].shape != (N,):
        raise ValueError(f"{path}: /labels must be {(N, ny, nx)} and /done {(N,)}, got "
                         f"{src['labels'].shape} and {src['done'].shape}")
    return components, shape


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
                            cond_hash=cond_hash, variance=variance)
    return {k: v.astype(jnp.float32) for k, v in maps.items()}


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
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    shape = np.shape(data) if data is not None else shape
    dtype = np.asarray(data).dtype if data is not None else dtype
    d = group.create_dataset(name, shape=shape, dtype=dtype, dcpl=dcpl, track_times=False,
                             fillvalue=fill, fill_time="alloc" if fill is not None else "never")
    if data is not None:
        d[...] = data
    d.attrs["axes"] = axes
    d.attrs["units"] = units
    for key, value in attrs.items():
        d.attrs[key] = value
    return d


def _write_skeleton(out: h5py.File, attrs: dict[str, Any], labels: np.ndarray, conditions: Sequence[NoiseSpec],
                    measures: tuple[str, ...], components: str) -> None:
    """The whole output file, every map NaN and every run not done."""
    out.attrs.update(attrs)
    N, ny, nx = labels.shape
    _preallocated(out, "labels", labels, meaning="as stored in the dataset: 0 background, 1..4 defect blob id")
    for spec in conditions:
        group = out.create_group(spec.name, track_order=False)
        group.attrs["kind"] = spec.kind
        group.attrs["variance"] = float(spec.variance)
        _preallocated(group, "done", shape=(N,), dtype=bool, fill=False, axes="run")
        for m in measures:
            for c in components:
                _preallocated(group, f"{m}/{c}", shape=(N, ny, nx), dtype=np.float32, fill=np.nan,
                              units="nats" if m == "latent_entropy" else "1", measure=m, component=c)


def staging_path(path: Path) -> Path:
    """Where a ``force`` run writes its new file until it is complete: ``NAME.incomplete.h5``."""
    return path.with_name(f"{path.stem}.incomplete{path.suffix}")


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
) -> Path:
    """Compute ``/<condition>/<measure>/<component>`` maps of every finished run; returns ``out_path``.

    ``noise_specs``: conditions besides ``clean`` (``NoiseSpec`` or text like ``"gaussian:1e-2"``).
    ``options``: ``{component: MeasureOptions}`` for (at least) the dataset's components;
    ``noise_seed`` keys the noise; ``source_hash`` (the dataset's config hash) is recorded and
    checked on resume. ``jaxmag.assemble.compute_measures_file`` takes these from a config.
    Refuses an existing ``out_path`` unless ``resume`` (continue, same options) or ``force``
    (start over); refuses unfinished runs unless ``allow_partial`` (they are skipped).
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
    with open_h5(dataset_path, "jaxmag dataset (written by `jaxmag simulate`)") as src:
        components, shape = _read_source(src, dataset_path)
        N, T, _, ny, nx = shape
        seed = int(noise_seed)
        by_comp = tuple(options[c] for c in components)
        for opts in by_comp:
            opts.check(T, measures)
        shared = _shared_options(by_comp)
        done = np.asarray(src["done"][...], bool)
        if not done.all() and not allow_partial:
            missing = np.flatnonzero(~done)
            raise ValueError(f"{dataset_path}: {missing.size} of {N} runs are not done (first: run {missing[0]}); "
                             "finish the dataset or pass --allow-partial to skip them")
        if not done.any():
            raise ValueError(f"{dataset_path}: no finished runs to measure")
        attrs = _root_attrs(shared, measures, components, source_hash, seed,
                            {c: list(o.fixed_range) for c, o in zip(components, by_comp)})
        work = _prepare_output(out_path, resume, force, attrs, src, conditions, measures, components, (N, ny, nx),
                               dataset_path)
        _stream(src, work, conditions, done, seed, components, measures, by_comp, chunk, progress)
    if work != out_path:  # a --force run: replace the old file only now that the new one is complete
        os.replace(work, out_path)
        fsync_dir(out_path.parent)
    return out_path


def _prepare_output(out_path: Path, resume: bool, force: bool, attrs: dict[str, Any], src: h5py.File,
                    conditions: Sequence[NoiseSpec], measures: tuple[str, ...], components: str,
                    shape: tuple[int, int, int], dataset_path: Path) -> Path:
    """The file to write: checked for ``resume``, else created complete (atomically)."""
    staging = staging_path(out_path)
    if out_path.is_dir():
        raise IsADirectoryError(f"--out {out_path} is a folder; give a file name such as measures.h5")
    if resume and (out_path.exists() or staging.exists()):
        work = staging if staging.exists() else out_path
        with open_h5(work, "jaxmag measures file") as out:
            if out.attrs.get("format") != FORMAT:
                raise ValueError(f"{work}: cannot resume: not a jaxmag measures file")
            _check_resume(out, work, attrs, shape)
            stored = _stored_conditions(out, work, measures, components)
        added = [spec for spec in conditions if spec.name not in stored]
        if added:
            work = _with_added_conditions(work, staging, added, measures, components, shape)
        return work
    if out_path.exists() and not (resume or force):
        extra = f" ({staging} holds an interrupted --force run: --resume continues it)" if staging.exists() else ""
        raise FileExistsError(f"{out_path} exists; pass --resume to continue it or --force to overwrite it{extra}")
    if not out_path.parent.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {out_path.parent}")
    work = staging if out_path.exists() else out_path
    # the skeleton fills every map with NaN at creation, so all of its bytes are written then
    maps = len(conditions) * (len(measures) * len(components) * 4 * int(np.prod(shape)) + shape[0])
    labels = np.asarray(src["labels"][...])
    attrs = {**attrs, "source": str(dataset_path), "jaxmag_version": __version__}
    return create_hdf5(work, lambda out: _write_skeleton(out, attrs, labels, conditions, measures, components),
                       eager_bytes=maps + labels.nbytes)


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
    specs = [NoiseSpec(kind, variance) if kind != "clean" else CLEAN for _, kind, variance in kept]
    specs += [s for s in added if s.name not in {name for name, _, _ in kept}]
    per_map = 4 * int(np.prod(shape))
    eager = len(specs) * (len(measures) * len(components) * per_map + shape[0]) + labels.nbytes
    target = staging if work != staging else staging.with_name(staging.stem + ".grow" + staging.suffix)

    def fill(out: h5py.File) -> None:
        _write_skeleton(out, attrs, labels, specs, measures, components)
        with open_h5(work, "jaxmag measures file") as old:
            for name, _, _ in kept:  # one map at a time: paper-scale files need not fit in memory twice
                out[f"{name}/done"][...] = old[f"{name}/done"][...]
                for m in measures:
                    for c in components:
                        out[f"{name}/{m}/{c}"][...] = old[f"{name}/{m}/{c}"][...]

    create_hdf5(target, fill, eager_bytes=eager, hint=_RESUME_HINT)
    if target != staging:  # resuming an interrupted --force run that itself gains conditions
        os.replace(target, staging)
        fsync_dir(staging.parent)
    return staging


class _Output:
    """Raw, checked writes of rows of the output's datasets (layout read once, then no HDF5)."""

    def __init__(self, path: Path, names: Sequence[str]):
        self.path = path
        with open_h5(path, "jaxmag measures file") as f:
            self.layout = {}
            for name in names:
                d = f[name]
                if d.id.get_offset() is None or d.chunks is not None or d.compression:
                    raise ValueError(f"{path}: /{name} is not preallocated; it was written by an older jaxmag "
                                     "(use --force to start over)")
                self.layout[name] = (d.id.get_offset(), d.dtype, d.shape[1:])
            self.done = {name: np.asarray(f[name][...], bool) for name in names if name.endswith("/done")}
        self.raw = RawFile(path, hint=_RESUME_HINT)
        self.pending: list[tuple[int, np.ndarray]] = []

    def put(self, name: str, rows: np.ndarray, values: np.ndarray) -> None:
        base, dtype, shape = self.layout[name]
        row_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        values = np.array(values, dtype=dtype, order="C").reshape((len(rows),) + shape)
        for j, v in zip(rows, values):
            offset = base + int(j) * row_bytes
            self.raw.write(offset, v.data)
            self.pending.append((offset, v))

    def commit(self) -> None:
        """fsync and read back everything written since the last commit."""
        self.raw.sync()
        for offset, v in self.pending:
            self.raw.verify(offset, v.data)
        self.pending = []

    def close(self) -> None:
        self.raw.close()


def _stream(src, work: Path, conditions, done, seed, components, measures, by_comp, chunk, progress) -> None:
    names = [f"{spec.name}/done" for spec in conditions]
    names += [f"{spec.name}/{m}/{c}" for spec in conditions for m in measures for c in components]
    out = _Output(work, names)
    try:
        pending = np.stack([done & ~out.done[f"{s.name}/done"] for s in conditions])  # (conditions, N)
        todo = np.flatnonzero(pending.any(axis=0))
        # Noise keys use the global run index (files written in parts hold rows run_start..), so a
        # run gets the same noise in a part file and in the merged dataset.
        run_ids = np.asarray(src["run_index"][...], np.int64) if "run_index" in src else np.arange(done.size)
        bar = tqdm(total=int(pending.sum()), unit="run", desc="measures", disable=not progress)
        try:
            for start in range(0, todo.size, chunk):
                idx = todo[start:start + chunk]
                m = src["m"][idx]  # sorted indices: one h5py read per chunk
                # Pad the last chunk to the full size so every chunk reuses one compiled kernel.
                pad = chunk - idx.size
                padded_idx = run_ids[np.concatenate([idx, np.repeat(idx[-1:], pad)])]
                m = np.concatenate([m, np.repeat(m[-1:], pad, axis=0)]) if pad else m
                finished = []
                for ci, spec in enumerate(conditions):
                    rows = pending[ci, idx]
                    if not rows.any():
                        continue
                    maps = _chunk_measures(jnp.asarray(m), jnp.asarray(padded_idx, jnp.uint32), seed,
                                           condition_hash(spec), spec.variance, spec_kind=spec.kind,
                                           components=components, options=by_comp, measures=measures)
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
