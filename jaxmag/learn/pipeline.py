"""The end-to-end jobs: ``jaxmag run`` (the main job) and ``jaxmag study`` (the paper's grid).

Stages, each resumable and skipped when its output is complete for the same config:

1. simulate → ``<out>/data.h5`` (``jaxmag.assemble.simulate``; resumes unfinished runs);
2. measures → ``<out>/measures.h5``, clean and every ``[noise]`` condition (resumes per chunk);
3. train and evaluate units → ``<out>/units/*`` and ``results.json``/``results.csv``
   (``jaxmag.learn.study``; finished units are skipped, interrupted ones resume);
4. report → ``report.md`` and figures (``jaxmag.learn.report``), always rebuilt from the results.

The output folder keeps ``config.toml``; rerunning with a different config is refused (choose
another ``--out``) so results of two configs are never mixed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Literal

from jaxmag.config import Config, first_difference, load_config
from jaxmag.io.atomic import atomic_write, write_text
from jaxmag.io.dataset import open_dataset
from jaxmag.learn.report import write_report
from jaxmag.learn.study import check_shard, noise_conditions, training_hash, without_conditions, plan_run, plan_study, run_units

Mode = Literal["run", "study"]


def _check_out_dir(out_dir: Path, config: Config) -> None:
    stored = out_dir / "config.toml"
    if stored.is_file():
        from jaxmag.config import stored_config

        previous = stored_config(stored.read_text(), source=str(stored))
        # Other noise conditions (same noise seed) only add or drop measures-file groups and
        # study units, all keyed by condition: the folder's results stay valid, so it resumes.
        if training_hash(previous) != training_hash(config):
            key, was, now = first_difference(without_conditions(previous), without_conditions(config))
            raise ValueError(
                f"{out_dir} holds results of another config ({key}: {was!r} there, {now!r} now; only the [noise] "
                "levels, [study], [run] and the name may change between runs into one folder); "
                "choose another --out or delete the folder"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(stored) as fh:
        fh.write(config.to_toml())


def _check_split(config: Config, source: str) -> None:
    """The dataset must be large enough for ``[training] split`` (every part non-empty)."""
    from jaxmag.learn.splits import split_indices

    try:
        split_indices(config.dataset.num_runs, config.training.split, 0)
    except ValueError as exc:
        raise ValueError(f"{source}: dataset.num_runs = {config.dataset.num_runs}: {exc}; "
                         "raise dataset.num_runs or change training.split") from None


def run_pipeline(
    config: Config | str | Path,
    out_dir: str | Path,
    *,
    mode: Mode = "run",
    progress: bool = True,
    log: Callable[[str], None] = print,
    shard: tuple[int, int] | None = None,
) -> dict:
    """Run (or resume) the whole job; returns ``{"results": [...], "report": path, "timings": {...}}``.

    ``shard = (k, n)`` (studies): train every n-th unit from the k-th (``study.run_units``).
    Start the other shards once one has finished the measures stage: the data stages are not
    shared between processes.
    """
    from jaxmag.assemble import compute_measures_file, simulate

    source = str(config) if not isinstance(config, Config) else "the config"
    if not isinstance(config, Config):
        config = load_config(config)
    _check_split(config, source)  # now, not after simulate and measures
    check_shard(shard)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, config)
    timings_file = out_dir / "timings.json"
    timings: dict[str, float] = json.loads(timings_file.read_text()) if timings_file.is_file() else {}

    def stage(name: str, fn: Callable[[], object]) -> object:
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        # reread: study shards share the file, each adds its own stages (atomic replace)
        current = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
        current[name] = current.get(name, 0.0) + elapsed
        timings.clear()
        timings.update(current)
        write_text(timings_file, json.dumps(timings, indent=1))
        return result

    data = out_dir / "data.h5"
    # An existing file is always resumed, which also refuses one simulated with other physics
    # (jaxmag.io.dataset.check_matches); a complete one has nothing pending and returns at once.
    if data.exists() and open_dataset(data).complete:
        simulate(config, out=data, resume=True, progress=False)
        log(f"simulate: {data} complete, skipped")
    else:
        log(f"simulate: {config.dataset.num_runs} runs of {config.grid.nx}×{config.grid.ny} cells → {data}")
        stage("simulate", lambda: simulate(config, out=data, resume=data.exists(), progress=progress))

    measures = out_dir / "measures.h5"
    conditions = noise_conditions(config)
    log(f"measures: clean + {len(conditions)} noise conditions → {measures}")
    stage("measures", lambda: compute_measures_file(data, measures, [c.replace("_", ":", 1) for c in conditions],
                                                    config=config, resume=measures.exists(), progress=progress))

    units = plan_run(config) if mode == "run" else plan_study(config)
    log(f"train/evaluate: {len(units)} models")
    train_stage = "train_evaluate" if shard is None else f"train_evaluate_shard_{shard[0]}_of_{shard[1]}"
    records = stage(train_stage, lambda: run_units(units, config, measures, out_dir, progress=progress, log=log, shard=shard))

    title = f"jaxmag {mode}: {config.name}"
    report = stage("report", lambda: write_report(out_dir, config, records, measures, title=title, timings=timings))
    log(f"report: {report}")
    return {"results": records, "report": report, "timings": timings}
