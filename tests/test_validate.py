"""``jaxmag mumax3 validate`` end to end with a fake engine: a script that answers ``<engine>
run.mx3`` like MuMax3 does (``run.out/m000000.ovf ...`` + ``table.txt``), from jaxmag runs of
the same film with other thermal seeds."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxmag.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
base = "{root}/configs/tiny.toml"
[simulation]
burn_in_s = 2e-11
frame_interval_s = 1e-11
num_frames = 12
"""

FAKE_ENGINE = """#!{python}
# Fake MuMax3: reads ThermSeed from the script, writes precomputed jaxmag frames in MuMax3's layout.
import re, sys
from pathlib import Path
import numpy as np
sys.path[:0] = {path!r}
from jaxmag.io.ovf import write_ovf
from jaxmag.io.mumax3 import write_table
script = Path(sys.argv[1])
text = script.read_text()
print("fake engine: running", script)
if {fail!r}:
    print("panic: something went wrong in the solver")
    print("last line of the engine")
    sys.exit(3)
seed = int(re.search(r"ThermSeed\\((\\d+)\\)", text).group(1))
data = np.load({data!r})
index = list(data["seeds"]).index(seed)
frames, times = data["frames"][index], data["times"]
out = script.with_suffix(".out")
out.mkdir(exist_ok=True)
dt = times[1] - times[0]
write_ovf(out / "m000000.ovf", frames[0].astype(np.float32), (4e-9, 4e-9, 4e-9), time_s=float(times[0] - dt))
for k, frame in enumerate(frames):
    write_ovf(out / f"m{{k + 1:06d}}.ovf", frame.astype(np.float32), (4e-9, 4e-9, 4e-9), time_s=float(times[k]))
t = np.concatenate([[times[0] - dt], times])
m = np.concatenate([frames[:1], frames]).mean(axis=(1, 2, 3))
write_table(out / "table.txt", {{"t": t, "mx": m[:, 0], "my": m[:, 1], "mz": m[:, 2]}}, {{"t": "s"}})
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from jaxmag.config import load_config
    from jaxmag.validate import seed_list, simulate_seeds

    root = tmp_path_factory.mktemp("validate")
    config_path = root / "film.toml"
    config_path.write_text(CONFIG.format(root=ROOT))
    config = load_config(config_path)
    seeds = seed_list(config, 0, 2)
    # The "engine" runs the same film with other noise: jaxmag with seeds + 1.
    frames, times, _ = simulate_seeds(config, 0, [s + 1 for s in seeds])
    np.savez(root / "engine_data.npz", frames=frames[:, :, None], times=times, seeds=np.array(seeds))
    engines = {}
    for name, fail in (("fake_mumax3", False), ("failing_mumax3", True)):
        path = root / name
        path.write_text(FAKE_ENGINE.format(python=sys.executable, path=sys.path, fail=fail, data=str(root / "engine_data.npz")))
        path.chmod(0o755)
        engines[name] = path
    return root, config_path, engines


def test_validate_without_engine_writes_scripts(setup, tmp_path, capsys, monkeypatch):
    root, config_path, _ = setup
    monkeypatch.setenv("PATH", str(tmp_path))  # no mumax3 anywhere
    out = tmp_path / "v"
    assert cli_main(["mumax3", "validate", str(config_path), "--runs", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "run_engine.sh" in text and "--engine-output" in text
    assert (out / "engine" / "run_0" / "run.mx3").is_file() and (out / "engine" / "run_1" / "run.mx3").is_file()
    assert (out / "run_engine.sh").is_file() and not (out / "report.md").exists()


def test_validate_with_fake_engine_and_brought_back_output(setup, tmp_path, capsys):
    root, config_path, engines = setup
    out = tmp_path / "v"
    code = cli_main(["mumax3", "validate", str(config_path), "--runs", "2", "--out", str(out), "--engine", str(engines["fake_mumax3"])])
    text = capsys.readouterr().out
    assert code == 0, text
    for j in range(2):
        run_out = out / "engine" / f"run_{j}" / "run.out"
        assert (run_out / "m000012.ovf").is_file() and (run_out / "table.txt").is_file()
    report = (out / "report.md").read_text()
    assert "Verdict: consistent" in report and "| std m_z [background] |" in report and "maps.png" in report
    assert (out / "maps.png").stat().st_size > 1000
    result = json.loads((out / "result.json").read_text())
    assert result["mode"] == "thermal" and result["passed"] is True
    # The same engine output compared again, as if brought back from a GPU machine.
    again = tmp_path / "again"
    assert cli_main(["mumax3", "validate", str(config_path), "--runs", "2", "--out", str(again),
                     "--engine-output", str(out / "engine")]) == 0
    assert json.loads((again / "result.json").read_text()) == result
    # Into the folder that holds the scripts, as validate prints after writing them.
    assert cli_main(["mumax3", "validate", str(config_path), "--runs", "2", "--out", str(out), "--engine-output", str(out / "engine")]) == 0


def test_failing_engine_reports_its_output_and_script(setup, tmp_path, capsys):
    root, config_path, engines = setup
    out = tmp_path / "v"
    assert cli_main(["mumax3", "validate", str(config_path), "--runs", "1", "--out", str(out), "--engine", str(engines["failing_mumax3"])]) == 2
    err = capsys.readouterr().err
    assert "panic: something went wrong" in err and "last line of the engine" in err
    assert str(out / "engine" / "run_0" / "run.mx3") in err and "status 3" in err
    assert err.strip().splitlines()[-1].startswith("jaxmag: error: ")
    assert cli_main(["mumax3", "validate", str(config_path), "--runs", "1", "--out", str(tmp_path / "w"), "--engine", "no-such-engine"]) == 2
    assert "not found" in capsys.readouterr().err
