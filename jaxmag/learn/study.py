"""The study: units of work (one trained model each) and the results table they produce.

A *unit* trains one U-Net on one input (a measure/component channel, or several stacked) under
one training condition (``clean``, or a noise condition such as ``gaussian_1e-2`` for
noise-matched training) and evaluates it on the test split of one or more evaluation
conditions. The paper's grid (Knapman et al. 2026, Fig. 3) is

    measures {mean, std, latent_entropy} × components {x, z}
      × training {clean (evaluated on clean and every noise condition),
                  matched (one model per noise condition, evaluated on that condition)}

plus optional multi-channel rows (``[study] multichannel``).

Each unit lives in ``<out>/units/<unit id>/``: the training run in ``run/`` (resumable
checkpoints) and, once evaluated, ``result.json`` (written atomically, last). A unit whose
``result.json`` exists for the same config hash is skipped; a unit with checkpoints resumes
from its latest one; anything else starts afresh. After every unit the aggregated
``results.json`` / ``results.csv`` are rewritten atomically, one record per (unit, evaluation
condition) with ``measure``, ``component``, ``inputs``, ``train_condition``,
``eval_condition``, ``noise_type``, ``noise_variance``, ``dice``, ``dice_per_image``,
``pred_fraction``, ``true_fraction``, ``classes`` and ``config_hash``. ``baseline.json`` holds the
non-learned baseline (``jaxmag.learn.baseline``) for every (input, evaluation condition).

**Typed units** (``[study] classes``, issue 30): every class scheme besides ``"binary"``
(``jaxmag.learn.classes.SCHEMES``) adds one unit per headline unit (``seed_inputs`` ×
``seed_conditions``, first seed), trained with ``[model] classes`` set to it; its id ends in
``__<scheme>`` (``mean-x__clean__typed``). Its records keep ``dice`` the any-defect Dice (the
same decision as a binary model's, so the two compare directly) and add ``dice_<class>`` per
defect class (``dice_softer``, ``dice_harder``: ``class_dice_key``); binary rows leave those
columns empty. Records of units finished before ``classes`` existed read as ``"binary"``.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from jaxmag.config import Config, config_hash, parse_input_spec
from jaxmag.io.atomic import write_text
from jaxmag.io.measures_file import MeasuresFile
from jaxmag.noise import parse_noise_spec

RESULT_FILE = "result.json"
RESULT_FIELDS = (
    "unit", "recipe", "seed", "measure", "component", "inputs", "train_condition", "eval_condition", "noise_type",
    "noise_variance", "dice", "dice_per_image", "pred_fraction", "true_fraction", "num_images",
    "classes", "config_hash",
)
BINARY = "binary"  # the class scheme of the study's own units (jaxmag.learn.classes.SCHEMES)


@dataclasses.dataclass(frozen=True)
class Unit:
    """One model: ``inputs`` like ``"std:z"`` or ``"mean:x,std:z"``; conditions are names
    (``"clean"``, ``"gaussian_1e-2"``)."""

    inputs: str
    train_condition: str
    eval_conditions: tuple[str, ...]
    recipe: str = ""  # "" = the config's training.recipe
    seed: int = 0  # added to training.seed (initialisation, dropout, order; not the split)
    classes: str = BINARY  # [model] classes of the unit's model (jaxmag.learn.classes.SCHEMES)

    @property
    def channels(self) -> tuple[tuple[str, str], ...]:
        return parse_input_spec(self.inputs)

    @property
    def id(self) -> str:
        chans = "+".join(f"{m}-{c}" for m, c in self.channels)
        return (f"{chans}__{self.train_condition}" + (f"__{self.recipe}" if self.recipe else "")
                + (f"__seed{self.seed}" if self.seed else "") + (f"__{self.classes}" if self.classes != BINARY else ""))


def unit_config(unit: Unit, config: Config) -> Config:
    """``config`` with ``[model] classes`` the unit's scheme (unchanged for a binary unit)."""
    if unit.classes == config.model.classes:
        return config
    return config.replace(model=dataclasses.replace(config.model, classes=unit.classes))


