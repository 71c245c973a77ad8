"""Property tests of the defect generator over many seeds (hypothesis is not installed)."""
import dataclasses

import numpy as np
import pytest

from jaxmag.config import DefectConfig, MaterialConfig
from jaxmag.defects import Defects, defect_rng, fill_holes, generate_defects, material_maps

SEEDS = range(150)


def _components(mask: np.ndarray, diagonal: bool) -> int:
    """Number of connected components of ``mask`` (4- or 8-neighbourhood), by flood fill."""
    seen = np.zeros_like(mask)
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if diagonal:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    count = 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        count += 1
        stack = [start]
        seen[start] = True
        while stack:
            y, x = stack.pop()
            for dy, dx in steps:
                yy, xx = y + dy, x + dx
                if 0 <= yy < mask.shape[0] and 0 <= xx < mask.shape[1] and mask[yy, xx] and not seen[yy, xx]:
                    seen[yy, xx] = True
                    stack.append((yy, xx))
    return count


def _chebyshev_gap(a: np.ndarray, b: np.ndarray, periodic: bool) -> int:
    ya, xa = np.nonzero(a)
    yb, xb = np.nonzero(b)
    dy = np.abs(ya[:, None] - yb[None, :])
    dx = np.abs(xa[:, None] - xb[None, :])
    if periodic:
        dy = np.minimum(dy, a.shape[0] - dy)
        dx = np.minimum(dx, a.shape[1] - dx)
    return int(np.maximum(dy, dx).min())


@pytest.mark.parametrize(
    "shape, config, periodic",
    [
        ((128, 128), DefectConfig(size_min=24, size_max=40, min_gap=2), True),
        ((32, 32), DefectConfig(size_min=8, size_max=16, min_gap=2, margin=2), False),
        ((16, 16), DefectConfig(size_min=6, size_max=10, min_gap=1), True),
    ],
)
def test_blob_properties_over_many_seeds(shape, config, periodic):
    ny, nx = shape
    for seed in SEEDS:
        d = generate_defects(config, ny, nx, defect_rng(seed, 3), periodic=periodic)
        assert d.labels.dtype == np.uint8 and d.labels.shape == shape
        assert sorted(np.unique(d.labels)) == [0, 1, 2, 3, 4], seed
        np.testing.assert_array_equal(d.factors, [config.factor_a] * 2 + [config.factor_b] * 2)
        blobs = [d.labels == k for k in range(1, 5)]
        for blob in blobs:
            assert config.size_min <= blob.sum() <= config.size_max, seed
            assert _components(blob, diagonal=False) == 1, f"blob not 4-connected (seed {seed})"
            # simply connected: the rest of the plane (padded so the outside is one region) is connected
            ys, xs = np.nonzero(blob)
            box = blob[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
            assert _components(np.pad(~box, 1, constant_values=True), diagonal=False) == 1, f"hole (seed {seed})"
            if config.margin:
                m = config.margin
                assert not blob[:m].any() and not blob[-m:].any() and not blob[:, :m].any() and not blob[:, -m:].any()
        for i in range(4):
            for j in range(i + 1, 4):
                assert _chebyshev_gap(blobs[i], blobs[j], periodic) > config.min_gap, seed


def test_blobs_are_irregular_and_vary():
    config = DefectConfig(size_min=24, size_max=40)
    shapes = set()
    non_rect = 0
    for seed in range(40):
        d = generate_defects(config, 64, 64, defect_rng(seed, 0), periodic=True)
        blob = d.labels == 1
        ys, xs = np.nonzero(blob)
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        non_rect += box > blob.sum()
        shapes.add(blob[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].tobytes())
    assert non_rect >= 38  # Eden growth almost never makes a full rectangle
    assert len(shapes) == 40


def test_reproducible_from_seed_and_run_index_only():
    config = DefectConfig()
    a = generate_defects(config, 64, 64, defect_rng(5, 17), periodic=True)
    b = generate_defects(config, 64, 64, defect_rng(5, 17), periodic=True)
    c = generate_defects(config, 64, 64, defect_rng(5, 18), periodic=True)
    d = generate_defects(config, 64, 64, defect_rng(6, 17), periodic=True)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.angles_rad, b.angles_rad)
    assert not np.array_equal(a.labels, c.labels) and not np.array_equal(a.labels, d.labels)


def test_angles_per_blob_and_per_cell():
    per_blob = DefectConfig(angle_sigma_deg=10.0)
    angles = []
    for seed in range(200):
        d = generate_defects(per_blob, 64, 64, defect_rng(seed, 0), periodic=True)
        assert np.all(d.angles_rad[d.labels == 0] == 0)
        for k in range(1, 5):
            values = np.unique(d.angles_rad[d.labels == k])
            assert values.size == 1  # one angle per blob
            angles.append(values[0])
    # 800 draws of N(0, 10°): std within ~4 standard errors
    assert abs(np.rad2deg(np.std(angles)) - 10.0) < 1.0
    assert abs(np.rad2deg(np.mean(angles))) < 1.5
    per_cell = dataclasses.replace(per_blob, angle_mode="per_cell")
    d = generate_defects(per_cell, 64, 64, defect_rng(0, 0), periodic=True)
    for k in range(1, 5):
        assert np.unique(d.angles_rad[d.labels == k]).size == (d.labels == k).sum()


def test_material_maps_exact_factors_and_rotation():
    config = DefectConfig(factor_a=0.5, factor_b=2.0, angle_sigma_deg=15.0)
    mat = MaterialConfig()
    d = generate_defects(config, 32, 32, defect_rng(1, 2), periodic=True)
    A, K, u = material_maps(d, A_ex=mat.A_ex, K_u=mat.K_u, easy_axis=mat.easy_axis)
    for k, f in zip(range(1, 5), (0.5, 0.5, 2.0, 2.0)):
        assert np.all(A[d.labels == k] == f * mat.A_ex) and np.all(K[d.labels == k] == f * mat.K_u)
    assert np.all(A[d.labels == 0] == mat.A_ex) and np.all(K[d.labels == 0] == mat.K_u)
    np.testing.assert_allclose(np.linalg.norm(u, axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(u[d.labels == 0], [[1.0, 0.0, 0.0]] * int((d.labels == 0).sum()))
    np.testing.assert_allclose(np.arctan2(u[..., 1], u[..., 0]), d.angles_rad, atol=1e-12)
    assert np.all(u[..., 2] == 0)  # rotation stays in plane


def test_fill_holes():
    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    filled = fill_holes(ring)
    assert filled[1:6, 1:6].all() and filled.sum() == 25
    open_ring = ring.copy()
    open_ring[3, 1] = False  # a channel to the outside: nothing to fill
    np.testing.assert_array_equal(fill_holes(open_ring), open_ring)


def test_impossible_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="cannot fit"):
        generate_defects(DefectConfig(size_min=80, size_max=90), 16, 16, defect_rng(0, 0))
    with pytest.raises(ValueError, match="margin"):
        generate_defects(DefectConfig(margin=8), 16, 16, defect_rng(0, 0))
    with pytest.raises(ValueError, match="could not place"):
        generate_defects(DefectConfig(size_min=20, size_max=30, min_gap=6), 16, 16, defect_rng(0, 0))
    with pytest.raises(ValueError, match="non-negative"):
        defect_rng(-1, 0)


def test_defects_record():
    d = generate_defects(DefectConfig(), 32, 32, defect_rng(0, 0), periodic=True)
    assert isinstance(d, Defects) and d.num_blobs == 4
    np.testing.assert_array_equal(d.mask, d.labels > 0)
