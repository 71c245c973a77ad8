"""jaxmag detect: regime from the movie, noise calibration, baseline, batch generator, errors, end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxmag.cli import main
from jaxmag.config import load_config, loads_config
from jaxmag.io.movie import movie_from_array
from jaxmag.io.ovf import write_ovf
from jaxmag.learn import baseline, budgets
from jaxmag.learn import detect as dt
from jaxmag.learn import detect_stages
from jaxmag.learn import regime as rg
from jaxmag.learn.metrics import dice
from jaxmag.learn.noise_match import estimate_noise

REPO = Path(__file__).resolve().parents[1]


def _film_movie(T=12, ny=16, nx=16, seed=0, edge_drop=0.0):
    """A smooth random m_x/m_z movie near +x (not physics: for the code paths)."""
    rng = np.random.default_rng(seed)
    z = 0.1 * rng.standard_normal((T, ny, nx))
    z = (z + np.roll(z, 1, -1) + np.roll(z, 1, -2)) / 3
    x = np.sqrt(1 - z**2)
    if edge_drop:
        x[:, :, :2] -= edge_drop
        x[:, :, -2:] -= edge_drop
    return x.astype(np.float32), z.astype(np.float32)


def test_movie_facts_from_ovf_headers_and_regime_config(tmp_path):
    mx, mz = _film_movie(T=10, ny=16, nx=24)
    folder = tmp_path / "run.out"
    folder.mkdir()
    for k in range(10):
        frame = np.stack([mx[k], np.zeros_like(mx[k]), mz[k]], axis=-1)[None]
        write_ovf(folder / f"m{k:06d}.ovf", frame, (3e-9, 3e-9, 3e-9), time_s=2e-10 + k * 7e-12)
    movies, _ = rg.read_movies(folder)
    assert set(movies) == {"x", "z"}
    facts = rg.movie_facts(movies, boundary="periodic")
    assert facts.cell_size_m == pytest.approx(3e-9)
    assert facts.frame_interval_s == pytest.approx(7e-12, rel=1e-6)
    assert (facts.num_frames, facts.ny, facts.nx) == (10, 16, 24)
    assert facts.origin["cell_size_m"] == facts.origin["frame_interval_s"] == "OVF header"
    config = rg.regime_config(facts, model={"base_features": 4, "depth": 2})
    s = config.simulation
    assert s.dt <= 1e-13 * (3 / 4) ** 2 + 1e-30
    assert s.frame_interval_s / s.dt == pytest.approx(round(s.frame_interval_s / s.dt))
    assert (config.grid.ny, config.grid.nx, config.grid.boundary) == (16, 24, "periodic")
    area = config.defects.size_max * 4  # four blobs stay within the cap of the grid
    assert area <= rg.MAX_DEFECT_FRACTION * 16 * 24 + 4
    assert loads_config(config.to_toml()) == config  # a normal, reloadable config


def test_defect_sizes_scale_with_cell_size():
    assert rg.defect_sizes(4e-9, 128, 128, 4) == (24, 40)  # the paper's film
    lo, hi = rg.defect_sizes(2e-9, 256, 256, 4)  # half the cell: four times the cells, same area
    assert (lo, hi) == (96, 160)
    lo, hi = rg.defect_sizes(4e-9, 16, 16, 4)  # capped to fit
    assert hi * 4 <= 0.12 * 256 + 4 and lo <= hi


def test_guess_boundary_from_edges():
    for drop, expected in ((0.4, "open"), (0.0, "periodic")):
        mx, mz = _film_movie(edge_drop=drop)
        movies = {"x": movie_from_array(mx, component="x"), "z": movie_from_array(mz, component="z")}
        assert rg.guess_boundary(movies)[0] == expected


def test_baseline_fits_known_maps():
    rng = np.random.default_rng(1)
    labels = np.zeros((6, 24, 24), np.uint8)
    for i in range(6):
        y, x = rng.integers(4, 16, 2)
        labels[i, y : y + 5, x : x + 5] = 1
    maps = labels * 1.0 + 0.3 * rng.standard_normal(labels.shape)
    fit = baseline.fit(maps[:3], labels[:3], periodic=False)
    assert fit.val_dice > 0.8
    assert dice(fit.predict(maps[3:]), labels[3:]) > 0.8
    assert dice(np.zeros((2, 4, 4)), np.zeros((2, 4, 4))) == 1.0  # nothing to find, nothing claimed
    assert dice(labels > 0, labels) == 1.0 and dice(~(labels > 0), labels) == 0.0


def test_regime_source_holds_out_films_with_fixed_draws(tmp_path):
    """Validation and test sets are their own films, each under ``eval_draws`` fixed noise draws;
    training batches draw the training films only (their labels)."""
    from jaxmag.config import parse_input_spec
    from jaxmag.noise import parse_noise_spec

    facts = rg.MovieFacts(8, 8, 8, "xz", 4e-9, 5e-12, "periodic", {"grid": "movie"})
    budget = dt.Budget(films=6, val_films=1, test_films=1, epochs=1, steps_per_epoch=2, batch_size=4,
                       base_features=4, depth=2, eval_draws=3)
    config = rg.regime_config(facts, model=budget.model(), training=budget.training(), num_runs=budget.films)
    request = dt.Request({}, "test", facts, config, "custom", budget, None, "auto", 0.5, 0, tmp_path)
    m = np.stack([np.stack(_film_movie(T=8, ny=8, nx=8, seed=s), axis=1) for s in range(6)])  # (6, T, 2, 8, 8)
    labels = np.zeros((6, 8, 8), np.uint8)
    for i in range(6):
        labels[i, 3:5, 0:i + 1] = 1  # film i's blob covers 2 (i + 1) pixels
    films = dt.Films(m, labels, "xz", {"train": slice(0, 4), "val": slice(4, 5), "test": slice(5, 6)}, periodic=False)
    identity = {"channels": ["std:z"], "mean": [0.0], "std": [1.0]}
    src = dt.regime_source(request, films, parse_input_spec("std:z"), parse_noise_spec("gaussian:1e-2"), identity)
    for part, film in ((src.val_set(), 4), (src.test_set(), 5)):
        assert len(part) == 3
        assert all(np.array_equal(y, labels[film]) for y in part.labels)
        x = part.inputs[..., 0]
        assert not np.allclose(x[0], x[1]) and not np.allclose(x[1], x[2])  # three draws
    x, y = next(iter(src.train_batches(0, jax.random.key(0))))
    assert x.shape == (4, 8, 8, 1) and set(np.asarray(y).sum(axis=(1, 2)).tolist()) <= {2, 4, 6, 8}


def test_noise_estimate_is_calibrated_on_clean_films():
    from jaxmag.noise import add_gaussian

    clean = np.stack([np.stack(_film_movie(T=16, seed=s)) for s in range(4)])  # (4, 2, T, ny, nx)
    mx, mz = _film_movie(T=16, seed=10)
    noisy = np.asarray(add_gaussian(np.stack([mx, mz]), 3e-3, jax.random.key(7)))
    movies = {c: movie_from_array(noisy[i], component=c) for i, c in enumerate("xz")}
    est = estimate_noise(movies, clean, "xz")
    assert est["kind"] == "gaussian"
    for c in "xz":
        assert est["per_component"][c]["gaussian"] == pytest.approx(3e-3, rel=0.2)
        assert est["conditions"][c].startswith("gaussian:")


# ---------------------------------------------------------------------------------------------
# bad input: one clear error each, before any simulation
def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jaxmag: error:"), err
    return err[0]


def test_error_movie_too_short(tmp_path, capsys):
    mx, _ = _film_movie(T=4)
    np.save(tmp_path / "m.npy", mx)
    err = _cli_error(capsys, ["detect", str(tmp_path / "m.npy"), "--frame-interval", "1e-11", "--out", str(tmp_path / "o")])
    assert "too few" in err and str(rg.MIN_FRAMES) in err


def test_error_values_outside_unit_range_without_rescale(tmp_path, capsys):
    mx, _ = _film_movie()
    np.save(tmp_path / "m.npy", 8e5 * mx)  # magnetisation in A/m, not unit-vector components
    err = _cli_error(capsys, ["detect", str(tmp_path / "m.npy"), "--frame-interval", "1e-11", "--out", str(tmp_path / "o")])
    assert "--rescale" in err


def test_error_tiff_without_frame_interval(tmp_path, capsys):
    import tifffile

    _, mz = _film_movie()
    tifffile.imwrite(tmp_path / "m.tif", mz)
    err = _cli_error(capsys, ["detect", str(tmp_path / "m.tif"), "--out", str(tmp_path / "o")])
    assert "--frame-interval" in err


def test_error_grid_below_unet_minimum(tmp_path, capsys):
    _, mz = _film_movie(ny=6, nx=6)
    np.save(tmp_path / "m.npy", mz)
    err = _cli_error(capsys, ["detect", str(tmp_path / "m.npy"), "--frame-interval", "1e-11", "--out", str(tmp_path / "o")])
    assert "minimum" in err and "8 x 8" in err


# ---------------------------------------------------------------------------------------------
# end to end, tiny
TINY = dt.Budget(films=8, val_films=2, test_films=2, epochs=2, steps_per_epoch=2, batch_size=4, base_features=4,
                 depth=2, eval_draws=2)


def test_detect_end_to_end_tiny_and_cached(tmp_path):
    from jaxmag.noise import add_gaussian
    from jaxmag.assemble import simulate

    # a movie of the regime detect will build (same compiled simulator), other seed and run
    facts = rg.MovieFacts(10, 16, 16, "xz", 4e-9, 5e-12, "periodic", {"grid": "movie"})
    config = rg.regime_config(facts, model=TINY.model(), training=TINY.training(), num_runs=TINY.films, seed=99)
    data = simulate(config, progress=False)  # a batch of the size detect simulates: one compilation
    mz = np.asarray(add_gaussian(np.asarray(data.m[0][:, 1]), 3e-3, jax.random.key(3)))
    np.save(tmp_path / "mz.npy", mz)
    out = tmp_path / "det"
    res = dt.detect(tmp_path / "mz.npy", out, frame_interval=5e-12, boundary="periodic", inputs="std:z",
                    budget=TINY, progress=False)
    assert res.probability.shape == res.mask.shape == res.baseline_mask.shape == (16, 16)
    assert res.input_names == ("std:z",) and not res.cached
    for name in ("probability.npy", "mask.npy", "baseline_mask.npy", "overlay.png", "report.md", "detect.json",
                 "regime.toml", "mask.tif"):
        assert (out / name).is_file(), name
    regime = load_config(out / "regime.toml")
    assert (regime.grid.nx, regime.simulation.num_frames, regime.simulation.frame_interval_s) == (16, 10, 5e-12)
    report = (out / "report.md").read_text()
    for section in ("## Regime", "## Noise", "validation Dice", "baseline", "## Warnings"):
        assert section in report
    record = json.loads((out / "detect.json").read_text())
    assert record["noise"]["trained"].startswith("gaussian_")
    # the regime file as written: the identical regime (one hash names every cache), the cached model
    again = dt.detect(tmp_path / "mz.npy", out, regime=out / "regime.toml", inputs="std:z", budget=TINY, progress=False)
    assert again.config == res.config
    assert again.cached and again.run_dir == res.run_dir
    np.testing.assert_array_equal(again.probability, res.probability)


# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_detect_recovers_regime_and_beats_baseline(tmp_path):
    """48 x 48 open film, 5 ps frames, Gaussian noise 3e-3, seed 2026: none of detect's defaults."""
    movie = tmp_path / "movie"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_detect_example.py"), "--out", str(movie)],
                   check=True, capture_output=True, timeout=1200)
    truth = json.loads((movie / "truth.json").read_text())
    labels = np.load(movie / "labels.npy") > 0
    res = dt.detect(movie, tmp_path / "det", budget="quick", progress=False)
    f = res.facts
    assert f.cell_size_m == pytest.approx(truth["cell_size_m"], rel=0.01)
    assert f.frame_interval_s == pytest.approx(truth["frame_interval_s"], rel=0.01)
    assert (f.boundary, f.num_frames, f.ny, f.nx) == ("open", 60, 48, 48)
    assert res.noise["kind"] == "gaussian"
    model_component = res.input_names[0].split(":")[1]
    assert res.noise["per_component"][model_component]["gaussian"] == pytest.approx(truth["noise_variance"], rel=0.2)
    d_model, d_base = dice(res.mask, labels), dice(res.baseline_mask, labels)
    print(f"Dice on the movie: detect {d_model:.3f}, baseline {d_base:.3f}; noise {res.noise['per_component']}")
    assert d_model > d_base


