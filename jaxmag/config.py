"""Configuration: TOML files read into validated, frozen dataclasses.

A config file has one table per section (``[grid]``, ``[material]``, ``[defects]``,
``[simulation]``, ``[dataset]``, ``[measures]``, ``[noise]``, ``[model]``, ``[training]``,
``[run]``, ``[study]``); every key has a default, so a file states only what it changes.
A variant names a base file with a top-level ``base = "paper.toml"`` (relative to itself) and
overrides some keys of it.

Unknown keys, wrong types and out-of-range values raise ``ConfigError`` (a ``ValueError``)
naming the file and the key. ``Config.to_toml()`` writes the fully resolved config back out,
and ``config_hash`` identifies it (used to refuse resuming with a different config).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from jaxmag.grid import Grid


class ConfigError(ValueError):
    """A configuration file or value is invalid."""


@dataclasses.dataclass(frozen=True)
class GridConfig:
    nx: int = 64
    ny: int = 64
    nz: int = 1
    cell_size_m: tuple[float, float, float] = (4e-9, 4e-9, 4e-9)
    boundary: Literal["open", "periodic"] = "periodic"
    pbc_images: int = 4

    def to_grid(self) -> Grid:
        dx, dy, dz = self.cell_size_m
        return Grid(self.nx, self.ny, self.nz, dx, dy, dz, self.boundary, self.pbc_images)


@dataclasses.dataclass(frozen=True)
class MaterialConfig:
    """Background (defect-free) film parameters, SI units."""

    Ms: float = 8.0e5  # A/m
    A_ex: float = 1.3e-11  # J/m
    K_u: float = 500.0  # J/m³
    easy_axis: tuple[float, float, float] = (1.0, 0.0, 0.0)
    alpha: float = 0.02
    temperature: float = 300.0  # K
    B_ext_T: tuple[float, float, float] = (0.0, 0.0, 0.0)  # T


@dataclasses.dataclass(frozen=True)
class DefectConfig:
    """Random defect blobs: ``num_a`` blobs scale A and K_u by ``factor_a``, ``num_b`` by ``factor_b``."""

    num_a: int = 2
    num_b: int = 2
    factor_a: float = 0.5
    factor_b: float = 2.0
    size_min: int = 20  # cells per blob
    size_max: int = 36
    min_gap: int = 2  # cells of background between blobs (Chebyshev distance)
    margin: int = 0  # cells kept free at the edges (useful for open boundaries)
    angle_sigma_deg: float = 10.0  # std of the in-plane easy-axis rotation inside blobs
    angle_mode: Literal["per_blob", "per_cell"] = "per_blob"


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    dt: float = 1e-13  # s, fixed Heun step
    burn_in_s: float = 5e-10  # s simulated before the first frame
    frame_interval_s: float = 1e-11  # s between frames
    num_frames: int = 100
    demag: bool = True
    components: str = "xz"  # components stored in the dataset
    store_dtype: Literal["float16", "float32"] = "float32"
    precision: Literal["float32", "float64"] = "float32"


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    num_runs: int = 256
    batch_size: int = 16
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class MeasuresConfig:
    num_states: int = 4  # K of the latent entropy
    binning: Literal["minmax", "fixed", "quantile"] = "minmax"
    lag: int = 1
    fixed_range: tuple[float, float] = (-1.0, 1.0)
    # Per-component ranges for binning = "fixed" (empty: use fixed_range). m_x of a film
    # magnetised along x lives near 1 and m_z near 0, so one shared range bins one of them
    # into a single state (docs/calibration.md).
    fixed_range_x: tuple[float, ...] = ()
    fixed_range_y: tuple[float, ...] = ()
    fixed_range_z: tuple[float, ...] = ()
    weighting: Literal["frequency", "uniform"] = "frequency"
    normalize: bool = False
    ddof: int = 0


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
    types: tuple[str, ...] = ("gaussian", "speckle")
    variances: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    seed: int = 1


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    base_features: int = 64
    depth: int = 4
    dropout: float = 0.1


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 500
    batch_size: int = 32  # global batch
    learning_rate: float = 1e-4
    schedule: Literal["constant", "cosine", "warmup_cosine"] = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # global-norm clip; 0 disables
    split: tuple[float, float, float] = (0.70, 0.15, 0.15)
    seed: int = 0
    eval_every: int = 1  # epochs
    compute_dtype: Literal["float32", "bfloat16"] = "float32"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What ``jaxmag run`` trains: ``"measure:component"`` entries."""

    models: tuple[str, ...] = ("mean:x",)


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    measures: tuple[str, ...] = ("mean", "std", "latent_entropy")
    components: tuple[str, ...] = ("x", "z")
    train_conditions: tuple[str, ...] = ("clean", "matched")
    multichannel: tuple[str, ...] = ()  # e.g. "mean:x,std:z,latent_entropy:z"


