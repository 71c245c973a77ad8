"""jaxmag detect on photon-count movies: the physics cell, the detector read from the movie, errors, end to end."""
from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from jaxmag import instrument as ins
from jaxmag.cli import main
from jaxmag.io.movie import write_counts_tiff
from jaxmag.learn import detect as dt
from jaxmag.learn import regime as rg
from jaxmag.learn.counts import estimate_recording
from jaxmag.learn.detect_counts import physics_cell
from jaxmag.recording import Calibration, record_signal, recording_plan

TINY = dt.Budget(films=8, val_films=2, test_films=2, epochs=2, steps_per_epoch=2, batch_size=4, base_features=4,
                 depth=2, eval_draws=2)
DETECTOR = dict(photons_per_pixel=2e4, contrast=0.1, gain=1.5, offset=200.0, read_noise=5.0)


def test_the_physics_cell_divides_the_pixel():
    assert physics_cell(4e-9, 4e-9) == pytest.approx(4e-9)
    assert physics_cell(8e-9, 4e-9) == pytest.approx(4e-9)
    assert physics_cell(10e-9, 4e-9) == pytest.approx(10e-9 / 3)
    assert physics_cell(3e-9, 4e-9) == pytest.approx(3e-9)
    with pytest.raises(rg.RegimeError, match="smaller than any micromagnetic cell"):
        physics_cell(3e-10, 4e-9)


