"""``jaxmag plan``: the grid, the films reused across it, the baseline at every point, resume, and
the physics checks (the exposure from samples is the solver's exposure; zero blur and no detector
give the clean study's baseline; Dice falls with blur and rises with photons)."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxmag.config import ConfigError, load_config, loads_config
from jaxmag.instrument import Instrument
from jaxmag.plan_grid import PlanConfig, check_plan, film_components, movie_variant, plan_points, simulated_frames

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.toml"

PLAN_TOML = f"""base = "{TINY}"
name = "tiny-plan"
[simulation]
num_frames = 8
[dataset]
num_runs = 12
[training]
split = [0.34, 0.33, 0.33]
epochs = 1
batch_size = 4
recipe = "robust"
[model]
base_features = 4
depth = 1
[plan]
psf_fwhm_m = [0, 8e-9]
photons_per_pixel = [0, 1e3]
probe = ["z"]
models = 1
steps_per_epoch = 2
"""


def _write(tmp_path: Path, text: str = PLAN_TOML, name: str = "plan.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the grid ---------------------------------------------------------------------------------


def test_points_are_the_product_of_the_axes_and_ids_name_the_swept_ones():
    plan = PlanConfig(psf_fwhm_m=(0.0, 8e-9), photons_per_pixel=(1e3, 1e4, 1e5), probe=("x", "z"))
    points = plan_points(plan, Instrument(enabled=False, read_noise=2.0), num_frames=50)
    assert len(points) == 12
    assert len({p.id for p in points}) == 12
    p = points[-1]
    assert p["psf_fwhm_m"] == 8e-9 and p["photons_per_pixel"] == 1e5 and p["probe"] == "z"
    assert p["num_frames"] == 50 and p["read_noise"] == 2.0  # unswept: the base values
    assert p.instrument.enabled and p.instrument.psf_fwhm_m == 8e-9 and p.instrument.read_noise == 2.0
    assert p.id == "psf_fwhm_m=8e-09,photons_per_pixel=100000,probe=z"
    assert film_components(points) == "xz"
    assert plan.maps() == ("psf_fwhm_m", "photons_per_pixel")
    assert simulated_frames(dataclasses.replace(plan, exposure_s=(0.0, 1e-12), exposure_samples=3), 50) == 150


def test_plan_section_round_trips_and_configs_without_it_keep_their_toml(tmp_path):
    config = load_config(_write(tmp_path))
    assert config.plan.enabled and config.plan.photons_per_pixel == (0.0, 1000.0)
    assert loads_config(config.to_toml()).plan == config.plan
    assert "plan" not in load_config(TINY).to_dict()


@pytest.mark.parametrize("key, value, match", [
    ("read_noise", "[-1.0]", "read_noise"),
    ("measures", '["variance"]', "measures"),
    ("map_axes", '["psf_fwhm_m"]', "map_axes"),
    ("target_dice", "1.5", "target_dice"),
    ("photons", "[1e3]", "photons"),
])
def test_bad_plan_keys_name_the_key(tmp_path, key, value, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_write(tmp_path, PLAN_TOML + f"{key} = {value}\n"))


def test_check_plan_refuses_what_the_films_cannot_give():
    inst = Instrument(enabled=False)
    with pytest.raises(ValueError, match="at least 4"):  # one sample of 0.25 ps would be instantaneous
        check_plan(PlanConfig(exposure_s=(0.0, 2.5e-13), exposure_samples=4), inst, 1e-12, 4e-9, 100)
    with pytest.raises(ValueError, match="whole number"):
        check_plan(PlanConfig(exposure_s=(0.9e-12,), exposure_samples=8), inst, 1e-12, 4e-9, 100)
    check_plan(PlanConfig(exposure_s=(0.0, 0.5e-12, 1e-12), exposure_samples=8), inst, 1e-12, 4e-9, 100)
    with pytest.raises(ValueError, match="longer than the frame interval"):
        check_plan(PlanConfig(exposure_s=(0.0, 2e-12)), inst, 1e-12, 4e-9, 100)
    with pytest.raises(ValueError, match="fixes one"):
        check_plan(PlanConfig(exposure_s=(1e-13,)), dataclasses.replace(inst, exposure_s=1e-3), 1e-12, 4e-9, 100)
    with pytest.raises(ValueError, match="exceed"):
        check_plan(PlanConfig(num_frames=(50, 200)), inst, 1e-12, 4e-9, 100)
    with pytest.raises(ValueError, match="smaller than the cell"):
        check_plan(PlanConfig(pixel_size_m=(2e-9,)), inst, 1e-12, 4e-9, 100)
    with pytest.raises(ValueError, match="at least two values"):
        check_plan(PlanConfig(psf_fwhm_m=(0.0, 1e-9), map_axes=("psf_fwhm_m", "photons_per_pixel")), inst, 1e-12, 4e-9, 100)


def test_movie_variant_takes_a_prefix_or_averages_the_last_samples():
    rng = np.random.default_rng(0)
    films = rng.normal(size=(2, 12, 1, 3, 3)).astype(np.float32)
    assert np.array_equal(movie_variant(films, 5, 0.0, 1e-12, 1), films[:, :5])
    # films sampled once per frame: an exposure is [instrument] exposure_s, already the solver's
    assert np.array_equal(movie_variant(films, 5, 1e-3, 1e-3, 1), films[:, :5])
    # 4 samples per 1 ps interval: a 0.5 ps exposure averages the last 2 samples of each interval
    v = movie_variant(films, 3, 0.5e-12, 1e-12, 4)
    expected = films.reshape(2, 3, 4, 1, 3, 3)[:, :, 2:].mean(axis=2)
    np.testing.assert_allclose(v, expected, rtol=1e-6)
    np.testing.assert_array_equal(movie_variant(films, 3, 0.0, 1e-12, 4), films[:, 3::4])
    with pytest.raises(ValueError, match="need"):
        movie_variant(films, 4, 0.0, 1e-12, 4)


def test_exposure_from_samples_is_the_solvers_exposure():
    """The films sampled every step and averaged afterwards equal the solver's running exposure sum."""
    from jaxmag.assemble import simulate

    c = load_config(TINY)
    c = c.replace(dataset=dataclasses.replace(c.dataset, num_runs=2))
    steps = round(c.simulation.frame_interval_s / c.simulation.dt)
    exposure = 3 * c.simulation.dt
    solver = c.replace(instrument=dataclasses.replace(c.instrument, enabled=True, exposure_s=exposure))
    sampled = c.replace(simulation=dataclasses.replace(c.simulation, frame_interval_s=c.simulation.dt,
                                                       num_frames=c.simulation.num_frames * steps))
    a = np.asarray(simulate(solver, progress=False).m)
    b = movie_variant(np.asarray(simulate(sampled, progress=False).m), c.simulation.num_frames, exposure,
                      c.simulation.frame_interval_s, steps)
    np.testing.assert_allclose(a, b, atol=1e-6)


