"""The dataset format's identity and checks: its ``format`` attribute, ``FileSpec`` (what a file
must contain), opening a file as a dataset, and the resume checks (``check_matches``,
``pending_rows``, ``stored_config_text``). The layout is described in ``jaxmag.io.dataset``."""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from jaxmag.rng import LEGACY_THERMAL_GENERATOR, THERMAL_GENERATOR
from jaxmag.io import rowfile
from jaxmag.io.errors import InputError, open_h5



FORMAT = "jaxmag.dataset"
FORMAT_VERSION = 1
DATA_SECTIONS = ("grid", "material", "defects", "simulation")  # what determines the data


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """What a dataset file must contain; two files with equal specs are interchangeable."""

    config_text: str
    config_hash: str
    seed: int
    num_runs: int  # of the whole dataset
    run_start: int  # first global run index held by this file
    num_rows: int  # runs held by this file
    num_frames: int
    components: str
    ny: int
    nx: int
    store_dtype: str
    cell_size_m: tuple[float, float, float]
    t: np.ndarray  # (T,) s
    # ``config_hash`` of a stored config text under today's rules (its defaults filled in), so a
    # file written before a config key existed still matches when the data are the same;
    # ``None``: compare the stored hash only.
    rehash: Callable[[str], str] | None = dataclasses.field(default=None, compare=False, repr=False)
    thermal_generator: str = THERMAL_GENERATOR  # the thermal draws' algorithm (jaxmag.rng)

    @property
    def m_shape(self) -> tuple[int, int, int, int, int]:
        return (self.num_rows, self.num_frames, len(self.components), self.ny, self.nx)


_WHAT = "jaxmag dataset (written by `jaxmag simulate`)"


def _describe(d: h5py.Dataset, axes: str, units: str, *, zero: bool = False, **extra: str) -> h5py.Dataset:
    """Self-describing datasets: ``axes`` and ``units`` attributes (set at creation only)."""
    d.attrs["axes"] = axes
    d.attrs["units"] = units
    for key, value in extra.items():
        d.attrs[key] = value
    if zero:
        d[...] = 0
    return d


def _open_dataset(path: Path, *, missing: str, prefix: str = "") -> h5py.File:
    """Open a jaxmag dataset for reading; clear errors for a missing, unreadable or foreign file."""
    if not path.exists():
        raise FileNotFoundError(f"{prefix}{path} {missing}" if prefix else f"dataset file {missing}: {path}")
    try:
        f = open_h5(path, "jaxmag dataset file")
    except InputError as exc:
        raise InputError(f"{prefix}{exc}") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise InputError(f"{prefix}{path} is not a jaxmag dataset file")
    return f


def check_matches(path: str | Path, spec: FileSpec) -> Path:
    """Raise ``ValueError`` naming the first difference if ``path`` (or the ``resume_target``
    beside it) was not written for ``spec``; returns the file to continue."""
    path = rowfile.resume_target(path)
    with _open_dataset(path, missing="does not exist", prefix="cannot resume: ") as f:
        if f.attrs["config_hash"] != spec.config_hash and not _same_data(str(f.attrs["config"]), spec):
            diff = _config_difference(str(f.attrs["config"]), spec.config_text)
            raise ValueError(f"cannot resume {path}: it was written with a different config ({diff}); use --force to overwrite it")
        stored_generator = str(f.attrs.get("thermal_generator", LEGACY_THERMAL_GENERATOR))
        # a finished file is only read, whatever drew it; unfinished rows must not mix generators
        if stored_generator != spec.thermal_generator and not bool(np.all(f["done"][...])):
            raise ValueError(
                f"cannot resume {path}: its runs were drawn with the thermal noise generator "
                f"{stored_generator!r} (jaxmag {f.attrs['jaxmag_version']}), this jaxmag draws with "
                f"{spec.thermal_generator!r}; finishing it would mix the two, which no config reproduces: "
                "finish it with the jaxmag that started it, or use --force to simulate it afresh"
            )
        have = (int(f.attrs["run_start"]), f["m"].shape, f["m"].dtype.name)
        want = (spec.run_start, spec.m_shape, spec.store_dtype)
        if have != want:
            raise ValueError(f"cannot resume {path}: it holds rows/shape/dtype {have}, this run needs {want}")
    return path


def _same_data(stored_text: str, spec: FileSpec) -> bool:
    if spec.rehash is None:
        return False
    try:
        return spec.rehash(stored_text) == spec.config_hash
    except (ValueError, KeyError, TypeError):  # a stored config today's loader rejects: not the same
        return False


def _config_difference(old_text: str, new_text: str) -> str:
    # both texts are resolved configs (every key written), so plain TOML tables compare
    old, new = tomllib.loads(old_text), tomllib.loads(new_text)
    for section in DATA_SECTIONS + ("dataset",):
        for key, value in new.get(section, {}).items():
            if old.get(section, {}).get(key) != value and key != "batch_size":
                return f"{section}.{key}: {old.get(section, {}).get(key)!r} in the file, {value!r} now"
    return "config hash differs"


def stored_config_text(path: str | Path) -> str:
    """The resolved TOML config a dataset file was written with (its root attribute ``config``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset not found: {path}")
    with open_h5(path, "jaxmag dataset (written by `jaxmag simulate`)") as f:
        if "config" not in f.attrs:
            raise ValueError(f"{path}: not a jaxmag dataset (missing root attribute 'config')")
        return str(f.attrs["config"])


def pending_rows(path: str | Path) -> np.ndarray:
    """Global run indices of the rows of ``path`` not yet done, ascending."""
    with _open_dataset(Path(path), missing="not found") as f:
        done = f["done"][...]
        return f["run_index"][...][~done]
