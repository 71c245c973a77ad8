"""jaxmag.learn.defect_table: one row per connected region, in metres, written as a CSV with units."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from jaxmag.learn.defect_table import COLUMNS, defect_rows, label_regions, robust_contrast, write_defects_csv

PIXEL = 4e-9
N = 32


def two_blobs():
    """A 6x6 blob (rows 4-9, columns 5-10) and a 3x4 blob (rows 20-22, columns 15-18) on 32x32."""
    mask = np.zeros((N, N), bool)
    mask[4:10, 5:11] = True
    mask[20:23, 15:19] = True
    prob = np.full((N, N), 0.05)
    prob[4:10, 5:11] = 0.9
    prob[20:23, 15:19] = 0.7
    prob[21, 16] = 0.55
    return mask, prob


def test_two_blobs_areas_and_centroids():
    mask, prob = two_blobs()
    rows = defect_rows(prob, mask, pixel_size_m=PIXEL)
    assert [r["id"] for r in rows] == [1, 2]
    big, small = rows
    assert big["area_pixels"] == 36 and small["area_pixels"] == 12
    assert big["area_m2"] == pytest.approx(36 * PIXEL**2, rel=1e-12)
    assert small["area_m2"] == pytest.approx(12 * PIXEL**2, rel=1e-12)
    # pixel centres at (j + 0.5) p: columns 5..10 -> 8 p, rows 4..9 -> 7 p
    assert big["centroid_x_m"] == pytest.approx(8 * PIXEL) and big["centroid_y_m"] == pytest.approx(7 * PIXEL)
    assert small["centroid_x_m"] == pytest.approx(17 * PIXEL) and small["centroid_y_m"] == pytest.approx(21.5 * PIXEL)
    assert big["mean_probability"] == pytest.approx(0.9) and big["min_probability"] == pytest.approx(0.9)
    assert small["min_probability"] == pytest.approx(0.55)
    assert small["mean_probability"] == pytest.approx((11 * 0.7 + 0.55) / 12)
    assert small["confidence"] == pytest.approx(small["mean_probability"])
    assert all(r["type"] == "defect" for r in rows)
    assert all(math.isnan(r["contrast"]) and math.isnan(r["mean_uncertainty"]) for r in rows)


def test_types_uncertainty_and_contrast():
    mask, prob = two_blobs()
    types = np.zeros((N, N), int)
    types[4:10, 5:11] = 2
    types[4, 5:11] = 1  # 6 of 36 pixels of another type: the majority wins
    types[20:23, 15:19] = 1
    rng = np.random.default_rng(0)
    signal = rng.normal(0.0, 0.5, (N, N))
    signal[4:10, 5:11] += 2.5  # 5 background standard deviations
    signal[20:23, 15:19] -= 1.0  # -2
    spread = np.where(mask, 0.1, 0.0)
    spread[20:23, 15:19] = 0.3
    rows = defect_rows(prob, mask, pixel_size_m=PIXEL, input_map=signal, types=types,
                       type_names={1: "hole", 2: "soft"}, uncertainty=spread)
    assert [r["type"] for r in rows] == ["soft", "hole"]
    assert rows[0]["mean_uncertainty"] == pytest.approx(0.1) and rows[1]["mean_uncertainty"] == pytest.approx(0.3)
    assert rows[0]["contrast"] == pytest.approx(5.0, abs=0.6)
    assert rows[1]["contrast"] == pytest.approx(-2.0, abs=0.6)
    # an unnamed code is written as the code
    assert defect_rows(prob, mask, pixel_size_m=PIXEL, types=types)[0]["type"] == "2"


def test_robust_contrast_definition():
    bg = np.array([1.0, 2.0, 3.0, 4.0, 100.0])  # median 3, MAD 1 (the outlier does not count)
    assert robust_contrast(np.array([7.0, 8.0, 9.0]), bg) == pytest.approx((8 - 3) / 1.4826)
    assert math.isnan(robust_contrast(np.array([1.0]), np.ones(5)))  # constant background


def test_periodic_region_across_an_edge_is_one_row():
    mask = np.zeros((N, N), bool)
    mask[10:13, [29, 30, 31, 0]] = True  # centres 29.5 .. 32.5 on the torus: mean 31
    prob = np.where(mask, 0.8, 0.1)
    rows = defect_rows(prob, mask, pixel_size_m=PIXEL, periodic=True)
    assert len(rows) == 1
    assert rows[0]["area_pixels"] == 12
    assert rows[0]["centroid_x_m"] == pytest.approx(31 * PIXEL)
    assert rows[0]["centroid_y_m"] == pytest.approx(11.5 * PIXEL)
    assert len(defect_rows(prob, mask, pixel_size_m=PIXEL, periodic=False)) == 2  # open film: two pieces


def test_periodic_region_across_a_corner():
    mask = np.zeros((N, N), bool)
    for i in (30, 31, 0):
        for j in (31, 0, 1):
            mask[i, j] = True
    rows = defect_rows(mask.astype(float), mask, pixel_size_m=PIXEL, periodic=True)
    assert len(rows) == 1 and rows[0]["area_pixels"] == 9
    assert rows[0]["centroid_y_m"] == pytest.approx(31.5 * PIXEL)
    assert rows[0]["centroid_x_m"] == pytest.approx(0.5 * PIXEL)
    assert len(defect_rows(mask.astype(float), mask, pixel_size_m=PIXEL)) == 4


def test_periodic_centroid_of_an_inner_region_is_the_plain_one():
    mask = np.zeros((N, N), bool)
    mask[3:12, 4] = True
    mask[11, 4:9] = True  # an L: its circular mean differs from its centroid
    prob = mask.astype(float)
    open_row = defect_rows(prob, mask, pixel_size_m=PIXEL)[0]
    torus_row = defect_rows(prob, mask, pixel_size_m=PIXEL, periodic=True)[0]
    for key in ("centroid_x_m", "centroid_y_m"):
        assert torus_row[key] == pytest.approx(open_row[key], rel=1e-12)


def test_connectivity_and_ids():
    mask = np.zeros((8, 8), bool)
    mask[2, 2] = mask[3, 3] = True  # corner contact
    mask[6, 0] = mask[7, 7] = True  # apart on the open film; diagonal neighbours across the x edge of the torus
    labels, n = label_regions(mask, connectivity=8)
    assert n == 3
    assert label_regions(mask, connectivity=4)[1] == 4
    assert labels[2, 2] == 1 and labels[6, 0] == 2 and labels[7, 7] == 3
    assert label_regions(mask, periodic=True, connectivity=8)[1] == 2
    assert label_regions(mask, periodic=True, connectivity=4)[1] == 4
    with pytest.raises(ValueError, match="connectivity"):
        label_regions(mask, connectivity=6)


def test_csv_header_units_and_values(tmp_path):
    mask, prob = two_blobs()
    rows = defect_rows(prob, mask, pixel_size_m=PIXEL)
    path = write_defects_csv(tmp_path / "defects.csv", rows)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        read = list(reader)
    assert {"centroid_x_m", "centroid_y_m", "area_m2"} <= set(reader.fieldnames)
    assert len(read) == 2
    assert int(read[0]["area_pixels"]) == 36
    assert float(read[0]["area_m2"]) == pytest.approx(36 * PIXEL**2, rel=1e-8)
    assert float(read[1]["centroid_y_m"]) == pytest.approx(21.5 * PIXEL, rel=1e-8)
    assert math.isnan(float(read[0]["contrast"]))
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, no stray temporary file


def test_empty_mask_gives_a_header_only_file(tmp_path):
    rows = defect_rows(np.zeros((N, N)), np.zeros((N, N), bool), pixel_size_m=PIXEL, periodic=True)
    assert rows == []
    text = write_defects_csv(tmp_path / "defects.csv", rows).read_text()
    assert text.splitlines() == [",".join(COLUMNS)]


def test_bad_inputs_are_value_errors():
    mask, prob = two_blobs()
    with pytest.raises(ValueError, match="shape"):
        defect_rows(prob[:, :-1], mask, pixel_size_m=PIXEL)
    with pytest.raises(ValueError, match="pixel_size_m"):
        defect_rows(prob, mask, pixel_size_m=0.0)
    with pytest.raises(ValueError, match="input map"):
        defect_rows(prob, mask, pixel_size_m=PIXEL, input_map=np.zeros((3, 3)))