# -- the job ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory):
    from jaxmag.learn.plan import run_plan

    tmp = tmp_path_factory.mktemp("plan")
    config = _write(tmp)
    out = tmp / "out"
    lines: list[str] = []
    result = run_plan(config, out, progress=False, log=lines.append)
    return config, out, result, lines


def test_plan_writes_a_row_per_point_measure_and_method(tiny_plan):
    config, out, result, _ = tiny_plan
    rows = result["rows"]
    base = [r for r in rows if r["method"] == "baseline"]
    assert len(base) == 4 * 3
    models = [r for r in rows if r["method"] == "model"]
    assert len(models) == 1 and models[0]["train_s"] > 0
    from jaxmag.learn.splits import split_indices

    test_films = split_indices(12, (0.34, 0.33, 0.33), 0)["test"].size
    for r in rows:
        assert 0 <= r["dice"] <= 1 and r["test_films"] == test_films
        for axis in ("psf_fwhm_m", "pixel_size_m", "photons_per_pixel", "read_noise", "exposure_s", "num_frames", "probe"):
            assert axis in r
    header = (out / "plan.csv").read_text().splitlines()[0].split(",")
    assert {"psf_fwhm_m", "photons_per_pixel", "dice", "dice_se", "method", "measure"} <= set(header)
    assert json.loads((out / "plan.json").read_text())["rows"]
    assert (out / "report.md").is_file()


def test_plan_resumes_from_its_points_and_models(tiny_plan):
    from jaxmag.learn.plan import run_plan

    config, out, result, _ = tiny_plan
    removed = sorted((out / "points").glob("*.json"))[0]
    removed.unlink()
    lines: list[str] = []
    again = run_plan(config, out, progress=True, log=lines.append)
    baseline_lines = [line for line in lines if line.startswith("baseline:")]
    assert len(baseline_lines) == 1 and "ETA" in baseline_lines[0]  # only the removed point was redone
    key = lambda r: (r["point"], r["measure"], r["method"])
    assert sorted(map(key, again["rows"])) == sorted(map(key, result["rows"]))
    for a, b in zip(sorted(again["rows"], key=key), sorted(result["rows"], key=key)):
        assert a["dice"] == pytest.approx(b["dice"], abs=1e-9)


def test_plan_refuses_a_folder_of_another_config(tiny_plan, tmp_path):
    from jaxmag.learn.plan import run_plan

    _, out, _, _ = tiny_plan
    other = _write(tmp_path, PLAN_TOML.replace("psf_fwhm_m = [0, 8e-9]", "psf_fwhm_m = [0, 12e-9]"))
    with pytest.raises(ValueError, match="another config"):
        run_plan(other, out, progress=False, log=lambda s: None)


