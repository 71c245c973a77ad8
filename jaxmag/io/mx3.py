"""MuMax3 ``.mx3`` scripts: export of a jaxmag run, standard problem 4, and a small parser.

Export (``mx3_script`` / ``write_mx3_run``)
-------------------------------------------
The script reproduces a jaxmag run as closely as MuMax3 allows. What each field term and each
solver becomes is carried by its registry entry (``fields.terms.TERMS[name].mx3``,
``integrators.SOLVERS[name].mx3``); this module only writes them:

* ``SetGridSize``/``SetCellSize``; ``SetPBC(n, n, 0)`` for ``boundary = "periodic"`` (the
  same image count as jaxmag's demag); each term's ``off`` lines when the run leaves it out
  (``EnableDemag = false``) and its ``on`` lines when the run has it.
* Per-cell material maps become MuMax3 regions. The maps written are the LLG's own (``Msat``,
  ``alpha``, ``Temp``) and the ``params`` of the run's terms (``Aex``; ``Ku1``, ``AnisU``;
  ``B_ext``), in ``Material`` field order; a term left out writes no map (MuMax3's zero default
  then leaves it out too). Every distinct tuple of these maps is one region (region 0 is the
  most frequent one, i.e. the background). MuMax3 has 256 regions; a map with more distinct
  tuples is refused with a message saying how to coarsen it (``quantize_easy_axis``, or
  ``defects.angle_mode = "per_blob"``). The region map is written as a scalar OVF file of
  region indices and loaded with ``regions.LoadFile`` (MuMax3 casts each value to a byte,
  ``engine/regions.go``); parameters are set per region with ``.SetRegion``, or globally
  when they are uniform.
* Inter-region couplings (a term's ``links``). jaxmag's exchange (``jaxmag/fields/exchange.py``)
  uses, for face neighbours i, j,

      B_exch,i = (2 / Ms_i) Σ_j A_ij (m_j − m_i) / d²,   A_ij = 2 A_i A_j / (A_i + A_j).

  MuMax3 ≥ 3.10 (``engine/exchange.go``, ``cuda/exchange.cu``) computes the same expression
  with a per-region-pair table ``lut[i,j] = scale_ij · 2 A_i A_j / (A_i + A_j) + inter_ij``
  (default scale 1, inter 0); ``ext_ScaleExchange(i, j, s)`` sets (scale, inter) = (s, 0) and
  ``ext_InterExchange(i, j, v)`` sets (scale, inter) = (0, v). The exporter writes
  ``ext_InterExchange(i, j, 2 A_i A_j / (A_i + A_j))`` for every pair of magnetic regions that
  touch (across x, y, z faces, wrapping in-plane when periodic), so that A_ij is stated
  explicitly and equals jaxmag's harmonic mean whatever MuMax3's default. (MuMax3 ≤ 3.9
  averaged Aex/Msat instead, which agrees only where Ms is equal on both sides.)
* Initial m: ``m = uniform(...)`` when uniform, else ``m0.ovf`` loaded with ``m.LoadFile``.
* Dynamics: the solver's fixed-step MuMax3 equivalent (Heun ``SetSolver(2)``, RK4
  ``SetSolver(4)``), ``FixDt = dt``; ``ThermSeed(seed)``;
  ``run(burn_in)``; then ``tableautosave``/``autosave(m, ...)`` every frame interval and
  ``run(num_frames · interval)``. MuMax3's autosave also writes a frame at the start of the
  run, so ``m000000.ovf`` is the state after burn-in and ``m000001.ovf ...`` correspond to
  jaxmag's frames at ``burn_in + k · interval`` (k = 1..num_frames; times are in the files,
  ``jaxmag mumax3 compare`` aligns them). MuMax3 computes in float32.

Parser (``parse_mx3``)
----------------------
Reads the subset of the MuMax3 language the exporter emits plus the statements of the SP4
reference script (assignments, function and method calls, numeric arithmetic, ``vector``,
``uniform``, ``print``), so exported scripts can be checked against the maps they came from.
Any other statement raises ``ValueError`` naming the line.
"""
from __future__ import annotations

import ast
import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jaxmag.fields.terms import STANDARD_TERMS, TERMS, check_term_names
from jaxmag.grid import Grid
from jaxmag.integrators import solver_spec
from jaxmag.io.atomic import write_text
from jaxmag.io.ovf import format_number, write_ovf
from jaxmag.material import Material, validate_material