# ---------------------------------------------------------------------------------------------
# regime.toml round trip (issue 28): the file as written, flags only when given, the origin of each value
def _request(movie, out, **kw):
    args = dict(component=None, dataset=None, rescale="none", max_abs=5.0, material=None, boundary=None,
                cell_size=None, frame_interval=None, temperature=None, inputs="std:z", noise="auto", budget=None,
                cache=None, threshold=0.5, seed=None, force=False)
    return dt.read_request(movie, out, **{**args, **kw})


def test_regime_file_is_used_as_written(tmp_path, capsys):
    """No simulation: the regime a regime.toml builds, what overrides it, and a mismatch with the movie."""
    _, mz = _film_movie(T=10)
    np.save(tmp_path / "m.npy", mz)
    first = _request(tmp_path / "m.npy", tmp_path / "a", frame_interval=5e-12, boundary="periodic", budget="quick")
    o = first.origin
    assert {rg.origin_kind(o[k]) for k in ("grid", "num_frames")} == {"movie"}
    assert [rg.origin_kind(o[k]) for k in ("frame_interval_s", "boundary", "model")] == ["flag"] * 3
    assert [rg.origin_kind(o[k]) for k in ("temperature", "cell_size_m", "burn_in_s", "measures")] == ["default"] * 4
    text = (tmp_path / "a" / "regime.toml").read_text()
    assert "--regime THIS_FILE" in text and "from flag --frame-interval" in text and "--material THIS_FILE" not in text
    again = _request(tmp_path / "m.npy", tmp_path / "b", regime=tmp_path / "a" / "regime.toml")
    assert again.config == first.config and again.key == first.key and again.budget_name == "quick"
    assert all(rg.origin_kind(again.origin[k]) == "file" for k in ("frame_interval_s", "boundary", "temperature",
                                                                   "cell_size_m", "dt", "burn_in_s", "defect_sizes"))
    # an edited file is taken as written: no flag default overrides its temperature or burn-in
    edited = tmp_path / "edited.toml"
    edited.write_text(text.replace("temperature = 300.0", "temperature = 77.0")
                      .replace(f"burn_in_s = {first.config.simulation.burn_in_s!r}", "burn_in_s = 3e-10"))
    r = _request(tmp_path / "m.npy", tmp_path / "c", regime=edited)
    assert (r.config.material.temperature, r.config.simulation.burn_in_s) == (77.0, 3e-10)
    r = _request(tmp_path / "m.npy", tmp_path / "d", regime=edited, temperature=250.0)
    assert r.config.material.temperature == 250.0 and r.origin["temperature"] == "flag --temperature"
    # a regime file of another movie: one error naming both frame counts
    np.save(tmp_path / "m12.npy", _film_movie(T=12)[1])
    err = _cli_error(capsys, ["detect", str(tmp_path / "m12.npy"), "--regime", str(edited), "--out", str(tmp_path / "e")])
    assert "num_frames is 10" in err and "12 frames" in err