def test_zero_blur_and_no_detector_give_the_clean_studys_baseline(tiny_plan, tmp_path):
    """The z probe without optics or detector records m_z: its mean and std baseline rows are the
    clean study's baseline on the same films and split."""
    from jaxmag.assemble import compute_measures_file
    from jaxmag.learn import baseline
    from jaxmag.learn.splits import split_indices

    config_path, out, result, _ = tiny_plan
    config = load_config(config_path)
    measures = tmp_path / "measures.h5"
    compute_measures_file(out / "films.h5", measures, [], config=config, progress=False)
    split = split_indices(config.dataset.num_runs, tuple(config.training.split), config.training.seed)
    for measure in ("mean", "std"):
        study = baseline.fit_and_evaluate(measures, ((measure, "z"),), "clean", split,
                                          periodic=config.grid.boundary == "periodic")
        row = next(r for r in result["rows"] if r["method"] == "baseline" and r["measure"] == measure
                   and r["psf_fwhm_m"] == 0 and r["photons_per_pixel"] == 0)
        assert row["dice"] == pytest.approx(study["dice"], abs=1e-6), measure


def test_cli_plan_lists_points_and_names_a_missing_section(tmp_path):
    config = _write(tmp_path)
    run = lambda *a: subprocess.run([sys.executable, "-m", "jaxmag", "plan", *map(str, a)], capture_output=True, text=True)
    listed = run(config, "--out", tmp_path / "o", "--list")
    assert listed.returncode == 0 and "4 grid points" in listed.stdout
    missing = run(TINY, "--out", tmp_path / "o2")
    assert missing.returncode == 2 and missing.stderr.startswith("jaxmag: error:") and "[plan]" in missing.stderr
    assert "Traceback" not in missing.stderr


SANITY_TOML = f"""base = "{ROOT / 'configs' / 'quick.toml'}"
name = "plan-sanity"
[dataset]
num_runs = 24
[training]
split = [0.34, 0.33, 0.33]
[plan]
psf_fwhm_m = [0, 8e-9, 16e-9]
photons_per_pixel = [300, 3000, 0]
probe = ["x"]
measures = ["mean"]
models = 0
"""


@pytest.mark.slow
def test_dice_falls_with_blur_and_rises_with_photons(tmp_path):
    """On quick.toml's films (32 × 32, 100 frames, 8 test films): the mean-of-m_x baseline's Dice
    does not rise with the PSF width nor fall with the photons beyond twice the spread over films."""
    from jaxmag.learn.plan import run_plan

    result = run_plan(_write(tmp_path, SANITY_TOML), tmp_path / "out", progress=False, log=lambda s: None)
    dice = {(r["psf_fwhm_m"], r["photons_per_pixel"]): (r["dice"], r["dice_se"]) for r in result["rows"]}
    photons = (300.0, 3000.0, 0.0)  # 0: no detector, i.e. infinite photons
    for ph in photons:
        for a, b in zip((0.0, 8e-9), (8e-9, 16e-9)):
            (d0, s0), (d1, s1) = dice[(a, ph)], dice[(b, ph)]
            assert d1 <= d0 + 2 * max(s0, s1), (ph, a, b, d0, d1)
    for psf in (0.0, 8e-9, 16e-9):
        for a, b in zip(photons[:-1], photons[1:]):
            (d0, s0), (d1, s1) = dice[(psf, a)], dice[(psf, b)]
            assert d1 >= d0 - 2 * max(s0, s1), (psf, a, b, d0, d1)
    assert dice[(0.0, 0.0)][0] > 0.5  # the clean in-plane mean finds the defects at all


def test_the_frontier_is_the_best_baseline_below_the_target_one_measure_per_point():
    from jaxmag.learn.plan import frontier

    rows = [{"point": p, "measure": m, "method": "baseline", "dice": d}
            for p, m, d in [("a", "mean", 0.65), ("a", "std", 0.6), ("b", "std", 0.75), ("c", "mean", 0.2),
                            ("d", "latent_entropy", 0.5)]]
    assert frontier(rows, 0.7, 2) == [("a", "mean"), ("d", "latent_entropy")]
    assert frontier(rows, 0.7, 10) == [("a", "mean"), ("d", "latent_entropy"), ("c", "mean")]
    assert frontier(rows, 0.7, 0) == []
    assert frontier(rows, 0.1, 3) == []
    psf = {"a": 1, "b": 1, "c": 2, "d": 1}
    spread = [{**r, "psf_fwhm_m": psf[r["point"]]} for r in rows]
    assert frontier(spread, 0.7, 2, "psf_fwhm_m") == [("a", "mean"), ("c", "mean")]  # every PSF its best first


def test_stage_times_add_up_over_the_runs_into_a_folder(tmp_path):
    from jaxmag.learn.plan import accumulate_timings

    path = tmp_path / "timings.json"
    assert accumulate_timings(path, {"simulate_s": 10.0, "total_s": 12.0}) == {"simulate_s": 10.0, "total_s": 12.0}
    assert accumulate_timings(path, {"simulate_s": 0.5, "total_s": 1.0}) == {"simulate_s": 10.5, "total_s": 13.0}
    path.write_text("{not json")
    assert accumulate_timings(path, {"total_s": 2.0}) == {"total_s": 2.0}
