"""Progress output (``jaxmag.progress``) and the commands' shared options.

Every command takes ``--no-progress``; a bar redraws itself only on a terminal, a log gets a few
plain lines (never a carriage return), ``--no-progress`` gets nothing; the commands' choices come
from the library's registries.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path


from jaxmag import progress
from jaxmag.cli import build_parser, command_parsers

REPO = Path(__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# ------------------------------------------------------------------------------ --no-progress
def test_every_command_takes_no_progress():
    commands = dict(command_parsers(build_parser()))
    # the commands the issue found without it, and the groups' actions
    assert {"detect", "predict", "evaluate", "noise-estimate", "export-ovf", "dataset info", "dataset merge",
            "mumax3 export", "mumax3 compare", "simulate", "measures", "train", "run"} <= set(commands)
    missing = [name for name, p in commands.items() if "--no-progress" not in p._option_string_actions]
    assert missing == []
    args = build_parser().parse_args(["dataset", "info", "d.h5", "--no-progress"])
    assert args.no_progress is True
    assert build_parser().parse_args(["predict", "run", "movie.npy", "--out", "o"]).no_progress is False


# ------------------------------------------------------------------------------ jaxmag.progress
def test_log_gets_few_plain_lines():
    log = io.StringIO()  # not a terminal
    with progress.bar(100, desc="simulate", unit="run", stream=log) as b:
        for _ in range(100):
            b.update(1)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and log.getvalue().endswith("\n")
    assert 1 <= len(lines) <= progress.LINES
    assert lines[-1].startswith("simulate: 100/100 run (100%)")


def test_log_line_at_the_end_of_an_unfinished_or_resumed_bar():
    log = io.StringIO()
    b = progress.bar(10, desc="measures", unit="run", initial=4, lines=2, stream=log)
    b.update(1)  # 5/10: the first half is done
    b.set_postfix(loss="0.5")
    b.update(1)
    b.close()
    b.close()  # once
    lines = log.getvalue().splitlines()
    assert [line.split(" run")[0] for line in lines] == ["measures: 5/10", "measures: 6/10"]  # half way, the end
    assert lines[-1].endswith(", loss 0.5")


def test_disabled_and_summarised_bars_write_nothing():
    log = io.StringIO()
    assert list(progress.iterate(range(5), desc="x", enabled=False, stream=log)) == list(range(5))
    with progress.bar(5, desc="epoch 1/2", lines=0, stream=log) as b:
        b.update(5)
    progress.stage("simulating", enabled=False, stream=log)
    assert log.getvalue() == ""
    progress.stage("simulating", stream=log)
    assert log.getvalue() == "simulating\n"


def test_terminal_gets_a_bar():
    tty = _Terminal()
    assert list(progress.iterate(range(3), desc="export", unit="frame", stream=tty)) == [0, 1, 2]
    assert "\r" in tty.getvalue() and "export" in tty.getvalue()


def test_no_tqdm_outside_the_progress_module():
    imports = re.compile(r"^\s*(from|import) tqdm", re.MULTILINE)
    users = [p.relative_to(REPO) for p in (REPO / "jaxmag").rglob("*.py")
             if p.name != "progress.py" and imports.search(p.read_text())]
    assert users == []


# ------------------------------------------------------------------------------ choices
def test_choices_follow_the_registries(monkeypatch):
    from jaxmag import measures, noise

    monkeypatch.setitem(measures.MEASURE_FUNCTIONS, "toy_measure", lambda x, o: x.mean(axis=-3))
    monkeypatch.setitem(noise.NOISE_MODELS, "toy_noise", noise.NOISE_MODELS["gaussian"])
    commands = dict(command_parsers(build_parser()))
    measure = commands["train"]._option_string_actions["--measure"]
    assert "toy_measure" in measure.choices
    assert "toy_noise" in commands["train"]._option_string_actions["--noise"].help
    assert "toy_noise" in commands["finetune"]._option_string_actions["--noise"].help
    assert "toy_measure" in commands["measures"]._option_string_actions["--measures"].default


# ------------------------------------------------------------------------------ a real command
def test_simulate_writes_no_carriage_return_into_a_log(tmp_path):
    err = tmp_path / "stderr.log"
    with open(err, "wb") as f:
        subprocess.run([sys.executable, "-m", "jaxmag", "simulate", str(REPO / "configs" / "tiny.toml"),
                        "--out", str(tmp_path / "d.h5"), "--num", "2", "--batch", "2"],
                       stderr=f, stdout=subprocess.DEVNULL, check=True, timeout=300,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    text = err.read_bytes()
    assert b"\r" not in text
    assert b"simulate: 2/2 run (100%)" in text
