"""``[instrument]`` through the jobs: ``jaxmag simulate`` -> ``jaxmag measures`` (maps of the detector's
record, component p, on its pixels) -> ``jaxmag train`` (recorded films, ``RecordedSource``) and
``[study] components = ["p"]``.

One tiny dataset for the module: 8 runs of 16 x 16 cells of 4 nm, 6 frames, seen by a polar (z)
probe on pixels of 8 nm (2 x 2 cells: 8 x 8 pixels) with 1e4 photons per pixel, contrast 0.1 and
read noise 2 ADU.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag.assemble import compute_measures_file, dataset_config, instrument_plan
from jaxmag.cli import main
from jaxmag.config import StudyConfig, load_config
from jaxmag.instrument import Instrument, record
from jaxmag.io.dataset import read_labels, read_movies
from jaxmag.io.measures_file import RECORD_STREAM, MeasuresFile
from jaxmag.recording import pixel_labels

T, N, PIX = 6, 8, 8
CONFIG = """
base = "{tiny}"
[simulation]
num_frames = {T}
[dataset]
num_runs = {N}
[noise]
gaussian = [1e-2]
speckle = []
[instrument]
probe = "z"
pixel_size_m = 8e-9
photons_per_pixel = 1e4
contrast = 0.1
read_noise = 2.0
[model]
base_features = 4
depth = 1
[training]
epochs = 1
batch_size = 2
recipe = "robust_argmax"
[study]
measures = ["std"]
components = ["p"]
train_conditions = ["clean"]
"""


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    """(config path, dataset, measures file with clean and gaussian:1e-2), via the CLI."""
    tmp = tmp_path_factory.mktemp("instrument")
    cfg = tmp / "inst.toml"
    cfg.write_text(CONFIG.format(tiny=Path(__file__).resolve().parents[1] / "configs" / "tiny.toml", T=T, N=N))
    data, measures = tmp / "data.h5", tmp / "measures.h5"
    assert main(["simulate", str(cfg), "--out", str(data), "--no-progress"]) == 0
    assert main(["measures", str(data), "--out", str(measures), "--noise", "gaussian:1e-2", "--no-progress"]) == 0
    return cfg, data, measures


def test_measures_are_of_the_record_on_detector_pixels(films):
    cfg, data, measures = films
    f = MeasuresFile(measures)
    assert f.shape == (N, PIX, PIX)
    assert f.layout == {c: {m: ["p"] for m in ("latent_entropy", "mean", "std")} for c in ("clean", "gaussian_1e-2")}
    with h5py.File(measures, "r") as h:
        assert h.attrs["components"] == "p"
        rec = json.loads(h.attrs["recording"])
        assert rec["pixel_shape"] == [PIX, PIX] and rec["film_components"] == "xz" and rec["component"] == "p"
        assert rec["instrument"]["photons_per_pixel"] == 1e4
        assert "pixel" in h["labels"].attrs["meaning"]
    # the labels binned onto the pixels
    plan = instrument_plan(dataset_config(data), "xz")
    expect = np.asarray(pixel_labels(read_labels(data), plan))
    np.testing.assert_array_equal(f.labels(), expect)
    assert 0 < expect.mean() < 0.5

    # the record re-derived from the forward model: run r keyed split(fold_in(fold_in(key(seed), 0x5EC0), r))[0]
    seed = load_config(cfg).noise.seed
    m = read_movies(data, np.arange(N))
    inst = load_config(cfg).instrument
    base = jax.random.fold_in(jax.random.key(seed), RECORD_STREAM)
    counts = np.stack([np.asarray(record(jax.random.split(jax.random.fold_in(base, r))[0], jnp.asarray(m[r:r + 1]),
                                         "xz", inst, plan.operators))[0] for r in range(N)])
    level, scale = 1e4, 1e4 * 0.1  # gain I0 + offset, gain I0 c
    s = (counts - level) / scale  # (N, T, 8, 8) in units of Ms
    clean = f.read("clean", [("mean", "p"), ("std", "p")])
    np.testing.assert_allclose(clean[..., 0], s.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(clean[..., 1], s.std(axis=1), atol=1e-5)
    # "clean" is the detector's own noise: shot (1e4 photons) and read noise in units of Ms,
    # var = (I0 (1 + c s) + read²) / (I0 c)² ≈ 1e-2, beside m_z's own small fluctuations
    var_clean = float(np.mean(clean[..., 1] ** 2)) * T / (T - 1)
    assert 0.8e-2 < var_clean < 1.6e-2
    # the [noise] condition on top of the same record: its variance adds, the mean is unbiased
    noisy = f.read("gaussian_1e-2", [("mean", "p"), ("std", "p")])
    added = float(np.mean(noisy[..., 1] ** 2)) * T / (T - 1) - var_clean
    assert 0.7e-2 < added < 1.3e-2
    assert abs(float(np.mean(noisy[..., 0] - clean[..., 0]))) < 0.01


def test_measures_follow_the_config_not_the_dataset(films, tmp_path):
    """``--config`` without an instrument: the maps of m on cells, as before the instrument."""
    cfg, data, _ = films
    plain = load_config(cfg).replace(instrument=Instrument(enabled=False))
    out = compute_measures_file(data, tmp_path / "m.h5", config=plain, measures=("mean",), progress=False)
    f = MeasuresFile(out)
    assert f.shape == (N, 16, 16) and f.layout == {"clean": {"mean": ["x", "z"]}}
    np.testing.assert_allclose(f.read("clean", [("mean", "z")])[..., 0],
                               read_movies(data, np.arange(N))[:, :, 1].mean(axis=1), atol=1e-6)


def test_fixed_binning_needs_a_range_for_p(films, tmp_path):
    cfg, data, _ = films
    config = load_config(cfg)
    fixed = config.replace(measures=type(config.measures)(binning="fixed"))
    with pytest.raises(ValueError, match=r"fixed_range_p.*e\.g\. fixed_range_p = \[") as err:
        compute_measures_file(data, tmp_path / "m.h5", config=fixed, progress=False)
    lo, hi = (float(v) for v in str(err.value).split("e.g. fixed_range_p = [")[1].split("]")[0].split(","))
    assert -0.6 < lo < -0.2 and 0.2 < hi < 0.6  # the record: m_z near 0 plus detector noise of std 0.1
    assert not (tmp_path / "m.h5").exists()
    ranged = config.replace(measures=type(config.measures)(binning="fixed", fixed_range_p=(lo, hi)))
    out = compute_measures_file(data, tmp_path / "m.h5", config=ranged, measures=("latent_entropy",), progress=False)
    with h5py.File(out, "r") as h:
        assert json.loads(h.attrs["fixed_ranges"]) == {"p": [lo, hi]}
        assert np.all(np.isfinite(h["clean/latent_entropy/p"][...]))


@pytest.mark.slow
def test_recorded_source_from_dataset_matches_the_measures_file(films):
    from jaxmag.learn.recipe import get_recipe, make_source
    from jaxmag.learn.sources.measures import MeasuresSource

    cfg, data, measures = films
    config = load_config(cfg)
    inputs = (("std", "p"), ("mean", "p"))
    src = make_source(get_recipe("robust"), config, data_path=data, measures_path=None, inputs=inputs,
                      train_condition="clean")
    assert src.describe()["kind"] == "recorded" and src.shape == (N, PIX, PIX)
    # the fixed validation records are the measures file's clean record: same key rule, same maps
    raw, labels = src.raw_maps("val")
    idx = src.indices["val"]
    np.testing.assert_allclose(raw, MeasuresFile(measures).read("clean", inputs, idx), atol=1e-6)
    np.testing.assert_array_equal(labels, MeasuresFile(measures).labels(idx) > 0)
    assert src.labels_sha256 == MeasuresSource(measures, inputs, batch_size=2).labels_sha256  # evaluate_run's check
    x, y = next(iter(src.train_batches(0, jax.random.key(0))))
    assert x.shape == (2, PIX, PIX, 2) and y.shape == (2, PIX, PIX)


def test_inputs_must_be_on_p(films, tmp_path, capsys):
    cfg, data, measures = films
    for args in (["--data", str(data), "--inputs", "std:z"], ["--measures", str(measures), "--inputs", "mean:p,mean:x"],
                 ["--online", "--inputs", "std:p"]):
        assert main(["train", str(cfg), *args, "--out", str(tmp_path / "run")]) == 2
        assert not (tmp_path / "run").exists()
    err = capsys.readouterr().err
    assert "component 'p'" in err and "std:z" in err and "mean:x" in err and "--online" in err
    # a recipe that keeps one noise draw per film cannot record films anew each step
    from jaxmag.learn.recipe import get_recipe, make_source

    with pytest.raises(ValueError, match="fresh"):
        make_source(get_recipe("robust_fixed"), load_config(cfg), data_path=data, measures_path=None,
                    inputs=(("std", "p"),), train_condition="clean")


def test_study_components_accept_p():
    assert StudyConfig(components=("p",)).components == ("p",)
    with pytest.raises(ValueError, match="x, y, z or p"):
        StudyConfig(components=("q",))


def test_train_on_recorded_films(films, tmp_path):
    cfg, data, measures = films
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--data", str(data), "--inputs", "std:p", "--out", str(run), "--no-progress"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["inputs"] == ["std:p"] and info["source"]["kind"] == "recorded"
    assert info["source"]["image_shape"] == [PIX, PIX] and info["source"]["film_components"] == "xz"
    own = json.loads((run / "eval_clean.json").read_text())  # the test films' fixed records (RecordedSource)
    assert own["num_images"] == len(info["split"]["test"])
    # evaluated on the measures file's clean condition: the same records, so the same Dice
    assert main(["evaluate", str(run), "--measures", str(measures), "--condition", "clean"]) == 0
    again = json.loads((run / "eval_clean.json").read_text())
    assert again["measures_file"] == str(measures.resolve()) and again["num_images"] == own["num_images"]
    assert (again["tp"], again["fp"], again["fn"]) == (own["tp"], own["fp"], own["fn"])
    assert again["loss"] == pytest.approx(own["loss"], rel=1e-5)  # continuous in the inputs: the maps agree


@pytest.mark.slow
def test_study_over_the_record(films, tmp_path):
    """``jaxmag study`` on the instrument config: one unit, std:p, trained on recorded films."""
    from jaxmag.learn.pipeline import run_pipeline

    cfg, data, measures = films
    out = tmp_path / "study"
    out.mkdir()
    shutil.copy(data, out / "data.h5")  # the simulate stage then resumes a complete file: skipped
    result = run_pipeline(cfg, out, mode="study", progress=False, log=lambda _: None)
    rows = {(r["inputs"], r["eval_condition"]) for r in result["results"]}
    assert rows == {("std:p", "clean"), ("std:p", "gaussian_1e-2")}
    assert MeasuresFile(out / "measures.h5").layout == {c: {m: ["p"] for m in ("latent_entropy", "mean", "std")}
                                                        for c in ("clean", "gaussian_1e-2")}
    assert result["report"].is_file()