def class_dice_key(name: str) -> str:
    """The results column of one class's Dice: ``"dice_" + name`` (``dice_softer``)."""
    return f"dice_{name}"


def training_hash(config: Config) -> str:
    """The hash of what a unit's trained model and its finished evaluations depend on: the
    config without the ``[noise]`` condition list, the plans (``[study]``, ``[run]``) and the
    name, since every unit names its own inputs, training condition, recipe and seed. A run
    folder thus resumes after conditions, inputs or seeds are added or dropped."""
    return config_hash(without_conditions(config))


def without_conditions(config: Config) -> Config:
    """``config`` without what only chooses units (see ``training_hash``)."""
    from jaxmag.config import RunConfig, StudyConfig

    return config.replace(noise=dataclasses.replace(config.noise, levels=()),
                          study=StudyConfig(), run=RunConfig(), name="")


def noise_conditions(config: Config) -> tuple[str, ...]:
    """Condition names of every (kind, level) in ``[noise]``, kinds outermost."""
    return tuple(spec.name for spec in config.noise.specs())


def plan_study(config: Config) -> list[Unit]:
    """All units of the study grid described by ``[study]`` and ``[noise]``."""
    noisy = noise_conditions(config)
    inputs = [f"{m}:{c}" for m in config.study.measures for c in config.study.components]
    inputs += list(config.study.multichannel)
    units: list[Unit] = []
    typed_heads: list[Unit] = []
    for recipe in config.study.recipes or ("",):
        grid: list[Unit] = []
        for spec in inputs:
            if "clean" in config.study.train_conditions:
                grid.append(Unit(spec, "clean", ("clean",) + noisy, recipe))
            if "matched" in config.study.train_conditions:
                grid.extend(Unit(spec, cond, (cond,), recipe) for cond in noisy)
        # extra training seeds of the headline units: their spread is reported
        heads = [u for u in grid if u.inputs in config.study.seed_inputs and u.train_condition in config.study.seed_conditions]
        units += grid + [dataclasses.replace(u, seed=s) for s in range(1, config.study.seeds) for u in heads]
        typed_heads += [dataclasses.replace(u, classes=c) for c in config.study.classes if c != BINARY for u in heads]
    if typed_heads and config.instrument.enabled:
        raise ValueError(f"[study] classes = {list(config.study.classes)} needs the blob ids of the labels to evaluate "
                         "typed units, but the measures file of an [instrument] stores pixel labels (0/1): "
                         "set [study] classes = [\"binary\"] for a study of recorded films")
    # after every binary unit, so a study grown by typed units keeps its units' positions (shards)
    return units + typed_heads


def plan_run(config: Config) -> list[Unit]:
    """The units of ``jaxmag run``: each ``[run] models`` entry trained clean, evaluated on
    clean data and every ``[noise]`` condition."""
    return [Unit(spec, "clean", ("clean",) + noise_conditions(config)) for spec in config.run.models]


def _condition_parts(name: str) -> tuple[str, float]:
    spec = parse_noise_spec(name)
    return spec.kind, float(spec.level)


def unit_records(unit: Unit, evals: dict[str, dict], cfg_hash: str, pixels_per_image: int) -> list[dict]:
    """Result records of one evaluated unit (one per evaluation condition); a typed unit's add
    the Dice of each defect class (``class_dice_key``) from its evaluations' ``class_names`` and
    ``class_dice`` (background first, left out)."""
    channels = unit.channels
    single = len(channels) == 1
    records = []
    for cond in unit.eval_conditions:
        m = evals[cond]
        kind, variance = _condition_parts(cond)
        pixels = max(1, m["num_images"] * pixels_per_image)
        records.append({
            "unit": unit.id,
            "measure": channels[0][0] if single else "+".join(c[0] for c in channels),
            "component": channels[0][1] if single else "+".join(c[1] for c in channels),
            "inputs": unit.inputs,
            "train_condition": unit.train_condition,
            "eval_condition": cond,
            "noise_type": kind,
            "noise_variance": variance,
            "recipe": unit.recipe,
            "seed": unit.seed,
            "dice": float(m["dice"]),
            "dice_per_image": float(m["dice_per_image"]),
            "pred_fraction": (m["tp"] + m["fp"]) / pixels,
            "true_fraction": (m["tp"] + m["fn"]) / pixels,
            "num_images": int(m["num_images"]),
            "classes": unit.classes,
            "config_hash": cfg_hash,
            **{class_dice_key(name): float(d) for name, d in
               list(zip(m.get("class_names", ()), m.get("class_dice", ())))[1:]},
        })
    return records


