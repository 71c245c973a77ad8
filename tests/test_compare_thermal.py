"""Thermal comparison (``jaxmag.compare_thermal``, ``jaxmag.bootstrap``) on real jaxmag runs,
its building blocks, frame alignment of engine folders, and bad input."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from jaxmag.bootstrap import block_weights, default_block, hierarchical
from jaxmag.cli import main as cli_main
from jaxmag.compare import compare, load_source
from jaxmag.compare_thermal import autocorrelation_times, common_regions, sidak_k
from jaxmag.io.ovf import write_ovf
from jaxmag.io.trajectory import trajectory_from_frames

ROOT = Path(__file__).resolve().parents[1]
BURN_IN, DT_FRAME = 5e-10, 1e-11


# ------------------------------------------------------------------------------ building blocks


def test_block_weights_and_hierarchical():
    rng = np.random.default_rng(0)
    w = block_weights(100, default_block(100), 50, rng)
    assert default_block(100) == 10 and w.shape == (50, 100)
    np.testing.assert_array_equal(w.sum(axis=1), 100)
    per_run = rng.normal(size=(3, 50, 4))
    assert hierarchical(per_run[:1], rng) is not None and hierarchical(per_run, rng).shape == (50, 4)
    with pytest.raises(ValueError, match="block length"):
        block_weights(10, 11, 5, rng)


def test_sidak_limit():
    assert sidak_k(1, 0.05) == pytest.approx(1.959964, rel=1e-6)
    # S independent standard normals: P(all |z| <= k) = (1 - alpha).
    from scipy.stats import norm

    k = sidak_k(38, 0.05)
    assert (1 - 2 * norm.sf(k)) ** 38 == pytest.approx(0.95, rel=1e-9)


def test_weighted_autocorrelation_matches_direct_sums():
    rng = np.random.default_rng(1)
    T = 200
    x = np.zeros(T)
    for t in range(1, T):
        x[t] = 0.9 * x[t - 1] + rng.normal()
    w = np.concatenate([np.ones((1, T)), block_weights(T, 15, 4, rng)])
    target = math.exp(-1)
    expected = []
    for row in w:
        mu = row @ x / row.sum()
        d = x - mu
        acf = np.array([(row[: T - lag] * d[: T - lag] * d[lag:]).sum() / row[: T - lag].sum() for lag in range(51)])
        acf /= acf[0]
        k = int(np.argmax(acf < target))
        expected.append(k - 1 + (acf[k - 1] - target) / (acf[k - 1] - acf[k]))
    np.testing.assert_allclose(autocorrelation_times(x, w, 50), expected, rtol=1e-9)
    assert autocorrelation_times(np.ones(T), w[:1], 50)[0] == 0.0 or True  # constant series: no crash


def test_common_regions_refines_maps():
    m = np.zeros((10, 1, 2, 3, 3))
    a = trajectory_from_frames(m, np.arange(10.0), (1e-9,) * 3, regions=np.array([[[0, 0, 1], [0, 0, 1]]]))
    b = trajectory_from_frames(m, np.arange(10.0), (1e-9,) * 3, regions=np.array([[[5, 5, 7], [5, 8, 7]]]))
    labels, names = common_regions([a, b])
    assert names == ("background", "region 1", "region 2")
    assert labels.tolist() == [0, 0, 1, 0, 2, 1]
    labels, names = common_regions([trajectory_from_frames(m, np.arange(10.0), (1e-9,) * 3)])
    assert names == ("film",) and not labels.any()


# ------------------------------------------------------------------------------ jaxmag runs

FILM = """
base = "{root}/configs/paper.toml"
[grid]
nx = 32
ny = 32
pbc_images = 1
[simulation]
components = "xyz"
"""


@pytest.fixture(scope="module")
def film_runs(tmp_path_factory):
    """One 32 x 32 periodic film (paper physics, 100 frames): thermal seeds 1 and 2 at 300 K,
    seed 3 at 240 K, simulated in one batch."""
    import jax

    from jaxmag import assemble as sim  # build_run, batch_simulator, frame_times of a config
    from jaxmag.simulate import local_mesh
    from jaxmag.config import load_config

    path = tmp_path_factory.mktemp("film") / "film.toml"
    path.write_text(FILM.format(root=ROOT))
    config = load_config(path)
    spec = sim.build_run(config, 0)
    mats = [spec.material, spec.material, spec.material.replace(temperature=spec.material.temperature * 0.8)]
    material = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *mats)
    m0 = np.stack([np.asarray(spec.m0)] * 3)
    mesh = local_mesh()
    frames = np.asarray(sim.batch_simulator(config, mesh)(material, m0, np.array([1, 2, 3], np.uint32)), np.float64)
    times = sim.frame_times(config)
    runs = [trajectory_from_frames(np.moveaxis(f, 1, -1), times, config.grid.cell_size_m, name=f"seed {s}", regions=spec.labels)
            for f, s in zip(frames, (1, 2, 3))]
    return runs, config


def test_seed_pair_consistent_and_240_vs_300_inconsistent(film_runs):
    (a, b, cold), _ = film_runs
    same = compare(a, b, mode="thermal")
    assert same.passed, same.table()
    assert len(same.statistics) == 2 * 3 * 5 + 3 + 3 + 2  # 4 defect regions + background
    hot_cold = compare(a, cold, mode="thermal")
    assert not hot_cold.passed, hot_cold.table()
    failed = {s.name for s in hot_cold.statistics if not s.passed}
    assert {"var m_z", "<m_z^2>"} <= failed, failed
    # Several runs per side (two-stage bootstrap): still consistent / inconsistent.
    assert compare([a, b], [b, a], mode="thermal").passed
    assert not compare([a, b], [cold], mode="thermal").passed


def write_engine_folder(folder: Path, t, *, first: np.ndarray | None = None, script_temp: float | None = None, nan_at: int | None = None):
    """``t`` as a MuMax3 output folder: m000000 = end of burn-in (``first``), then the frames."""
    folder.mkdir(parents=True)
    m = t.m.astype(np.float32)
    write_ovf(folder / "m000000.ovf", m[0] if first is None else first, t.cell_size, time_s=float(t.times[0] - (t.times[1] - t.times[0])))
    for k in range(len(m)):
        frame = m[k].copy()
        if nan_at == k:
            frame[0, 0, 0, 0] = np.nan
        write_ovf(folder / f"m{k + 1:06d}.ovf", frame, t.cell_size, time_s=float(t.times[k]))
    if script_temp is not None:
        (folder / "log.txt").write_text(f"SetGridSize(32, 32, 1)\nTemp = {script_temp}\n")
    return folder


def test_engine_folder_drops_end_of_burn_in_and_cli(film_runs, tmp_path, capsys):
    (a, b, cold), _ = film_runs
    fa = write_engine_folder(tmp_path / "a.out", a, first=np.zeros_like(a.m[0], np.float32))
    loaded = load_source(str(fa))
    assert loaded.dropped_first and loaded.m.shape[0] == 100  # 100 frames, not 101
    np.testing.assert_allclose(loaded.times, a.times, rtol=1e-12)
    np.testing.assert_allclose(loaded.m, a.m, atol=1e-6)
    fb = write_engine_folder(tmp_path / "b.out", b)
    fc = write_engine_folder(tmp_path / "c.out", cold)
    assert cli_main(["mumax3", "compare", str(fa), str(fb), "--mode", "thermal"]) == 0
    out = capsys.readouterr().out
    assert "consistent within" in out and "INCONSISTENT" not in out
    assert cli_main(["mumax3", "compare", str(fa), "--vs", str(fc), "--mode", "thermal", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] is False and result["mode"] == "thermal" and len(result["statistics"]) == 14  # no regions.ovf: one "film" region


def test_mismatched_inputs_name_the_mismatch(film_runs, tmp_path, capsys):
    (a, b, _), _ = film_runs
    fa = write_engine_folder(tmp_path / "a.out", a, script_temp=300)
    cases = {
        "grid mismatch": trajectory_from_frames(b.m[:, :, :16], b.times, b.cell_size),
        "cell size mismatch": trajectory_from_frames(b.m, b.times, (5e-9, 5e-9, 4e-9)),
        "frame interval mismatch": trajectory_from_frames(b.m, BURN_IN + 2 * DT_FRAME * np.arange(1, 101), b.cell_size),
        "temperature mismatch": dataclasses.replace(b, temperature=240.0),
    }
    for what, other in cases.items():
        folder = write_engine_folder(tmp_path / what.replace(" ", "_") / "run.out", other, script_temp=240 if "temperature" in what else None)
        assert cli_main(["mumax3", "compare", str(fa), str(folder)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("jaxmag: error: ") and what in err[0], err


def test_nan_frame_is_an_input_error(film_runs, tmp_path, capsys):
    (a, b, _), _ = film_runs
    fa = write_engine_folder(tmp_path / "a.out", a)
    fb = write_engine_folder(tmp_path / "b.out", b, nan_at=40)
    assert cli_main(["mumax3", "compare", str(fa), str(fb), "--mode", "thermal", "--json"]) == 2
    captured = capsys.readouterr()
    assert "NaN" in captured.err and "m000041.ovf" in captured.err and captured.out == ""


@pytest.mark.slow
def test_calibration_false_alarm_and_detection_rates(tmp_path):
    """scripts/calibrate_compare.py at a reduced count (32 x 32, 100 frames, 6 baseline runs,
    3 per variant): the full measurement (16 + 4 x 8 runs) is in docs/mumax3.md."""
    import subprocess
    import sys

    out = tmp_path / "calib.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "calibrate_compare.py"), "--n", "32", "--pairs", "3", "--out", str(out)],
                   check=True, timeout=3600)
    result = json.loads(out.read_text())
    assert result["false_alarm"]["all_pairs"]["count"] <= 1, result["false_alarm"]  # of 15 pairs
    for name, rates in result["detection"].items():
        assert rates["all_pairs"]["rate"] >= 0.9, (name, rates)
