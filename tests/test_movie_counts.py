"""Counts movies (``signal="counts"``) and the pixel-size / frame-interval metadata of ``jaxmag.io.movie``."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from jaxmag.io.movie import MovieError, default_signal, movie_from_array, read_movie, write_counts_tiff


def _counts(seed: int = 0, shape=(6, 12, 10), lam: float = 400.0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(lam, shape).astype(np.uint16)


def test_write_counts_tiff_round_trip(tmp_path):
    counts = _counts()
    path = write_counts_tiff(tmp_path / "movie.tif", counts, pixel_size_m=7.3e-9, frame_interval_s=2.5e-10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.tif"]  # no temporary file left behind
    assert default_signal(path) == "counts"
    for signal in ("counts", "auto", None):
        movie = read_movie(path, signal=signal)
        assert movie.signal == "counts" and movie.data.dtype == np.float32 and movie.rescale == "none"
        np.testing.assert_array_equal(movie.data, counts)
        assert movie.pixel_size_m == pytest.approx(7.3e-9, rel=1e-9)
        assert movie.frame_interval_s == pytest.approx(2.5e-10, rel=1e-12)
    meta = movie.metadata()
    assert meta["signal"] == "counts" and meta["pixel_size_m"] == pytest.approx(7.3e-9)
    with tifffile.TiffFile(path) as tif:  # an ImageJ hyperstack that ImageJ/Fiji read with its calibration
        assert tif.is_imagej and tif.series[0].axes == "TYX" and tif.imagej_metadata["unit"] == "um"


def test_write_counts_tiff_refuses_what_uint16_cannot_hold(tmp_path):
    for bad, match in ((_counts()[0], "T >= 2"), (_counts().astype(float) + 0.5, "integers"),
                       (_counts().astype(np.int32) - 500, r"\[0, 65535\]"),
                       (_counts().astype(np.int32) * 1000, "65535")):
        with pytest.raises(ValueError, match=match):
            write_counts_tiff(tmp_path / "bad.tif", bad, 1e-8, 1e-3)
    with pytest.raises(ValueError, match="pixel_size_m"):
        write_counts_tiff(tmp_path / "bad.tif", _counts(), 0.0, 1e-3)
    assert not list(tmp_path.iterdir())


def test_ome_tiff_metadata(tmp_path):
    counts = _counts(1)
    tifffile.imwrite(tmp_path / "ome.ome.tif", counts, metadata={
        "PhysicalSizeX": 25.0, "PhysicalSizeXUnit": "nm", "TimeIncrement": 50.0, "TimeIncrementUnit": "ps",
        "axes": "TYX"})
    movie = read_movie(tmp_path / "ome.ome.tif", signal="counts")
    assert movie.pixel_size_m == pytest.approx(25e-9) and movie.frame_interval_s == pytest.approx(50e-12)
    np.testing.assert_array_equal(movie.data, counts)
    # OME's default units: µm and s
    tifffile.imwrite(tmp_path / "defaults.ome.tif", counts, metadata={
        "PhysicalSizeX": 0.05, "PhysicalSizeY": 0.05, "TimeIncrement": 0.01, "axes": "TYX"})
    movie = read_movie(tmp_path / "defaults.ome.tif", signal="counts")
    assert movie.pixel_size_m == pytest.approx(5e-8) and movie.frame_interval_s == pytest.approx(0.01)
    tifffile.imwrite(tmp_path / "rect.ome.tif", counts, metadata={
        "PhysicalSizeX": 25.0, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 50.0, "PhysicalSizeYUnit": "nm",
        "axes": "TYX"})
    with pytest.raises(MovieError, match="non-square"):
        read_movie(tmp_path / "rect.ome.tif", signal="counts")
    tifffile.imwrite(tmp_path / "furlong.ome.tif", counts, metadata={
        "PhysicalSizeX": 1.0, "PhysicalSizeXUnit": "furlong", "axes": "TYX"})
    with pytest.warns(RuntimeWarning, match="unknown pixel size unit 'furlong'"):
        assert read_movie(tmp_path / "furlong.ome.tif", signal="counts").pixel_size_m is None


def test_imagej_metadata_units(tmp_path):
    counts = _counts(2)
    tifffile.imwrite(tmp_path / "ij.tif", counts, imagej=True, resolution=(0.5, 0.5),
                     metadata={"axes": "TYX", "unit": "nm", "finterval": 3.0, "tunit": "ms"})
    movie = read_movie(tmp_path / "ij.tif", signal="counts")
    assert movie.pixel_size_m == pytest.approx(2e-9) and movie.frame_interval_s == pytest.approx(3e-3)
    tifffile.imwrite(tmp_path / "rect.tif", counts, imagej=True, resolution=(10.0, 20.0),
                     metadata={"axes": "TYX", "unit": "micron"})
    with pytest.raises(MovieError, match="non-square pixels"):
        read_movie(tmp_path / "rect.tif", signal="counts")
    tifffile.imwrite(tmp_path / "plain.tif", counts, resolution=(72.0, 72.0))  # an image editor's 72 dpi: ignored
    movie = read_movie(tmp_path / "plain.tif", signal="counts")
    assert movie.pixel_size_m is None and movie.frame_interval_s is None


def test_hdf5_attributes(tmp_path):
    counts = _counts(3)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        ds = f.create_dataset("frames", data=counts)
        ds.attrs["pixel_size_m"] = 12e-9
        ds.attrs["frame_interval_s"] = 1e-3
    movie = read_movie(tmp_path / "a.h5", signal="auto")
    assert movie.signal == "counts" and movie.pixel_size_m == pytest.approx(12e-9)
    assert movie.frame_interval_s == pytest.approx(1e-3)
    with h5py.File(tmp_path / "b.h5", "w") as f:  # on the file root, with units
        f["movie"] = counts
        f.attrs["pixel_size"] = 30.0
        f.attrs["pixel_size_unit"] = "nm"
        f.attrs["frame_interval"] = 20.0
        f.attrs["frame_interval_unit"] = "ns"
    movie = read_movie(tmp_path / "b.h5", signal="counts")
    assert movie.pixel_size_m == pytest.approx(30e-9) and movie.frame_interval_s == pytest.approx(20e-9)
    with h5py.File(tmp_path / "bare.h5", "w") as f:
        f["movie"] = counts
        f.attrs["pixel_size"] = 30.0  # no unit: not guessed
    assert read_movie(tmp_path / "bare.h5", signal="counts").pixel_size_m is None
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["movie"] = counts
        f.attrs["pixel_size_m"] = [10e-9, 20e-9]  # (dy, dx)
    with pytest.raises(MovieError, match="non-square"):
        read_movie(tmp_path / "c.h5", signal="counts")


def test_default_signal_by_type(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((3, 4, 4), np.float32))
    np.save(tmp_path / "i.npy", np.zeros((3, 4, 4), np.uint16))
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((3, 4, 4), np.float32), photometric="minisblack")
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["m"] = np.zeros((3, 4, 4), np.float64)
    assert default_signal(tmp_path / "f.npy") == "magnetisation" and default_signal(tmp_path / "i.npy") == "counts"
    assert default_signal(tmp_path / "f.tif") == "magnetisation"
    assert default_signal(tmp_path / "f.h5") == "magnetisation"
    assert default_signal(tmp_path) == "magnetisation"  # a folder: OVF frames


def test_ovf_folder_metadata(tmp_path):
    from jaxmag.io.ovf import write_ovf

    for i in range(3):
        write_ovf(tmp_path / f"m{i:06d}.ovf", np.ones((1, 4, 5, 3)) * 0.5, (4e-9, 4e-9, 2e-9), time_s=1e-11 * i)
    movie = read_movie(tmp_path, component="x")
    assert movie.signal == "magnetisation" and movie.pixel_size_m == pytest.approx(4e-9)
    assert movie.frame_interval_s == pytest.approx(1e-11) and movie.cell_size_m == pytest.approx((4e-9, 4e-9, 2e-9))


def test_magnetisation_stays_the_default(tmp_path):
    tifffile.imwrite(tmp_path / "counts.tif", _counts())
    with pytest.raises(MovieError, match="minmax"):  # today's behaviour: the range check asks for a rescale
        read_movie(tmp_path / "counts.tif")
    assert read_movie(tmp_path / "counts.tif", rescale="minmax").signal == "magnetisation"
    with pytest.raises(MovieError, match="applies to magnetisation"):
        read_movie(tmp_path / "counts.tif", signal="counts", rescale="minmax")
    with pytest.raises(MovieError, match="invalid signal"):
        read_movie(tmp_path / "counts.tif", signal="photons")


def test_bad_counts_are_named(tmp_path):
    rng = np.random.default_rng(4)
    processed = rng.normal(0, 1, (6, 12, 10)).astype(np.float32)  # e.g. a normalised XMCD movie
    tifffile.imwrite(tmp_path / "float.tif", processed)
    with pytest.raises(MovieError, match="a float TIFF/array passed as counts"):
        read_movie(tmp_path / "float.tif", signal="counts")
    # integer-valued floats are counts (jaxmag.instrument records float32 integers)
    assert movie_from_array(_counts().astype(np.float32), signal="counts").signal == "counts"

    tifffile.imwrite(tmp_path / "negative.tif", _counts().astype(np.int16) - 450)  # dark-subtracted
    with pytest.raises(MovieError, match="negative"):
        read_movie(tmp_path / "negative.tif", signal="auto")

    saturated = _counts()
    saturated.reshape(-1)[:: 40] = 65535  # 2.5 % at the uint16 maximum
    tifffile.imwrite(tmp_path / "saturated.tif", saturated)
    with pytest.raises(MovieError, match=r"2\.50% .*full scale 65535.*saturated.*shorter exposure"):
        read_movie(tmp_path / "saturated.tif", signal="counts")
    few = _counts()
    few.reshape(-1)[:: 200] = 65535  # 0.5 %: a few hot pixels are accepted
    tifffile.imwrite(tmp_path / "few.tif", few)
    assert read_movie(tmp_path / "few.tif", signal="counts").signal == "counts"
    twelve_bit = np.minimum(_counts(lam=4000), 4095)  # a 12-bit camera stored as uint16: give full_scale
    assert movie_from_array(twelve_bit, signal="counts").signal == "counts"
    with pytest.raises(MovieError, match="full scale 4095"):
        movie_from_array(twelve_bit, signal="counts", full_scale=4095)

    for constant, match in ((np.zeros((6, 12, 10), np.uint16), "constant.*all zero"),
                            (np.full((6, 12, 10), 7, np.uint16), "constant")):
        with pytest.raises(MovieError, match=match):
            movie_from_array(constant, signal="counts")
    with pytest.raises(MovieError, match="mask"):
        movie_from_array(np.ones((6, 12, 10), bool), signal="counts")

