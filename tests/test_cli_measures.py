"""Dataset-level measures (Python API and ``jaxmag measures``) and ``jaxmag noise-estimate``."""
from __future__ import annotations

import json

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmag.io.measures_file as mf
from jaxmag.io.rowfile import staging_path
from jaxmag.cli import main
from jaxmag.config import Config, MeasuresConfig, NoiseConfig, config_hash, loads_config
from jaxmag.assemble import compute_measures_file
from jaxmag.measures import compute_measures
from jaxmag.noise import add_gaussian, apply_noise, noise_key, parse_noise_spec

N, T, NY, NX = 5, 12, 6, 7
COMPONENTS = "xz"
RUN_START = 100  # noise keys must use the global run index


def make_config() -> Config:
    return Config().replace(measures=MeasuresConfig(num_states=3, binning="quantile"), noise=NoiseConfig(seed=9))


def write_dataset(path, done=None, seed=0) -> np.ndarray:
    """A tiny dataset in the layout of `jaxmag simulate`; returns /m."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((N, T, len(COMPONENTS), NY, NX)).astype(np.float32) * 0.3
    m[:, :, 0] += 0.8
    labels = rng.integers(0, 3, (N, NY, NX)).astype(np.uint8)  # blob ids: copied as stored
    with h5py.File(path, "w") as f:
        f["m"] = m
        f["labels"] = labels
        f["done"] = np.ones(N, bool) if done is None else np.asarray(done, bool)
        f["run_index"] = np.arange(N, dtype=np.int64) + RUN_START  # rows of a part file
        f.attrs["components"] = COMPONENTS
        f.attrs["config"] = make_config().to_toml()
        f.attrs["seed"] = 0
    return m


def expected_maps(m: np.ndarray, spec_text: str, seed: int = 9) -> dict[str, np.ndarray]:
    """In-memory computation, run by run and component by component: {measure: (N, C, ny, nx)}."""
    spec = parse_noise_spec(spec_text)
    options = make_config().measures.options().kwargs()
    out = {}
    for r in range(N):
        for c_i, comp in enumerate(COMPONENTS):
            x = jnp.asarray(m[r, :, c_i])
            key = jax.random.fold_in(noise_key(seed, RUN_START + r, spec), ord(comp))
            maps = compute_measures(apply_noise(x, spec, key), **options)
            for name, value in maps.items():
                out.setdefault(name, np.zeros((N, len(COMPONENTS), NY, NX), np.float32))[r, c_i] = value
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "data.h5"
    return path, write_dataset(path)


@pytest.fixture(scope="module")
def full_output(dataset, tmp_path_factory):
    path, _ = dataset
    out = tmp_path_factory.mktemp("out") / "measures.h5"
    compute_measures_file(path, out, ["gaussian:1e-2", "speckle:1e-1"], chunk=2, progress=False)
    return out


def read_maps(path, condition) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {m: np.stack([f[f"{condition}/{m}/{c}"][...] for c in COMPONENTS], axis=1)
                for m in ("mean", "std", "latent_entropy")}


def test_layout_labels_and_attributes(dataset, full_output):
    path, _ = dataset
    with h5py.File(full_output, "r") as f, h5py.File(path, "r") as src:
        for cond in ("clean", "gaussian_1e-2", "speckle_1e-1"):
            assert f[cond]["done"][...].all()
            for m in ("mean", "std", "latent_entropy"):
                for c in COMPONENTS:
                    d = f[f"{cond}/{m}/{c}"]
                    assert d.shape == (N, NY, NX) and d.dtype == np.float32
        np.testing.assert_array_equal(f["labels"][...], src["labels"][...])
        assert f["labels"].dtype == np.uint8
        assert f.attrs["source_config_hash"] == config_hash(loads_config(src.attrs["config"]))
        assert json.loads(f.attrs["measure_options"])["binning"] == "quantile"
        assert f.attrs["noise_seed"] == 9
        assert f["speckle_1e-1"].attrs["variance"] == pytest.approx(0.1)


@pytest.mark.parametrize("condition,spec", [("clean", "clean"), ("gaussian_1e-2", "gaussian:1e-2"),
                                            ("speckle_1e-1", "speckle:1e-1")])
def test_chunked_streaming_equals_in_memory(dataset, full_output, condition, spec):
    _, m = dataset
    got, want = read_maps(full_output, condition), expected_maps(m, spec)
    for name in got:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=f"{condition}/{name}")


def test_chunk_size_does_not_change_results(dataset, full_output, tmp_path):
    path, _ = dataset
    out = compute_measures_file(path, tmp_path / "c5.h5", ["gaussian:1e-2"], chunk=5, progress=False)
    for cond in ("clean", "gaussian_1e-2"):
        a, b = read_maps(full_output, cond), read_maps(out, cond)
        # Same noise draws; XLA may round a reduction differently for another batch shape (1 ulp).
        np.testing.assert_array_equal(a["latent_entropy"], b["latent_entropy"])
        for name in ("mean", "std"):
            np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7)


def test_interrupted_run_resumes_to_the_same_result(dataset, full_output, tmp_path, monkeypatch):
    path, _ = dataset
    out = tmp_path / "resumed.h5"
    real, calls = mf._chunk_measures, []

    def interrupt_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:  # three conditions per chunk: stop during the second chunk
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(mf, "_chunk_measures", interrupt_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        compute_measures_file(path, out, ["gaussian:1e-2", "speckle:1e-1"], chunk=2, progress=False)
    with h5py.File(out, "r") as f:
        assert f["clean/done"][...].tolist() == [True, True, False, False, False]
        assert np.isnan(f["clean/mean/x"][2:]).all()
    monkeypatch.setattr(mf, "_chunk_measures", real)
    with pytest.raises(FileExistsError, match="--resume"):
        compute_measures_file(path, out, ["gaussian:1e-2", "speckle:1e-1"], chunk=2, progress=False)
    compute_measures_file(path, out, ["gaussian:1e-2", "speckle:1e-1"], chunk=2, resume=True, progress=False)
    for cond in ("clean", "gaussian_1e-2", "speckle_1e-1"):
        a, b = read_maps(full_output, cond), read_maps(out, cond)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


def test_resume_adds_new_noise_conditions_and_keeps_the_old_file_until_done(dataset, full_output, tmp_path,
                                                                          monkeypatch):
    # `jaxmag run` after a change of [noise] resumes the measures file with more conditions.
    path, _ = dataset
    out = tmp_path / "grown.h5"
    compute_measures_file(path, out, ["gaussian:1e-2"], chunk=5, progress=False)
    before = out.read_bytes()
    real = mf._stream

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mf, "_stream", killed)
    with pytest.raises(KeyboardInterrupt):
        compute_measures_file(path, out, ["gaussian:1e-2", "speckle:1e-1"], chunk=2, resume=True, progress=False)
    assert out.read_bytes() == before  # the finished file is untouched until the grown one is complete
    assert staging_path(out).exists()
    monkeypatch.setattr(mf, "_stream", real)
    compute_measures_file(path, out, ["speckle:1e-1"], chunk=2, resume=True, progress=False)
    assert not staging_path(out).exists()
    with h5py.File(out, "r") as f:
        assert sorted(n for n in f if n != "labels") == ["clean", "gaussian_1e-2", "speckle_1e-1"]
        assert all(f[f"{n}/done"][...].all() for n in ("clean", "gaussian_1e-2", "speckle_1e-1"))
    for cond in ("clean", "gaussian_1e-2", "speckle_1e-1"):  # same maps as computing them all at once
        a, b = read_maps(full_output, cond), read_maps(out, cond)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


def test_resume_with_other_options_refuses_and_leaves_the_file_alone(dataset, tmp_path):
    path, _ = dataset
    out = tmp_path / "m.h5"
    compute_measures_file(path, out, chunk=5, progress=False)
    before = read_maps(out, "clean")
    with pytest.raises(ValueError, match="cannot resume: attribute 'measure_options'"):
        compute_measures_file(path, out, config=MeasuresConfig(num_states=5), resume=True, progress=False)
    after = read_maps(out, "clean")
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    # --force starts over with the new options.
    compute_measures_file(path, out, config=MeasuresConfig(num_states=5), force=True, progress=False)
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["measure_options"])["num_states"] == 5


def test_unfinished_runs_refused_unless_allow_partial(tmp_path):
    path = tmp_path / "partial.h5"
    m = write_dataset(path, done=[True, False, True, True, False])
    with pytest.raises(ValueError, match="2 of 5 runs are not done"):
        compute_measures_file(path, tmp_path / "o.h5", progress=False)
    assert not (tmp_path / "o.h5").exists()
    compute_measures_file(path, tmp_path / "o.h5", allow_partial=True, chunk=5, progress=False)
    with h5py.File(tmp_path / "o.h5", "r") as f:
        assert f["clean/done"][...].tolist() == [True, False, True, True, False]
        assert np.isnan(f["clean/std/z"][1]).all()
        np.testing.assert_allclose(f["clean/mean/z"][3], m[3, :, 1].mean(axis=0), atol=1e-6)


# ---------------------------------------------------------------------- command line
def test_cli_measures_and_user_errors(dataset, full_output, tmp_path, capsys):
    path, _ = dataset
    out = tmp_path / "cli.h5"
    args = ["measures", str(path), "--out", str(out), "--noise", "gaussian:1e-2", "--chunk", "2", "--quiet"]
    assert main(args) == 0
    assert "gaussian:1e-2" in capsys.readouterr().out  # printed as KIND:LEVEL
    for cond in ("clean", "gaussian_1e-2"):
        a, b = read_maps(full_output, cond), read_maps(out, cond)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    assert main(args) == 2
    assert "exists; pass --resume" in capsys.readouterr().err
    assert main(["measures", str(path), "--out", str(tmp_path / "x.h5"), "--noise", "poisson:1"]) == 2
    assert "accepted forms" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
    assert main(["measures", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x.h5")]) == 2
    assert "dataset not found" in capsys.readouterr().err


def test_cli_noise_estimate_on_npy_and_dataset(tmp_path, capsys):
    rng = np.random.default_rng(2)
    base = np.cumsum(rng.standard_normal((40, 1, 1)) * 0.1, axis=0) + np.linspace(0, 1, 16 * 16).reshape(1, 16, 16)
    movie = np.asarray(add_gaussian(jnp.asarray(base, jnp.float32), 1e-2, jax.random.key(0)))
    np.save(tmp_path / "movie.npy", movie)
    assert main(["noise-estimate", str(tmp_path / "movie.npy"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["gaussian_variance"] == pytest.approx(1e-2, rel=0.15)
    assert result["background_pixels"] == 256

    path = tmp_path / "data.h5"
    write_dataset(path)
    assert main(["noise-estimate", str(path), "--run", "2", "--component", "z"]) == 0
    text = capsys.readouterr().out
    assert "run 2 component z" in text and "gaussian (x + n)" in text and "speckle" in text
    assert main(["noise-estimate", str(path), "--component", "y"]) == 2
    assert "--component must be one of x, z" in capsys.readouterr().err


def test_noise_estimate_reads_a_tiff_stack(tmp_path, capsys):
    import tifffile

    from jaxmag.cli import main

    rng = np.random.default_rng(3)
    movie = (0.5 + rng.normal(0.0, 0.1, (24, 16, 16))).astype(np.float32)  # sigma^2 = 1e-2 on a flat signal
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    assert main(["noise-estimate", str(tmp_path / "movie.tif")]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("gaussian"))
    assert abs(float(line.split("=")[1]) / 1e-2 - 1) < 0.1


def test_fixed_binning_uses_each_components_own_range(dataset, tmp_path):
    """m_x near 0.8 and m_z near 0 need different fixed ranges (docs/calibration.md): each
    component's latent entropy is binned on its own ``fixed_range_<c>``."""
    path, m = dataset
    mconf = MeasuresConfig(num_states=4, binning="fixed", fixed_range_x=(0.2, 1.4), fixed_range_z=(-0.6, 0.6))
    out = compute_measures_file(path, tmp_path / "fixed.h5", config=Config().replace(measures=mconf), progress=False)
    got = read_maps(out, "clean")["latent_entropy"]
    for c_i, (comp, rng) in enumerate((("x", (0.2, 1.4)), ("z", (-0.6, 0.6)))):
        ref = compute_measures(jnp.asarray(m[:, :, c_i]), measures=("latent_entropy",), num_states=4,
                               binning="fixed", fixed_range=rng)["latent_entropy"]
        np.testing.assert_allclose(got[:, c_i], np.asarray(ref), atol=1e-6)
    shared = compute_measures(jnp.asarray(m[:, :, 0]), measures=("latent_entropy",), num_states=4,
                              binning="fixed", fixed_range=(-1.0, 1.0))["latent_entropy"]
    assert not np.allclose(got[:, 0], np.asarray(shared))  # the shared default range was not used for x
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["fixed_ranges"]) == {"x": [0.2, 1.4], "z": [-0.6, 0.6]}
    with pytest.raises(ValueError, match="fixed_range_z"):
        loads_config("[measures]\nfixed_range_z = [0.5, 0.1]")
