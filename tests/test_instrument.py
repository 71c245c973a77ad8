"""The instrument's forward model against analytic results and an independent NumPy/SciPy reference."""
import math

import jax
import numpy as np
import pytest
from scipy import ndimage

from jaxmag import instrument as ins
from jaxmag.params import ParamError


def _fwhm_from_moment(profile: np.ndarray, cell_m: float) -> float:
    x = np.arange(profile.size) * cell_m
    w = profile / profile.sum()
    mean = (w * x).sum()
    return math.sqrt((w * (x - mean) ** 2).sum()) * ins.FWHM_PER_SIGMA


@pytest.mark.parametrize("fwhm_nm, periodic", [(20.0, True), (9.0, False), (30.0, True)])
def test_point_source_gives_the_psf_fwhm(fwhm_nm, periodic):
    cell = 2e-9
    n = 96
    inst = ins.Instrument(psf_fwhm_m=fwhm_nm * 1e-9)
    ops = ins.optics_operators((n, n), (cell, cell), inst, periodic)
    point = np.zeros((n, n), np.float32)
    point[n // 2, n // 2] = 1.0
    image = np.asarray(ins.apply_optics(point, ops))
    assert _fwhm_from_moment(image[n // 2], cell) == pytest.approx(fwhm_nm * 1e-9, rel=0.01)
    assert _fwhm_from_moment(image[:, n // 2], cell) == pytest.approx(fwhm_nm * 1e-9, rel=0.01)
    assert image.sum() == pytest.approx(1.0, rel=1e-5)  # the blob is far from the edges


@pytest.mark.parametrize("n, cell, pixel", [(32, 4e-9, 8e-9), (33, 4e-9, 12e-9), (30, 4e-9, 6e-9), (32, 4e-9, None)])
def test_pixel_average_conserves_the_mean(n, cell, pixel):
    rng = np.random.default_rng(1)
    s = rng.normal(size=(3, n, n)).astype(np.float32)
    inst = ins.Instrument(pixel_size_m=pixel or 0.0)
    ops = ins.optics_operators((n, n), (cell, cell), inst, periodic=True)
    out = np.asarray(ins.apply_optics(s, ops))
    n_pix = n if pixel is None else int(n * cell / pixel + 1e-9)
    assert out.shape == (3, n_pix, n_pix)
    covered = int(round(n_pix * (pixel or cell) / cell))  # cells inside whole pixels
    assert out.mean() == pytest.approx(s[:, :covered, :covered].mean(), abs=1e-6)
    if pixel == 8e-9:  # 2 x 2 cells per pixel: the plain block mean
        np.testing.assert_allclose(out, s.reshape(3, n // 2, 2, n // 2, 2).mean(axis=(2, 4)), atol=1e-6)


def test_optics_match_a_scipy_reference():
    """Projection, periodic Gaussian blur (scipy.ndimage, mode wrap) and 2 x 2 binning."""
    rng = np.random.default_rng(2)
    movies = rng.normal(size=(2, 5, 3, 24, 24)).astype(np.float32)  # (run, T, C=xyz, ny, nx)
    inst = ins.Instrument(probe="grazing:16", psf_fwhm_m=10e-9, pixel_size_m=4e-9)
    ops = ins.optics_operators((24, 24), (2e-9, 2e-9), inst, periodic=True)
    got = np.asarray(ins.record(jax.random.key(0), movies, "xyz", inst, ops))
    k = inst.direction
    s = k[0] * movies[:, :, 0] + k[1] * movies[:, :, 1] + k[2] * movies[:, :, 2]
    sigma = 10e-9 / ins.FWHM_PER_SIGMA / 2e-9
    blurred = ndimage.gaussian_filter(s.astype(np.float64), sigma=(0, 0, sigma, sigma), mode="wrap", truncate=6.0)
    ref = blurred.reshape(2, 5, 12, 2, 12, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(got, ref, atol=2e-5)


def test_open_edges_lose_the_weight_beyond_the_film():
    inst = ins.Instrument(psf_fwhm_m=8e-9)
    ops = ins.optics_operators((16, 16), (4e-9, 4e-9), inst, periodic=False)
    out = np.asarray(ins.apply_optics(np.ones((16, 16), np.float32), ops))
    assert out[8, 8] == pytest.approx(1.0, abs=1e-6)
    assert 0.5 < out[8, 0] < 0.8 and out[0, 0] < out[8, 0]  # half the PSF beyond one edge, more at a corner


def test_counts_follow_the_poisson_gaussian_law():
    inst = ins.Instrument(photons_per_pixel=2e4, contrast=0.15, gain=2.5, offset=100.0, read_noise=4.0)
    s = np.full((200, 100), 0.4, np.float32)
    counts = np.asarray(ins.detector_counts(jax.random.key(3), s, inst))
    photons = 2e4 * (1 + 0.15 * 0.4)
    assert counts.mean() == pytest.approx(2.5 * photons + 100.0, rel=1e-3)
    # Poisson-Gaussian variance, plus the rounding's 1/12
    assert counts.var() == pytest.approx(2.5**2 * photons + 4.0**2 + 1 / 12, rel=0.03)
    assert np.all(counts == np.round(counts))


def test_few_photons_are_drawn_exactly_and_many_in_the_normal_limit():
    few = ins.Instrument(photons_per_pixel=20.0, contrast=0.1)  # below NORMAL_LIMIT_PHOTONS: exact Poisson
    counts = np.asarray(ins.detector_counts(jax.random.key(4), np.zeros((400, 500), np.float32), few)).astype(np.float64)
    assert counts.mean() == pytest.approx(20.0, rel=0.01) and counts.var() == pytest.approx(20.0, rel=0.03)
    assert ((counts - 20.0) ** 3).mean() == pytest.approx(20.0, rel=0.15)  # Poisson's third cumulant is lambda
    many = ins.Instrument(photons_per_pixel=2e4, contrast=0.1, gain=1.5, read_noise=3.0)
    counts = np.asarray(ins.detector_counts(jax.random.key(4), np.zeros((400, 500), np.float32), many)).astype(np.float64)
    assert counts.var() == pytest.approx(1.5**2 * 2e4 + 9.0 + 1 / 12, rel=0.02)


def test_counts_clip_at_the_detector_range():
    inst = ins.Instrument(photons_per_pixel=1e3, contrast=0.5, offset=10.0, full_scale=1200.0)
    s = np.array([[-1.0, 0.0, 1.0]], np.float32)
    counts = np.asarray(ins.detector_counts(jax.random.key(0), s, inst))
    assert counts.max() <= 1200.0 and counts[0, 2] == 1200.0 and counts.min() >= 0.0


def test_without_photons_the_record_is_the_optical_signal():
    movies = np.random.default_rng(0).normal(size=(4, 2, 8, 8)).astype(np.float32)  # (T, C=xz, ny, nx)
    inst = ins.Instrument(probe="x")
    ops = ins.optics_operators((8, 8), (4e-9, 4e-9), inst, periodic=True)
    np.testing.assert_allclose(np.asarray(ins.record(None, movies, "xz", inst, ops)), movies[:, 0], atol=1e-6)


def test_bad_instruments_are_named():
    with pytest.raises(ValueError, match="probe"):
        ins.probe_direction("0,0,0")
    with pytest.raises(ValueError, match="needs m_y"):
        ins.project(np.zeros((2, 2, 4, 4)), "xz", ins.probe_direction("0,1,1"))
    with pytest.raises(ParamError, match="contrast"):
        ins.Instrument(photons_per_pixel=100.0, contrast=1.5)
    with pytest.raises(ValueError, match="wider than the frame"):
        ins.optics_operators((8, 8), (4e-9, 4e-9), ins.Instrument(psf_fwhm_m=100e-9), periodic=True)
    with pytest.raises(ValueError, match="smaller than the simulation cells"):
        ins.optics_operators((8, 8), (4e-9, 4e-9), ins.Instrument(pixel_size_m=2e-9), periodic=True)


@pytest.mark.parametrize("periodic", [True, False])
def test_a_psf_image_is_the_image_of_a_point_source(tmp_path, periodic):
    """A user's (asymmetric) PSF image: a point source away from the edges comes out as the image."""
    kernel = np.zeros((5, 7))
    kernel[2, 3], kernel[1, 3], kernel[2, 5], kernel[4, 0] = 4.0, 2.0, 1.0, 1.0
    np.save(tmp_path / "psf.npy", kernel)
    inst = ins.Instrument(psf_image=str(tmp_path / "psf.npy"))
    ops = ins.optics_operators((16, 20), (4e-9, 4e-9), inst, periodic=periodic)
    point = np.zeros((1, 16, 20), np.float32)
    point[0, 8, 10] = 1.0
    out = np.asarray(ins.apply_optics(point, ops))[0]
    expected = np.zeros((16, 20))
    expected[6:11, 7:14] = kernel / kernel.sum()  # centre (2, 3) of the image on the point
    np.testing.assert_allclose(out, expected, atol=1e-6)
    corner = np.zeros((1, 16, 20), np.float32)
    corner[0, 0, 0] = 1.0
    edge = np.asarray(ins.apply_optics(corner, ops))[0]
    assert edge.sum() == pytest.approx(1.0 if periodic else kernel[2:, 3:].sum() / kernel.sum(), abs=1e-6)


def test_bad_psf_images_are_named(tmp_path):
    from jaxmag.io.psf import PSFError

    np.save(tmp_path / "even.npy", np.ones((4, 5)))
    np.save(tmp_path / "neg.npy", -np.ones((3, 3)))
    for name, message in (("missing.npy", "not found"), ("even.npy", "odd sides"), ("neg.npy", "non-negative")):
        with pytest.raises(PSFError, match=message):
            ins.optics_operators((8, 8), (4e-9, 4e-9), ins.Instrument(psf_image=str(tmp_path / name)), periodic=True)
    with pytest.raises(ParamError, match="psf_image"):
        ins.Instrument(psf_image="x.npy", psf_fwhm_m=4e-9)
