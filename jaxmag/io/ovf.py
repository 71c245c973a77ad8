"""OOMMF Vector Field (OVF) files: read OVF 1.0 / 2.0, write files MuMax3 and ubermag read.

Contract
--------
``read_ovf(path) -> OVFData`` reads one-segment, rectangular-mesh OVF 1.0 and 2.0 files in
``Text``, ``Binary 4`` and ``Binary 8`` data formats, with any ``valuedim``. Header keywords are
matched case-insensitively, ``##`` comments are dropped, ``\\r\\n`` line endings are accepted,
OVF 1.0 ``ValueMultiplier`` is applied and binary check values are verified. Malformed files
raise ``OVFError`` (a ``ValueError``) naming the file and the problem.

``write_ovf(path, array, cell_size, ...)`` writes the header exactly as MuMax3's
``oommf/ovf2.go`` does (same keys, order and number formatting, so ``mumax3-convert`` - which
refuses unknown keys - and ``discretisedfield`` read it), atomically (temporary file + rename).

Array layout: ``(nz, ny, nx, valuedim)``, channel last like the rest of jaxmag; the file stores
x fastest, then y, then z, components interleaved per node. OVF 2.0 binary data is
little-endian, OVF 1.0 binary data big-endian (as the two specifications require).
"""
from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

CHECK_VALUE_4 = 1234567.0
CHECK_VALUE_8 = 123456789012345.0
_FORMATS = {"text": "Text", "binary4": "Binary 4", "binary8": "Binary 8"}
_MESH_UNITS = {"m": 1.0, "cm": 1e-2, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "nm": 1e-9}
_TIME_RE = re.compile(r"total simulation time\s*:\s*([-+0-9.eEinfaINFA]+)\s*s", re.IGNORECASE)


class OVFError(ValueError):
    """An OVF file is malformed or uses a feature jaxmag does not support."""


@dataclasses.dataclass(frozen=True)
class OVFData:
    """Contents of one OVF file.

    Attributes:
        array: float64 values, shape ``(nz, ny, nx, valuedim)``, in the file's value units
            (``ValueMultiplier`` already applied).
        cell_size: ``(dx, dy, dz)`` in m.
        origin: lower corner of the mesh ``(xmin, ymin, zmin)`` in m.
        time_s: total simulation time from ``# Desc: Total simulation time: ... s``; None when
            absent or negative (OOMMF writes -1/-2 for "not applicable").
        header: raw header keywords (lower-cased keys, stripped values; repeated keys such as
            ``desc`` joined with newlines).
        valuelabels, valueunits: per-component labels and units (may be empty).
        title: the ``Title`` keyword.
        version: 1 or 2.
    """

    array: np.ndarray
    cell_size: tuple[float, float, float]
    origin: tuple[float, float, float]
    time_s: float | None
    header: dict[str, str]
    valuelabels: tuple[str, ...]
    valueunits: tuple[str, ...]
    title: str
    version: int

    @property
    def valuedim(self) -> int:
        return int(self.array.shape[-1])

    @property
    def shape(self) -> tuple[int, int, int]:
        """Mesh shape ``(nz, ny, nx)``."""
        return tuple(self.array.shape[:3])  # type: ignore[return-value]


# ----------------------------------------------------------------------------------- reading


