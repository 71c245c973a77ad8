"""MuMax3 output: data tables (``table.txt``) and output folders (table + ``m*.ovf`` series).

``read_table(path) -> Table`` parses MuMax3's tab-separated table whose header names each
column with its unit, ``# t (s)\\tmx ()\\tmy ()\\tmz ()``; any columns are accepted.

``read_output_folder(dir) -> MumaxRun`` reads a MuMax3 output folder (``run.out/``): the table
if present and the magnetisation snapshots ``m000000.ovf, m000001.ovf, ...`` in index order,
stacked as ``(T, nz, ny, nx, 3)`` with their times (s) from the OVF ``Desc`` lines. Folders
written by ``jaxmag export-ovf`` have the same layout and read the same way; their
``# Desc: jaxmag components: xz`` line says which components hold data.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from jaxmag.io.ovf import read_ovf

_COLUMN_RE = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")
_FRAME_RE = re.compile(r"^m(\d+)\.ovf$")
_COMPONENTS_RE = re.compile(r"jaxmag components:\s*([xyz]+)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Table:
    """A MuMax3 data table: ``columns[name]`` is a float64 array of shape (rows,).

    ``units[name]`` is the unit string from the header (``""`` for dimensionless ``()``).
    """

    columns: dict[str, np.ndarray]
    units: dict[str, str]
    path: str = ""

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise KeyError(f"{self.path or 'table'} has no column {name!r} (columns: {', '.join(self.columns)})")
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.columns)

    @property
    def num_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


@dataclasses.dataclass(frozen=True)
class MumaxRun:
    """A MuMax3 (or ``jaxmag export-ovf``) output folder.

    Attributes:
        m: magnetisation snapshots, float64, shape ``(T, nz, ny, nx, 3)``.
        times: snapshot times in s, shape ``(T,)``.
        cell_size: ``(dx, dy, dz)`` in m.
        table: the data table, or None if the folder has no ``table.txt``.
        files: the snapshot files in order.
        components: components holding data (``"xyz"`` for MuMax3 output).
        jaxmag_export: whether the frames carry ``export-ovf``'s ``jaxmag components`` line.
    """

    m: np.ndarray
    times: np.ndarray
    cell_size: tuple[float, float, float]
    table: Table | None
    files: tuple[Path, ...]
    components: str = "xyz"
    jaxmag_export: bool = False


def read_table(path: str | os.PathLike) -> Table:
    """Read a MuMax3 ``table.txt`` (header ``# name (unit)\\t...``, tab-separated rows)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MuMax3 table not found: {path}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or not lines[0].startswith("#"):
        raise ValueError(f"{path}: not a MuMax3 table: the first line must be the '# t (s)\\tmx ()...' header")
    names, units = [], {}
    for field in lines[0].lstrip("#").strip().split("\t"):
        match = _COLUMN_RE.match(field.strip())
        if not match:
            raise ValueError(f"{path}: header column {field!r} is not of the form 'name (unit)'")
        name, unit = match.group(1).strip(), match.group(2).strip()
        if not name or name in units:
            raise ValueError(f"{path}: empty or repeated column name {name!r} in the header")
        names.append(name)
        units[name] = unit
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\n").strip().split("\t")
        if len(fields) != len(names):
            raise ValueError(
                f"{path}: line {lineno} has {len(fields)} columns, the header has {len(names)} "
                "(ragged table: was the file truncated while MuMax3 was writing it?)"
            )
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            raise ValueError(f"{path}: line {lineno} holds a non-numeric value: {line[:80]!r}") from None
    data = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    return Table(columns={n: data[:, i] for i, n in enumerate(names)}, units=units, path=str(path))


def write_table(path: str | os.PathLike, columns: dict[str, np.ndarray], units: dict[str, str]) -> Path:
    """Write columns as a MuMax3 table (same header and tab layout ``read_table`` reads)."""
    from jaxmag.io.atomic import write_bytes
    from jaxmag.io.ovf import format_number

    path = Path(path)
    names = list(columns)
    lengths = {len(np.asarray(columns[n])) for n in names}
    if len(lengths) != 1:
        raise ValueError(f"write_table: columns have different lengths {sorted(lengths)}")
    header = "# " + "\t".join(f"{n} ({units.get(n, '')})" for n in names)
    arrays = [np.asarray(columns[n], dtype=np.float64) for n in names]
    body = "".join("\t".join(format_number(a[i]) for a in arrays) + "\n" for i in range(lengths.pop()))
    write_bytes(path, (header + "\n" + body).encode())
    return path


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """``m<index>.ovf`` files of ``folder`` sorted by index."""
    folder = Path(folder)
    found = [(int(match.group(1)), p) for p in folder.iterdir() if (match := _FRAME_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def read_output_folder(folder: str | os.PathLike) -> MumaxRun:
    """Read a MuMax3 output folder: ``table.txt`` (optional) and the ``m*.ovf`` series."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder not found: {folder}")
    table_path = folder / "table.txt"
    table = read_table(table_path) if table_path.is_file() else None
    files = frame_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no magnetisation snapshots m000000.ovf, m000001.ovf, ... found")
    frames, times = [], []
    shape = cell = None
    components = "xyz"
    exported = False
    for path in files:
        data = read_ovf(path)
        if data.valuedim != 3:
            raise ValueError(f"{path}: expected a 3-component m, got valuedim {data.valuedim}")
        if shape is None:
            shape, cell = data.array.shape, data.cell_size
            match = _COMPONENTS_RE.search(data.header.get("desc", ""))
            components = match.group(1).lower() if match else "xyz"
            exported = match is not None
        elif data.array.shape != shape or not np.allclose(data.cell_size, cell, rtol=1e-9, atol=0):
            raise ValueError(f"{path}: mesh {data.array.shape[:3]} / cell {data.cell_size} differs from {files[0].name}")
        if data.time_s is None:
            raise ValueError(f"{path}: no '# Desc: Total simulation time: ... s' line; cannot order the series in time")
        frames.append(data.array)
        times.append(data.time_s)
    times_arr = np.asarray(times)
    if np.any(np.diff(times_arr) < 0):
        raise ValueError(f"{folder}: snapshot times are not increasing with the file index: {times_arr.tolist()}")
    return MumaxRun(
        m=np.stack(frames),
        times=times_arr,
        cell_size=cell,  # type: ignore[arg-type]
        table=table,
        files=tuple(files),
        components=components,
        jaxmag_export=exported,
    )
