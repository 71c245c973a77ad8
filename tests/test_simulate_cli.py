"""`jaxmag simulate` and `jaxmag dataset` from the command line: SIGKILL + resume gives the
uninterrupted file bit for bit; bad configs fail with one line and leave no file."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from jaxmag.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.toml"


def _slow_tiny(tmp_path: Path) -> Path:
    """tiny.toml with a longer burn-in (250 steps), so a batch takes about a second."""
    path = tmp_path / "slow.toml"
    path.write_text(f'base = "{TINY}"\n[simulation]\nburn_in_s = 2.5e-11\n')
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "jaxmag", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _done(path: Path) -> np.ndarray | None:
    try:
        # The writer never changes metadata after creation, so a lock-free read is safe.
        with h5py.File(path, "r", locking=False) as f:
            return f["done"][...]
    except (OSError, KeyError):
        return None


def _contents(path: Path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        out.update({f"@{k}": (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()})
        f.visititems(lambda name, obj: out.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_sigkill_after_first_batch_then_resume_is_bit_identical(tmp_path):
    config = _slow_tiny(tmp_path)
    ref, killed = tmp_path / "ref.h5", tmp_path / "killed.h5"
    args = ["--num", "6", "--batch", "4", "--no-progress"]
    subprocess.run(_cli("simulate", str(config), "--out", str(ref), *args), check=True, env=_env(), timeout=600)

    proc = subprocess.Popen(_cli("simulate", str(config), "--out", str(killed), *args), env=_env())
    deadline = time.monotonic() + 300
    state = None
    while time.monotonic() < deadline and proc.poll() is None:
        state = _done(killed) if killed.exists() else None
        if state is not None and state[:4].all():
            proc.send_signal(signal.SIGKILL)  # first batch marked done, second one in flight
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before the test could kill it"
    done = _done(killed)
    assert done[:4].all() and not done[4:].any()

    # Without --resume the interrupted file is protected.
    rc = subprocess.run(_cli("simulate", str(config), "--out", str(killed), *args), env=_env(), capture_output=True, text=True)
    assert rc.returncode == 2 and "--resume" in rc.stderr
    subprocess.run(_cli("simulate", str(config), "--out", str(killed), *args, "--resume"), check=True, env=_env(), timeout=600)

    a, b = _contents(ref), _contents(killed)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert ref.read_bytes() == killed.read_bytes()  # even the files are byte-identical


@pytest.mark.slow
def test_repeated_random_kills_then_resume(tmp_path):
    """Kill at random moments (creation, mid-write, between flushes) several times over."""
    config = _slow_tiny(tmp_path)
    ref, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    args = ["--num", "10", "--batch", "2", "--no-progress"]
    subprocess.run(_cli("simulate", str(config), "--out", str(ref), *args), check=True, env=_env())
    rng = np.random.default_rng(0)
    for attempt in range(8):
        resume = ["--resume"] if out.exists() else []
        proc = subprocess.Popen(_cli("simulate", str(config), "--out", str(out), *args, *resume), env=_env())
        time.sleep(rng.uniform(2.0, 8.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    resume = ["--resume"] if out.exists() else []
    subprocess.run(_cli("simulate", str(config), "--out", str(out), *args, *resume), check=True, env=_env())
    a, b = _contents(ref), _contents(out)
    for key in a:
        assert np.array_equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "text, message",
    [
        ("[grid]\nnxx = 16\n", "unknown key 'grid.nxx'"),
        ("[grid]\nnx = -16\n", "key 'grid.nx' must be positive"),
        ("[defects]\nsize_min = -3\n", "key 'defects.size_min' must be positive"),
        ("[simulation]\ndt = \"fast\"\n", "key 'simulation.dt' must be a number"),
    ],
)
def test_bad_config_one_line_error_no_file(tmp_path, capsys, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'base = "{TINY}"\n{text}')
    out = tmp_path / "out.h5"
    assert main(["simulate", str(bad), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("jaxmag: error: ") and message in err and "bad.toml" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_missing_config_and_bad_arguments(tmp_path, capsys):
    out = tmp_path / "out.h5"
    assert main(["simulate", str(tmp_path / "nope.toml"), "--out", str(out)]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["simulate", str(TINY), "--out", str(out), "--num", "0"]) == 2
    assert "--num must be an integer >= 1" in capsys.readouterr().err
    assert main(["simulate", str(TINY), "--out", str(out), "--resume", "--force"]) == 2
    assert main(["simulate", str(TINY), "--out", str(tmp_path / "no" / "dir.h5")]) == 2
    assert "output directory does not exist" in capsys.readouterr().err
    (tmp_path / "d").mkdir()
    assert main(["simulate", str(TINY), "--out", str(tmp_path / "d")]) == 2
    assert "is a directory" in capsys.readouterr().err
    (tmp_path / "d").rmdir()
    assert list(tmp_path.iterdir()) == []


def test_process_shards_merge_and_info_cli(tmp_path, capsys):
    out = tmp_path / "data.h5"
    for pid in ("0", "1"):
        assert main(["simulate", str(TINY), "--out", str(out), "--num", "4", "--batch", "2", "--no-progress", "--process-id", pid, "--num-processes", "2"]) == 0
    shards = sorted(str(p) for p in tmp_path.glob("data.shard*"))
    assert len(shards) == 2
    assert main(["dataset", "merge", *shards, "--out", str(out)]) == 0
    assert "4/4 runs done from 2 shard(s)" in capsys.readouterr().out
    assert main(["dataset", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "runs done:     4 / 4" in text and "virtual" in text and "(4, 4, 2, 16, 16) float32" in text
    assert main(["dataset", "info", str(tmp_path / "missing.h5")]) == 2
    assert "dataset file not found" in capsys.readouterr().err


def test_shard_flags_have_their_own_names_and_the_old_ones_are_hidden_aliases():
    from jaxmag.cli import build_parser

    parser = build_parser()
    new = parser.parse_args(["simulate", "c.toml", "--out", "d.h5", "--shard-index", "1", "--num-shards", "2", "--no-progress"])
    old = parser.parse_args(["simulate", "c.toml", "--out", "d.h5", "--process-id", "1", "--num-processes", "2", "--quiet"])
    assert (new.shard_index, new.num_shards, new.no_progress) == (old.shard_index, old.num_shards, old.no_progress) == (1, 2, True)
    help_text = parser._subparsers._group_actions[0].choices["simulate"].format_help()
    assert "--shard-index" in help_text and "--process-id" not in help_text and "--quiet" not in help_text
