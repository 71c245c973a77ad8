"""Prediction on users' movies: readers (TIFF, OVF folder, HDF5, .npy), checks, padding, tiling, outputs, CLI."""
import json

import h5py
import numpy as np
import pytest
import tifffile

from jaxmag.cli import main as cli_main
from jaxmag.config import loads_config
from jaxmag.io.movie import MovieError, read_movie, rescale_movie
from jaxmag.io.ovf import write_ovf
from jaxmag.learn.predict import (
    load_run,
    measure_maps,
    noise_check,
    predict_movie,
    predict_probability,
    reflect_pad,
    tile_starts,
    write_prediction,
)
from jaxmag.learn.sources.measures import MeasuresSource
from jaxmag.learn.evaluation import normalise_inputs, predict_proba
from jaxmag.learn.loop import train_and_evaluate
from jaxmag.learn.synthetic import write_measures_file

# tiny.toml's film (16 x 16) with a 2-level, 4-feature U-Net
TINY_RUN = """
name = "tiny-predict"
[grid]
nx = 16
ny = 16
pbc_images = 1
[defects]
size_min = 6
size_max = 10
min_gap = 1
[simulation]
burn_in_s = 1e-12
frame_interval_s = 5e-13
num_frames = 4
terms = ["exchange", "anisotropy", "zeeman"]
[model]
base_features = 4
depth = 2
dropout = 0.0
[training]
epochs = 2
batch_size = 8
learning_rate = 1e-2
seed = 3
"""


def train_tiny_run(root, inputs=(("mean", "z"),)):
    """A tiny run trained for 2 epochs on a synthetic 16 x 16 measures file (a few seconds)."""
    measures = write_measures_file(root / "measures.h5", num=32, measures=("mean", "std"), components=("x", "z"))
    config = loads_config(TINY_RUN)
    source = MeasuresSource(measures, inputs, batch_size=8, split=(0.5, 0.25, 0.25), seed=0)
    train_and_evaluate(config, source, root / "run", progress=False, evaluate_test=False)
    return root / "run"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("predict"))


@pytest.fixture(scope="module")
def loaded(run):
    return load_run(run)


