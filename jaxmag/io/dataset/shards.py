"""Datasets written by several processes: each process's shard file (``shard_path``) and their
merge into one dataset (``merge``: virtual datasets reading the shards, or one copied file)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from jaxmag.io.atomic import atomic_path
from jaxmag.io.dataset.format import _open_dataset



def shard_path(out: str | Path, process_id: int, num_processes: int) -> Path:
    """``data.h5`` for one process, else ``data.shard003-of-008.h5``."""
    out = Path(out)
    if num_processes == 1:
        return out
    return out.with_name(f"{out.stem}.shard{process_id:03d}-of-{num_processes:03d}{out.suffix}")


_ROW_DATASETS = ("m", "labels", "material/A", "material/Ku", "material/easy_axis", "done", "run_index")


def merge(shards: Sequence[str | Path], out: str | Path, *, copy: bool = False, force: bool = False) -> Path:
    """Present shard files as one dataset at ``out``.

    By default ``out`` holds HDF5 virtual datasets that read the shards in place (they must stay
    next to ``out``: sources are stored relative to its directory); ``copy=True`` writes one
    self-contained file instead. Shards must come from the same config and not overlap; runs no
    shard holds read as not done.
    """
    out = Path(out)
    if not shards:
        raise ValueError("merge needs at least one shard file")
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists: use --force to overwrite it")
    infos = [_shard_info(Path(p)) for p in shards]
    first = infos[0]
    for info in infos[1:]:
        if info["config_hash"] != first["config_hash"]:
            raise ValueError(f"{info['path']} was written with a different config than {first['path']}")
    infos.sort(key=lambda i: i["run_start"])
    for a, b in zip(infos, infos[1:]):
        if a["run_start"] + a["rows"] > b["run_start"]:
            raise ValueError(f"{a['path']} and {b['path']} hold overlapping runs")
    n = int(first["num_runs"])
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as dst, h5py.File(infos[0]["path"], "r") as ref:
            dst.attrs.update({k: v for k, v in ref.attrs.items()})
            dst.attrs["run_start"] = 0
            dst["t"] = ref["t"][...]
            dst["t"].attrs.update(ref["t"].attrs)
            for name in _ROW_DATASETS:
                src = ref[name]
                shape = (n,) + src.shape[1:]
                if copy:
                    chunks = (1,) + shape[1:] if name == "m" else None
                    d = dst.create_dataset(name, shape=shape, dtype=src.dtype, chunks=chunks, fillvalue=_fill(name, src.dtype))
                    for info in infos:
                        with h5py.File(info["path"], "r") as s:
                            for j in range(info["rows"]):  # row by row: /m rows are large
                                d[info["run_start"] + j] = s[name][j]
                else:
                    layout = h5py.VirtualLayout(shape=shape, dtype=src.dtype)
                    for info in infos:
                        rel = os.path.relpath(Path(info["path"]).resolve(), out.resolve().parent)
                        source = h5py.VirtualSource(rel, name, shape=(info["rows"],) + src.shape[1:])
                        layout[info["run_start"] : info["run_start"] + info["rows"]] = source
                    dst.create_virtual_dataset(name, layout, fillvalue=_fill(name, src.dtype))
                dst[name].attrs.update(src.attrs)  # axes, units, components
    return out


def _fill(name: str, dtype: np.dtype):
    if name == "run_index":
        return -1  # rows that no shard holds
    return np.zeros((), dtype=dtype)[()]


def _shard_info(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"shard file not found: {path}")
    with _open_dataset(path, missing="not found") as f:
        return {
            "path": str(path),
            "config_hash": str(f.attrs["config_hash"]),
            "num_runs": int(f.attrs["num_runs"]),
            "run_start": int(f.attrs["run_start"]),
            "rows": int(f["done"].shape[0]),
        }
