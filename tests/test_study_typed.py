"""Typed units beside binary ones in the study (``[study] classes``, issue 30): the plan, the
results table's ``classes`` and per-class Dice columns, the baseline's typed Dice and the
report's "Typed against binary" section; a binary-only study keeps its plan, records and hash."""
import csv
import json

import pytest

from jaxmag.config import ConfigError, config_hash, loads_config
from jaxmag.learn.study import RESULT_FIELDS, Unit, plan_study, run_units

# two blobs per synthetic film (jaxmag.learn.synthetic): blob 1 is the "a" group, blob 2 the "b" one
CONFIG = """
name = "study-typed-test"
[noise]
gaussian = [1e-2]
[defects]
num_a = 1
num_b = 1
[study]
measures = ["mean", "std"]
components = ["x"]
train_conditions = ["clean", "matched"]
seed_inputs = ["std:x"]
seed_conditions = ["gaussian_1e-2"]
[model]
base_features = 4
depth = 2
dropout = 0.0
[training]
epochs = 1
batch_size = 4
learning_rate = 1e-3
"""
TYPED = CONFIG.replace('seed_conditions = ["gaussian_1e-2"]', 'seed_conditions = ["gaussian_1e-2"]\nclasses = ["binary", "typed"]')


@pytest.fixture(scope="module")
def measures_file(tmp_path_factory):
    from jaxmag.learn.synthetic import write_measures_file

    path = tmp_path_factory.mktemp("study_typed") / "measures.h5"
    return write_measures_file(path, num=24, ny=16, nx=16, conditions={"clean": 0.0, "gaussian_1e-2": 0.5})


def test_classes_key_is_checked_and_binary_keeps_the_hash():
    from jaxmag.learn.classes import SCHEMES

    binary, typed = loads_config(CONFIG), loads_config(TYPED)
    assert binary.study.classes == ("binary",) and typed.study.classes == ("binary", "typed")
    assert "classes" not in binary.to_dict()["study"]  # older configs keep their hash
    assert config_hash(binary) == config_hash(loads_config(CONFIG.replace("[study]", '[study]\nclasses = ["binary"]')))
    assert config_hash(typed) != config_hash(binary)
    assert loads_config(typed.to_toml()) == typed
    # the names the config accepts are the schemes of jaxmag.learn.classes (config may not import it)
    assert all(loads_config(CONFIG.replace("[study]", f'[study]\nclasses = ["binary", "{s}"]' if s != "binary"
                                           else '[study]\nclasses = ["binary"]')) for s in SCHEMES)
    with pytest.raises(ConfigError, match="study.classes"):
        loads_config(CONFIG.replace("[study]", '[study]\nclasses = ["binary", "ternary"]'))
    with pytest.raises(ConfigError, match="must list 'binary'"):
        loads_config(CONFIG.replace("[study]", '[study]\nclasses = ["typed"]'))


def test_plan_adds_typed_headline_units_last():
    binary, typed = plan_study(loads_config(CONFIG)), plan_study(loads_config(TYPED))
    assert [u.id for u in binary] == ["mean-x__clean", "mean-x__gaussian_1e-2", "std-x__clean", "std-x__gaussian_1e-2"]
    assert typed[:len(binary)] == binary  # the binary units, in their places
    extra = typed[len(binary):]
    assert extra == [Unit("std:x", "gaussian_1e-2", ("gaussian_1e-2",), classes="typed")]
    assert extra[0].id == "std-x__gaussian_1e-2__typed"
    seeded = plan_study(loads_config(TYPED.replace("[study]", "[study]\nseeds = 2")))
    assert [u.id for u in seeded if u.classes == "typed"] == ["std-x__gaussian_1e-2__typed"]  # first seed only