def test_error_frame_interval_of_a_camera_explains_the_time_scales(tmp_path, capsys):
    _, mz = _film_movie()
    np.save(tmp_path / "m.npy", mz)
    err = _cli_error(capsys, ["detect", str(tmp_path / "m.npy"), "--frame-interval", "1", "--out", str(tmp_path / "o")])
    assert "thermal fluctuations" in err and "camera" in err and "temporal mean" in err and "in seconds" not in err


@pytest.mark.slow
def test_detect_regime_round_trip_reuses_the_cached_model(tmp_path, monkeypatch, capsys):
    """detect -> regime.toml -> detect --regime regime.toml: the identical regime, the cached model.

    Slow (about 50 s of CPU: one training); test_regime_file_is_used_as_written shows the identical
    regime and hash, which name every cache, without simulating."""
    # the smallest budget that trains (one step), named, so that the file says which one it was
    micro = dt.Budget(films=5, val_films=1, test_films=1, epochs=1, steps_per_epoch=1, batch_size=2, base_features=2,
                      depth=1, eval_draws=1)
    monkeypatch.setitem(budgets.BUDGETS, "micro", micro)
    _, mz = _film_movie(T=10)
    np.save(tmp_path / "m.npy", mz)
    out = tmp_path / "det"
    res = dt.detect(tmp_path / "m.npy", out, frame_interval=5e-12, boundary="periodic", inputs="std:z",
                    noise="gaussian:3e-3", budget="micro", progress=False)
    assert not res.cached
    argv = ["detect", str(tmp_path / "m.npy"), "--regime", str(out / "regime.toml"), "--out", str(tmp_path / "again"),
            "--cache", str(out / "cache"), "--inputs", "std:z", "--noise", "gaussian:3e-3", "--no-progress"]
    assert main(argv) == 0
    assert "(cached)" in capsys.readouterr().out
    record = json.loads((tmp_path / "again" / "detect.json").read_text())
    assert record["cached"] and record["run_dir"] == str(res.run_dir) and record["budget"] == "micro"
    assert load_config(tmp_path / "again" / "regime.toml") == load_config(out / "regime.toml") == res.config
    kinds = {row["value"]: row["kind"] for row in record["regime"]}
    assert kinds["frame interval"] == kinds["temperature"] == kinds["[model]"] == "file" and kinds["grid"] == "movie"
    assert "| temperature | 300 K | file " in (tmp_path / "again" / "report.md").read_text()