def read_ovf(path: str | os.PathLike) -> OVFData:
    """Read an OVF 1.0 or 2.0 file (see the module docstring for what is supported)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OVF file not found: {path}")
    raw = path.read_bytes()

    def fail(problem: str) -> OVFError:
        return OVFError(f"{path}: {problem}")

    pos, lineno = 0, 0
    version = None
    header: dict[str, str] = {}
    data_format = None
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        end = len(raw) if end < 0 else end
        line = raw[pos:end].rstrip(b"\r").decode("latin-1")
        pos = end + 1
        lineno += 1
        stripped = line.strip()
        if lineno == 1:
            version = _parse_magic(stripped, fail)
            continue
        if not stripped:
            continue
        if not stripped.startswith("#"):
            raise fail(f"line {lineno}: expected a '#' header line before the data block, got {stripped[:40]!r}")
        body = stripped.split("##", 1)[0].lstrip("#").strip()
        if not body or ":" not in body:
            continue
        key, value = (s.strip() for s in body.split(":", 1))
        key = key.lower()
        if key == "begin" and value.lower().split()[:1] == ["data"]:
            data_format = " ".join(value.lower().split()[1:])
            break
        if key in ("begin", "end"):
            continue
        header[key] = f"{header[key]}\n{value}" if key in header else value
    if version is None:
        raise fail("empty file")
    if data_format is None:
        raise fail("no '# Begin: Data' line: the file has no data block (truncated header?)")

    count = header.get("segment count")
    if count is not None and count.strip() != "1":
        raise fail(f"'Segment count: {count}': only single-segment OVF files are supported")
    meshtype = _require(header, "meshtype", fail).lower()
    if meshtype == "irregular":
        raise fail("meshtype 'irregular' is not supported (only rectangular meshes)")
    if meshtype != "rectangular":
        raise fail(f"unknown meshtype {meshtype!r} (expected 'rectangular')")
    nodes = tuple(_to_int(_require(header, f"{a}nodes", fail), f"{a}nodes", fail) for a in "xyz")
    if min(nodes) <= 0:
        raise fail(f"node counts must be positive, got (xnodes, ynodes, znodes) = {nodes}")
    unit = header.get("meshunit", "m").strip()
    if unit.lower() not in _MESH_UNITS:
        raise fail(f"unsupported meshunit {unit!r} (known: {', '.join(_MESH_UNITS)})")
    scale = _MESH_UNITS[unit.lower()]
    step = tuple(_to_float(_require(header, f"{a}stepsize", fail), f"{a}stepsize", fail) * scale for a in "xyz")
    if version == 2:
        valuedim = _to_int(_require(header, "valuedim", fail), "valuedim", fail)
        if valuedim <= 0:
            raise fail(f"valuedim must be positive, got {valuedim}")
    else:
        valuedim = 3  # OVF 1.0 stores 3-vectors only
    origin = tuple(_origin(header, a, s / scale, fail) * scale for a, s in zip("xyz", step))

    n_values = nodes[0] * nodes[1] * nodes[2] * valuedim
    if data_format in ("binary 4", "binary 8"):
        flat = _read_binary(raw, pos, int(data_format[-1]), n_values, version, fail)
    elif data_format == "text":
        flat = _read_text(raw, pos, n_values, fail)
    else:
        raise fail(f"unknown data format {data_format!r} (expected Text, Binary 4 or Binary 8)")

    if version == 1 and "valuemultiplier" in header:
        flat = flat * _to_float(header["valuemultiplier"], "valuemultiplier", fail)
    array = flat.reshape(nodes[2], nodes[1], nodes[0], valuedim)

    labels = tuple(header.get("valuelabels", "").split())
    if version == 1 and "valueunit" in header:
        units = (header["valueunit"].strip(),) * 3
    else:
        units = tuple(header.get("valueunits", "").split())
    return OVFData(
        array=array,
        cell_size=step,  # type: ignore[arg-type]
        origin=origin,  # type: ignore[arg-type]
        time_s=_parse_time(header.get("desc", "")),
        header=header,
        valuelabels=labels,
        valueunits=units,
        title=header.get("title", ""),
        version=version,
    )


def _parse_magic(line: str, fail) -> int:
    low = " ".join(line.lower().lstrip("#").split())
    if low.startswith("oommf ovf 2.0"):
        return 2
    if low.startswith("oommf ovf 1.0") or low.startswith("oommf: rectangular mesh v1.0"):
        return 1
    if low.startswith("oommf: irregular mesh v1.0"):
        raise fail("OVF 1.0 irregular meshes are not supported (only rectangular meshes)")
    raise fail(f"not an OVF file: first line {line[:60]!r} (expected '# OOMMF OVF 2.0' or '# OOMMF: rectangular mesh v1.0')")


def _require(header: dict[str, str], key: str, fail) -> str:
    if key not in header:
        raise fail(f"missing required header keyword '{key}'")
    return header[key]


def _to_int(text: str, key: str, fail) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise fail(f"header keyword '{key}' must be an integer, got {text!r}") from None


def _to_float(text: str, key: str, fail) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise fail(f"header keyword '{key}' must be a number, got {text!r}") from None


def _origin(header: dict[str, str], axis: str, step: float, fail) -> float:
    # xmin is the mesh's lower corner; fall back to the first node centre minus half a cell.
    if f"{axis}min" in header:
        return _to_float(header[f"{axis}min"], f"{axis}min", fail)
    if f"{axis}base" in header:
        return _to_float(header[f"{axis}base"], f"{axis}base", fail) - step / 2
    return 0.0


def _parse_time(desc: str) -> float | None:
    match = _TIME_RE.search(desc)
    if not match:
        return None
    try:
        value = float(match.group(1))
    except ValueError:
        return None
    return value if value >= 0 else None


def _read_binary(raw: bytes, pos: int, size: int, n_values: int, version: int, fail) -> np.ndarray:
    """The ``n_values`` numbers after the check value, as float64."""
    check_value = CHECK_VALUE_4 if size == 4 else CHECK_VALUE_8
    if len(raw) < pos + size:
        raise fail(f"truncated data: the Binary {size} block ends before its check value")
    # The specs fix the byte order (OVF 2.0 little-, OVF 1.0 big-endian); the check value
    # tells which one the writer actually used, so either is accepted when it says so.
    spec_order = "<" if version == 2 else ">"
    dtype = None
    for order in (spec_order, ">" if spec_order == "<" else "<"):
        candidate = np.dtype(f"{order}f{size}")
        if np.frombuffer(raw, candidate, count=1, offset=pos)[0] == check_value:
            dtype = candidate
            break
    if dtype is None:
        found = float(np.frombuffer(raw, np.dtype(f"{spec_order}f{size}"), count=1, offset=pos)[0])
        raise fail(
            f"wrong Binary {size} check value {found!r} (expected {check_value!r}): "
            "corrupt file or a data format other than the header says"
        )
    available = (len(raw) - pos - size) // size
    if available < n_values:
        raise fail(f"truncated data: the Binary {size} block holds {available} values, expected {n_values}")
    values = np.frombuffer(raw, dtype, count=n_values, offset=pos + size).astype(np.float64)
    tail = raw[pos + size * (n_values + 1):].lstrip(b"\r\n")
    if tail and not tail.lower().startswith(b"# end: data"):
        raise fail(f"the Binary {size} block is longer than the header announces (no '# End: Data' after {n_values} values)")
    return values


def _read_text(raw: bytes, pos: int, n_values: int, fail) -> np.ndarray:
    end = raw.lower().find(b"# end: data", pos)
    block = raw[pos:] if end < 0 else raw[pos:end]
    words = [w for line in block.decode("latin-1").splitlines() if not line.lstrip().startswith("#") for w in line.split()]
    if len(words) < n_values:
        raise fail(f"truncated data: the Text block holds {len(words)} values, expected {n_values}")
    if len(words) > n_values:
        raise fail(f"the Text block holds {len(words)} values, more than the {n_values} the header announces")
    try:
        return np.array(words, dtype=np.float64)
    except ValueError as exc:
        raise fail(f"non-numeric value in the Text data block ({exc})") from None


# ----------------------------------------------------------------------------------- writing


def format_number(value: float, dtype: Any = np.float64) -> str:
    """Shortest round-trip decimal for ``value`` as Go's ``fmt`` prints it (MuMax3's format).

    Go's ``%v`` uses the shortest representation of the value in its own precision
    (float32 or float64) and switches to exponent notation (two-digit exponent) only below
    1e-4 or at 1e21 and above; ``3.0`` prints as ``3``.
    """
    x = np.dtype(dtype).type(value)
    if np.isnan(x):
        return "NaN"
    if np.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if np.signbit(x) else "0"
    scientific = np.format_float_scientific(x, unique=True, trim="-", exp_digits=2)
    exponent = int(scientific.rsplit("e", 1)[1])
    if exponent < -4 or exponent >= 21:
        return scientific
    return np.format_float_positional(x, unique=True, trim="-")


def write_ovf(
    path: str | os.PathLike,
    array: Any,
    cell_size: Sequence[float],
    *,
    fmt: str = "binary4",
    version: int = 2,
    title: str = "m",
    time_s: float | None = None,
    valuelabels: Sequence[str] | None = None,
    valueunits: Sequence[str] | None = None,
    desc: Sequence[str] = (),
    overwrite: bool = True,
) -> Path:
    """Write ``array`` of shape ``(nz, ny, nx, valuedim)`` (or ``(nz, ny, nx)``) as an OVF file.

    Args:
        cell_size: ``(dx, dy, dz)`` in m.
        fmt: ``"binary4"`` (float32, MuMax3's default), ``"binary8"`` (float64) or ``"text"``
            (shortest round-trip decimals of the array's precision: float32 arrays give
            MuMax3's text files, anything else full float64 precision).
        version: 2 (MuMax3's header layout) or 1 (``# OOMMF: rectangular mesh v1.0``,
            3-vectors only, big-endian binary).
        time_s: total simulation time (s) for the ``Desc`` line; None writes 0 like MuMax3.
        valuelabels, valueunits: defaults follow MuMax3: ``<title>_x`` ... and ``1``.
        desc: extra ``# Desc:`` lines (free text, read by MuMax3, OOMMF and ubermag).
        overwrite: if False, refuse to replace an existing file.

    The file is written to a temporary file in the same folder and renamed into place, so an
    interrupted write never leaves a partial file. Returns the path written.
    """
    path = Path(path)
    arr = np.asarray(array)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or min(arr.shape) == 0:
        raise ValueError(f"write_ovf: array must have shape (nz, ny, nx, valuedim), got {np.shape(array)}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"write_ovf: array must be real numbers, got dtype {arr.dtype}")
    fmt_key = fmt.lower().replace(" ", "").replace("_", "")
    if fmt_key not in _FORMATS:
        raise ValueError(f"write_ovf: unknown format {fmt!r} (use 'binary4', 'binary8' or 'text')")
    if version not in (1, 2):
        raise ValueError(f"write_ovf: version must be 1 or 2, got {version!r}")
    nz, ny, nx, ncomp = arr.shape
    if version == 1 and ncomp != 3:
        raise ValueError(f"write_ovf: OVF 1.0 stores 3-vectors only, got valuedim {ncomp}; use version=2")
    cell = tuple(float(c) for c in cell_size)
    if len(cell) != 3 or not all(np.isfinite(c) and c > 0 for c in cell):
        raise ValueError(f"write_ovf: cell_size must be three positive lengths in m, got {tuple(cell_size)}")
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists")
    if valuelabels is None:
        valuelabels = [title] if ncomp == 1 else [f"{title}_{'xyz'[c]}" if ncomp == 3 else f"{title}_{c}" for c in range(ncomp)]
    if valueunits is None:
        valueunits = ["1"] * ncomp
    for name, seq in (("valuelabels", valuelabels), ("valueunits", valueunits)):
        if len(seq) != ncomp:
            raise ValueError(f"write_ovf: {name} needs {ncomp} entries (one per component), got {len(seq)}")
        if any(not s or any(ch.isspace() for ch in s) for s in seq):
            raise ValueError(f"write_ovf: {name} entries must be non-empty and free of whitespace, got {list(seq)}")
    for text in (title, *desc):
        if "\n" in text or "\r" in text:
            raise ValueError("write_ovf: title and desc lines must be single lines")

    head = _header_v2 if version == 2 else _header_v1
    lines = head(arr.shape, cell, title, time_s, valuelabels, valueunits, desc)
    label = _FORMATS[fmt_key]
    body = bytearray("".join(line + "\n" for line in lines).encode("latin-1"))
    body += f"# Begin: Data {label}\n".encode()
    body += _data_block(arr, fmt_key, version)
    body += f"# End: Data {label}\n# End: Segment\n".encode()
    _atomic_write(path, bytes(body))
    return path


def _header_v2(shape, cell, title, time_s, labels, units, desc) -> list[str]:
    nz, ny, nx, ncomp = shape
    g = format_number
    lines = [
        "# OOMMF OVF 2.0",
        "# Segment count: 1",
        "# Begin: Segment",
        "# Begin: Header",
        f"# Title: {title}",
        "# meshtype: rectangular",
        "# meshunit: m",
        "# xmin: 0",
        "# ymin: 0",
        "# zmin: 0",
        f"# xmax: {g(cell[0] * nx)}",
        f"# ymax: {g(cell[1] * ny)}",
        f"# zmax: {g(cell[2] * nz)}",
        f"# valuedim: {ncomp}",
        f"# valuelabels: {' '.join(labels)}",
        f"# valueunits: {' '.join(units)}",
        # MuMax3 prints this with Go's Println, hence the doubled spaces around the number.
        f"# Desc: Total simulation time:  {g(time_s or 0.0)}  s",
        *(f"# Desc: {line}" for line in desc),
        f"# xbase: {g(cell[0] / 2)}",
        f"# ybase: {g(cell[1] / 2)}",
        f"# zbase: {g(cell[2] / 2)}",
        f"# xnodes: {nx}",
        f"# ynodes: {ny}",
        f"# znodes: {nz}",
        f"# xstepsize: {g(cell[0])}",
        f"# ystepsize: {g(cell[1])}",
        f"# zstepsize: {g(cell[2])}",
        "# End: Header",
    ]
    return lines


def _header_v1(shape, cell, title, time_s, labels, units, desc) -> list[str]:
    nz, ny, nx, _ = shape
    g = format_number
    return [
        "# OOMMF: rectangular mesh v1.0",
        "# Segment count: 1",
        "# Begin: Segment",
        "# Begin: Header",
        f"# Title: {title}",
        f"# Desc: Total simulation time:  {g(time_s or 0.0)}  s",
        *(f"# Desc: {line}" for line in desc),
        "# meshtype: rectangular",
        "# meshunit: m",
        f"# xbase: {g(cell[0] / 2)}",
        f"# ybase: {g(cell[1] / 2)}",
        f"# zbase: {g(cell[2] / 2)}",
        f"# xstepsize: {g(cell[0])}",
        f"# ystepsize: {g(cell[1])}",
        f"# zstepsize: {g(cell[2])}",
        f"# xnodes: {nx}",
        f"# ynodes: {ny}",
        f"# znodes: {nz}",
        "# xmin: 0",
        "# ymin: 0",
        "# zmin: 0",
        f"# xmax: {g(cell[0] * nx)}",
        f"# ymax: {g(cell[1] * ny)}",
        f"# zmax: {g(cell[2] * nz)}",
        f"# valueunit: {units[0]}",
        "# valuemultiplier: 1",
        "# End: Header",
    ]


def _data_block(arr: np.ndarray, fmt_key: str, version: int) -> bytes:
    # C order of (nz, ny, nx, c) is exactly the file order: x fastest, components interleaved.
    if fmt_key == "text":
        text_dtype = np.float32 if arr.dtype == np.float32 else np.float64
        rows = arr.reshape(-1, arr.shape[-1])
        return "".join("".join(format_number(v, text_dtype) + " " for v in row) + "\n" for row in rows).encode()
    size = 4 if fmt_key == "binary4" else 8
    order = "<" if version == 2 else ">"
    dtype = np.dtype(f"{order}f{size}")
    check = np.array([CHECK_VALUE_4 if size == 4 else CHECK_VALUE_8], dtype)
    return check.tobytes() + np.ascontiguousarray(arr, dtype=dtype).tobytes()


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` crash-safely (``jaxmag.io.atomic.write_bytes``), making the folder."""
    from jaxmag.io.atomic import write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, payload)
