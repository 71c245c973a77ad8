"""The readers of jaxmag's two HDF5 formats (``jaxmag.io.dataset.open_dataset`` / ``read_movies``
/ ``read_labels``, ``jaxmag.io.measures_file.MeasuresFile``) on small files made by their
writers, their errors for missing, foreign and malformed files, and the shared row writer."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from jaxmag.io import dataset as ds
from jaxmag.io import measures_file as mf
from jaxmag.io import rowfile
from jaxmag.io.errors import InputError
from jaxmag.measures import MeasureOptions

N, T, NY, NX, RUN_START = 4, 3, 8, 6, 10


def _spec() -> ds.FileSpec:
    return ds.FileSpec(config_text="[dataset]\nseed = 3\n", config_hash="abc", seed=3, num_runs=20,
                       run_start=RUN_START, num_rows=N, num_frames=T, components="xz", ny=NY, nx=NX,
                       store_dtype="float32", cell_size_m=(2e-9, 2e-9, 1e-9), t=1e-12 * np.arange(1, T + 1))


def _rows(runs) -> ds.RunRows:
    rng = np.random.default_rng(list(runs))
    B = len(runs)
    return ds.RunRows(run_index=np.asarray(runs), m=rng.normal(size=(B, T, 2, NY, NX)).astype(np.float32),
                      labels=rng.integers(0, 5, (B, NY, NX)).astype(np.uint8),
                      A=np.ones((B, NY, NX), np.float32), Ku=np.ones((B, NY, NX), np.float32),
                      easy_axis=np.ones((B, NY, NX, 3), np.float32))


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """A dataset whose rows 0 and 2 (runs 10 and 12) are done; returns (path, written rows)."""
    path = ds.create_file(tmp_path_factory.mktemp("ds") / "data.h5", _spec())
    rows = _rows([RUN_START, RUN_START + 2])
    with ds.DatasetWriter(path) as w:
        w.write(rows)
    return path, rows


def test_open_dataset_reads_the_metadata(partial):
    path, _ = partial
    info = ds.open_dataset(path)
    assert info.shape == (N, T, 2, NY, NX) and info.dtype == "float32" and info.components == "xz"
    assert info.simulated and not info.virtual and info.has_labels and not info.complete
    np.testing.assert_array_equal(info.done, [True, False, True, False])
    np.testing.assert_array_equal(info.done_rows, [0, 2])
    np.testing.assert_array_equal(info.run_index, RUN_START + np.arange(N))
    assert info.config_text == _spec().config_text and info.config_hash == "abc" and info.seed == 3
    assert info.cell_size_m == (2e-9, 2e-9, 1e-9) and info.image_shape == (NY, NX) and info.num_rows == N
    assert info.frame_interval_s == pytest.approx(1e-12, rel=1e-12)


def test_read_movies_and_labels(partial):
    path, rows = partial
    m = ds.read_movies(path, [2, 0, 2])  # any order, repeats allowed
    assert m.dtype == np.float32 and m.shape == (3, T, 2, NY, NX)
    np.testing.assert_array_equal(m, rows.m[[1, 0, 1]])
    z = ds.read_movies(path, np.array([0]), "z")
    np.testing.assert_array_equal(z, rows.m[:1, :, 1:])
    np.testing.assert_array_equal(ds.read_movies(path, [0, 2], "zx"), rows.m[:, :, ::-1])
    assert ds.read_movies(path, []).shape == (0, T, 2, NY, NX)
    np.testing.assert_array_equal(ds.read_labels(path, [2]), rows.labels[1:])
    assert ds.read_labels(path).shape == (N, NY, NX) and ds.read_labels(path).dtype == np.uint8
    np.testing.assert_array_equal(ds.read_movies(path, [0, 2]), ds.read_runs(path, [0, 2])["m"])
    with pytest.raises(ValueError, match=r"run 11 \(row 1\) is not done"):
        ds.read_movies(path, [0, 1])
    with pytest.raises(ValueError, match=r"rows must be in \[0, 4\), got 4"):
        ds.read_movies(path, [4])
    with pytest.raises(ValueError, match="stores the components x, z only, not y"):
        ds.read_movies(path, [0], "y")


def test_a_hand_written_dataset_needs_only_m(tmp_path):
    path = tmp_path / "m.h5"
    m = np.arange(2 * 3 * 1 * 4 * 5, dtype=np.float32).reshape(2, 3, 1, 4, 5)
    with h5py.File(path, "w") as f:
        f["m"] = m
    info = ds.open_dataset(path)
    assert info.components == "x" and info.complete and not info.has_labels and not info.simulated
    assert info.config_text is None and info.frame_times_s is None and info.frame_interval_s is None
    np.testing.assert_array_equal(info.run_index, [0, 1])
    np.testing.assert_array_equal(ds.read_movies(path, [1, 0]), m[::-1])
    with pytest.raises(InputError, match="has no /labels"):
        ds.read_labels(path)


def _measures(path, n=6, nan_row=None):
    rng = np.random.default_rng(0)
    maps = {cond: {m: {c: rng.normal(size=(n, NY, NX)).astype(np.float32) for c in "xz"} for m in ("mean", "std")}
            for cond in ("clean", "gaussian_1e-2", "speckle_0.1")}
    if nan_row is not None:
        maps["clean"]["mean"]["x"][nan_row] = np.nan
    labels = rng.integers(0, 3, (n, NY, NX)).astype(np.uint8)
    return mf.write_maps(path, labels, maps), maps, labels


def test_dataset_errors_name_the_file_and_the_kind(partial, tmp_path):
    with pytest.raises(InputError, match="not found"):
        ds.open_dataset(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputError, match=r"text\.h5 is not an HDF5 file"):
        ds.open_dataset(tmp_path / "text.h5")
    measures, _, _ = _measures(tmp_path / "maps.h5")
    with pytest.raises(InputError, match="missing /m"):
        ds.open_dataset(measures)
    with h5py.File(tmp_path / "real.h5", "w") as f:
        f.attrs["format"] = mf.FORMAT
    with pytest.raises(InputError, match=r"real\.h5 is a measures file .*not a simulated dataset"):
        ds.read_movies(tmp_path / "real.h5", [0])
    with h5py.File(tmp_path / "flat.h5", "w") as f:
        f["m"] = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(InputError, match=r"expected /m of shape \(N, T, C, ny, nx\), got \(2, 3, 4\)"):
        ds.open_dataset(tmp_path / "flat.h5")
    with h5py.File(tmp_path / "comp.h5", "w") as f:
        f["m"] = np.zeros((2, 3, 2, 4, 4), np.float32)
        f["labels"] = np.zeros((2, 4, 5), np.uint8)
        f.attrs["components"] = "xz"
    with pytest.raises(InputError, match=r"/labels must have shape \(2, 4, 4\)"):
        ds.open_dataset(tmp_path / "comp.h5")


def test_measures_file_reader(tmp_path):
    path, maps, labels = _measures(tmp_path / "maps.h5")
    f = mf.MeasuresFile(path)
    assert f.shape == (6, NY, NX) and f.conditions == ("clean", "gaussian_1e-2", "speckle_0.1")
    assert f.layout["clean"] == {"mean": ["x", "z"], "std": ["x", "z"]}
    x = f.read("gaussian_1e-2", (("std", "z"), ("mean", "x")), [4, 1])
    assert x.dtype == np.float32 and x.shape == (2, NY, NX, 2)
    np.testing.assert_array_equal(x[..., 0], maps["gaussian_1e-2"]["std"]["z"][[4, 1]])
    np.testing.assert_array_equal(x[..., 1], maps["gaussian_1e-2"]["mean"]["x"][[4, 1]])
    assert f.read("clean", (("mean", "z"),)).shape == (6, NY, NX, 1)
    assert f.read("clean", (("mean", "z"),), [0], dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(f.labels([5, 0]), labels[[5, 0]])
    np.testing.assert_array_equal(f.labels(), labels)
    with pytest.raises(ValueError, match=r"lacks /clean/latent_entropy/x \(it has: clean \(mean:x/z, std:x/z\); "
                                         r"gaussian_1e-2 \(mean:x/z, std:x/z\)"):
        f.read("clean", (("latent_entropy", "x"),))
    with pytest.raises(ValueError, match="lacks /poisson_3"):
        f.check("poisson_3", (("mean", "x"),))


@pytest.mark.parametrize("spec", ["gaussian:1e-2", "gaussian_1e-2", "gaussian:0.01", "gaussian_0.010", "gaussian:1E-2"])
def test_resolve_condition_spellings(spec):
    assert mf.resolve_condition(["clean", "gaussian_1e-2", "speckle_0.1"], spec) == "gaussian_1e-2"


def test_resolve_condition_refuses_what_is_absent(tmp_path):
    names = ["clean", "gaussian_1e-2", "speckle_0.1"]
    assert mf.resolve_condition(names, "clean") == "clean"
    assert mf.resolve_condition(names, "speckle:1e-1") == "speckle_0.1"
    for spec in ("gaussian:1", "poisson:1e-2", "gaussian:x"):
        with pytest.raises(ValueError, match="it has: clean, gaussian_1e-2, speckle_0.1"):
            mf.resolve_condition(names, spec)
    path, _, _ = _measures(tmp_path / "maps.h5")
    assert mf.MeasuresFile(path).resolve_condition("speckle:0.1") == "speckle_0.1"


def test_measures_file_errors(partial, tmp_path):
    with pytest.raises(InputError, match="measures file not found"):
        mf.MeasuresFile(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputError, match=r"text\.h5 is not an HDF5 file"):
        mf.MeasuresFile(tmp_path / "text.h5")
    path, _ = partial
    with pytest.raises(ValueError, match=r"is a simulated dataset, not a measures file: run `jaxmag measures"):
        mf.MeasuresFile(path)
    with h5py.File(tmp_path / "nolabels.h5", "w") as f:
        f["clean/mean/x"] = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="has no /labels dataset"):
        mf.MeasuresFile(tmp_path / "nolabels.h5")
    bad, _, _ = _measures(tmp_path / "nan.h5", nan_row=3)
    reader = mf.MeasuresFile(bad)
    reader.read("clean", (("mean", "x"),), [0, 1, 2])  # the NaN row is not read
    with pytest.raises(ValueError, match="has NaN or inf in condition clean"):
        reader.read("clean", (("mean", "x"),), [2, 3])
    with h5py.File(bad, "r+") as f:
        del f["labels"]
        f["labels"] = np.zeros((6, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"/clean/mean/x in .* has shape \(6, 8, 6\) but /labels has \(6, 4, 4\)"):
        mf.MeasuresFile(bad).read("clean", (("mean", "x"),))


def test_measures_of_a_partial_dataset_read_back(partial, tmp_path):
    """The measures writer reads the dataset through read_movies; its output through MeasuresFile."""
    path, rows = partial
    out = mf.compute_measures_file(path, tmp_path / "measures.h5", ["gaussian:1e-2"], measures=("mean",),
                                   options={c: MeasureOptions() for c in "xz"}, noise_seed=1, source_hash="abc",
                                   chunk=4, allow_partial=True, progress=False)
    f = mf.MeasuresFile(out)
    assert f.conditions == ("clean", "gaussian_1e-2") and f.layout["clean"] == {"mean": ["x", "z"]}
    clean = f.read("clean", (("mean", "x"), ("mean", "z")), [0, 2])
    np.testing.assert_allclose(clean, rows.m.mean(axis=1).transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(f.labels(), ds.read_labels(path))
    with pytest.raises(ValueError, match="NaN or inf"):  # runs not simulated are not measured
        f.read("clean", (("mean", "x"),), [1])


def test_row_writer_and_targets(tmp_path):
    def fill(f):
        rowfile.preallocated(f, "a", (3, 2), np.float32, fill=np.nan)
        rowfile.preallocated(f, "done", (3,), bool, fill=False)
        f.create_dataset("plain", data=np.zeros((3, 2)), compression="gzip")

    path = rowfile.create(tmp_path / "r.h5", fill, force=False, example="r.h5", eager_bytes=0)
    with rowfile.RowWriter(path, ["a", "done"], what="test file") as w:
        w.put("a", [2, 0], [[1, 2], [3, 4]])
        w.commit()
        w.put("done", [2, 0], [True, True])
        w.commit()
        with pytest.raises(ValueError, match=r"a rows of shape \(3,\) do not fit"):
            w.put("a", [1], [[1, 2, 3]])
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["a"][...], [[3, 4], [np.nan, np.nan], [1, 2]])
        np.testing.assert_array_equal(f["done"][...], [True, False, True])
    with pytest.raises(ValueError, match="not a preallocated raw dataset"):
        rowfile.RowWriter(path, ["plain"], what="test file")
    with pytest.raises(FileExistsError, match="--resume .* --force"):
        rowfile.fresh_target(path, force=False, example="r.h5")
    assert rowfile.fresh_target(path, force=True, example="r.h5") == rowfile.staging_path(path)
    assert rowfile.staging_path(path).name == "r.incomplete.h5" and rowfile.resume_target(path) == path
    with pytest.raises(IsADirectoryError, match="expected a file name such as r.h5"):
        rowfile.fresh_target(tmp_path, force=False, example="r.h5")
    with pytest.raises(FileNotFoundError, match="output directory does not exist"):
        rowfile.fresh_target(tmp_path / "no" / "r.h5", force=False, example="r.h5")