# ---------------------------------------------------------------------------------------------
# any easy axis (issue 28): candidates, latent-entropy bins and the open-edge test follow the film
PMA = REPO / "configs" / "pma.toml"


def test_candidate_inputs_follow_the_easy_axis():
    # an in-plane film along x keeps permalloy's candidates, in their order
    assert dt.candidate_inputs("xz") == dt.candidate_inputs("xz", (-1.0, 0.0, 0.0)) == ["mean:x", "std:z", "latent_entropy:z"]
    assert dt.candidate_inputs("z") == ["std:z", "latent_entropy:z"]
    # perpendicular: mean m_x is 0 at every pixel (M_z reverses it); mean m_z is a candidate
    assert dt.candidate_inputs("xz", (0.0, 0.0, 1.0)) == ["std:x", "latent_entropy:x", "mean:z", "std:z",
                                                          "latent_entropy:z"]
    # tilted: only the inversion, which reverses nothing; every measure of every component
    assert len(dt.candidate_inputs("xz", (0.3, 0.0, 0.95))) == 6


def _pma_request(tmp_path, T=10, n=16):
    facts = rg.MovieFacts(T, n, n, "xz", 4e-9, 5e-12, "periodic", {"grid": "movie"})
    built = rg.build_regime(facts, material=PMA, model=TINY.model(), training=TINY.training(), num_runs=TINY.films)
    return dt.Request({}, "test", facts, built.config, "custom", TINY, None, "auto", 0.5, 0, tmp_path, built.origin)