def run_unit(unit: Unit, config: Config, measures_path: Path, units_dir: Path, *, progress: bool = True) -> list[dict]:
    """Train (or resume) and evaluate one unit; returns its records (from ``result.json`` when
    the unit was already finished with the same config). ``config``: the study's; the unit's
    model segments ``unit.classes`` (``unit_config``), and its records carry the study's hash."""
    from jaxmag.learn.evaluation import evaluate_run
    from jaxmag.learn.recipe import get_recipe, make_source
    from jaxmag.learn.loop import train_and_evaluate

    cfg_hash = config_hash(config)
    config = unit_config(unit, config)
    model_hash = training_hash(config)
    unit_dir = units_dir / unit.id
    result_file = unit_dir / RESULT_FILE
    run_dir = unit_dir / "run"
    if result_file.is_file():
        stored = json.loads(result_file.read_text())
        if stored.get("config_hash") == cfg_hash and tuple(stored.get("eval_conditions", ())) == unit.eval_conditions:
            return [with_classes(r) for r in stored["records"]]
        if stored.get("training_hash") == model_hash and (run_dir / "checkpoints" / "best").exists():
            # only what chooses units changed: the trained model stands, new conditions are evaluated
            have = {r["eval_condition"]: {**with_classes(r), "config_hash": cfg_hash} for r in stored["records"]}
            new = dataclasses.replace(unit, eval_conditions=tuple(c for c in unit.eval_conditions if c not in have))
            evals = {cond: evaluate_run(run_dir, measures_path, cond) for cond in new.eval_conditions}
            _, ny, nx = MeasuresFile(measures_path).shape
            have.update({r["eval_condition"]: r for r in unit_records(new, evals, cfg_hash, ny * nx)})
            records = [have[c] for c in unit.eval_conditions]
            write_text(result_file, json.dumps({**stored, "eval_conditions": list(unit.eval_conditions),
                                                   "config_hash": cfg_hash, "records": records}, indent=1))
            return records
        raise ValueError(
            f"{unit_dir} holds results of another config (hash {stored.get('config_hash')}, now {cfg_hash}); "
            "use a fresh output folder or delete that unit"
        )
    resume = (run_dir / "checkpoints" / "latest").exists()
    if run_dir.exists() and not resume:
        # Killed before its first checkpoint: nothing in it is worth keeping.
        shutil.rmtree(run_dir)
    unit_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    t = config.training
    recipe = get_recipe(unit.recipe or t.recipe)
    # the split stays the config's (seed), the unit's seed offset moves initialisation and order
    source = make_source(recipe, config, data_path=Path(measures_path).parent / "data.h5", measures_path=measures_path,
                         inputs=unit.channels, train_condition=unit.train_condition)
    trained = config.replace(training=dataclasses.replace(t, recipe=recipe.name, seed=t.seed + unit.seed))
    train_and_evaluate(trained, source, run_dir, resume=resume, progress=progress, evaluate_test=False)
    evals = {cond: evaluate_run(run_dir, measures_path, cond) for cond in unit.eval_conditions}
    _, ny, nx = MeasuresFile(measures_path).shape
    records = unit_records(unit, evals, cfg_hash, ny * nx)
    payload = {
        "unit": unit.id, "inputs": unit.inputs, "train_condition": unit.train_condition, "classes": unit.classes,
        "eval_conditions": list(unit.eval_conditions), "config_hash": cfg_hash, "training_hash": model_hash,
        "seconds": time.perf_counter() - started, "records": records,
    }
    write_text(result_file, json.dumps(payload, indent=1))
    return records


