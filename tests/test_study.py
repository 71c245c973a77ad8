"""The study runner: plan, one record per evaluated unit, skipping finished units, resuming
after a kill, and the report's findings logic."""
import json
import signal
import subprocess
import sys
import time

import pytest

from jaxmag.config import config_hash, loads_config
from jaxmag.learn.study import mean_perimeter_ratio, plan_run, plan_study, run_units

CONFIG = """
name = "study-test"
[noise]
gaussian = [1e-2]
[study]
measures = ["mean", "std"]
components = ["x"]
train_conditions = ["clean", "matched"]
[model]
base_features = 4
depth = 2
dropout = 0.0
[training]
epochs = 1
batch_size = 4
learning_rate = 1e-3
"""


@pytest.fixture(scope="module")
def measures_file(tmp_path_factory):
    from jaxmag.learn.synthetic import write_measures_file

    path = tmp_path_factory.mktemp("study") / "measures.h5"
    return write_measures_file(path, num=24, ny=16, nx=16, conditions={"clean": 0.0, "gaussian_1e-2": 0.5, "gaussian_1e-1": 0.8})


def test_plan_covers_the_grid():
    config = loads_config(CONFIG)
    units = plan_study(config)
    assert [u.id for u in units] == ["mean-x__clean", "mean-x__gaussian_1e-2", "std-x__clean", "std-x__gaussian_1e-2"]
    assert units[0].eval_conditions == ("clean", "gaussian_1e-2")
    assert units[1].eval_conditions == ("gaussian_1e-2",)
    paper = loads_config(CONFIG.replace('components = ["x"]', 'components = ["x", "z"]').replace("[1e-2]", "[1e-4, 1e-3, 1e-2]")
                         .replace('gaussian = [1e-4, 1e-3, 1e-2]', 'gaussian = [1e-4, 1e-3, 1e-2]\nspeckle = [1e-4, 1e-3, 1e-2]')
                         .replace('measures = ["mean", "std"]', 'measures = ["mean", "std", "latent_entropy"]'))
    assert len(plan_study(paper)) == 3 * 2 * (1 + 2 * 3)
    assert [u.id for u in plan_run(config)] == ["mean-x__clean"]


