"""Configuration: TOML files read into validated, frozen dataclasses.

A config file has one table per section (``[grid]``, ``[material]``, ``[defects]``,
``[simulation]``, ``[dataset]``, ``[measures]``, ``[noise]``, ``[model]``, ``[training]``,
``[run]``, ``[study]``, ``[instrument]``, ``[plan]``); every key has a default, so a file states only what it changes.
A variant names a base file with a top-level ``base = "paper.toml"`` (relative to itself) and
overrides some keys of it.

Unknown keys, wrong types and out-of-range values raise ``ConfigError`` (a ``ValueError``)
naming the file and the key. ``Config.to_toml()`` writes the fully resolved config back out,
and ``config_hash`` identifies it (used to refuse resuming with a different config).

This module only composes: the sections that are parameters of a library concept are that
concept's own record (``[defects]`` is ``jaxmag.defects.DefectParams``, ``[noise]`` is
``jaxmag.noise.NoiseSweep``, whose keys are the noise kinds with their levels, e.g.
``gaussian = [1e-4, 1e-2]``, and ``seed``; ``[instrument]`` is ``jaxmag.instrument.Instrument``,
on when the section is present; ``[measures]`` yields ``jaxmag.measures.MeasureOptions`` per
component), and every section checks its values in its own ``__post_init__`` (raising
``jaxmag.params.ParamError``, which is reported here with the file and the section). Turning a
``Config`` into the library's plain objects is ``jaxmag.assemble``'s job; nothing in the
library imports this module.
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

from jaxmag import integrators
from jaxmag.channels import COMPONENTS, Channel, parse_channels
from jaxmag.defects import DefectParams
from jaxmag.fields.terms import STANDARD_TERMS, TERMS
from jaxmag.grid import Grid
from jaxmag.instrument import Instrument
from jaxmag.plan_grid import PlanConfig
from jaxmag.measures import MEASURE_FUNCTIONS, MeasureOptions
from jaxmag.noise import NOISE_MODELS, NoiseSweep
from jaxmag.params import ParamError, require
from jaxmag.recipes import RECIPES


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

    def __post_init__(self) -> None:
        for name in ("nx", "ny", "nz"):
            require(getattr(self, name) > 0, name, "must be positive")
        require(all(c > 0 for c in self.cell_size_m), "cell_size_m", "must be positive (metres)")
        require(all(c < 1e-6 for c in self.cell_size_m), "cell_size_m", "must be in metres (e.g. 4e-9)")
        require(self.pbc_images >= 0, "pbc_images", "must be >= 0")

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

    def __post_init__(self) -> None:
        require(self.Ms > 0, "Ms", "must be positive (A/m)")
        require(self.A_ex >= 0, "A_ex", "must be non-negative (J/m)")
        require(self.alpha > 0, "alpha", "must be positive")
        require(self.temperature >= 0, "temperature", "must be non-negative (K)")
        require(any(self.easy_axis), "easy_axis", "must be a non-zero vector")


DefectConfig = DefectParams  # the [defects] section is the defects module's own record
NoiseConfig = NoiseSweep  # the [noise] section is the noise module's own record


def _multiple(value: float, step: float) -> bool:
    n = value / step
    return abs(n - round(n)) < 1e-6 * max(n, 1)


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    dt: float = 1e-13  # s, fixed time step
    burn_in_s: float = 5e-10  # s simulated before the first frame
    frame_interval_s: float = 1e-11  # s between frames
    num_frames: int = 100
    terms: tuple[str, ...] = STANDARD_TERMS  # field terms, names of jaxmag.fields.terms.TERMS, summed in this order
    components: str = "xz"  # components stored in the dataset
    store_dtype: Literal["float16", "float32"] = "float32"
    precision: Literal["float32", "float64"] = "float32"
    solver: str = "heun"  # integrator of the thermal movies, a name of jaxmag.integrators.SOLVERS

    def __post_init__(self) -> None:
        require(self.dt > 0, "dt", "must be positive (s)")
        require(self.burn_in_s >= 0, "burn_in_s", "must be >= 0 (s)")
        require(self.frame_interval_s >= self.dt, "frame_interval_s", "must be >= simulation.dt")
        require(self.num_frames >= 2, "num_frames", "must be >= 2")
        c = self.components
        require(len(c) > 0 and set(c) <= set("xyz") and len(set(c)) == len(c), "components",
                "must be distinct letters from 'xyz'")
        require(_multiple(self.frame_interval_s, self.dt), "frame_interval_s", "must be a multiple of simulation.dt")
        require(_multiple(self.burn_in_s, self.dt), "burn_in_s", "must be a multiple of simulation.dt")
        solvers = tuple(integrators.SOLVERS)
        require(self.solver in solvers, "solver", f"must be one of {', '.join(map(repr, solvers))}, got {self.solver!r}")
        for term in self.terms:
            require(term in TERMS, "terms", f"entries must be field terms of jaxmag.fields.terms.TERMS "
                    f"({', '.join(TERMS)}), got {term!r}")
        require(len(self.terms) > 0 and len(set(self.terms)) == len(self.terms), "terms",
                f"must name each field term once (at least one), got {list(self.terms)}")

    @property
    def steps(self) -> tuple[int, int]:
        """``(burn_in_steps, steps_per_frame)`` (validated multiples of dt)."""
        return int(round(self.burn_in_s / self.dt)), int(round(self.frame_interval_s / self.dt))


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    num_runs: int = 256
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.num_runs > 0, "num_runs", "must be positive")
        require(self.batch_size > 0, "batch_size", "must be positive")


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
    fixed_range_p: tuple[float, ...] = ()  # the recorded probe signal (jaxmag.recording), units of Ms
    weighting: Literal["frequency", "uniform"] = "frequency"
    normalize: bool = False
    ddof: int = 0

    def __post_init__(self) -> None:
        for comp in "xyzp":
            r = getattr(self, f"fixed_range_{comp}")
            require(len(r) in (0, 2) and (not r or r[0] < r[1]), f"fixed_range_{comp}",
                    "must be empty or two increasing numbers")
        self.options()  # MeasureOptions checks the shared options, naming the field

    def options(self, component: str | None = None) -> MeasureOptions:
        """The ``MeasureOptions`` of ``component`` (its ``fixed_range_<component>`` when set,
        else the shared ``fixed_range``)."""
        own = tuple(getattr(self, f"fixed_range_{component}", ())) if component else ()
        return MeasureOptions(num_states=self.num_states, binning=self.binning, lag=self.lag,
                              fixed_range=tuple(own or self.fixed_range), weighting=self.weighting,
                              normalize=self.normalize, ddof=self.ddof)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The U-Net (``jaxmag.models.UNet``): width of the first level, levels, dropout rate, and the
    classes it segments (``jaxmag.learn.classes.SCHEMES``: ``"binary"`` background/defect, or
    ``"typed"`` background and one class per ``[defects]`` group)."""

    base_features: int = 64
    depth: int = 4
    dropout: float = 0.1
    classes: Literal["binary", "typed"] = "binary"

    def __post_init__(self) -> None:
        require(self.base_features > 0, "base_features", "must be positive")
        require(self.depth >= 1, "depth", "must be >= 1")
        require(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        require(self.classes in ("binary", "typed"), "classes", f"must be 'binary' or 'typed', got {self.classes!r}")


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
    # a name of jaxmag.recipes.RECIPES: "paper" (appendix A: CE, fixed noise, no augmentation) or
    # "robust" (movies with fresh noise + symmetry augmentation, CE + soft Dice) and its ablations
    recipe: str = "paper"

    def __post_init__(self) -> None:
        require(self.epochs > 0, "epochs", "must be positive")
        require(self.batch_size > 0, "batch_size", "must be positive")
        require(self.learning_rate > 0, "learning_rate", "must be positive")
        require(abs(sum(self.split) - 1) < 1e-9 and all(x > 0 for x in self.split), "split",
                "must be three positive fractions summing to 1")
        require(self.recipe in RECIPES, "recipe", f"must be one of {', '.join(map(repr, RECIPES))}, got {self.recipe!r}")


def _check_channel_lists(key: str, entries: tuple[str, ...], example: str) -> None:
    for entry in entries:
        try:
            parse_channels(entry)
        except ValueError:
            raise ParamError(key, f"entries must look like {example}, got {entry!r}") from None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What ``jaxmag run`` trains: ``"measure:component"`` entries."""

    models: tuple[str, ...] = ("mean:x",)

    def __post_init__(self) -> None:
        _check_channel_lists("models", self.models, "'mean:x' or 'mean:x,std:z'")


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    measures: tuple[str, ...] = ("mean", "std", "latent_entropy")
    components: tuple[str, ...] = ("x", "z")
    train_conditions: tuple[str, ...] = ("clean", "matched")
    multichannel: tuple[str, ...] = ()  # e.g. "mean:x,std:z,latent_entropy:z"
    recipes: tuple[str, ...] = ()  # training recipes to compare (jaxmag.recipes.RECIPES); () = training.recipe
    seeds: int = 1  # training seeds of the headline units (seed_inputs x seed_conditions)
    seed_inputs: tuple[str, ...] = ("mean:x", "std:z")
    seed_conditions: tuple[str, ...] = ("clean", "gaussian_1e-2", "speckle_1e-2")
    # class schemes of the headline units (seed_inputs x seed_conditions): every scheme besides
    # "binary" adds one unit per headline unit, trained with [model] classes set to it
    classes: tuple[str, ...] = ("binary",)

    def __post_init__(self) -> None:
        for measure in self.measures:
            require(measure in MEASURE_FUNCTIONS, "measures", f"entries must be one of {tuple(MEASURE_FUNCTIONS)}, got {measure!r}")
        for comp in self.components:
            require(comp in COMPONENTS, "components",
                    f"entries must be x, y, z or p (the [instrument]'s record), got {comp!r}")
        for cond in self.train_conditions:
            require(cond in ("clean", "matched"), "train_conditions",
                    f"entries must be 'clean' or 'matched', got {cond!r}")
        _check_channel_lists("multichannel", self.multichannel, "'mean:x,std:z'")
        for name in self.recipes:
            require(name in RECIPES, "recipes", f"entries must be one of {tuple(RECIPES)}, got {name!r}")
        require(self.seeds >= 1, "seeds", f"must be >= 1, got {self.seeds}")
        # the names [model] classes accepts (jaxmag.learn.classes.SCHEMES, which this layer may not import)
        schemes = typing.get_args(typing.get_type_hints(ModelConfig)["classes"])
        for name in self.classes:
            require(name in schemes, "classes", f"entries must be one of {schemes}, got {name!r}")
        require("binary" in self.classes and len(set(self.classes)) == len(self.classes), "classes",
                f"must list 'binary' (the study's own units) and each scheme to add beside it once, got {list(self.classes)}")


@dataclasses.dataclass(frozen=True)
class Config:
    grid: GridConfig = GridConfig()
    material: MaterialConfig = MaterialConfig()
    defects: DefectParams = DefectParams()
    simulation: SimulationConfig = SimulationConfig()
    dataset: DatasetConfig = DatasetConfig()
    measures: MeasuresConfig = MeasuresConfig()
    noise: NoiseSweep = NoiseSweep()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    run: RunConfig = RunConfig()
    study: StudyConfig = StudyConfig()
    # [instrument] (jaxmag.instrument.Instrument): absent, the movies are the magnetisation itself;
    # present, what the microscope records (enabled unless the section says enabled = false)
    instrument: Instrument = Instrument(enabled=False)
    # [plan] (jaxmag.plan_grid.PlanConfig): the sweep of ``jaxmag plan``; absent, no plan
    plan: PlanConfig = PlanConfig(enabled=False)
    name: str = "jaxmag"

    def to_dict(self) -> dict[str, Any]:
        data = _to_plain(dataclasses.asdict(self))
        data["noise"] = _noise_table(self.noise)
        # sections absent by default: the TOML and the hash of the configs written before them
        for section, absent in _ABSENT_SECTIONS:
            if getattr(self, section) == absent:
                del data[section]
        for section, key, default in _LATER_KEYS:
            if data[section].get(key) == default:
                del data[section][key]
        return data

    def to_toml(self) -> str:
        return dump_toml(self.to_dict())

    def replace(self, **sections: Any) -> "Config":
        return dataclasses.replace(self, **sections)


_ABSENT_SECTIONS = (("instrument", Instrument(enabled=False)), ("plan", PlanConfig(enabled=False)))

# Keys added after configs were first stored (datasets, run folders, study units compare their
# hashes): written only when they differ from their default, so older configs keep their hash.
_LATER_KEYS = (("measures", "fixed_range_p", []), ("noise", "shot", []), ("model", "classes", "binary"),
               ("study", "classes", ["binary"]))


def config_hash(config: Config, *sections: str) -> str:
    """Short SHA-256 of the resolved config (or of the named sections only)."""
    data = config.to_dict()
    if sections:
        data = {k: data[k] for k in sections}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def first_difference(old: Any, new: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first key (``section.key``, sorted) whose value differs between two configs (or
    their ``to_dict()`` / TOML tables), with both values; ``None`` when they are equal."""
    old = old.to_dict() if isinstance(old, Config) else old
    new = new.to_dict() if isinstance(new, Config) else new
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return (prefix[:-1], old, new) if old != new else None


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file (following ``base = ...`` chains)."""
    path = Path(path)
    return config_from_dict(_read_with_base(path, seen=()), source=str(path))


def loads_config(text: str, source: str = "<string>") -> Config:
    """Parse a config from TOML text (no ``base`` allowed)."""
    return config_from_dict(_toml_table(text, source), source=source)


def stored_config(text: str, source: str = "<string>") -> Config:
    """A config that jaxmag stored in a file it wrote (a dataset's or a run folder's ``config``).

    Keys of earlier versions (``_RETIRED_KEYS``) are read as what replaced them, so data written
    by an earlier jaxmag stays readable; a user's config (``load_config``, ``loads_config``) gets
    the error naming the new form instead."""
    return config_from_dict(_upgrade_stored(_toml_table(text, source)), source=source)


def load_stored_config(path: str | Path) -> Config:
    """``stored_config`` of a config file jaxmag wrote (a run folder's ``config.toml``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return stored_config(text, source=str(path))


def _toml_table(text: str, source: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    if "base" in data:
        raise ConfigError(f"{source}: 'base' is only allowed in config files")
    return data


def _upgrade_stored(data: dict[str, Any]) -> dict[str, Any]:
    """A stored config with 0.1.0 keys in today's form: ``[simulation] demag`` -> ``terms``,
    ``[noise] types`` x ``variances`` -> one level list per kind."""
    data = dict(data)
    sim = data.get("simulation")
    if isinstance(sim, dict) and "demag" in sim:
        sim = dict(sim)
        demag = sim.pop("demag")
        if "terms" not in sim:
            sim["terms"] = [t for t in STANDARD_TERMS if t != "demag" or demag]
        data["simulation"] = sim
    noise = data.get("noise")
    if isinstance(noise, dict) and ("types" in noise or "variances" in noise):
        noise = dict(noise)
        kinds = noise.pop("types", ["gaussian", "speckle"])
        levels = noise.pop("variances", [1e-4, 1e-3, 1e-2, 1e-1, 1.0])  # 0.1.0's defaults
        for kind in kinds:
            noise.setdefault(kind, list(levels))
        data["noise"] = noise
    return data


def _read_with_base(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give the path of a TOML config file")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a TOML config (not a text file)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    if not text.strip():  # an empty file would silently mean "every default" (the paper-size dataset)
        raise ConfigError(f"{path} is empty; give a TOML config (e.g. configs/quick.toml)")
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


_RETIRED_KEYS = {
    "simulation.demag": 'list the field terms instead, e.g. terms = ["exchange", "anisotropy", "zeeman", "demag"] '
                        '(leave "demag" out for demag = false)',
    "noise.types": "list the levels per kind instead, e.g. gaussian = [1e-4, 1e-2] and speckle = [1e-4, 1e-2]",
    "noise.variances": "list the levels per kind instead, e.g. gaussian = [1e-4, 1e-2] and speckle = [1e-4, 1e-2]",
}
"""Keys of earlier versions, each with what replaces it."""


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> Config:
    """Build a validated ``Config`` from nested plain data (as read from TOML)."""
    return _build(Config, data, source, prefix="")


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [{prefix.rstrip('.')}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if f"{prefix}{key}" in _RETIRED_KEYS:
            raise ConfigError(f"{source}: key '{prefix}{key}' is gone: {_RETIRED_KEYS[prefix + key]}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{prefix}{unknown[0]}' (allowed in "
            f"{'[' + prefix.rstrip('.') + ']' if prefix else 'the top level'}: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if hint is NoiseSweep:
            kwargs[name] = _noise_section(value, source, prefix=f"{prefix}{name}.")
        elif dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, source, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(hint, value, source, f"{prefix}{name}")
    try:
        return cls(**kwargs)
    except ParamError as exc:  # the section's own check: say which file and section
        raise ConfigError(f"{source}: key '{prefix}{exc.key}' {exc.what}") from None


def _noise_section(data: Any, source: str, prefix: str) -> NoiseSweep:
    """``[noise]``: one key per noise kind (a ``jaxmag.noise.NOISE_MODELS`` name) listing its
    levels, e.g. ``gaussian = [1e-4, 1e-2]``, and ``seed``. The kinds listed are the sweep (an
    empty list drops a kind a base config lists); a table that lists none keeps the default sweep."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [{prefix.rstrip('.')}] must be a table")
    for key in data:
        if f"{prefix}{key}" in _RETIRED_KEYS:
            raise ConfigError(f"{source}: key '{prefix}{key}' is gone: {_RETIRED_KEYS[prefix + key]}")
    unknown = sorted(set(data) - {"seed", *NOISE_MODELS})
    if unknown:
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}' (allowed in [{prefix.rstrip('.')}]: "
                          f"seed and the noise kinds {', '.join(NOISE_MODELS)})")
    kwargs: dict[str, Any] = {}
    if "seed" in data:
        kwargs["seed"] = _coerce(int, data["seed"], source, f"{prefix}seed")
    if any(kind in data for kind in NOISE_MODELS):
        kwargs["levels"] = tuple((kind, _coerce(tuple[float, ...], data[kind], source, f"{prefix}{kind}"))
                                 for kind in NOISE_MODELS if kind in data)
    try:
        return NoiseSweep(**kwargs)
    except ParamError as exc:
        raise ConfigError(f"{source}: key '{prefix}{exc.key}' {exc.what}") from None


def _noise_table(sweep: NoiseSweep) -> dict[str, Any]:
    """The ``[noise]`` table of a sweep: every registered kind (``[]`` when absent) and the seed."""
    levels = dict(sweep.levels)
    return {**{kind: list(levels.get(kind, ())) for kind in NOISE_MODELS}, "seed": sweep.seed}


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



def parse_input_spec(text: str) -> tuple[Channel, ...]:
    """``"mean:x,std:z"`` -> ``(Channel("mean", "x"), Channel("std", "z"))``; ``ConfigError`` otherwise."""
    try:
        return parse_channels(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


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
