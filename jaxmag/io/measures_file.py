"""Measure maps of a whole simulated dataset, streamed in chunks, resumable.

Input (written by ``jaxmag simulate``): ``/m`` float (N, T, C, ny, nx) with root attribute
``components`` (e.g. ``"xz"``), ``/labels`` uint8 (N, ny, nx), ``/done`` bool (N,), optional
``/run_index`` (N,) (global run index of each row; default the row number), root attributes
``config`` (TOML text) and ``seed``.

Output: ``/<condition>/<measure>/<component>`` float32 (N, ny, nx) for every condition
(``clean`` always, then e.g. ``gaussian_1e-2``), ``/<condition>/done`` bool (N,), ``/labels``
copied as stored, and root attributes with the measure options, the noise seed and the
source's config hash. Maps of runs not yet computed hold NaN.

Runs are read ``chunk`` at a time, once for all conditions; after each chunk the maps and the
per-condition ``done`` masks are flushed, so an interrupted job resumes where it stopped
(``resume=True``) and reproduces the same numbers, since each run's noise key depends only on
(noise seed, run index, condition).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Sequence

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxmag.config import Config, MeasuresConfig, config_hash, load_config, loads_config
from jaxmag.measures import MEASURES, check_options, measure_options, measures_kernel
from jaxmag.noise import CLEAN, NoiseSpec, add_gaussian, condition_keys, condition_hash, parse_noise_spec

FORMAT = "jaxmag-measures-1"


def _read_source(src: h5py.File, path: Path) -> tuple[Config, str, tuple[int, ...]]:
    """Validate the dataset layout; return (its config, its components, m's shape)."""
    for name in ("m", "labels", "done"):
        if name not in src:
            raise ValueError(f"{path}: not a jaxmag dataset (missing /{name})")
    if "config" not in src.attrs or "components" not in src.attrs:
        raise ValueError(f"{path}: not a jaxmag dataset (missing root attribute 'config' or 'components')")
    shape = src["m"].shape
    components = str(src.attrs["components"])
    if len(shape) != 5 or shape[2] != len(components):
        raise ValueError(f"{path}: /m must be (N, T, C, ny, nx) with C = len(components) = {len(components)}, "
                         f"got shape {shape}")
    N, _, _, ny, nx = shape
    if src["labels"].shape != (N, ny, nx) or src["done"].shape != (N,):
        raise ValueError(f"{path}: /labels must be {(N, ny, nx)} and /done {(N,)}, got "
                         f"{src['labels'].shape} and {src['done'].shape}")
    config = loads_config(str(src.attrs["config"]), source=f"{path}:/config")
    return config, components, shape


@functools.partial(jax.jit, static_argnames=("noisy", "components", "options"))
def _chunk_measures(m, run_index, seed, condition_hash, variance, speckle, *, noisy: bool, components: str,
                    options: tuple):
    """(n, T, C, ny, nx) -> {measure: (n, C, ny, nx) float32}, noise keyed per (run, component).

    ``options``: one tuple of kernel option items per component (they differ only in the fixed
    binning range). The noise kind and variance are traced, so every noisy condition shares one
    compiled kernel.
    """
    x = jnp.moveaxis(m, 2, 1)  # (n, C, T, ny, nx): time just before the pixels
    if x.dtype not in (jnp.float32, jnp.float64):
        x = x.astype(jnp.float32)
    if noisy:
        keys = condition_keys(seed, condition_hash, run_index)  # (n,)
        comp_ids = jnp.array([ord(c) for c in components], jnp.uint32)
        # Folding the component letter in keeps z's noise the same whether or not x is stored.
        keys = jax.vmap(lambda k: jax.vmap(lambda c: jax.random.fold_in(k, c))(comp_ids))(keys)
        scale = jnp.where(speckle, x, jnp.ones_like(x))  # speckle: x + x n; Gaussian: x + n
        n = jax.vmap(jax.vmap(lambda xi, k: add_gaussian(jnp.zeros_like(xi), variance, k)))(x, keys)
        x = x + scale * n
    per_comp = [measures_kernel(x[:, c], **dict(opts)) for c, opts in enumerate(options)]
    return {k: jnp.stack([o[k] for o in per_comp], axis=1).astype(jnp.float32) for k in per_comp[0]}


def _conditions(noise_specs: Sequence[NoiseSpec | str]) -> tuple[NoiseSpec, ...]:
    specs = [s if isinstance(s, NoiseSpec) else parse_noise_spec(s) for s in noise_specs]
    unique = {CLEAN.name: CLEAN}
    for s in specs:
        unique.setdefault(s.name, s)
    return tuple(unique.values())


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


def _ensure_condition(out: h5py.File, spec: NoiseSpec, measures: tuple[str, ...], components: str,
                      shape: tuple[int, int, int]) -> h5py.Group:
    group = out.require_group(spec.name)
    group.attrs["kind"] = spec.kind
    group.attrs["variance"] = float(spec.variance)
    if "done" not in group:
        group.create_dataset("done", shape=(shape[0],), dtype=bool, fillvalue=False)
    for m in measures:
        for c in components:
            name = f"{m}/{c}"
            if name not in group:
                group.create_dataset(name, shape=shape, dtype=np.float32, chunks=(1,) + shape[1:],
                                     fillvalue=np.nan)
    return group


def compute_measures_file(
    dataset_path: str | Path,
    out_path: str | Path,
    noise_specs: Sequence[NoiseSpec | str] = (),
    *,
    config: MeasuresConfig | Config | str | Path | None = None,
    measures: Sequence[str] = MEASURES,
    noise_seed: int | None = None,
    chunk: int = 16,
    resume: bool = False,
    force: bool = False,
    allow_partial: bool = False,
    progress: bool = True,
) -> Path:
    """Compute ``/<condition>/<measure>/<component>`` maps of every finished run; returns ``out_path``.

    ``noise_specs``: conditions besides ``clean`` (``NoiseSpec`` or text like ``"gaussian:1e-2"``).
    ``config``: measure options (a ``MeasuresConfig``, a ``Config`` or a TOML path); default: the
    dataset's stored config. ``noise_seed``: default the ``[noise] seed`` of that config.
    Refuses an existing ``out_path`` unless ``resume`` (continue, same options) or ``force``
    (start over); refuses unfinished runs unless ``allow_partial`` (they are skipped).
    """
    dataset_path, out_path = Path(dataset_path), Path(out_path)
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of runs, got {chunk}")
    if resume and force:
        raise ValueError("choose one of resume (continue the output) and force (overwrite it)")
    if not dataset_path.is_file():
        raise FileNotFoundError(f"dataset not found: {dataset_path}")
    if dataset_path.resolve() == out_path.resolve():
        raise ValueError("the output file must differ from the dataset")
    conditions = _conditions(noise_specs)
    measures = tuple(dict.fromkeys(measures))
    with h5py.File(dataset_path, "r") as src:
        source_config, components, shape = _read_source(src, dataset_path)
        N, T, _, ny, nx = shape
        if isinstance(config, (str, Path)):
            config = load_config(config)
        if config is None:
            config = source_config
        full = config if isinstance(config, Config) else None
        mconf = config.measures if isinstance(config, Config) else config
        seed = noise_seed if noise_seed is not None else (full or source_config).noise.seed
        options = measure_options(mconf)
        by_comp = [measure_options(mconf, c) for c in components]
        for opts in by_comp:
            check_options(num_frames=T, measures=measures, **{k: v for k, v in opts.items() if k != "normalize"})
        done = np.asarray(src["done"][...], bool)
        if not done.all() and not allow_partial:
            missing = np.flatnonzero(~done)
            raise ValueError(f"{dataset_path}: {missing.size} of {N} runs are not done (first: run {missing[0]}); "
                             "finish the dataset or pass --allow-partial to skip them")
        if not done.any():
            raise ValueError(f"{dataset_path}: no finished runs to measure")
        attrs = _root_attrs(options, measures, components, config_hash(source_config), seed,
                            {c: list(o["fixed_range"]) for c, o in zip(components, by_comp)})
        with _open_output(out_path, resume, force) as out:
            if len(out.attrs) or len(out):  # an existing file opened with resume
                if out.attrs.get("format") != FORMAT:
                    raise ValueError(f"{out_path}: cannot resume: not a jaxmag measures file")
                _check_resume(out, out_path, attrs, (N, ny, nx))
            else:
                out.attrs.update(attrs)
                out.attrs["source"] = str(dataset_path)
                out.create_dataset("labels", data=src["labels"][...])
            groups = [_ensure_condition(out, s, measures, components, (N, ny, nx)) for s in conditions]
            _stream(src, out, groups, conditions, done, seed, components, measures, by_comp, chunk, progress)
    return out_path


class _open_output:
    """Open the output for writing: new file, or ``resume`` an existing one, or ``force`` a fresh one."""

    def __init__(self, path: Path, resume: bool, force: bool):
        if path.exists() and not (resume or force):
            raise FileExistsError(f"{path} exists; pass --resume to continue it or --force to overwrite it")
        if path.exists() and force:
            path.unlink()
        self.file = h5py.File(path, "r+" if path.exists() else "w")

    def __enter__(self) -> h5py.File:
        return self.file

    def __exit__(self, *exc: Any) -> None:
        self.file.close()


def _stream(src, out, groups, conditions, done, seed, components, measures, by_comp, chunk, progress) -> None:
    pending = np.stack([done & ~np.asarray(g["done"][...], bool) for g in groups])  # (conditions, N)
    todo = np.flatnonzero(pending.any(axis=0))
    # Noise keys use the global run index (files written in parts hold rows run_start..), so a
    # run gets the same noise in a part file and in the merged dataset.
    run_ids = np.asarray(src["run_index"][...], np.int64) if "run_index" in src else np.arange(done.size)
    option_items = tuple(tuple(sorted(o.items())) + (("measures", measures),) for o in by_comp)
    bar = tqdm(total=int(pending.sum()), unit="run", desc="measures", disable=not progress)
    try:
        for start in range(0, todo.size, chunk):
            idx = todo[start:start + chunk]
            m = src["m"][idx]  # sorted indices: one h5py read per chunk
            # Pad the last chunk to the full size so every chunk reuses one compiled kernel.
            pad = chunk - idx.size
            padded_idx = run_ids[np.concatenate([idx, np.repeat(idx[-1:], pad)])]
            m = np.concatenate([m, np.repeat(m[-1:], pad, axis=0)]) if pad else m
            for ci, (spec, group) in enumerate(zip(conditions, groups)):
                rows = pending[ci, idx]
                if not rows.any():
                    continue
                maps = _chunk_measures(jnp.asarray(m), jnp.asarray(padded_idx, jnp.uint32), seed,
                                       condition_hash(spec), spec.variance, spec.kind == "speckle",
                                       noisy=spec.kind != "clean", components=components, options=option_items)
                maps = {k: np.asarray(v)[: idx.size] for k, v in maps.items()}
                for name in measures:
                    for c_i, comp in enumerate(components):
                        group[f"{name}/{comp}"][idx[rows]] = maps[name][rows, c_i]
                group["done"][idx[rows]] = True
                bar.update(int(rows.sum()))
            out.flush()  # maps and done masks on disk before the next chunk
    finally:
        bar.close()