def test_units_run_once_and_table_has_one_row_per_evaluation(tmp_path, measures_file, monkeypatch):
    config = loads_config(CONFIG)
    units = plan_study(config)
    records = run_units(units, config, measures_file, tmp_path, progress=False, log=lambda s: None)
    assert len(records) == 2 * 2 + 2 * 1
    keys = {(r["unit"], r["eval_condition"]) for r in records}
    assert len(keys) == len(records)
    assert all(r["config_hash"] == config_hash(config) for r in records)
    assert all(0.0 <= r["dice"] <= 1.0 for r in records)
    table = json.loads((tmp_path / "results.json").read_text())
    assert table == records
    csv_lines = (tmp_path / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + len(records) and "config_hash" in csv_lines[0]

    import jaxmag.learn.loop

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished unit was trained again")

    monkeypatch.setattr(jaxmag.learn.loop, "train_and_evaluate", forbidden)
    again = run_units(units, config, measures_file, tmp_path, progress=False, log=lambda s: None)
    assert again == records

    other = loads_config(CONFIG.replace("learning_rate = 1e-3", "learning_rate = 2e-3"))
    with pytest.raises(ValueError, match="another config"):
        run_units(units, other, measures_file, tmp_path, progress=False, log=lambda s: None)

    # More [noise] conditions: finished units keep their model and results, and are evaluated
    # on the new condition only (train_and_evaluate is still forbidden here).
    more = loads_config(CONFIG.replace("gaussian = [1e-2]", "gaussian = [1e-2, 1e-1]"))
    kept = [u for u in plan_study(more) if u.id in {v.id for v in units}]
    grown = run_units(kept, more, measures_file, tmp_path, progress=False, log=lambda s: None)
    old = {(r["unit"], r["eval_condition"]): r["dice"] for r in records}
    new = {(r["unit"], r["eval_condition"]): r["dice"] for r in grown}
    assert {k: new[k] for k in old} == old
    assert set(new) - set(old) == {("mean-x__clean", "gaussian_1e-1"), ("std-x__clean", "gaussian_1e-1")}
    assert all(r["config_hash"] == config_hash(more) for r in grown)


def test_study_resumes_after_kill(tmp_path, measures_file):
    """SIGKILL the runner once the first unit is finished; a rerun keeps that unit's result
    untouched and completes the others."""
    config_path = tmp_path / "config.toml"
    config_path.write_text(CONFIG.replace('train_conditions = ["clean", "matched"]', 'train_conditions = ["clean"]'))
    out = tmp_path / "out"
    script = (
        "import sys; from pathlib import Path; from jaxmag.config import load_config; "
        "from jaxmag.learn.study import plan_study, run_units; c = load_config(sys.argv[1]); "
        "run_units(plan_study(c), c, Path(sys.argv[2]), Path(sys.argv[3]), progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(config_path), str(measures_file), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = out / "units" / "mean-x__clean" / "result.json"
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "timeout"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = first.read_bytes(), first.stat().st_mtime_ns
    config = loads_config(config_path.read_text())
    records = run_units(plan_study(config), config, measures_file, out, progress=False, log=lambda s: None)
    assert (first.read_bytes(), first.stat().st_mtime_ns) == before
    assert list(dict.fromkeys(r["unit"] for r in records)) == ["mean-x__clean", "std-x__clean"]
    assert len(records) == 2 * 2  # each clean-trained unit evaluated on clean and gaussian_1e-2
    assert json.loads((out / "results.json").read_text()) == records


def test_perimeter_ratio_prefers_smooth_masks():
    import numpy as np

    yy, xx = np.mgrid[:32, :32]
    disc = ((yy - 16) ** 2 + (xx - 16) ** 2 <= 64)[None]
    jagged = disc.copy()
    jagged[0, ::2, ::2] ^= disc[0, ::2, ::2]  # punch holes: much longer boundary
    assert mean_perimeter_ratio(disc, jagged) < 1.0 < mean_perimeter_ratio(jagged, disc)
    assert np.isnan(mean_perimeter_ratio(np.zeros_like(disc), disc))


def test_run_folder_accepts_new_noise_conditions_and_names_any_other_change(tmp_path):
    import dataclasses

    from jaxmag.learn.pipeline import _check_out_dir

    config = loads_config(CONFIG)
    _check_out_dir(tmp_path, config)
    more = config.replace(noise=dataclasses.replace(config.noise, levels=(("gaussian", (1e-2, 1e-1)),)))
    _check_out_dir(tmp_path, more)  # resumes: the stored config.toml is now `more`
    assert loads_config((tmp_path / "config.toml").read_text()) == more
    with pytest.raises(ValueError, match=r"training\.epochs: 1 there, 3 now"):
        _check_out_dir(tmp_path, more.replace(training=dataclasses.replace(more.training, epochs=3)))


def test_changing_the_plan_keeps_finished_units(tmp_path, measures_file, monkeypatch):
    """More seeds or inputs in [study] (or another name) add units; finished ones are reused."""
    config = loads_config(CONFIG.replace('train_conditions = ["clean", "matched"]', 'train_conditions = ["clean"]'))
    first = run_units(plan_study(config), config, measures_file, tmp_path, progress=False, log=lambda s: None)
    import jaxmag.learn.loop

    calls = []
    real = jaxmag.learn.loop.train_and_evaluate
    monkeypatch.setattr(jaxmag.learn.loop, "train_and_evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    more = loads_config(CONFIG.replace('train_conditions = ["clean", "matched"]', 'train_conditions = ["clean"]')
                        .replace('name = "study-test"', 'name = "renamed"')
                        .replace('components = ["x"]', 'components = ["x"]\nseeds = 2\nseed_inputs = ["mean:x"]\n'
                                 'seed_conditions = ["clean"]'))
    second = run_units(plan_study(more), more, measures_file, tmp_path, progress=False, log=lambda s: None)
    assert len(calls) == 1  # only the new seed-1 unit was trained
    old = {(r["unit"], r["eval_condition"]): r["dice"] for r in first}
    assert all(abs(r["dice"] - old[(r["unit"], r["eval_condition"])]) == 0 for r in second if (r["unit"], r["eval_condition"]) in old)


def test_shards_split_the_units_and_a_last_run_completes_the_table(tmp_path, measures_file, monkeypatch):
    config = loads_config(CONFIG)
    units = plan_study(config)
    first = run_units(units, config, measures_file, tmp_path, progress=False, log=lambda s: None, shard=(0, 2))
    assert sorted({r["unit"] for r in first}) == ["mean-x__clean", "std-x__clean"]  # positions 0 and 2
    second = run_units(units, config, measures_file, tmp_path, progress=False, log=lambda s: None, shard=(1, 2))
    assert {r["unit"] for r in second} == {u.id for u in units}  # its own two and the first shard's
    import jaxmag.learn.loop

    monkeypatch.setattr(jaxmag.learn.loop, "train_and_evaluate", lambda *a, **k: pytest.fail("trained again"))
    whole = run_units(units, config, measures_file, tmp_path, progress=False, log=lambda s: None)
    assert sorted(map(json.dumps, whole)) == sorted(map(json.dumps, second))
    with pytest.raises(ValueError, match="shard index"):
        run_units(units, config, measures_file, tmp_path, progress=False, log=lambda s: None, shard=(2, 2))
