"""The instrument on a grid (jaxmag.recording) and the recorded training source."""
import jax
import numpy as np
import pytest

from jaxmag import instrument as ins
from jaxmag.config import MeasuresConfig
from jaxmag.learn.sources.recorded import RecordedSource
from jaxmag.recording import Calibration, calibrate_counts, pixel_labels, record_signal, recording_plan

DETECTOR = dict(photons_per_pixel=2e4, contrast=0.12, gain=2.0, offset=150.0, read_noise=3.0)


def test_the_calibration_inverts_the_mean_reading():
    inst = ins.Instrument(**DETECTOR)
    s = np.linspace(-1, 1, 11)
    np.testing.assert_allclose(calibrate_counts(np.asarray(ins.expected_counts(s, inst)), Calibration.of(inst)), s,
                               atol=1e-9)
    assert Calibration.of(ins.Instrument()) == Calibration(0.0, 1.0)


def test_the_calibrated_record_is_the_signal_plus_detector_noise():
    rng = np.random.default_rng(0)
    movies = np.repeat(rng.normal(0, 0.3, (1, 1, 2, 16, 16)), 400, axis=1).astype(np.float32)  # static film
    inst = ins.Instrument(probe="grazing:20", psf_fwhm_m=6e-9, pixel_size_m=8e-9, **DETECTOR)
    plan = recording_plan(inst, (16, 16), (4e-9, 4e-9), "xz", periodic=True)
    rec = np.asarray(record_signal(jax.random.key(1), movies, plan))
    optical = np.asarray(record_signal(jax.random.key(1), movies, recording_plan(
        ins.Instrument(probe="grazing:20", psf_fwhm_m=6e-9, pixel_size_m=8e-9), (16, 16), (4e-9, 4e-9), "xz", True)))
    assert rec.shape == (1, 400, 8, 8) and plan.pixel_shape == (8, 8)
    np.testing.assert_allclose(rec.mean(axis=1), optical.mean(axis=1), atol=0.01)  # unbiased to < 0.01 Ms
    # variance in units of s: (gain^2 I0 (1 + c s) + read^2) / scale^2
    i = inst
    expected = (i.gain**2 * i.photons_per_pixel * (1 + i.contrast * optical[0, 0]) + i.read_noise**2) \
        / (i.gain * i.photons_per_pixel * i.contrast) ** 2
    np.testing.assert_allclose(rec[0].var(axis=0).mean(), expected.mean(), rtol=0.08)


def test_pixel_labels_follow_the_covered_area():
    inst = ins.Instrument(pixel_size_m=8e-9)
    plan = recording_plan(inst, (8, 8), (4e-9, 4e-9), "xz", periodic=True)
    lab = np.zeros((8, 8), np.uint8)
    lab[0:2, 0:2] = 1  # a whole pixel
    lab[4, 4:6] = 2  # half of a pixel: kept
    lab[6, 6] = 1  # a quarter: dropped
    out = pixel_labels(lab, plan)
    assert out.shape == (4, 4) and out.dtype == np.uint8
    assert out.tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


@pytest.fixture(scope="module")
def source():
    rng = np.random.default_rng(3)
    N, T = 10, 12
    m = rng.normal(0, 0.2, (N, T, 2, 16, 16)).astype(np.float32)
    m[:, :, 0] += 0.9
    labels = np.zeros((N, 16, 16), np.uint8)
    labels[:, 4:10, 4:10] = 1
    m[:, :, 1, 4:10, 4:10] *= 2.0  # the defect fluctuates more
    inst = ins.Instrument(probe="z", psf_fwhm_m=4e-9, pixel_size_m=8e-9, **DETECTOR)
    plan = recording_plan(inst, (16, 16), (4e-9, 4e-9), "xz", periodic=True)
    return RecordedSource(m, labels, plan, (("std", "p"), ("mean", "p")), {"p": MeasuresConfig().options("p")},
                          batch_size=2, indices={"train": np.arange(6), "val": np.arange(6, 8), "test": np.arange(8, 10)})


