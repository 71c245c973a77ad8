"""The plan's answer (jaxmag.learn.plan_report) on synthetic rows: a 3 × 3 PSF × photons grid whose
Dice falls with the PSF and grows with the photons; the maps, the recommendation (minimum photons,
marginal within the spread, "not detectable"), the table, the report and bad input."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from jaxmag.learn import plan_report as pr
from jaxmag.plan_grid import AXES, PlanConfig

PSF = (5e-9, 10e-9, 20e-9)
PHOTONS = (1e3, 1e4, 1e5)
# std's baseline Dice [psf][photons]: falls with the PSF, grows with the photons
STD = {5e-9: (0.60, 0.78, 0.88), 10e-9: (0.45, 0.62, 0.72), 20e-9: (0.20, 0.30, 0.40)}
BASE = dict(pixel_size_m=0.0, read_noise=0.0, exposure_s=0.0, num_frames=100, probe="z")


def row(psf, photons, measure, dice, *, method="baseline", se=0.02, **axes):
    values = {**BASE, "psf_fwhm_m": psf, "photons_per_pixel": photons, **axes}
    pid = ",".join(f"{a}={values[a]:g}" if AXES[a].numeric else f"{a}={values[a]}" for a in AXES)
    return {"point": pid, **{a: values[a] for a in AXES}, "measure": measure, "method": method, "dice": dice,
            "dice_se": se, "val_dice": dice, "test_films": 8, "train_s": 12.5 if method == "model" else None}


def grid_rows(se=0.02, table=STD, **axes):
    """Baseline rows of std (the table) and mean (0.1 below it) at every (PSF, photons)."""
    out = []
    for psf in PSF:
        for k, photons in enumerate(PHOTONS):
            out.append(row(psf, photons, "std", table[psf][k], se=se, **axes))
            out.append(row(psf, photons, "mean", table[psf][k] - 0.1, se=se, **axes))
    return out


def plan(**kw):
    base = dict(psf_fwhm_m=PSF, photons_per_pixel=PHOTONS, measures=("mean", "std"), target_dice=0.7)
    return PlanConfig(**{**base, **kw})


def by_psf(recs):
    return {r["value"]: r for r in recs}


def test_detectability_grid_and_model_nan():
    rows = grid_rows() + [row(10e-9, 1e4, "std", 0.70, method="model")]
    xs, ys, base = pr.detectability(rows, plan(), "z", "std", "baseline")
    assert xs == list(PSF) and ys == list(PHOTONS)
    assert base.shape == (3, 3)
    assert base[2, 0] == pytest.approx(0.88) and base[0, 2] == pytest.approx(0.20)  # (1e5, 5 nm), (1e3, 20 nm)
    assert np.all(np.diff(base, axis=1) < 0) and np.all(np.diff(base, axis=0) > 0)
    model = pr.detectability(rows, plan(), "z", "std", "model")[2]
    assert np.isnan(model).sum() == 8 and model[1, 1] == pytest.approx(0.70)


def test_recommendation_minimum_photons_and_not_detectable():
    recs = by_psf(pr.recommendations(grid_rows(), plan()))
    assert list(recs) == list(PSF)
    r5, r10, r20 = recs[5e-9], recs[10e-9], recs[20e-9]
    assert (r5["probe"], r5["measure"], r5["method"], r5["status"]) == ("z", "std", "baseline", "detectable")
    assert r5["dice"] == pytest.approx(0.88)
    assert r5["min_photons_per_pixel"] == 1e4 and r5["dice_at_min_photons_per_pixel"] == pytest.approx(0.78)
    assert r10["status"] == "detectable" and r10["min_photons_per_pixel"] == 1e5
    assert r20["status"] == "not detectable" and r20["min_photons_per_pixel"] is None
    assert r20["best_seen"]["dice"] == pytest.approx(0.40)
    text = pr.recommendation_text(list(recs.values()), plan())
    assert len(text) == 3
    assert "5 nm" in text[0] and "10,000 photons" in text[0] and "0.880" in text[0]
    assert "not detectable" in text[2] and "0.400" in text[2] and "20 nm" in text[2]


def test_marginal_within_one_standard_error():
    recs = by_psf(pr.recommendations(grid_rows(se=0.05), plan()))
    # 0.72 ± 0.05 at 10 nm: within one se of 0.7, nowhere beyond it
    assert recs[10e-9]["status"] == "marginal" and recs[10e-9]["min_photons_per_pixel"] == 1e5
    # 0.78 ± 0.05 at 5 nm, 1e4 photons: 0.73 > 0.7, reached
    assert recs[5e-9]["status"] == "detectable" and recs[5e-9]["min_photons_per_pixel"] == 1e4
    # 0.40 + 0.05 < 0.7: still not detectable
    assert recs[20e-9]["status"] == "not detectable"
    assert "marginal" in pr.recommendation_text([recs[10e-9]], plan())[0]
    assert pr.status(0.69, 0.02, 0.7) == "marginal" and pr.status(0.67, 0.02, 0.7) == "not detectable"
    assert pr.status(0.75, float("nan"), 0.7) == "detectable"


def test_model_preferred_only_beyond_the_spread():
    close = grid_rows() + [row(5e-9, 1e5, "std", 0.89, method="model")]
    assert by_psf(pr.recommendations(close, plan()))[5e-9]["method"] == "baseline"
    far = grid_rows() + [row(5e-9, 1e5, "std", 0.95, method="model")]
    r = by_psf(pr.recommendations(far, plan()))[5e-9]
    assert (r["method"], r["dice"]) == ("model", pytest.approx(0.95))
    # a U-Net reaching the target where the baseline does not lowers the minimum photons
    helped = grid_rows() + [row(10e-9, 1e4, "std", 0.80, method="model")]
    assert by_psf(pr.recommendations(helped, plan()))[10e-9]["min_photons_per_pixel"] == 1e4


def test_no_detector_is_unlimited_photons():
    assert pr.axis_key("photons_per_pixel", 0) == math.inf and pr.axis_key("psf_fwhm_m", 0) == 0
    rows = [r for r in grid_rows() if r["photons_per_pixel"] != 1e5]
    rows += [dict(r, photons_per_pixel=0.0) for r in grid_rows() if r["photons_per_pixel"] == 1e5]
    assert pr.favourable(rows)["photons_per_pixel"] == 0.0
    recs = by_psf(pr.recommendations(rows, plan(photons_per_pixel=(0.0, 1e3, 1e4))))
    assert recs[10e-9]["min_photons_per_pixel"] == 0.0
    assert "unlimited photons" in pr.recommendation_text([recs[10e-9]], plan())[0]


def test_other_swept_axes_at_their_most_favourable_value(tmp_path):
    worse = {psf: tuple(d - 0.1 for d in ds) for psf, ds in STD.items()}  # 20 frames: 0.1 below 100 frames
    rows = grid_rows(num_frames=100) + grid_rows(table=worse, num_frames=20)
    p = plan(num_frames=(20, 100))
    base = pr.detectability(rows, p, "z", "std", "baseline")[2]
    assert base[2, 0] == pytest.approx(0.88)  # the 100-frame value
    recs = by_psf(pr.recommendations(rows, p))
    # minimum photons at the most frames, minimum frames at the most photons
    assert (recs[5e-9]["min_photons_per_pixel"], recs[5e-9]["min_num_frames"]) == (1e4, 20)  # 0.78 at 20 frames
    assert (recs[10e-9]["min_photons_per_pixel"], recs[10e-9]["min_num_frames"]) == (1e5, 100)  # 0.62 at 20 frames
    assert "from 20 frames" in pr.recommendation_text([recs[5e-9]], p)[0]
    pr.write_maps(tmp_path, rows, p)
    assert (tmp_path / "maps.png").stat().st_size > 1000 and (tmp_path / "frames.png").stat().st_size > 1000
    assert not (tmp_path / "exposure.png").exists()


def test_table_columns_and_json(tmp_path):
    rows = grid_rows() + [row(10e-9, 1e4, "std", 0.70, method="model", se=float("nan"))]
    json_path, csv_path = pr.write_table(tmp_path, rows, {"name": "t", "timings": {"total_s": 3.0}})
    with open(csv_path) as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == pr.COLUMNS
    assert {"psf_fwhm_m", "pixel_size_m", "photons_per_pixel", "exposure_s", "dice", "dice_se"} <= set(table[0])
    assert len(table) == len(rows) + 1
    model = table[-1]
    assert model[pr.COLUMNS.index("method")] == "model" and model[pr.COLUMNS.index("dice_se")] == "nan"
    assert table[1][pr.COLUMNS.index("train_s")] == ""
    doc = json.loads(json_path.read_text())
    assert doc["name"] == "t" and len(doc["rows"]) == len(rows) and doc["rows"][-1]["dice_se"] is None


def test_report_figures_and_every_recommendation(tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    saved = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (saved.append(self), original(self, *a, **k))[1])
    rows = grid_rows() + [row(10e-9, 1e4, "std", 0.80, method="model")]
    meta = {"name": "synthetic", "films": 32, "split": {"train": 16, "val": 8, "test": 8}, "grid": [64, 64],
            "cell_m": 4e-9, "boundary": "periodic", "frame_interval_s": 1e-11, "temperature_K": 300.0,
            "material": {"Ms": 8e5, "A_ex": 1.3e-11, "K_u": 500.0, "alpha": 0.02},
            "defects": {"num_a": 2, "num_b": 2, "factor_a": 0.5, "factor_b": 2.0, "size_min": 24, "size_max": 40},
            "instrument": {"probe": "z", "psf_fwhm_m": 0.0, "contrast": 0.1},
            "timings": {"simulate_s": 100.0, "total_s": 160.0}, "models_trained": 1}
    report = pr.write_plan_report(tmp_path, plan(), rows, meta)
    text = report.read_text()
    assert (tmp_path / "maps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![detectability maps](maps.png)" in text
    for sentence in pr.recommendation_text(pr.recommendations(rows, plan()), plan()):
        assert sentence in text
    assert "256 × 256 nm" in text and "0.800 ± 0.020 (std)" in text and "yes (+0.180" in text
    assert "| simulate | 100.0 |" in text
    (fig,) = saved  # maps.png only: neither frames nor exposure is swept
    texts = [t.get_text() for t in fig.findobj(Text)]
    assert texts.count("U-Net 0.80") == 1 and "0.88" in texts  # the model where trained; the baseline everywhere
    assert min(t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip()) >= 9
    std_panel = fig.axes[1]  # (probe z, std): its 0.7 contour lies inside the grid
    assert any(type(c).__name__ in ("QuadContourSet", "ContourSet") for c in std_panel.collections + std_panel.get_children())


def test_bad_input_names_the_problem():
    rows = grid_rows()
    del rows[3]["dice_se"]
    with pytest.raises(ValueError, match="dice_se"):
        pr.recommendations(rows, plan())
    with pytest.raises(ValueError, match="method"):
        pr.check_rows([dict(grid_rows()[0], method="oracle")])
    with pytest.raises(ValueError, match="no result rows"):
        pr.write_table("/nonexistent", [])
    with pytest.raises(ValueError, match="map"):
        pr.detectability(grid_rows(), PlanConfig(psf_fwhm_m=PSF), "z", "std", "baseline")
    # a failed (NaN) Dice ranks last rather than poisoning the choice
    failed = grid_rows() + [row(5e-9, 1e5, "latent_entropy", float("nan"))]
    assert by_psf(pr.recommendations(failed, plan()))[5e-9]["measure"] == "std"
