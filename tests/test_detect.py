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
from jaxmag.learn import baseline
from jaxmag.learn import detect as dt
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
    np.save(tmp_path / "m.npy", 3 * mx)
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
    again = dt.detect(tmp_path / "mz.npy", out, frame_interval=5e-12, boundary="periodic", inputs="std:z",
                      budget=TINY, progress=False)
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