def thermal_movie(T=6, ny=16, nx=16, seed=0, scale=1.0, fluct=0.05):
    """Unit-vector-like z component: white fluctuations of std ``fluct`` and a brighter blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:ny, :nx]
    blob = ((yy - ny / 3) ** 2 + (xx - nx / 2) ** 2 < 9).astype(np.float64)
    frames = fluct * rng.normal(size=(T, ny, nx)) + 0.4 * blob
    return (scale * frames).astype(np.float32)


# -- readers and checks ----------------------------------------------------------------------


def test_tiff_npy_hdf5_readers_agree(tmp_path):
    movie = thermal_movie()
    tifffile.imwrite(tmp_path / "m.tif", movie)
    np.save(tmp_path / "m.npy", movie)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("kerr/frames", data=movie)
        f.create_dataset("other", data=movie)
    a = read_movie(tmp_path / "m.tif", component="z")
    b = read_movie(tmp_path / "m.npy", component="z")
    c = read_movie(tmp_path / "m.h5", dataset="kerr/frames", component="z")
    for m in (a, b, c):
        assert m.shape == movie.shape and m.data.dtype == np.float32
        np.testing.assert_array_equal(m.data, movie)
    with pytest.raises(MovieError, match="--dataset"):
        read_movie(tmp_path / "m.h5")  # two 3-D datasets: must be named


def test_ovf_folder_picks_component_and_keeps_times(tmp_path):
    T, ny, nx = 5, 12, 20
    rng = np.random.default_rng(1)
    m = rng.normal(size=(T, 1, ny, nx, 3))
    m /= np.linalg.norm(m, axis=-1, keepdims=True)
    for t in range(T):
        write_ovf(tmp_path / f"m{t:06d}.ovf", m[t], (4e-9, 4e-9, 4e-9), time_s=1e-11 * t)
    for comp, i in (("x", 0), ("z", 2)):
        movie = read_movie(tmp_path, component=comp)
        assert movie.shape == (T, ny, nx)
        np.testing.assert_allclose(movie.data, m[:, 0, :, :, i].astype(np.float32), rtol=0, atol=0)
    np.testing.assert_allclose(movie.times_s, 1e-11 * np.arange(T))
    assert movie.cell_size_m == pytest.approx((4e-9, 4e-9, 4e-9))


def test_bad_movies_raise_clear_errors(tmp_path):
    movie = thermal_movie()
    nan = movie.copy()
    nan[2, 3, 4] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(MovieError, match=r"1 non-finite.*\(2, 3, 4\)"):
        read_movie(tmp_path / "nan.npy")
    tifffile.imwrite(tmp_path / "one.tif", movie[:1])
    with pytest.raises(MovieError, match="at least 2 frames|single 2-D image"):
        read_movie(tmp_path / "one.tif")
    tifffile.imwrite(tmp_path / "image.tif", movie[0])
    with pytest.raises(MovieError, match="single 2-D image"):
        read_movie(tmp_path / "image.tif")
    np.save(tmp_path / "single.npy", movie[:1])
    with pytest.raises(MovieError, match="single frame"):
        read_movie(tmp_path / "single.npy")
    write_ovf(tmp_path / "m000000.ovf", np.ones((1, 4, 4, 3)), (4e-9,) * 3)
    with pytest.raises(MovieError, match="at least 2 frames|single frame"):
        read_movie(tmp_path, component="x")  # a folder with one frame
    with pytest.raises(MovieError, match="single OVF frame"):
        read_movie(tmp_path / "m000000.ovf")
    with pytest.raises(MovieError, match="invalid rescale"):
        read_movie(tmp_path / "single.npy", rescale="ms:-3")


def test_value_range_and_rescale_options(tmp_path):
    unit = thermal_movie()
    np.save(tmp_path / "am.npy", unit * 8e5)  # m_full in A/m
    with pytest.raises(MovieError, match="A/m.*ms:"):
        read_movie(tmp_path / "am.npy")
    np.testing.assert_allclose(read_movie(tmp_path / "am.npy", rescale="ms:8e5").data, unit, rtol=1e-6, atol=1e-7)
    counts = (1000 + 500 * unit).astype(np.uint16)  # camera counts
    tifffile.imwrite(tmp_path / "counts.tif", counts)
    with pytest.raises(MovieError, match="minmax"):
        read_movie(tmp_path / "counts.tif")
    mm = read_movie(tmp_path / "counts.tif", rescale="minmax")
    assert mm.data.min() == -1 and mm.data.max() == 1 and mm.rescale == "minmax"
    scaled, scale, offset = rescale_movie(counts.astype(np.float64), "maxabs")
    assert np.abs(scaled).max() == 1 and scale == counts.max() and offset == 0
    with pytest.warns(RuntimeWarning, match="strong"):
        read_movie(tmp_path / "am.npy", rescale="ms:1e5")  # plausible but too large: warn only


# -- padding and tiling ----------------------------------------------------------------------


def test_reflect_pad_and_tile_cover():
    x = np.arange(13 * 19, dtype=np.float32).reshape(13, 19, 1)
    padded, crop = reflect_pad(x, 4)
    assert padded.shape == (16, 20, 1)
    np.testing.assert_array_equal(padded[crop], x)
    for length, tile, overlap in ((16, 16, 4), (40, 16, 4), (17, 16, 4), (100, 32, 8)):
        starts = tile_starts(length, tile, overlap)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s : s + tile] = True
        assert covered.all() and starts[-1] + min(tile, length) == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_no_padding_or_tiling_needed_gives_identical_mask(loaded):
    model, info = loaded
    movie = thermal_movie(ny=16, nx=16)
    raw = measure_maps(movie, info)
    direct = predict_proba(model, normalise_inputs(raw[None], info))[0]
    for tile in (None, 0, 16):
        proba, n, padded = predict_probability(model, info, raw, tile=tile)
        assert n == 1 and padded == (16, 16)
        np.testing.assert_array_equal(proba, direct)
    pred = predict_movie((model, info), movie)
    np.testing.assert_array_equal(pred.mask, direct >= 0.5)


def test_odd_and_large_images_are_padded_tiled_and_cropped(loaded):
    model, info = loaded
    odd = thermal_movie(ny=13, nx=22)
    pred = predict_movie((model, info), odd)
    assert pred.probability.shape == (13, 22) and pred.mask.shape == (13, 22)
    assert pred.padded_shape == (16, 24)  # 2**depth = 4: 13 -> 16, 22 -> 24 (tile 16 wide: 2 tiles)
    assert pred.tiles == 2
    big = thermal_movie(ny=40, nx=37, seed=3)
    tiled = predict_movie((model, info), big, overlap=6)
    whole = predict_movie((model, info), big, tile=0)
    assert tiled.probability.shape == whole.probability.shape == (40, 37)
    assert tiled.tiles > 4 and whole.tiles == 1
    assert np.all((tiled.probability >= 0) & (tiled.probability <= 1))
    # the U-Net is convolutional: tiles see less context, but agree on most pixels
    assert np.mean(tiled.mask == whole.mask) > 0.9


def test_wrong_component_or_channels_are_rejected(loaded):
    model, info = loaded
    movie = thermal_movie()
    with pytest.raises(ValueError, match="component"):
        predict_movie((model, info), {"x": movie})
    with pytest.raises(ValueError, match="threshold"):
        predict_movie((model, info), movie, threshold=1.5)


# -- file formats end to end -----------------------------------------------------------------


def test_cli_tiff_and_ovf_folder_match_the_python_path(run, loaded, tmp_path, capsys):
    model, info = loaded
    movie = thermal_movie(T=5, ny=13, nx=22, seed=7)
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    folder = tmp_path / "ovf"
    folder.mkdir()
    vec = np.zeros(movie.shape + (3,), np.float32)
    vec[..., 2] = movie
    vec[..., 0] = np.sqrt(np.clip(1 - movie**2, 0, 1))
    for t in range(movie.shape[0]):
        write_ovf(folder / f"m{t:06d}.ovf", vec[t][None], (4e-9,) * 3, time_s=1e-11 * t)
    expected = predict_movie((model, info), movie)

    for src, out in ((tmp_path / "movie.tif", tmp_path / "p_tif"), (folder, tmp_path / "p_ovf")):
        assert cli_main(["predict", str(run), str(src), "--component", "z", "--out", str(out)]) == 0
        assert "defect fraction" in capsys.readouterr().out
        mask = tifffile.imread(out / "mask.tif")
        proba = np.load(out / "probability.npy")
        assert mask.shape == proba.shape == (13, 22) and mask.dtype == np.uint8
        np.testing.assert_array_equal(mask.astype(bool), expected.mask)
        np.testing.assert_allclose(proba, expected.probability, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(tifffile.imread(out / "probability.tif"), proba)
        for name in ("probability.png", "mask.png", "overlay.png"):
            assert (out / name).stat().st_size > 0
        record = json.loads((out / "prediction.json").read_text())
        assert record["shape"] == [13, 22] and record["inputs"] == ["mean:z"] and record["movie"]["frames"] == 5

    # errors reach the user as one line, exit status 2
    np.save(tmp_path / "nan.npy", np.full((3, 8, 8), np.nan, np.float32))
    assert cli_main(["predict", str(run), str(tmp_path / "nan.npy"), "--out", str(tmp_path / "x")]) == 2
    assert "non-finite" in capsys.readouterr().err
    assert cli_main(["predict", str(run), str(tmp_path / "movie.tif"), "--component", "x", "--out", str(tmp_path / "x")]) == 2
    assert "component" in capsys.readouterr().err


def test_auto_noise_warns_and_names_finetune(run, loaded, tmp_path, capsys):
    model, info = loaded
    rng = np.random.default_rng(5)
    clean = thermal_movie(T=20, seed=2, fluct=0.005)
    noisy = clean + rng.normal(0, np.sqrt(1e-1), clean.shape).astype(np.float32)
    quiet = noise_check(clean, info)
    assert not quiet["mismatch"] and quiet["command"] is None
    loud = noise_check(noisy, info, background_mask=np.ones((16, 16), bool))
    assert loud["gaussian"] == pytest.approx(1e-1, rel=0.2)
    assert loud["mismatch"] and "jaxmag finetune" in loud["command"] and "gaussian:" in loud["command"]
    np.save(tmp_path / "noisy.npy", noisy)
    assert cli_main(["predict", str(run), str(tmp_path / "noisy.npy"), "--out", str(tmp_path / "pn"), "--auto-noise"]) == 0
    captured = capsys.readouterr()
    assert "noise estimate" in captured.out and f"jaxmag finetune {run} --noise gaussian:" in captured.err
    assert json.loads((tmp_path / "pn" / "prediction.json").read_text())["noise"]["mismatch"] is True
    # a looser factor silences it
    assert not noise_check(noisy, info, factor=1e4)["mismatch"]


def test_noise_check_names_a_training_kind_it_cannot_read(monkeypatch):
    from jaxmag.noise import NOISE_MODELS, NoiseModel

    movie = np.zeros((4, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"trained on 'poisson_1e2', not a condition of a registered noise kind"):
        noise_check(movie, {"train_condition": "poisson_1e2"})
    monkeypatch.setitem(NOISE_MODELS, "toy", NoiseModel("toy", lambda x, a, n: x + a * n, "x + a n"))
    with pytest.raises(ValueError, match="noise kind 'toy' has no estimator"):
        noise_check(movie, {"train_condition": "toy_1e-2"})


def test_write_prediction_files(loaded, tmp_path):
    pred = predict_movie(loaded, thermal_movie())
    paths = write_prediction(pred, tmp_path / "o")
    assert set(p.name for p in paths.values()) == {
        "probability.tif", "probability.npy", "probability.png", "mask.tif", "mask.npy", "mask.png",
        "overlay.png", "prediction.json", "defects.csv",
    }
    rows = (tmp_path / "o" / "defects.csv").read_text().splitlines()
    assert rows[0].startswith("id,centroid_x_m,centroid_y_m,area_m2,area_pixels")
    assert len(rows) - 1 == len(json.loads((tmp_path / "o" / "prediction.json").read_text())["defects"])