def test_latent_entropy_bins_come_from_the_regimes_own_films(tmp_path):
    """Permalloy keeps its calibrated ranges; another material's are the 0.1-99.9 % range of its
    clean training films, symmetric for a component its symmetry group reverses; regime.toml is
    rewritten with them and read back into the identical config; the films' cache key is unchanged."""
    import dataclasses

    from jaxmag.learn.orientation import film_bins

    paper = load_config(REPO / "configs" / "paper.toml").measures
    facts = rg.MovieFacts(10, 16, 16, "xz", 4e-9, 5e-12, "periodic", {"grid": "movie"})
    assert rg.regime_config(facts, model=TINY.model()).measures == paper  # permalloy: today's [0.81, 1] and [-0.35, 0.35]
    request = _pma_request(tmp_path)
    assert request.config.measures.fixed_range_x == request.config.measures.fixed_range_z == ()
    # the film's own time to reach its thermal state (configs/pma.toml: 1 ns), rounded to the step
    assert request.config.simulation.burn_in_s == pytest.approx(1e-9, rel=1e-3)
    assert request.origin["burn_in_s"].startswith("flag --material")
    rng = np.random.default_rng(0)
    mx = 0.1 * rng.standard_normal((8, 10, 16, 16)) + 0.02  # a slight offset: the range is still symmetric
    mz = 1 - np.abs(0.03 * rng.standard_normal((8, 10, 16, 16)))
    films = dt.Films(np.stack([mx, mz], axis=2).astype(np.float32), np.zeros((8, 16, 16), np.uint8), "xz",
                     {"train": slice(0, 4), "val": slice(4, 6), "test": slice(6, 8)}, periodic=True)
    bins = film_bins(films.m[:4], "xz", (0.0, 0.0, 1.0))
    lo_x, hi_x = np.quantile(mx[:4], [0.001, 0.999])
    assert bins["x"] == (-bins["x"][1], bins["x"][1]) and bins["x"][1] >= max(-lo_x, hi_x) > bins["x"][1] - 0.01
    assert bins["z"][1] == 1.0 and np.quantile(mz[:4], 0.001) - 0.01 < bins["z"][0] <= np.quantile(mz[:4], 0.001)
    (tmp_path / "det").mkdir()
    calibrated = dt.calibrate_bins(request, films, tmp_path / "det")
    m = calibrated.config.measures
    assert (m.fixed_range_x, m.fixed_range_z) == (bins["x"], bins["z"]) and calibrated.key != request.key
    assert detect_stages.films_key(calibrated.config) == detect_stages.films_key(request.config)
    assert rg.origin_kind(calibrated.origin["measures"]) == "default" and "clean training films" in calibrated.origin["measures"]
    written = load_config(tmp_path / "det" / "regime.toml")
    assert written == calibrated.config
    # read back as a --regime file: as written, no second calibration, the same hash
    again = rg.build_regime(facts, regime=written, regime_name="regime.toml").config
    assert again == calibrated.config and dt.calibrate_bins(dataclasses.replace(request, config=again), films).config == again