def test_typed_study_writes_typed_units_columns_and_report(tmp_path, measures_file, monkeypatch):
    from jaxmag.learn import baseline
    from jaxmag.learn.report import typed_section, write_report

    config = loads_config(TYPED.replace('measures = ["mean", "std"]', 'measures = ["std"]')
                          .replace('train_conditions = ["clean", "matched"]', 'train_conditions = ["matched"]'))
    units = plan_study(config)
    assert [u.id for u in units] == ["std-x__gaussian_1e-2", "std-x__gaussian_1e-2__typed"]
    records = run_units(units, config, measures_file, tmp_path, progress=False, log=lambda s: None)
    typed = [r for r in records if r["classes"] == "typed"]
    assert [r["unit"] for r in typed] == ["std-x__gaussian_1e-2__typed"]
    assert {r["classes"] for r in records} == {"binary", "typed"}
    assert all(r["config_hash"] == config_hash(config) for r in records)
    for r in typed:
        assert 0.0 <= r["dice"] <= 1.0 and 0.0 <= r["dice_softer"] <= 1.0 and 0.0 <= r["dice_harder"] <= 1.0
    assert not any("dice_softer" in r for r in records if r["classes"] == "binary")
    # the unit folder holds a typed model: its evaluation has three classes and the same per-class Dice
    unit_dir = tmp_path / "units" / "std-x__gaussian_1e-2__typed"
    ev = json.loads((unit_dir / "run" / "eval_gaussian_1e-2.json").read_text())
    assert ev["classes"] == "typed" and ev["class_names"] == ["background", "softer", "harder"]
    assert (typed[0]["dice_softer"], typed[0]["dice_harder"]) == tuple(ev["class_dice"][1:])
    assert json.loads((unit_dir / "result.json").read_text())["classes"] == "typed"
    binary_run = json.loads((tmp_path / "units" / "std-x__gaussian_1e-2" / "run" / "eval_gaussian_1e-2.json").read_text())
    assert "class_dice" not in binary_run

    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(RESULT_FIELDS) + ["dice_softer", "dice_harder"]
    assert [r["classes"] for r in rows] == [r["classes"] for r in records]
    assert all(r["dice_softer"] == "" for r in rows if r["classes"] == "binary")
    assert all(float(r["dice_softer"]) == t["dice_softer"] for r, t in zip(rows, records) if r["classes"] == "typed")

    base = baseline.load_study_records(tmp_path)
    typed_base = [b for b in base if "dice_softer" in b]
    assert [(b["inputs"], b["eval_condition"]) for b in typed_base] == [("std:x", "gaussian_1e-2")]
    assert 0.0 <= typed_base[0]["dice_harder"] <= 1.0
    # the any-defect baseline of that pair is the one the binary baseline gives
    binary_base = baseline.study_records([u for u in units if u.classes == "binary"], config, measures_file)
    same = next(b for b in binary_base if (b["inputs"], b["eval_condition"]) == ("std:x", "gaussian_1e-2"))
    assert typed_base[0]["dice"] == same["dice"] and "dice_softer" not in same

    lines = typed_section(config, records, base)
    assert lines[0] == "## Typed against binary"
    row = next(line for line in lines if line.startswith("| paper | typed | std:x"))
    b = next(r["dice"] for r in records if r["unit"] == "std-x__gaussian_1e-2" and r["eval_condition"] == "gaussian_1e-2")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4:7] == [f"{b:.3f}", f"{typed[0]['dice']:.3f}", f"{typed[0]['dice'] - b:+.3f}"]
    assert cells[7] == f"softer {typed[0]['dice_softer']:.3f}, harder {typed[0]['dice_harder']:.3f}"
    assert cells[8] == f"softer {typed_base[0]['dice_softer']:.3f}, harder {typed_base[0]['dice_harder']:.3f}"

    import jaxmag.learn.report as report

    monkeypatch.setattr(report, "plot_examples", lambda *a, **k: None)  # figures: not this test's subject
    monkeypatch.setattr(report, "plot_dice_vs_noise", lambda *a, **k: None)
    monkeypatch.setattr(report, "smoothness_ratio", lambda *a, **k: None)
    text = write_report(tmp_path, config, records, measures_file, title="typed").read_text()
    assert "## Typed against binary" in text and row in text

    # resume: nothing is trained again and the table is the same
    import jaxmag.learn.loop

    monkeypatch.setattr(jaxmag.learn.loop, "train_and_evaluate", lambda *a, **k: pytest.fail("trained again"))
    assert run_units(units, config, measures_file, tmp_path, progress=False, log=lambda s: None) == records


@pytest.mark.slow
def test_binary_only_study_is_unchanged_and_typed_units_are_added_beside(tmp_path, measures_file, monkeypatch):
    """A binary study's records carry classes = binary and no class columns; adding typed
    keeps every finished binary unit (not retrained, same Dice) and trains the typed one only.
    Records of a unit finished before ``classes`` existed read as binary."""
    import jaxmag.learn.loop
    from jaxmag.learn.report import typed_section

    config = loads_config(CONFIG.replace('train_conditions = ["clean", "matched"]', 'train_conditions = ["matched"]'))
    first = run_units(plan_study(config), config, measures_file, tmp_path, progress=False, log=lambda s: None)
    assert all(r["classes"] == "binary" and not any(k in r for k in ("dice_softer", "dice_harder")) for r in first)
    with open(tmp_path / "results.csv") as f:
        assert next(csv.reader(f)) == list(RESULT_FIELDS)
    assert typed_section(config, first) == []

    # a unit folder from before [study] classes: its stored records have no "classes"
    result = tmp_path / "units" / "mean-x__gaussian_1e-2" / "result.json"
    stored = json.loads(result.read_text())
    result.write_text(json.dumps({**stored, "records": [{k: v for k, v in r.items() if k != "classes"}
                                                        for r in stored["records"]]}))

    calls = []
    real = jaxmag.learn.loop.train_and_evaluate
    monkeypatch.setattr(jaxmag.learn.loop, "train_and_evaluate", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    typed = loads_config(TYPED.replace('train_conditions = ["clean", "matched"]', 'train_conditions = ["matched"]'))
    second = run_units(plan_study(typed), typed, measures_file, tmp_path, progress=False, log=lambda s: None)
    assert [c.model.classes for c in calls] == ["typed"]  # only the typed unit was trained, as a typed model
    old = {(r["unit"], r["eval_condition"]): r["dice"] for r in first}
    assert {(r["unit"], r["eval_condition"]): r["dice"] for r in second if r["classes"] == "binary"} == old
    assert json.loads(result.read_text())["records"][0]["classes"] == "binary"


def test_typed_units_with_an_instrument_are_refused_before_training():
    config = loads_config(TYPED.replace('components = ["x"]', 'components = ["p"]')
                          .replace('seed_inputs = ["std:x"]', 'seed_inputs = ["std:p"]') + "\n[instrument]\n")
    with pytest.raises(ValueError, match="blob ids"):
        plan_study(config)