def with_classes(record: dict) -> dict:
    """``record`` with ``classes`` (``"binary"`` for one written before typed units existed)."""
    return record if "classes" in record else {**record, "classes": BINARY}


def class_dice_columns(records: Sequence[dict]) -> list[str]:
    """The per-class Dice columns of the records (``class_dice_key``), in first-seen order."""
    return list(dict.fromkeys(k for r in records for k in r if k.startswith("dice_") and k not in RESULT_FIELDS))


def write_results(out_dir: Path, records: Sequence[dict]) -> None:
    """``results.json`` and ``results.csv`` (atomic rewrites); the CSV's per-class Dice columns
    (``class_dice_columns``) follow ``RESULT_FIELDS`` and are empty in binary rows."""
    write_text(out_dir / "results.json", json.dumps(list(records), indent=1))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESULT_FIELDS + tuple(class_dice_columns(records)), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    write_text(out_dir / "results.csv", buf.getvalue())


def check_shard(shard: tuple[int, int] | None) -> None:
    """``ValueError`` unless ``shard`` is None or ``(k, n)`` with ``0 <= k < n``."""
    if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise ValueError(f"shard index must be in [0, {shard[1]}), got {shard[0]}")


def run_units(
    units: Iterable[Unit],
    config: Config,
    measures_path: Path,
    out_dir: Path,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    shard: tuple[int, int] | None = None,
) -> list[dict]:
    """Run every unit in order (skipping finished ones); rewrite the results table after each.

    ``shard = (k, n)``: train only the units whose position ``i`` (from 0) has ``i % n == k``,
    so that ``n`` processes share one study folder (each unit's result is its own atomic file);
    the tables hold every finished unit, and a last run without a shard completes the report.
    """
    check_shard(shard)
    units = list(units)
    ids = [u.id for u in units]
    if len(set(ids)) != len(ids):
        raise ValueError("the study plan contains duplicate units")
    units_dir = out_dir / "units"
    units_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    for i, unit in enumerate(units, 1):
        done = (units_dir / unit.id / RESULT_FILE).is_file()
        if not done and shard is not None and (i - 1) % shard[1] != shard[0]:
            continue  # another shard's unit, not finished yet
        log(f"[{i}/{len(units)}] {unit.id}: {'finished, skipped' if done else 'training'}")
        unit_recs = run_unit(unit, config, measures_path, units_dir, progress=progress)
        records.extend(unit_recs)
        write_results(out_dir, records)
        if not done:
            summary = ", ".join(f"{r['eval_condition']} {r['dice']:.3f}" for r in unit_recs)
            log(f"    test Dice: {summary}")
    from jaxmag.learn import baseline

    baseline.write_study_records(out_dir, baseline.study_records(units, config, measures_path))
    return records


def lookup(records: Sequence[dict], **where) -> float | None:
    """Dice of the one record matching ``where`` (None if absent)."""
    hits = [r for r in records if all(r.get(k) == v for k, v in where.items())]
    return float(hits[0]["dice"]) if hits else None


def mean_perimeter_ratio(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over images of (boundary length / area) of predicted over true masks: < 1 means the
    predictions are smoother (less jagged) than the ground truth. Images with an empty mask on
    either side are skipped; NaN if none remain."""
    def ratio(mask: np.ndarray) -> float:
        m = mask.astype(bool)
        edges = np.sum(m[:, 1:] != m[:, :-1]) + np.sum(m[1:, :] != m[:-1, :])
        return edges / m.sum()

    values = [ratio(p) / ratio(t) for p, t in zip(pred, truth) if p.any() and t.any()]
    return float(np.mean(values)) if values else float("nan")
