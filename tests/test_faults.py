"""Reliability under faults (issue 14): full disks, hard kills, bad input files, corrupt checkpoints.

Every test here would fail on main a76b839. Full disks are made two ways: a small tmpfs where the
test may mount one (root on Linux; skipped with the reason otherwise) and an ``OSError(ENOSPC)``
injected into the writer. Kill tests run the CLI in a subprocess; the rest call
``jaxmag.cli.main`` in-process. The slow kill -9 test is marked ``slow``.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from jaxmag.io import atomic


# --- the atomic-write helper ------------------------------------------------------------------

def test_atomic_write_replaces_only_when_complete(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_write(target) as f:
            f.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary left
    atomic.write_text(target, "new")
    assert target.read_text() == "new"


def test_atomic_write_storage_error_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / "b.bin"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(atomic.WriteError, match=r"cannot write .*b\.bin: No space left on device; free some space"):
        atomic.write_bytes(target, b"x" * 10)
    assert not target.exists() and not list(tmp_path.iterdir())


# --- shared small files -------------------------------------------------------------------------

import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

from jaxmag.assemble import file_spec
from jaxmag.cli import main
from jaxmag.config import loads_config
from jaxmag.io import dataset as ds
from jaxmag.io.rowfile import staging_path
from jaxmag.io.errors import WriteError

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.toml"
XYZ_OVERRIDE = '\n[simulation]\ncomponents = "xyz"\n'


def tiny_xyz_config(num_runs=8, batch=4):
    text = TINY.read_text().replace('components = "xz"', 'components = "xyz"')
    text = text.replace("num_runs = 6", f"num_runs = {num_runs}").replace("batch_size = 4", f"batch_size = {batch}")
    return loads_config(text, "tiny-xyz")


def unit_rows(spec: ds.FileSpec, runs, seed=0) -> ds.RunRows:
    """Synthetic finished runs: random unit vectors (|m| = 1), labels and material maps."""
    rng = np.random.default_rng([seed, *map(int, runs)])
    B = len(runs)
    m = rng.standard_normal((B, spec.num_frames, 3, spec.ny, spec.nx))
    m /= np.linalg.norm(m, axis=2, keepdims=True)
    return ds.RunRows(
        run_index=np.asarray(runs, np.int64),
        m=m.astype(spec.store_dtype),
        labels=rng.integers(0, 3, (B, spec.ny, spec.nx)).astype(np.uint8),
        A=np.full((B, spec.ny, spec.nx), 1.3e-11, np.float32),
        Ku=np.full((B, spec.ny, spec.nx), 4e5, np.float32),
        easy_axis=np.broadcast_to(np.float32([0, 0, 1]), (B, spec.ny, spec.nx, 3)).copy(),
    )


def write_synthetic(path: Path, config=None, *, force=False, batches=None) -> Path:
    config = config or tiny_xyz_config()
    t = np.arange(config.simulation.num_frames) * config.simulation.frame_interval_s
    spec = file_spec(config, range(0, config.dataset.num_runs), t)
    work = ds.create_file(path, spec, force=force)
    runs = np.arange(config.dataset.num_runs)
    batches = batches if batches is not None else [runs[i:i + 4] for i in range(0, runs.size, 4)]
    with ds.DatasetWriter(work) as w:
        for b in batches:
            w.write(unit_rows(spec, b))
    return ds.complete(work, path)


def assert_unit_m_where_done(path: Path) -> None:
    with h5py.File(path, "r") as f:
        done = f["done"][...]
        assert done.any()
        norm = np.linalg.norm(f["m"][np.flatnonzero(done)].astype(np.float64), axis=2)
        np.testing.assert_allclose(norm, 1.0, rtol=1e-3)  # no run marked done holds zeros


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A valid dataset, and bad inputs derived from it (truncated, zeroed, text, empty, folder)."""
    root = tmp_path_factory.mktemp("files")
    good = write_synthetic(root / "good.h5")
    blob = good.read_bytes()
    out = {"good": good, "missing": root / "missing.h5", "directory": root / "folder.h5"}
    out["directory"].mkdir()
    contents = {"empty": b"", "truncated": blob[: len(blob) // 3], "zeroed": bytes(len(blob)),
                "text": b"run,value\n0,1.0\n"}
    for kind, data in contents.items():
        out[kind] = root / f"{kind}.h5"
        out[kind].write_bytes(data)
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("jaxmag: error: "), err
    return lines[0]


# --- item 1: a full disk never marks a run done ---------------------------------------------------

def _enospc_after(monkeypatch, calls: int, module=atomic.os):
    real, count = os.pwrite, [0]

    def pwrite(fd, data, offset):
        count[0] += 1
        if count[0] > calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(module, "pwrite", pwrite)


def test_full_disk_in_dataset_writer_marks_nothing_done_and_resume_is_byte_identical(tmp_path, monkeypatch):
    ref = write_synthetic(tmp_path / "ref.h5")
    path = tmp_path / "full.h5"
    _enospc_after(monkeypatch, 4 * 5 + 4 + 7)  # first batch and its done flags, then 7 more row writes
    with pytest.raises(WriteError, match=r"cannot write .*full\.h5: No space left on device; free some space"):
        write_synthetic(path)
    monkeypatch.undo()
    assert ds.summary(path).runs_done == 4
    assert ds.pending_rows(path).tolist() == [4, 5, 6, 7]
    assert_unit_m_where_done(path)
    config = tiny_xyz_config()  # "free space" and resume: only the pending rows are written
    t = np.arange(config.simulation.num_frames) * config.simulation.frame_interval_s
    spec = file_spec(config, range(0, 8), t)
    with ds.DatasetWriter(ds.check_matches(path, spec)) as w:
        w.write(unit_rows(spec, ds.pending_rows(path)))
    assert path.read_bytes() == ref.read_bytes()
    assert_unit_m_where_done(path)


def test_a_write_that_silently_fails_is_caught_by_the_read_back(tmp_path, monkeypatch):
    """h5py ignores the error of a write flushed when a temporary object is freed (issue 14,
    item 1): simulate a write that reports success but stores nothing."""
    path = tmp_path / "lost.h5"
    write_synthetic(path, batches=[])
    real = os.pwrite
    monkeypatch.setattr(atomic.os, "pwrite", lambda fd, data, offset: len(memoryview(data).cast("B")))
    with pytest.raises(WriteError, match="read back differs"):
        write_synthetic(path, force=True, batches=[np.arange(4)])
    monkeypatch.setattr(atomic.os, "pwrite", real)
    assert ds.summary(path).runs_done == 0


def _tmpfs(path: Path, size: str) -> Path:
    path.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    return path


@pytest.fixture
def small_disk(tmp_path):
    mnt = _tmpfs(tmp_path / "disk", "180k")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_tmpfs_during_simulate_then_resume_is_byte_identical(tmp_path, small_disk, capsys):
    """The scenario of issue 14, item 1, on a real 180 kB file system."""
    config = tmp_path / "tiny12.toml"
    config.write_text(TINY.read_text().replace("num_runs = 6", "num_runs = 12").replace('components = "xz"', 'components = "xyz"'))
    out = small_disk / "d.h5"
    assert main(["simulate", str(config), "--out", str(out), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "d.h5: No space left on device" in line and "--resume" in line
    done = ds.summary(out).runs_done
    assert 0 < done < 12
    assert_unit_m_where_done(out)
    subprocess.run(["mount", "-o", "remount,size=2m", str(small_disk)], check=True)
    assert main(["simulate", str(config), "--out", str(out), "--no-progress", "--resume"]) == 0
    ref = tmp_path / "ref.h5"
    assert main(["simulate", str(config), "--out", str(ref), "--no-progress"]) == 0
    capsys.readouterr()
    assert out.read_bytes() == ref.read_bytes()
    assert_unit_m_where_done(out)


# --- item 3: every command that reads a file, given a bad one: one error line, exit 2 -----------

BAD_INPUTS = ("missing", "directory", "empty", "truncated", "zeroed", "text")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny trained run folder (2 epochs on a synthetic measures file)."""
    from test_predict import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("run"))


def _commands(bad: Path, run: Path, good: Path, out: Path) -> dict[str, list[str]]:
    return {
        "dataset info": ["dataset", "info", str(bad)],
        "dataset merge": ["dataset", "merge", str(bad), "--out", str(out / "merged.h5")],
        "measures": ["measures", str(bad), "--out", str(out / "measures.h5"), "--quiet"],
        "noise-estimate": ["noise-estimate", str(bad)],
        "export-ovf": ["export-ovf", str(bad), "--run", "0", "--out", str(out / "ovf")],
        "mumax3 compare": ["mumax3", "compare", f"{bad}#run=0", f"{good}#run=0"],
        "mumax3 export": ["mumax3", "export", str(bad), "--run", "0", "--out", str(out / "mx3")],
        "simulate": ["simulate", str(bad), "--out", str(out / "data.h5"), "--no-progress"],
        "run": ["run", str(bad), "--out", str(out / "job")],
        "study": ["study", str(bad), "--out", str(out / "study")],
        "train --measures": ["train", str(TINY), "--measures", str(bad), "--measure", "mean", "--component", "z",
                             "--out", str(out / "train"), "--no-progress"],
        "predict RUN": ["predict", str(bad), str(good), "--out", str(out / "pred")],
        "predict MOVIE": ["predict", str(run), str(bad), "--out", str(out / "pred")],
        "evaluate RUN": ["evaluate", str(bad), "--measures", str(good)],
        "evaluate --measures": ["evaluate", str(run), "--measures", str(bad)],
        "finetune RUN": ["finetune", str(bad), "--noise", "clean", "--out", str(out / "ft")],
    }


COMMANDS = list(_commands(Path("x"), Path("r"), Path("g"), Path("o")))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_gives_one_error_line_for_bad_input_files(command, files, trained_run, tmp_path, capsys):
    for kind in BAD_INPUTS:
        out = tmp_path / kind
        out.mkdir()
        argv = _commands(files[kind], trained_run, files["good"], out)[command]
        rc = main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("jaxmag: error: "), (kind, rc, err)


# --- item 2: measures resumes after kill -9 / SIGINT ---------------------------------------------

def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def _measures_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["measures", str(data), "--out", str(out), "--chunk", "1", "--noise", "gaussian:1e-2", "--quiet", *extra]


def _done_count(path: Path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(f["clean/done"][...].sum() + f["gaussian_1e-2/done"][...].sum())
    except (OSError, KeyError):
        return -1


HEAR_CTRL_C = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
               "from jaxmag.cli import main; sys.exit(main(sys.argv[1:]))")


def _interrupt_measures(data: Path, out: Path, sig: int, *extra: str, after: int = 1, delay: float = 0.0):
    """Start `jaxmag measures` in a subprocess; send ``sig`` once ``after`` done flags are set
    (or after ``delay`` seconds when ``after`` is 0). Returns (returncode, stderr)."""
    # the child hears Ctrl-C as a user's shell sends it: a test worker may run with SIGINT ignored,
    # which a child inherits (Python then never raises KeyboardInterrupt), so the child restores it
    proc = subprocess.Popen([sys.executable, "-c", HEAR_CTRL_C, *_measures_argv(data, out, *extra)], env=_env(),
                            stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - start < 300:
            if (after and _done_count(out) >= after) or (not after and time.monotonic() - start >= delay):
                proc.send_signal(sig)
                break
            time.sleep(0.005)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


@pytest.fixture(scope="module")
def movie_dataset(tmp_path_factory):
    """24 runs of 32 frames (so that a chunk takes long enough to interrupt) and its measures."""
    root = tmp_path_factory.mktemp("measures")
    text = TINY.read_text().replace('components = "xz"', 'components = "xyz"').replace("num_frames = 4", "num_frames = 32")
    config = loads_config(text.replace("num_runs = 6", "num_runs = 24"), "tiny-movies")
    data = write_synthetic(root / "data.h5", config)
    ref = root / "ref.h5"
    assert main(_measures_argv(data, ref)) == 0
    return data, ref


def test_measures_ctrl_c_and_kill_9_then_resume_is_byte_identical(movie_dataset, tmp_path, capsys):
    data, ref = movie_dataset
    out = tmp_path / "m.h5"
    rc, err = _interrupt_measures(data, out, signal.SIGINT)
    assert rc == 130, err  # not 139: no segfault after the message
    assert err.strip().splitlines()[-1] == "jaxmag: interrupted; rerun with --resume to continue"
    before = _done_count(out)
    assert before >= 1
    rc, err = _interrupt_measures(data, out, signal.SIGKILL, "--resume", after=before + 1)
    assert rc == -signal.SIGKILL, err
    assert 0 < _done_count(out) < 48, "the kill came too late to test anything"
    assert main(_measures_argv(data, out, "--resume")) == 0
    capsys.readouterr()
    assert out.read_bytes() == ref.read_bytes()


def test_full_tmpfs_during_measures_then_resume_is_byte_identical(movie_dataset, tmp_path, capsys):
    """`jaxmag measures` onto a real tmpfs too small for its file: one error line (HDF5 used to
    segfault here while creating the file), nothing that looks complete, and after freeing space
    the rerun (`--resume` when a file was left) gives the same bytes as an uninterrupted run."""
    data, ref = movie_dataset
    disk = _tmpfs(tmp_path / "disk", f"{max(ref.stat().st_size // 2 // 4096, 8) * 4}k")
    try:
        out = disk / "m.h5"
        assert main(_measures_argv(data, out)) == 2
        line = one_error_line(capsys)
        assert "m.h5: No space left on device" in line and ("--resume" in line or "run the command again" in line), line
        assert _done_count(out) < 48
        subprocess.run(["mount", "-o", f"remount,size={ref.stat().st_size * 4 // 1024 + 1024}k", str(disk)], check=True)
        extra = ("--resume",) if out.exists() else ()
        assert main(_measures_argv(data, out, *extra)) == 0
        capsys.readouterr()
        assert out.read_bytes() == ref.read_bytes()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_measures_survives_8_random_kill_9_points(movie_dataset, tmp_path, capsys):
    data, ref = movie_dataset
    out = tmp_path / "m.h5"
    rng = np.random.default_rng(14)
    kills = 0
    for _ in range(8):
        extra = ("--resume",) if out.exists() else ()
        done = max(_done_count(out), 0)
        # half of the kill points at a random moment (also during start-up and compilation),
        # half right after a random number of further chunks were marked done
        if rng.random() < 0.5:
            rc, _ = _interrupt_measures(data, out, signal.SIGKILL, *extra, after=0, delay=float(rng.uniform(0, 20)))
        else:
            rc, _ = _interrupt_measures(data, out, signal.SIGKILL, *extra, after=done + int(rng.integers(1, 6)))
        kills += rc == -signal.SIGKILL
        assert rc in (0, -signal.SIGKILL)
    assert kills >= 4
    extra = ("--resume",) if out.exists() else ()
    assert main(_measures_argv(data, out, *extra)) == 0
    capsys.readouterr()
    assert out.read_bytes() == ref.read_bytes()


# --- item 4: a corrupt checkpoint is one line, without TensorStore dumps or asyncio noise -------

@pytest.fixture(scope="module")
def corrupt_run(trained_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("corrupt") / "run"
    shutil.copytree(trained_run, run)
    for chunk in (run / "checkpoints" / "best").glob("*/state/ocdbt.process_0/d/*"):
        os.truncate(chunk, 10)  # what a full disk or a bad copy leaves
    return run


def test_corrupt_checkpoint_is_one_line_without_library_noise(corrupt_run, tmp_path, files):
    movie = tmp_path / "movie.npy"
    np.save(movie, np.random.default_rng(0).standard_normal((6, 16, 16)).astype(np.float32))
    for argv in (["predict", str(corrupt_run), str(movie), "--component", "z", "--out", str(tmp_path / "p")],
                 ["evaluate", str(corrupt_run), "--measures", str(corrupt_run.parent / "measures.h5")]):
        r = subprocess.run([sys.executable, "-m", "jaxmag", *argv], env=_env(), capture_output=True, text=True, timeout=300)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
        assert lines[0].startswith(f"jaxmag: error: checkpoint {corrupt_run}/checkpoints/best is corrupt")
        assert "TensorStore" not in lines[0] and len(lines[0]) < 600
    assert not (tmp_path / "p").exists()


def test_unawaited_coroutine_at_exit_is_not_printed_after_an_error():
    # orbax leaves such a coroutine behind on a corrupt checkpoint, sometimes (1 run in ~5);
    # here one is made on purpose so the check does not depend on that race.
    script = (
        "import sys\n"
        "from jaxmag.cli import quiet_teardown_warnings\n"
        "quiet_teardown_warnings()\n"
        "async def read(): pass\n"
        "left = read()\n"
        "print('jaxmag: error: x', file=sys.stderr)\n"
        "sys.exit(2)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["jaxmag: error: x"], r.stderr


# --- item 5: output folders keep the user's files; --force keeps the old file until complete ---

def test_train_out_keeps_a_users_config_toml(trained_run, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.toml").write_text("# my notes\n")
    from test_predict import TINY_RUN

    config = tmp_path / "run.toml"
    config.write_text(TINY_RUN)
    measures = trained_run.parent / "measures.h5"
    assert main(["train", str(config), "--measures", str(measures), "--measure", "mean", "--component", "z",
                 "--out", str(out), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert f"{out / 'config.toml'} exists and was not written by jaxmag" in line
    assert (out / "config.toml").read_text() == "# my notes\n"


def test_full_tmpfs_during_train_is_one_error_line(trained_run, tmp_path):
    """`jaxmag train --out` on a real file system too small for its checkpoints: one line
    naming the disk problem, exit 2, no orbax/TensorStore log (there were 156 lines)."""
    from test_predict import TINY_RUN

    disk = _tmpfs(tmp_path / "disk", "48k")
    try:
        config = tmp_path / "run.toml"
        config.write_text(TINY_RUN)
        measures = trained_run.parent / "measures.h5"
        r = subprocess.run([sys.executable, "-m", "jaxmag", "train", str(config), "--measures", str(measures),
                            "--measure", "mean", "--component", "z", "--out", str(disk / "run"), "--no-progress"],
                           env=_env(), capture_output=True, text=True, timeout=600)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
        assert lines[0].startswith("jaxmag: error:") and "free some space" in lines[0], lines[0]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_predict_out_keeps_users_files_unless_force(trained_run, tmp_path, capsys):
    from jaxmag.learn.predict import load_run, predict_movie, write_prediction
    from jaxmag.io.movie import movie_from_array

    out = tmp_path / "pred"
    out.mkdir()
    (out / "mask.png").write_bytes(b"my picture")
    movie = movie_from_array(np.random.default_rng(0).standard_normal((6, 16, 16)), component="z", source="test")
    pred = predict_movie(load_run(trained_run), movie)
    with pytest.raises(FileExistsError, match=r"mask\.png exists and was not written by jaxmag"):
        write_prediction(pred, out)
    assert (out / "mask.png").read_bytes() == b"my picture"
    assert sorted(p.name for p in out.iterdir()) == ["mask.png"]
    paths = write_prediction(pred, out, force=True)
    assert (out / "mask.png").read_bytes()[:4] == b"\x89PNG"
    write_prediction(pred, out)  # its own files: replaced without --force
    assert all(p.stat().st_size > 0 for p in paths.values())


def test_predict_refuses_a_users_file_before_computing(trained_run, tmp_path, monkeypatch, capsys):
    import jaxmag.learn.predict as predict

    out = tmp_path / "pred"
    out.mkdir()
    (out / "prediction.json").write_text("{}")
    movie = tmp_path / "movie.npy"
    np.save(movie, np.random.default_rng(0).uniform(-1, 1, (6, 16, 16)).astype(np.float32))

    def forbidden(*args, **kwargs):
        raise AssertionError("the prediction was computed before the output folder was checked")

    monkeypatch.setattr(predict, "predict_movie", forbidden)
    assert main(["predict", str(trained_run), str(movie), "--component", "z", "--out", str(out)]) == 2
    assert "prediction.json exists and was not written by jaxmag" in one_error_line(capsys)
    assert (out / "prediction.json").read_text() == "{}"


def test_predict_full_disk_leaves_no_empty_file(trained_run, tmp_path, monkeypatch):
    from jaxmag.learn.predict import load_run, predict_movie, write_prediction
    from jaxmag.io.movie import movie_from_array

    movie = movie_from_array(np.random.default_rng(0).standard_normal((6, 16, 16)), component="z", source="test")
    pred = predict_movie(load_run(trained_run), movie)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(WriteError, match=r"cannot write .*/p/\S+: No space left on device; free some space"):
        write_prediction(pred, tmp_path / "p")
    left = list((tmp_path / "p").iterdir())
    assert not (tmp_path / "p" / "mask.tif").exists() and all(p.stat().st_size > 0 for p in left)


def test_export_ovf_keeps_a_users_table(files, tmp_path, capsys):
    out = tmp_path / "ovf"
    out.mkdir()
    (out / "table.txt").write_text("mine\n")
    assert main(["export-ovf", str(files["good"]), "--run", "0", "--out", str(out)]) == 2
    assert "table.txt exists and was not written by jaxmag" in one_error_line(capsys)
    assert (out / "table.txt").read_text() == "mine\n" and not list(out.glob("*.ovf"))
    assert main(["export-ovf", str(files["good"]), "--run", "0", "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["export-ovf", str(files["good"]), "--run", "0", "--out", str(out / "m000000.ovf")]) == 2
    assert "is a file, not a folder" in one_error_line(capsys)


def test_force_writes_beside_and_keeps_the_old_file_until_complete(tmp_path, monkeypatch):
    path = write_synthetic(tmp_path / "d.h5")
    old = path.read_bytes()
    _enospc_after(monkeypatch, 5)  # the new file fails during its first batch
    with pytest.raises(WriteError):
        write_synthetic(path, force=True)
    monkeypatch.undo()
    assert path.read_bytes() == old  # the good file survived the failed --force run
    assert staging_path(path).exists()
    with pytest.raises(FileExistsError, match=r"d\.incomplete\.h5 holds an interrupted --force run"):
        write_synthetic(path)
    write_synthetic(path, force=True)
    assert path.read_bytes() == old and not staging_path(path).exists()


# --- item 6: NaN input to mumax3 compare is an input error --------------------------------------

def test_mumax3_compare_nan_input_is_an_input_error(tmp_path, capsys):
    path = tmp_path / "nan.h5"
    config = tiny_xyz_config()
    t = np.arange(config.simulation.num_frames) * config.simulation.frame_interval_s
    from jaxmag.assemble import file_spec

    spec = file_spec(config, range(8), t)
    ds.create_file(path, spec)
    rows = unit_rows(spec, np.arange(8))
    rows.m[0, 1, :, 3, 3] = np.nan
    with ds.DatasetWriter(path) as w:
        w.write(rows)
    for extra in ([], ["--json"]):
        rc = main(["mumax3", "compare", f"{path}#run=0", f"{path}#run=1", *extra])
        captured = capsys.readouterr()
        assert rc == 2 and "NaN" not in captured.out, captured.out
        assert "nan" in one_error_line_of(captured.err).lower()


def one_error_line_of(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("jaxmag: error: "), err
    return lines[0]


def test_run_checks_the_split_when_the_config_is_loaded(tmp_path, capsys):
    """configs/tiny.toml has 6 runs: `jaxmag run` used to fail only after simulate and measures."""
    assert main(["run", str(TINY), "--out", str(tmp_path / "job")]) == 2
    line = one_error_line(capsys)
    assert "dataset.num_runs = 6" in line and "too few for the split" in line and "raise dataset.num_runs" in line
    assert not (tmp_path / "job" / "data.h5").exists()