@dataclasses.dataclass(frozen=True)
class Config:
    grid: GridConfig = GridConfig()
    material: MaterialConfig = MaterialConfig()
    defects: DefectConfig = DefectConfig()
    simulation: SimulationConfig = SimulationConfig()
    dataset: DatasetConfig = DatasetConfig()
    measures: MeasuresConfig = MeasuresConfig()
    noise: NoiseConfig = NoiseConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    run: RunConfig = RunConfig()
    study: StudyConfig = StudyConfig()
    name: str = "jaxmag"

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    def to_toml(self) -> str:
        return dump_toml(self.to_dict())

    def replace(self, **sections: Any) -> "Config":
        return dataclasses.replace(self, **sections)


def config_hash(config: Config, *sections: str) -> str:
    """Short SHA-256 of the resolved config (or of the named sections only)."""
    data = config.to_dict()
    if sections:
        data = {k: data[k] for k in sections}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file (following ``base = ...`` chains)."""
    path = Path(path)
    return config_from_dict(_read_with_base(path, seen=()), source=str(path))


def loads_config(text: str, source: str = "<string>") -> Config:
    """Parse a config from TOML text (no ``base`` allowed)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    if "base" in data:
        raise ConfigError(f"{source}: 'base' is only allowed in config files")
    return config_from_dict(data, source=source)


