"""One command-line convention (issue 28): the same overwrite flag on every command that writes,
``--noise`` on every command that takes a noise condition and both of its spellings, one
``--max-abs`` default, and ``noise-estimate`` reading every movie format ``detect`` reads.

Parse-level tests walk the real parser (``jaxmag.cli.build_parser`` / ``command_parsers``), so a
new command is held to the convention without being listed here by hand, except in the two sets
that say which commands replace files and which continue interrupted work.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from jaxmag.cli import build_parser, command_parsers, main
from jaxmag.cli._options import noise_condition
from jaxmag.io.movie import MAX_ABS

# commands that may replace a file (their own earlier output, or one they did not write): --force
REPLACES = {"simulate", "measures", "dataset merge", "export-ovf", "mumax3 export", "mumax3 sp4", "mumax3 validate",
            "detect", "predict", "fit-regime"}
# commands with an output that never replace one: they refuse a folder holding other work and
# continue their own (--resume, or rerunning the same command)
CONTINUES = {"train", "finetune", "run", "study", "plan"}
# the smallest command line of each command that takes --noise (the flag is appended)
NOISE_COMMANDS = {
    "detect": ["detect", "movie.tif", "--out", "o"],
    "train": ["train", "c.toml", "--out", "o", "--online"],
    "finetune": ["finetune", "runs/r", "--out", "o"],
    "measures": ["measures", "data.h5", "--out", "m.h5"],
    "evaluate": ["evaluate", "runs/r", "--measures", "m.h5"],
}


@pytest.fixture(scope="module")
def commands() -> dict[str, argparse.ArgumentParser]:
    return dict(command_parsers(build_parser()))


def _visible_options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}


# ----------------------------------------------------------------------------- one overwrite flag
def test_every_command_that_writes_takes_force_and_no_other_overwrite_flag(commands):
    forced = {name for name, p in commands.items() if "--force" in _visible_options(p)}
    assert forced == REPLACES
    shown = {name for name, p in commands.items() if "--overwrite" in _visible_options(p)}
    assert shown == set()
    with_out = {name for name, p in commands.items() if "--out" in p._option_string_actions}
    assert with_out <= REPLACES | CONTINUES, f"say whether {with_out - REPLACES - CONTINUES} replace files"
    for name in REPLACES:
        assert commands[name]._option_string_actions["--force"].dest == "force"
    # scripts written with the old spelling keep working, read as --force
    old = build_parser().parse_args(["export-ovf", "d.h5", "--run", "0", "--out", "o", "--overwrite"])
    assert old.force is True
    assert build_parser().parse_args(["mumax3", "sp4", "--out", "o", "--overwrite"]).force is True


# ----------------------------------------------------------------------------- one noise syntax
def test_every_noise_flag_is_noise_and_reads_both_spellings(commands):
    taking = {name for name, p in commands.items()
              if any(a.type is noise_condition for a in p._actions if a.help != argparse.SUPPRESS)}
    assert taking == set(NOISE_COMMANDS), "a noise-taking flag must be added with jaxmag.cli._options.add_noise"
    for name, p in commands.items():
        assert not {"--train-noise", "--condition"} & _visible_options(p), name
    parser = build_parser()
    for name, argv in NOISE_COMMANDS.items():
        action = commands[name]._option_string_actions["--noise"]
        assert action.type is noise_condition and "KIND:LEVEL" in action.help and "KIND_LEVEL" in action.help, name
        for spelling in ("gaussian:1e-2", "gaussian_1e-2", "gaussian:0.01"):
            value = parser.parse_args(argv + ["--noise", spelling]).noise
            assert value in ("gaussian:1e-2", ["gaussian:1e-2"]), (name, spelling, value)
        assert parser.parse_args(argv + ["--noise", "speckle_2.5e-1"]).noise in ("speckle:2.5e-1", ["speckle:2.5e-1"])
        assert parser.parse_args(argv + ["--noise", "clean"]).noise in ("clean", ["clean"])
    # the older flag names still read, into the same place
    assert parser.parse_args(NOISE_COMMANDS["train"] + ["--train-noise", "gaussian_1e-3"]).noise == "gaussian:1e-3"
    assert parser.parse_args(NOISE_COMMANDS["evaluate"] + ["--condition", "gaussian_1e-3"]).noise == ["gaussian:1e-3"]
    # detect's auto, and a mistake, are kept as typed: the command names them in its one-line error
    assert parser.parse_args(NOISE_COMMANDS["detect"]).noise == "auto"
    assert parser.parse_args(NOISE_COMMANDS["measures"] + ["--noise", "poisson:1"]).noise == ["poisson:1"]


def test_condition_label_and_name():
    from jaxmag.noise import condition_label, parse_noise_spec

    spec = parse_noise_spec("gaussian_1e-2")
    assert spec == parse_noise_spec("gaussian:1e-2") == parse_noise_spec("gaussian:0.01")
    assert (spec.label, spec.name) == ("gaussian:1e-2", "gaussian_1e-2")
    assert condition_label("speckle_2.5e-1") == "speckle:2.5e-1" and condition_label("clean") == "clean"
    assert condition_label("auto") == "auto"


def test_measures_prints_and_rejects_in_the_printed_form(tmp_path, capsys):
    assert main(["measures", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "m.h5"), "--noise", "poisson:1"]) == 2
    assert "accepted forms are 'clean', 'gaussian:VARIANCE'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- one --max-abs
def test_one_max_abs_default(commands):
    parser = build_parser()
    for argv in (["detect", "m.tif", "--out", "o"], ["predict", "r", "m.tif", "--out", "o"], ["noise-estimate", "m.tif"]):
        assert parser.parse_args(argv).max_abs == MAX_ABS
        assert f"default {MAX_ABS:g}" in commands[argv[0]]._option_string_actions["--max-abs"].help
    # unit vectors plus the strongest trained noise (variance 1) pass; A/m does not
    assert 1 + 3.3 * 1.0 < MAX_ABS < 1e4


# ----------------------------------------------------------------------------- noise-estimate's formats
def _noisy_movie(shape=(24, 16, 16), variance=1e-2, seed=3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.5 + rng.normal(0.0, np.sqrt(variance), shape)).astype(np.float32)  # a flat signal plus noise


def _estimate(argv, capsys) -> dict:
    assert main(["noise-estimate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_noise_estimate_reads_tiff_ovf_folder_and_hdf5(tmp_path, capsys):
    import h5py
    import tifffile

    from jaxmag.io.ovf import write_ovf

    movie = _noisy_movie()
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    assert _estimate([str(tmp_path / "movie.tif")], capsys)["gaussian_variance"] == pytest.approx(1e-2, rel=0.15)

    folder = tmp_path / "run.out"  # MuMax3-style OVF frames of a vector movie: m_z carries the noise
    folder.mkdir()
    for t, frame in enumerate(movie):
        vec = np.stack([np.sqrt(1 - 0.25) * np.ones_like(frame), np.zeros_like(frame), frame], axis=-1)
        write_ovf(folder / f"m{t:06d}.ovf", vec[None], (4e-9,) * 3, time_s=1e-11 * t)
    result = _estimate([str(folder), "--component", "z"], capsys)
    assert result["gaussian_variance"] == pytest.approx(1e-2, rel=0.15) and result["frames"] == 24
    assert "component z" in result["movie"]
    assert _estimate([str(folder), "--component", "x"], capsys)["gaussian_variance"] < 1e-6

    with h5py.File(tmp_path / "kerr.h5", "w") as f:  # a user's HDF5 movie, named with --dataset
        f["frames/a"] = movie
        f["frames/b"] = movie[:, :8]
    assert _estimate([str(tmp_path / "kerr.h5"), "--dataset", "frames/a"], capsys)["gaussian_variance"] == \
        pytest.approx(1e-2, rel=0.15)


def test_noise_estimate_rescales_as_detect_does(tmp_path, capsys):
    import tifffile

    counts = (1000 + 2000 * _noisy_movie()).astype(np.uint16)  # camera counts
    tifffile.imwrite(tmp_path / "counts.tif", counts)
    assert main(["noise-estimate", str(tmp_path / "counts.tif")]) == 2
    assert "--rescale minmax" in capsys.readouterr().err
    result = _estimate([str(tmp_path / "counts.tif"), "--rescale", "minmax"], capsys)
    scale = (counts.max() - counts.min()) / 2.0  # minmax maps [min, max] onto [-1, 1]
    assert result["gaussian_variance"] == pytest.approx(1e-2 * 2000 ** 2 / scale ** 2, rel=0.15)