MAX_REGIONS = 256
LLG_PARAMS = {"Ms": "Msat", "alpha": "alpha", "temperature": "Temp"}
"""The maps of the LLG itself (and its thermal field), written whatever the terms."""


def region_parameters(terms: Sequence[str] = STANDARD_TERMS) -> dict[str, str]:
    """``Material`` map -> MuMax3 region parameter of a run with ``terms``, in ``Material`` field
    order: the LLG's maps and each term's ``mx3.params``."""
    names = dict(LLG_PARAMS)
    for name in check_term_names(terms):
        names.update(TERMS[name].mx3.params)
    return {f.name: names[f.name] for f in dataclasses.fields(Material) if f.name in names}


# ------------------------------------------------------------------------------ regions


@dataclasses.dataclass(frozen=True)
class Regions:
    """Material maps as MuMax3 regions.

    ``index``: int array ``(nz, ny, nx)`` of region numbers; ``params[r]``: MuMax3 name ->
    value (float, or a 3-tuple for vector maps such as AnisU and B_ext) of region r, in SI units.
    """

    index: np.ndarray
    params: tuple[dict[str, Any], ...]

    @property
    def count(self) -> int:
        return len(self.params)


def assign_regions(material: Material, max_regions: int = MAX_REGIONS, *,
                   terms: Sequence[str] = STANDARD_TERMS) -> Regions:
    """One region per distinct tuple of the maps written for ``terms`` (``region_parameters``)."""
    names = region_parameters(terms)
    cols = [np.asarray(getattr(material, field), np.float64) for field in names]
    shape = np.shape(material.Ms)
    cols = [c[..., None] if c.shape == shape else c for c in cols]  # scalar maps get a width of 1
    widths = [c.shape[-1] for c in cols]
    table = np.concatenate([np.broadcast_to(c, shape + c.shape[-1:]) for c in cols], axis=-1).reshape(-1, sum(widths))
    unique, inverse, counts = np.unique(table, axis=0, return_inverse=True, return_counts=True)
    if len(unique) > max_regions:
        raise ValueError(
            f"the material maps hold {len(unique)} distinct ({', '.join(names.values())}) "
            f"combinations but MuMax3 allows at most {max_regions} regions. Coarsen the maps: quantise the "
            "easy-axis angle (jaxmag mumax3 export --quantize-angle-deg 1, i.e. jaxmag.io.mx3.quantize_easy_axis), "
            "or use defects.angle_mode = \"per_blob\" instead of \"per_cell\", or fewer defect blobs"
        )
    # Most frequent tuple first, so region 0 is the background; ties broken by value order.
    order = np.lexsort((np.arange(len(unique)), -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    index = rank[inverse.reshape(-1)].reshape(shape)
    dtype = np.asarray(material.Ms).dtype
    params = tuple(_row_params(unique[i], tuple(names.values()), widths, dtype) for i in order)
    return Regions(index=index, params=params)


def _row_params(row: np.ndarray, names: tuple[str, ...], widths: list[int], dtype: Any) -> dict[str, Any]:
    cast = lambda v: float(np.dtype(dtype).type(v)) if np.issubdtype(dtype, np.floating) else float(v)  # noqa: E731
    out, start = {}, 0
    for name, width in zip(names, widths):
        values = row[start:start + width]
        out[name] = cast(values[0]) if width == 1 else tuple(cast(v) for v in values)
        start += width
    return out


def touching_pairs(index: np.ndarray, periodic: bool) -> set[tuple[int, int]]:
    """Pairs (i < j) of regions sharing a cell face; in-plane faces wrap when ``periodic``."""
    pairs: set[tuple[int, int]] = set()
    for axis in (0, 1, 2):  # z, y, x of the (nz, ny, nx) map
        n = index.shape[axis]
        if n < 2:
            continue
        a = index
        b = np.roll(index, -1, axis=axis)
        if not (periodic and axis > 0):  # drop the wrap-around link
            sl = [slice(None)] * 3
            sl[axis] = slice(0, n - 1)
            a, b = a[tuple(sl)], b[tuple(sl)]
        diff = a != b
        lo, hi = np.minimum(a[diff], b[diff]), np.maximum(a[diff], b[diff])
        pairs.update(zip(lo.tolist(), hi.tolist()))
    return pairs


def quantize_easy_axis(material: Material, step_deg: float) -> Material:
    """Round each cell's easy axis to a grid of ``step_deg`` in polar and azimuthal angle.

    Reduces the number of distinct easy axes (hence MuMax3 regions) of per-cell random
    anisotropy; the error per cell is at most ``step_deg / 2`` in each angle.
    """
    if not (step_deg > 0 and math.isfinite(step_deg)):
        raise ValueError(f"step_deg must be a positive angle in degrees, got {step_deg!r}")
    u = np.asarray(material.easy_axis, np.float64)
    norm = np.linalg.norm(u, axis=-1)
    theta = np.degrees(np.arccos(np.clip(u[..., 2] / np.where(norm > 0, norm, 1), -1, 1)))
    phi = np.degrees(np.arctan2(u[..., 1], u[..., 0]))
    theta, phi = np.radians(np.round(theta / step_deg) * step_deg), np.radians(np.round(phi / step_deg) * step_deg)
    q = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    q = np.where(norm[..., None] > 0, q, 0.0)
    dtype = np.asarray(material.easy_axis).dtype
    return material.replace(easy_axis=np.asarray(q, dtype=dtype))


# ------------------------------------------------------------------------------ export


def _num(value: float, dtype: Any = np.float64) -> str:
    text = format_number(value, dtype)
    if text in ("NaN", "+Inf", "-Inf"):
        raise ValueError(f"cannot write non-finite value {value!r} to an .mx3 script")
    return text


def _value(value: Any, dtype: Any) -> str:
    if isinstance(value, tuple):
        return f"vector({', '.join(_num(v, dtype) for v in value)})"
    return _num(value, dtype)


def mx3_script(
    grid: Grid,
    material: Material,
    m0: Any,
    sim_config: Any,
    *,
    thermal_seed: int,
    m0_file: str = "m0.ovf",
    regions_file: str = "regions.ovf",
    title: str = "",
) -> str:
    """The MuMax3 script of one jaxmag run (see the module docstring for the mapping).

    Args:
        grid, material: the run's grid and per-cell maps ``(nz, ny, nx)``.
        m0: initial magnetisation ``(nz, ny, nx, 3)``.
        sim_config: the run's time stepping and physics: a ``jaxmag.simulate.MovieSpec`` (what
            ``jaxmag.assemble.assemble(config).movie`` gives), or an object with ``dt``,
            ``burn_in_s``, ``frame_interval_s``, ``num_frames`` (s, s, s, -), ``terms`` (names of
            ``fields.terms.TERMS``) and ``solver`` (a name of ``integrators.SOLVERS``).
        thermal_seed: MuMax3 ``ThermSeed`` (a non-negative int).
        m0_file, regions_file: names the script loads when m0 / the regions are not uniform
            (``write_mx3_run`` writes them next to the script).
    """
    validate_material(material, grid)
    m0 = np.asarray(m0)
    if m0.shape != grid.vector_shape:
        raise ValueError(f"m0 has shape {m0.shape}, expected {grid.vector_shape}")
    if not isinstance(thermal_seed, (int, np.integer)) or not 0 <= thermal_seed < 2**31:
        raise ValueError(f"thermal_seed must be an int in [0, 2**31) (MuMax3 ThermSeed), got {thermal_seed!r}")
    s = _timing(sim_config)
    regions = assign_regions(material, terms=s.terms)
    lines = [f"// {title}" if title else "// MuMax3 script exported by jaxmag", "// regions/inter-region exchange: see jaxmag.io.mx3"]
    lines += [
        f"SetGridSize({grid.nx}, {grid.ny}, {grid.nz})",
        f"SetCellSize({_num(grid.dx)}, {_num(grid.dy)}, {_num(grid.dz)})",
    ]
    if grid.periodic:
        lines.append(f"SetPBC({grid.pbc_images}, {grid.pbc_images}, 0)")
    lines += _switch_lines(s.terms)
    if regions.count > 1:
        lines.append(f'regions.LoadFile("{regions_file}")')
    lines += _region_lines(regions, np.asarray(material.Ms).dtype)
    lines += _link_lines(regions, grid.periodic, s.terms)
    if _is_uniform(m0):
        lines.append(f"m = uniform({', '.join(_num(v) for v in m0.reshape(-1, 3)[0])})")
    else:
        lines.append(f'm.LoadFile("{m0_file}")')
    lines += [
        f"SetSolver({solver_spec(s.solver).mx3})",
        f"FixDt = {_num(s.dt)}",
        f"ThermSeed({int(thermal_seed)})",
    ]
    if s.burn_in_s > 0:
        lines.append(f"run({_num(s.burn_in_s)})")
    lines += [
        f"tableautosave({_num(s.frame_interval_s)})",
        f"autosave(m, {_num(s.frame_interval_s)})",
        # Half a step more than the frame span, so float rounding of the accumulated time
        # cannot drop the last frame.
        f"run({_num(s.num_frames * s.frame_interval_s + 0.5 * s.dt)})",
    ]
    return "\n".join(lines) + "\n"


def _switch_lines(terms: tuple[str, ...]) -> list[str]:
    """The ``off`` lines of the registered terms the run leaves out, then the run's ``on`` lines."""
    lines = [line for name, term in TERMS.items() if name not in terms for line in term.mx3.off]
    return lines + [line for name in terms for line in TERMS[name].mx3.on]


def _region_lines(regions: Regions, dtype: Any) -> list[str]:
    """Each region parameter: one global assignment when uniform, else one ``SetRegion`` per region."""
    lines = []
    for name in regions.params[0]:
        values = [p[name] for p in regions.params]
        if all(v == values[0] for v in values):
            lines.append(f"{name} = {_value(values[0], dtype)}")
        else:
            lines += [f"{name}.SetRegion({r}, {_value(v, dtype)})" for r, v in enumerate(values)]
    return lines


def _link_lines(regions: Regions, periodic: bool, terms: tuple[str, ...]) -> list[str]:
    """The terms' inter-region statements for every touching pair of magnetic regions."""
    links = [link for name in terms for link in TERMS[name].mx3.links]
    if not links:
        return []
    lines, Msat = [], LLG_PARAMS["Ms"]
    pairs = sorted(touching_pairs(regions.index, periodic))
    for link in links:
        for i, j in pairs:
            pi, pj = regions.params[i], regions.params[j]
            if pi[Msat] > 0 and pj[Msat] > 0:  # vacuum cells have m = 0 and no coupling
                lines.append(f"{link.statement}({i}, {j}, {_num(link.rule(pi[link.param], pj[link.param]))})")
    return lines


@dataclasses.dataclass(frozen=True)
class _Timing:
    dt: float
    burn_in_s: float
    frame_interval_s: float
    num_frames: int
    terms: tuple[str, ...]
    solver: str


def _timing(sim: Any) -> _Timing:
    """Seconds-based timing, terms and solver of a ``MovieSpec`` (step counts) or of a config-like section."""
    terms = check_term_names(sim.terms)
    solver_spec(sim.solver)  # a name of integrators.SOLVERS, or a ValueError naming them
    if hasattr(sim, "burn_in_steps"):
        # step count × dt carries float noise (100 × 1e-13 = 1.0000000000000001e-11); 12
        # significant digits give the times the config stated
        seconds = lambda steps: float(f"{steps * sim.dt:.12g}")  # noqa: E731
        return _Timing(sim.dt, seconds(sim.burn_in_steps), seconds(sim.steps_per_frame), sim.num_frames, terms,
                       sim.solver)
    return _Timing(sim.dt, sim.burn_in_s, sim.frame_interval_s, sim.num_frames, terms, sim.solver)


def _is_uniform(m0: np.ndarray) -> bool:
    flat = m0.reshape(-1, 3)
    return bool(np.all(flat == flat[0]) and np.any(flat[0] != 0))


def write_mx3_run(
    out_dir: str | os.PathLike,
    grid: Grid,
    material: Material,
    m0: Any,
    sim_config: Any,
    *,
    thermal_seed: int,
    name: str = "run",
    title: str = "",
    overwrite: bool = False,
) -> Path:
    """Write ``<name>.mx3`` (and ``regions.ovf`` / ``m0.ovf`` when needed) into ``out_dir``.

    Everything is validated before anything is written; each file is written atomically.
    Returns the script path.
    """
    out_dir = Path(out_dir)
    script_path = out_dir / f"{name}.mx3"
    if script_path.exists() and not overwrite:
        raise FileExistsError(f"{script_path} already exists; pass overwrite=True (--force at the command line) to replace it")
    text = mx3_script(grid, material, m0, sim_config, thermal_seed=thermal_seed, title=title)
    regions = assign_regions(material, terms=_timing(sim_config).terms)
    out_dir.mkdir(parents=True, exist_ok=True)
    if regions.count > 1:
        write_ovf(out_dir / "regions.ovf", regions.index.astype(np.float32), grid.cell_size, title="regions")
    m0 = np.asarray(m0)
    if not _is_uniform(m0):
        write_ovf(out_dir / "m0.ovf", m0.astype(np.float32), grid.cell_size, title="m")
    write_text(script_path, text)
    return script_path


def sp4_script(frame_interval_s: float = 10e-12, *, save_frames: bool = False) -> str:
    """muMAG standard problem 4 (field 1) as a MuMax3 script.

    128 × 32 × 1 cells of 500/128 nm × 125/32 nm × 3 nm, Msat = 800 kA/m, Aex = 13 pJ/m,
    α = 0.02; relax from uniform(1, 0.1, 0), then B_ext = (−24.6, 4.3, 0) mT for 1 ns with
    the table every ``frame_interval_s`` (and m too with ``save_frames``).
    """
    lines = [
        "// muMAG standard problem 4, field 1 (exported by jaxmag)",
        "SetGridSize(128, 32, 1)",
        "SetCellSize(500e-9/128, 125e-9/32, 3e-9)",
        "Msat = 800e3",
        "Aex = 13e-12",
        "alpha = 0.02",
        "m = uniform(1, .1, 0)",
        "relax()",
        "save(m)",
        f"tableautosave({_num(frame_interval_s)})",
    ]
    if save_frames:
        lines.append(f"autosave(m, {_num(frame_interval_s)})")
    lines += ["B_ext = vector(-24.6E-3, 4.3E-3, 0)", "run(1e-9)", "save(m)"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ parser


@dataclasses.dataclass(frozen=True)
class Mx3Script:
    """What a parsed script sets up.

    grid_size ``(nx, ny, nz)``; cell_size (m); pbc; ``values[name]`` maps a region number
    (or ``None`` for a global assignment) to the value; ``inter_exchange[(i, j)]`` (J/m) and
    ``scale_exchange[(i, j)]`` with i ≤ j; ``variables`` holds other assignments (FixDt, m,
    EnableDemag, ...); ``calls`` the remaining calls in order as ``(name, args)``.
    """

    grid_size: tuple[int, int, int] | None
    cell_size: tuple[float, float, float] | None
    pbc: tuple[int, int, int]
    values: dict[str, dict[int | None, Any]]
    inter_exchange: dict[tuple[int, int], float]
    scale_exchange: dict[tuple[int, int], float]
    variables: dict[str, Any]
    calls: tuple[tuple[str, tuple[Any, ...]], ...]

    def param(self, name: str, region: int) -> Any:
        """Value of region parameter ``name`` in ``region`` (its own, else the global one)."""
        per = self.values.get(name, {})
        if region in per:
            return per[region]
        if None in per:
            return per[None]
        raise KeyError(f"the script does not set {name} for region {region}")

    def calls_named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n.lower() == name.lower()]


_ACTIONS = ("run", "relax", "save", "autosave", "tableautosave", "tablesave", "setsolver", "thermseed", "minimize", "steps")
_FUNCTIONS = ("setgridsize", "setcellsize", "setpbc", "ext_interexchange", "ext_scaleexchange") + _ACTIONS


class _Name(str):
    """A bare identifier used as an argument, e.g. ``m`` in ``autosave(m, 1e-11)``."""


def parse_mx3(text: str) -> Mx3Script:
    """Parse the MuMax3 subset described in the module docstring."""
    grid_size = cell_size = None
    pbc = (0, 0, 0)
    values: dict[str, dict[int | None, Any]] = {}
    inter: dict[tuple[int, int], float] = {}
    scale: dict[tuple[int, int], float] = {}
    variables: dict[str, Any] = {}
    calls: list[tuple[str, tuple[Any, ...]]] = []
    params_lower = {p.lower(): p for p in region_parameters(tuple(TERMS)).values()}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        try:
            tree = ast.parse(line, mode="exec")
        except SyntaxError:
            raise ValueError(f"mx3 line {lineno}: cannot parse {raw.strip()!r}") from None
        if len(tree.body) != 1:
            raise ValueError(f"mx3 line {lineno}: one statement per line expected, got {raw.strip()!r}")
        stmt = tree.body[0]
        try:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                name = stmt.targets[0].id
                value = _eval(stmt.value)
                if name.lower() in params_lower:
                    values.setdefault(params_lower[name.lower()], {}).clear()
                    values[params_lower[name.lower()]][None] = value
                else:
                    variables[name] = value
                continue
            if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
                raise ValueError("unsupported statement")
            call = stmt.value
            if isinstance(call.func, ast.Name) and call.func.id.lower() == "print":
                continue  # output only; its arguments may use methods outside the subset
            if isinstance(call.func, ast.Name) and call.func.id.lower() not in _FUNCTIONS:
                raise ValueError(f"unsupported function {call.func.id}")
            args = tuple(_eval(a) for a in call.args)
            if call.keywords:
                raise ValueError("keyword arguments are not MuMax3 syntax")
            func = call.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                obj, method = func.value.id, func.attr
                if method == "SetRegion" and obj.lower() in params_lower:
                    _need(len(args) == 2, "SetRegion takes (region, value)")
                    region = _region(args[0])
                    values.setdefault(params_lower[obj.lower()], {})[region] = args[1]
                    continue
                if method == "LoadFile":
                    _need(len(args) == 1 and isinstance(args[0], str), "LoadFile takes a file name")
                    variables[f"{obj}.LoadFile"] = args[0]
                    continue
                raise ValueError(f"unsupported method {obj}.{method}")
            if not isinstance(func, ast.Name):
                raise ValueError("unsupported call")
            fname = func.id
            low = fname.lower()
            if low == "setgridsize":
                _need(len(args) == 3 and all(float(a).is_integer() and a > 0 for a in args), "SetGridSize takes 3 positive integers")
                grid_size = tuple(int(a) for a in args)  # type: ignore[assignment]
            elif low == "setcellsize":
                _need(len(args) == 3 and all(a > 0 for a in args), "SetCellSize takes 3 positive lengths")
                cell_size = tuple(float(a) for a in args)  # type: ignore[assignment]
            elif low == "setpbc":
                _need(len(args) == 3, "SetPBC takes 3 integers")
                pbc = tuple(int(a) for a in args)  # type: ignore[assignment]
            elif low in ("ext_interexchange", "ext_scaleexchange"):
                _need(len(args) == 3, f"{fname} takes (region1, region2, value)")
                key = tuple(sorted((_region(args[0]), _region(args[1]))))
                (inter if low == "ext_interexchange" else scale)[key] = float(args[2])  # type: ignore[index]
                (scale if low == "ext_interexchange" else inter).pop(key, None)  # type: ignore[arg-type]
            elif low in _ACTIONS:
                calls.append((fname, args))
            else:
                raise ValueError(f"unsupported function {fname}")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"mx3 line {lineno}: {exc}: {raw.strip()!r}") from None
    return Mx3Script(grid_size, cell_size, pbc, values, inter, scale, variables, tuple(calls))


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _region(value: Any) -> int:
    if not (isinstance(value, (int, float)) and float(value).is_integer() and 0 <= value < MAX_REGIONS):
        raise ValueError(f"region must be an integer in 0..{MAX_REGIONS - 1}, got {value!r}")
    return int(value)


_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}