def _read_with_base(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be a file name string")
    base_path = (path.parent / base).resolve()
    if base_path in seen:
        raise ConfigError(f"{path}: circular 'base' chain through {base_path}")
    merged = _read_with_base(base_path, seen + (base_path,))
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> Config:
    """Build a validated ``Config`` from nested plain data (as read from TOML)."""
    config = _build(Config, data, source, prefix="")
    _check_ranges(config, source)
    return config


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [{prefix.rstrip('.')}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{prefix}{unknown[0]}' (allowed in "
            f"{'[' + prefix.rstrip('.') + ']' if prefix else 'the top level'}: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, source, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(hint, value, source, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{source}: key '{key}' must be {expected}, got {value!r}")

    if hint is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        if not math.isfinite(value):
            raise fail("a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if origin is Literal:
        if value not in args:
            raise fail("one of " + ", ".join(repr(a) for a in args))
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise fail("an array")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise fail(f"an array of {len(args)} values")
        return tuple(_coerce(a, v, source, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (types.UnionType, typing.Union):
        for option in args:
            try:
                return _coerce(option, value, source, key)
            except ConfigError:
                continue
        raise fail(str(hint))
    raise ConfigError(f"{source}: key '{key}' has an unsupported type {hint!r}")


def _check_ranges(config: Config, source: str) -> None:
    def need(cond: bool, key: str, what: str) -> None:
        if not cond:
            raise ConfigError(f"{source}: key '{key}' {what}")

    g, mat, d, s = config.grid, config.material, config.defects, config.simulation
    for name in ("nx", "ny", "nz"):
        need(getattr(g, name) > 0, f"grid.{name}", "must be positive")
    need(all(c > 0 for c in g.cell_size_m), "grid.cell_size_m", "must be positive (metres)")
    need(all(c < 1e-6 for c in g.cell_size_m), "grid.cell_size_m", "must be in metres (e.g. 4e-9)")
    need(g.pbc_images >= 0, "grid.pbc_images", "must be >= 0")
    need(mat.Ms > 0, "material.Ms", "must be positive (A/m)")
    need(mat.A_ex >= 0, "material.A_ex", "must be non-negative (J/m)")
    need(mat.alpha > 0, "material.alpha", "must be positive")
    need(mat.temperature >= 0, "material.temperature", "must be non-negative (K)")
    need(any(mat.easy_axis), "material.easy_axis", "must be a non-zero vector")
    need(d.num_a >= 0 and d.num_b >= 0, "defects.num_a", "must be non-negative")
    need(0 < d.size_min <= d.size_max, "defects.size_min", "must be positive and <= defects.size_max")
    need(d.min_gap >= 0, "defects.min_gap", "must be >= 0")
    need(d.margin >= 0, "defects.margin", "must be >= 0")
    need(d.factor_a > 0 and d.factor_b > 0, "defects.factor_a", "and factor_b must be positive")
    need(d.angle_sigma_deg >= 0, "defects.angle_sigma_deg", "must be >= 0")
    need(s.dt > 0, "simulation.dt", "must be positive (s)")
    need(s.burn_in_s >= 0, "simulation.burn_in_s", "must be >= 0 (s)")
    need(s.frame_interval_s >= s.dt, "simulation.frame_interval_s", "must be >= simulation.dt")
    need(s.num_frames >= 2, "simulation.num_frames", "must be >= 2")
    need(
        len(s.components) > 0 and set(s.components) <= set("xyz") and len(set(s.components)) == len(s.components),
        "simulation.components",
        "must be distinct letters from 'xyz'",
    )
    steps = s.frame_interval_s / s.dt
    need(abs(steps - round(steps)) < 1e-6 * max(steps, 1), "simulation.frame_interval_s", "must be a multiple of simulation.dt")
    burn = s.burn_in_s / s.dt
    need(abs(burn - round(burn)) < 1e-6 * max(burn, 1), "simulation.burn_in_s", "must be a multiple of simulation.dt")
    need(config.dataset.num_runs > 0, "dataset.num_runs", "must be positive")
    need(config.dataset.batch_size > 0, "dataset.batch_size", "must be positive")
    m = config.measures
    need(m.num_states >= 2, "measures.num_states", "must be >= 2")
    need(m.lag >= 1, "measures.lag", "must be >= 1")
    need(m.fixed_range[0] < m.fixed_range[1], "measures.fixed_range", "must be increasing")
    for comp in "xyz":
        r = getattr(m, f"fixed_range_{comp}")
        need(len(r) in (0, 2) and (not r or r[0] < r[1]), f"measures.fixed_range_{comp}",
             "must be empty or two increasing numbers")
    need(m.ddof >= 0, "measures.ddof", "must be >= 0")
    for t in config.noise.types:
        need(t in ("gaussian", "speckle"), "noise.types", f"entries must be 'gaussian' or 'speckle', got {t!r}")
    need(all(v > 0 for v in config.noise.variances), "noise.variances", "must be positive")
    need(config.model.base_features > 0, "model.base_features", "must be positive")
    need(config.model.depth >= 1, "model.depth", "must be >= 1")
    need(0 <= config.model.dropout < 1, "model.dropout", "must be in [0, 1)")
    t = config.training
    need(t.epochs > 0, "training.epochs", "must be positive")
    need(t.batch_size > 0, "training.batch_size", "must be positive")
    need(t.learning_rate > 0, "training.learning_rate", "must be positive")
    need(abs(sum(t.split) - 1) < 1e-9 and all(x > 0 for x in t.split), "training.split", "must be three positive fractions summing to 1")
    for entry in config.run.models:
        need(_is_input_spec(entry), "run.models", f"entries must look like 'mean:x' or 'mean:x,std:z', got {entry!r}")
    for measure in config.study.measures:
        need(measure in MEASURE_NAMES, "study.measures", f"entries must be one of {MEASURE_NAMES}, got {measure!r}")
    for comp in config.study.components:
        need(comp in ("x", "y", "z"), "study.components", f"entries must be x, y or z, got {comp!r}")
    for cond in config.study.train_conditions:
        need(cond in ("clean", "matched"), "study.train_conditions", f"entries must be 'clean' or 'matched', got {cond!r}")
    for entry in config.study.multichannel:
        need(_is_input_spec(entry), "study.multichannel", f"entries must look like 'mean:x,std:z', got {entry!r}")


MEASURE_NAMES = ("mean", "std", "latent_entropy")


def _is_input_spec(text: str) -> bool:
    parts = [p.strip() for p in text.split(",")]
    for part in parts:
        measure, _, comp = part.partition(":")
        if measure not in MEASURE_NAMES or comp not in ("x", "y", "z"):
            return False
    return bool(parts)


def parse_input_spec(text: str) -> tuple[tuple[str, str], ...]:
    """``"mean:x,std:z"`` -> ``(("mean", "x"), ("std", "z"))``; raises ``ConfigError`` otherwise."""
    if not _is_input_spec(text):
        raise ConfigError(
            f"invalid input spec {text!r}: expected comma-separated 'measure:component' with measure in "
            f"{MEASURE_NAMES} and component in x, y, z"
        )
    return tuple(tuple(p.strip().split(":")) for p in text.split(","))  # type: ignore[return-value]


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def dump_toml(data: dict[str, Any]) -> str:
    """Write nested plain data (one level of tables) as TOML that ``tomllib`` reads back."""
    lines = []
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
    return "\n".join(lines) + "\n"