def test_recorded_batches_are_on_the_detector_pixels_and_reproducible(source):
    key = jax.random.key(5)
    a = list(source.train_batches(0, key))
    b = list(source.train_batches(0, key))
    assert len(a) == 3
    x, y = a[0]
    assert x.shape == (2, 8, 8, 2) and y.shape == (2, 8, 8)
    np.testing.assert_array_equal(np.asarray(a[1][0]), np.asarray(b[1][0]))
    # the 6 x 6-cell blob moves with the film by whole cells: 3, or 4 half-covered pixels a side
    assert {int(n) for n in np.asarray(y).sum(axis=(1, 2))} <= {9, 12, 16}
    other = next(iter(source.train_batches(1, jax.random.key(6))))[0]
    assert not np.allclose(np.asarray(other), np.asarray(x))  # fresh noise and symmetries


def test_recorded_eval_sets_are_fixed_and_show_the_defect(source):
    v1, v2 = source.val_set(), source.val_set()
    np.testing.assert_array_equal(v1.inputs, v2.inputs)
    raw, labels = source.raw_maps("val")
    std = raw[..., 0]
    assert std[labels > 0].mean() > 1.5 * std[labels == 0].mean()
    assert source.describe()["image_shape"] == [8, 8]


def test_a_recorded_source_takes_only_the_probe_signal():
    inst = ins.Instrument()
    plan = recording_plan(inst, (8, 8), (4e-9, 4e-9), "xz", periodic=True)
    with pytest.raises(ValueError, match="one signal"):
        RecordedSource(np.zeros((4, 3, 2, 8, 8), np.float32), np.zeros((4, 8, 8)), plan, (("std", "z"),),
                       {"p": MeasuresConfig().options("p")}, batch_size=1)


def test_sampled_batches_have_the_law_of_recorded_frames():
    """mean/std inputs in the shot noise's normal limit: batches drawn from per-film statistics match
    batches that record every frame (pooled moments over films and draws; the per-film identity of
    the Gaussian maps is tested in tests/test_movie_source.py)."""
    rng = np.random.default_rng(3)
    m = rng.normal(0, 0.2, (10, 40, 2, 16, 16)).astype(np.float32)
    m[:, :, 0] += 0.9
    labels = np.zeros((10, 16, 16), np.uint8)
    labels[:, 4:10, 4:10] = 1
    inst = ins.Instrument(probe="grazing:16", psf_fwhm_m=4e-9, pixel_size_m=8e-9, **DETECTOR)
    plan = recording_plan(inst, (16, 16), (4e-9, 4e-9), "xz", True)
    # unaugmented: the sampled path shifts by whole pixels, the full one by cells (another binning)
    kw = dict(batch_size=8, indices={"train": np.arange(8), "val": np.arange(8, 9), "test": np.arange(9, 10)}, augment=False,
              norm_stats={"channels": ["mean:p", "std:p"], "mean": [0.0, 0.0], "std": [1.0, 1.0]})
    sampled = RecordedSource(m, labels, plan, (("mean", "p"), ("std", "p")), {"p": MeasuresConfig().options("p")}, **kw)
    full = RecordedSource(m, labels, plan, (("mean", "p"), ("std", "p")), {"p": MeasuresConfig().options("p")}, **kw)
    full._train_fn = jax.jit(full._make_batch)  # every frame recorded
    assert sampled.sampled() and sampled.describe()["sampled_batches"]

    def pooled(src):
        return np.concatenate([np.asarray(x) for e in range(30) for x, _ in src.train_batches(e, jax.random.key(e))])

    a, b = pooled(sampled), pooled(full)
    for k in range(2):
        assert a[..., k].mean() == pytest.approx(b[..., k].mean(), rel=0.01)
        assert a[..., k].std() == pytest.approx(b[..., k].std(), rel=0.03)
    few = RecordedSource(m, labels, recording_plan(ins.Instrument(probe="z", photons_per_pixel=50.0), (16, 16),
                         (4e-9, 4e-9), "xz", True), (("std", "p"),), {"p": MeasuresConfig().options("p")}, batch_size=8,
                         indices=kw["indices"])
    assert not few.sampled()  # 50 photons: exact Poisson frames
    moved = RecordedSource(m, labels, plan, (("mean", "p"), ("std", "p")), {"p": MeasuresConfig().options("p")},
                           **{**kw, "augment": True})
    x, y = next(iter(moved.train_batches(0, jax.random.key(1))))
    assert x.shape == (8, 8, 8, 2) and {int(n) for n in np.asarray(y).sum(axis=(1, 2))} == {9}  # whole-pixel moves