def _pma_film(boundary, n=16, frames=40):
    """One tiny clean film of configs/pma.toml without defects (a few seconds of CPU)."""
    import dataclasses

    from jaxmag.assemble import simulate

    cfg = load_config(PMA)
    cfg = cfg.replace(grid=dataclasses.replace(cfg.grid, nx=n, ny=n, boundary=boundary, pbc_images=1),
                      defects=dataclasses.replace(cfg.defects, num_a=0, num_b=0),
                      simulation=dataclasses.replace(cfg.simulation, burn_in_s=2e-11, num_frames=frames, components="xz"),
                      dataset=dataclasses.replace(cfg.dataset, num_runs=1, batch_size=1, seed=3))
    m = np.asarray(simulate(cfg, progress=False).m[0])  # (T, 2, n, n)
    return {c: movie_from_array(m[:, i], component=c) for i, c in enumerate("xz")}


def test_guess_boundary_of_a_perpendicular_film():
    """The open edges of a perpendicular film: m_x fluctuates more in the outermost cells (measured
    1.08-1.11 open, 0.98-1.01 periodic on 16 x 16 films, threshold 1.035); the in-plane test (a drop
    of mean m_x) would see nothing there."""
    for boundary in ("open", "periodic"):
        movies = _pma_film(boundary)
        verdict, evidence = rg.guess_boundary(movies, (0.0, 0.0, 1.0))
        assert verdict == boundary, evidence
        assert "std m_x: outermost cells / interior" in evidence
    assert rg.regime_easy_axis(PMA) == (0.0, 0.0, 1.0) and rg.regime_easy_axis(None) == (1.0, 0.0, 0.0)


def test_noise_kind_follows_the_films_orientation():
    """Speckle x + x n reads weak on the component that is ~0: m_z in-plane, m_x perpendicular."""
    from jaxmag.learn import noise_match as nm

    def per(gx, gz):
        return {"x": {"gaussian": gx, "speckle": gx}, "z": {"gaussian": gz, "speckle": gz}}

    in_plane, perpendicular = {"x": 0.95, "z": 0.01}, {"x": 0.01, "z": 0.98}
    assert nm._choose_kind(per(3e-3, 3e-4), in_plane)[0] == "speckle"  # permalloy: as before
    assert nm._choose_kind(per(3e-3, 3e-4))[0] == "speckle"  # no powers: in-plane, as before
    assert nm._choose_kind(per(3e-3, 3e-3), perpendicular)[0] == "gaussian"
    assert nm._choose_kind(per(3e-4, 3e-3), perpendicular)[0] == "speckle"
    # a clean perpendicular film reads a floor on m_x and next to nothing on m_z: not speckle
    kind, why = nm._choose_kind(per(5e-4, 1e-5), perpendicular)
    assert kind == "gaussian" and "ratio x/z" in why