def _fluctuating_films(n=6, T=60, side=24, seed=0):
    """Smooth random m_z-like films correlated over ~2 cells and a few frames (units of Ms)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, T + 4, side, side))
    w = sum(np.roll(w, k, axis=1) for k in range(4))[:, 4:] / 2.0  # correlated over 4 frames
    w = (w + np.roll(w, 1, -1) + np.roll(w, 1, -2) + np.roll(w, -1, -1)) / 4
    z = 0.18 * w / w.std()
    return np.stack([np.sqrt(1 - np.clip(z, -0.9, 0.9) ** 2), z], axis=2).astype(np.float32)  # (n, T, 2, y, x)


def test_the_recording_is_read_from_the_movie_against_its_films():
    films = _fluctuating_films()
    inst = ins.Instrument(probe="z", psf_fwhm_m=4e-9, **DETECTOR)
    plan = recording_plan(inst, (24, 24), (4e-9, 4e-9), "xz", True)
    optics = recording_plan(ins.Instrument(probe="z", psf_fwhm_m=4e-9), (24, 24), (4e-9, 4e-9), "xz", True)
    counts = np.asarray(ins.record(jax.random.key(1), films[0], "xz", inst, plan.operators))
    optical = np.asarray(record_signal(jax.random.key(0), films[1:], optics))
    est = estimate_recording(counts, optical)
    truth = Calibration.of(inst)
    assert est.level == pytest.approx(truth.level, rel=0.005)
    assert est.scale == pytest.approx(truth.scale, rel=0.12)
    assert est.noise_variance == pytest.approx(1.5**2 * 2e4 + 25, rel=0.15)
    assert est.scale_from == "fluctuations" and est.scale_se > 0
    assert 0 < est.contrast < 1 and est.photons_per_pixel > 0


def test_a_movie_without_contrast_is_named():
    films = _fluctuating_films(n=3, T=20, side=16) * 0
    films[:, :, 0] = 1.0  # m along x: a z probe sees nothing
    optics = recording_plan(ins.Instrument(probe="z"), (16, 16), (4e-9, 4e-9), "xz", True)
    rng = np.random.default_rng(0)
    counts = rng.poisson(2e4, (20, 16, 16)).astype(np.float64)
    with pytest.raises(ValueError, match="neither thermal fluctuations nor static contrast"):
        estimate_recording(counts, np.asarray(record_signal(jax.random.key(0), films, optics)))


def _counts_movie(tmp_path, pixel_cells=2, side=16, T=10, probe="z", seed=98):
    from jaxmag.assemble import simulate

    facts = rg.MovieFacts(T, side, side, "xz", 4e-9, 5e-12, "periodic", {"grid": "movie"})
    config = rg.regime_config(facts, model=TINY.model(), training=TINY.training(), num_runs=TINY.films, seed=seed)
    data = simulate(config, progress=False)
    inst = ins.Instrument(probe=probe, psf_fwhm_m=4e-9, pixel_size_m=4e-9 * pixel_cells, **DETECTOR)
    plan = recording_plan(inst, (side, side), (4e-9, 4e-9), "xz", True)
    counts = np.asarray(ins.record(jax.random.key(seed), np.asarray(data.m[0]), "xz", inst, plan.operators))
    path = tmp_path / "counts.tif"
    write_counts_tiff(path, counts.astype(np.uint16), pixel_size_m=4e-9 * pixel_cells, frame_interval_s=5e-12)
    return path


def test_detect_a_counts_tiff_end_to_end(tmp_path):
    import dataclasses

    path = _counts_movie(tmp_path)
    out = tmp_path / "det"
    res = dt.detect(path, out, psf_fwhm=4e-9, boundary="periodic", budget=dataclasses.replace(TINY, ensemble=2),
                    progress=False)
    assert res.probability.shape == res.mask.shape == res.baseline_mask.shape == (8, 8)  # the detector's pixels
    assert res.config.instrument.enabled and res.config.instrument.records_counts
    assert res.config.grid.nx == 16 and res.pixel_size_m == pytest.approx(8e-9)
    record = json.loads((out / "detect.json").read_text())
    r = record["noise"]["recording"]
    assert r["level"] == pytest.approx(1.5 * 2e4 + 200, rel=0.01)
    assert set(record["validation"]) >= {"model", "baseline", "resolvable"}
    assert record["inputs"][0].endswith(":p")
    report = (out / "report.md").read_text()
    for section in ("## Detector (read from the movie)", "[instrument]", "8 x 8 detector pixels", "## Warnings"):
        assert section in report
    assert (out / "overlay.png").stat().st_size > 0
    # the ensemble of two seeds over the film's mirror views, its calibration and the defect table
    assert (res.run_dir.parent / f"{res.run_dir.name}-m1" / "eval.json").is_file()
    assert res.uncertainty.shape == (8, 8) and np.all(res.uncertainty >= 0)
    c = record["confidence"]
    assert c["members"] == 2 and c["views"] >= 2 and 0 <= record["ece"] <= 1 and c["temperature"] > 0
    assert (out / "reliability.png").is_file() and (out / "uncertainty.npy").is_file()
    header = (out / "defects.csv").read_text().splitlines()[0]
    assert header.startswith("id,centroid_x_m,centroid_y_m,area_m2,area_pixels,type")
    assert len(record["defects"]) == len((out / "defects.csv").read_text().splitlines()) - 1
    assert "## Confidence" in report and "## Defects" in report


@pytest.mark.parametrize("argv, message", [
    (["--psf-fwhm", "1e-6"], "wider than the frame"),
    (["--pixel-size", "2e-10"], "smaller than any micromagnetic cell"),
    (["--probe", "q"], "probe"),
])
def test_bad_instruments_are_refused_before_simulating(tmp_path, capsys, argv, message):
    rng = np.random.default_rng(0)
    write_counts_tiff(tmp_path / "c.tif", rng.poisson(1e3, (10, 16, 16)).astype(np.uint16), pixel_size_m=4e-9,
                      frame_interval_s=1e-11)
    code = main(["detect", str(tmp_path / "c.tif"), "--out", str(tmp_path / "d"), "--boundary", "periodic", *argv])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("jaxmag: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "d" / "cache").exists()  # nothing simulated


def test_a_float_tiff_is_not_counts(tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "f.tif", np.random.default_rng(0).normal(size=(10, 16, 16)).astype(np.float32))
    code = main(["detect", str(tmp_path / "f.tif"), "--signal", "counts", "--pixel-size", "4e-9",
                 "--frame-interval", "1e-11", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("jaxmag: error:") and "counts" in err


def test_instrument_flags_on_a_magnetisation_movie_are_refused(tmp_path, capsys):
    np.save(tmp_path / "m.npy", np.zeros((10, 16, 16), np.float32))
    code = main(["detect", str(tmp_path / "m.npy"), "--probe", "z", "--frame-interval", "1e-11", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code != 0 and "--signal counts" in err


@pytest.mark.slow
def test_a_camera_rate_counts_movie_is_modelled_not_refused(tmp_path):
    """1 ms frames: each frame the film's thermal average plus detector noise; the scale comes from the
    static contrast and the report says what such a movie can show."""
    import dataclasses

    from jaxmag.assemble import simulate

    facts = rg.MovieFacts(10, 16, 16, "xz", 4e-9, 1e-3, "periodic", {"grid": "movie"})
    config = rg.regime_config(facts, model=TINY.model(), training=TINY.training(), num_runs=TINY.films, seed=97)
    config = config.replace(instrument=ins.Instrument(exposure_s=1e-3),  # detect simulates the same 1 ns window
                            simulation=dataclasses.replace(config.simulation, burn_in_s=2e-11))
    film = np.asarray(simulate(config, progress=False).m[0])  # every frame the 1 ns average
    inst = ins.Instrument(probe="x", **DETECTOR)
    plan = recording_plan(inst, (16, 16), (4e-9, 4e-9), "xz", True)
    counts = np.asarray(ins.record(jax.random.key(2), film, "xz", inst, plan.operators))
    write_counts_tiff(tmp_path / "cam.tif", counts.astype(np.uint16), pixel_size_m=4e-9, frame_interval_s=1e-3)
    res = dt.detect(tmp_path / "cam.tif", tmp_path / "det", probe="x", exposure=1e-3, boundary="periodic",
                    budget=TINY, progress=False)
    assert res.config.instrument.camera_rate and res.noise["recording"]["scale_from"] == "static contrast"
    assert any("camera-rate frames" in w for w in res.warnings)
    assert res.config.simulation.frame_interval_s == pytest.approx(1e-3)


def test_a_psf_image_on_the_detector_pixels_is_taken(tmp_path):
    """--psf-image: the optics of the regime use the user's image (resampled from the pixels to the cells)."""
    from jaxmag.learn.detect_counts import read_counts_request

    rng = np.random.default_rng(0)
    write_counts_tiff(tmp_path / "c.tif", rng.poisson(2e4, (10, 16, 16)).astype(np.uint16), pixel_size_m=8e-9,
                      frame_interval_s=1e-11)
    psf = np.outer([1.0, 2.0, 1.0], [1.0, 3.0, 1.0])
    np.save(tmp_path / "psf.npy", psf)
    creq = read_counts_request(tmp_path / "c.tif", tmp_path / "d", dataset=None, probe="z", pixel_size=None,
                               psf_fwhm=None, psf_image=tmp_path / "psf.npy", exposure=None, cell_size=None,
                               frame_interval=None, boundary="periodic", material=None, temperature=None,
                               inputs="auto", budget=TINY, cache=None, threshold=0.5, seed=None, force=False)
    i = creq.optics
    assert i.psf_image.endswith("psf.npy") and i.psf_pixel_m == pytest.approx(8e-9) and i.psf_fwhm_m == 0
    kernel = ins.psf_kernel(i, (4e-9, 4e-9))  # 3 x 3 pixels of 8 nm -> about 6 x 6 cells of 4 nm, odd sides
    assert kernel.shape[0] % 2 == 1 and kernel.shape[0] >= 5 and kernel.sum() == pytest.approx(1.0)
    assert (tmp_path / "d" / "regime.toml").read_text().count("psf_image = \"/") == 1  # the TOML key, the path