def _eval(node: ast.AST) -> Any:
    """Numbers, + − × ÷, strings, booleans, bare names, ``vector``/``uniform`` (3 numbers)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in ("true", "false"):
            return node.id == "true"
        return _Name(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand)
        _need(isinstance(value, (int, float)), "sign applied to a non-number")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _eval(node.left), _eval(node.right)
        _need(isinstance(a, (int, float)) and isinstance(b, (int, float)), "arithmetic on non-numbers")
        return _BINOPS[type(node.op)](a, b)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.lower() in ("vector", "uniform"):
        args = [_eval(a) for a in node.args]
        _need(len(args) == 3 and all(isinstance(a, (int, float)) for a in args), f"{node.func.id} takes 3 numbers")
        return tuple(float(a) for a in args)
    raise ValueError("unsupported expression")


def script_temperature(text: str) -> float | None:
    """Largest ``Temp`` (K) a script (or MuMax3 ``log.txt``) sets, or None if it sets none."""
    try:
        temps = list(parse_mx3(text).values.get("Temp", {}).values())
    except ValueError:
        # log.txt and user scripts may use statements outside the parsed subset.
        temps = [float(v) for v in re.findall(r"^\s*Temp\s*=\s*([-+0-9.eE]+)\s*(?://.*)?$", text, re.MULTILINE | re.IGNORECASE)]
    numbers = [float(t) for t in temps if isinstance(t, (int, float))]
    return max(numbers) if numbers else None
