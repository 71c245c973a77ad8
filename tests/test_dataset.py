"""The dataset file: layout, agreement of labels and material maps, crash-safe writes, resume
checks, shards and merge, multi-device sharding, reproducibility per (seed, run index)."""
import dataclasses
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import jax
import numpy as np
import pytest

from jaxmag import drivers
from jaxmag.config import load_config
from jaxmag.io import dataset as ds
from jaxmag.assemble import batch_simulator, build_run, file_spec, frame_times, resolve_config, simulate, step_counts
from jaxmag.simulate import local_mesh, thermal_seed

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.toml"


@pytest.fixture(scope="module")
def tiny():
    return load_config(TINY)


@pytest.fixture(scope="module")
def written(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("ds") / "data.h5"
    simulate(tiny, out=path, progress=False)
    return path


def test_layout_and_attributes(tiny, written):
    n, s, g = tiny.dataset.num_runs, tiny.simulation, tiny.grid
    with h5py.File(written, "r") as f:
        assert f["m"].shape == (n, s.num_frames, 2, g.ny, g.nx) and f["m"].dtype == np.float32
        assert f["m"].chunks == (1, s.num_frames, 2, g.ny, g.nx)
        assert f["labels"].shape == (n, g.ny, g.nx) and f["labels"].dtype == np.uint8
        assert f["material/A"].shape == f["material/Ku"].shape == (n, g.ny, g.nx)
        assert f["material/easy_axis"].shape == (n, g.ny, g.nx, 3)
        assert f["done"].dtype == bool and f["done"][...].all()
        np.testing.assert_array_equal(f["run_index"][...], np.arange(n))
        np.testing.assert_allclose(f["t"][...], 1e-12 + 5e-13 * np.arange(1, s.num_frames + 1), rtol=1e-12)
        assert f.attrs["components"] == "xz" and f.attrs["seed"] == 7
        np.testing.assert_array_equal(f.attrs["cell_size_m"], [4e-9] * 3)
        assert f.attrs["jaxmag_version"]
        assert resolve_config(TINY).to_toml() == f.attrs["config"]
        m = f["m"][...]
    assert np.all(np.isfinite(m)) and np.all(np.abs(m) <= 1.0 + 1e-6)
    assert m[:, :, 0].mean() > 0.9  # started along +x, short movie: still close to +x


def test_labels_and_material_maps_agree(tiny, written):
    mat, d = tiny.material, tiny.defects
    rows = ds.read_runs(written)
    A0, K0 = np.float32(mat.A_ex), np.float32(mat.K_u)
    for i in range(tiny.dataset.num_runs):
        labels, A, K, u = rows["labels"][i], rows["A"][i], rows["Ku"][i], rows["easy_axis"][i]
        assert sorted(np.unique(labels)) == [0, 1, 2, 3, 4]
        for k, factor in zip((1, 2, 3, 4), (d.factor_a, d.factor_a, d.factor_b, d.factor_b)):
            assert np.all(A[labels == k] == np.float32(factor * mat.A_ex)), (i, k)
            assert np.all(K[labels == k] == np.float32(factor * mat.K_u)), (i, k)
        assert np.all(A[labels == 0] == A0) and np.all(K[labels == 0] == K0)
        assert np.all(u[labels == 0] == np.float32([1, 0, 0]))
        tilt = np.abs(np.arctan2(u[..., 1], u[..., 0]))
        assert np.all(tilt[labels > 0] > 0)  # per-blob rotation drawn from N(0, 10°)
        # the labels are those of build_run: the file holds what the simulation used
        np.testing.assert_array_equal(labels, build_run(tiny, i).labels)


def test_run_is_reproducible_alone(tiny, written):
    """Row i equals run i simulated by itself with the solver (no batch, no sharding)."""
    i = 4
    spec = build_run(tiny, i)
    assert spec.thermal_seed == thermal_seed(7, i)
    burn, spf = step_counts(tiny)
    s = tiny.simulation
    one = drivers.movie_simulator(tiny.grid.to_grid(), dt=s.dt, burn_in_steps=burn, steps_per_frame=spf, num_frames=s.num_frames, terms=s.terms, components=s.components)
    frames = np.asarray(jax.jit(one)(spec.material, spec.m0, spec.key))  # (T, 1, ny, nx, C)
    with h5py.File(written, "r") as f:
        row = f["m"][i]
    np.testing.assert_allclose(row, np.moveaxis(frames[:, 0], -1, 1), atol=2e-6)
    assert frame_times(tiny).shape == (s.num_frames,)


def test_in_memory_equals_file_and_independent_of_batch(tiny, written):
    data = simulate(tiny, batch=3, progress=False)
    # one compiled program per batch shape, shared across seeds and calls: no recompiles
    step = batch_simulator(tiny, local_mesh())
    assert step is batch_simulator(resolve_config(tiny, seed=9, num=100), local_mesh())
    compiled = step._cache_size()
    other = simulate(tiny, batch=3, num=3, seed=3, progress=False)
    assert step._cache_size() == compiled
    assert not np.array_equal(other.labels, data.labels[:3])  # another seed, other films
    rows = ds.read_runs(written)
    np.testing.assert_array_equal(data.m, rows["m"])  # batch 4 (file) vs 3: bit for bit
    np.testing.assert_array_equal(data.labels, rows["labels"])
    np.testing.assert_array_equal(data.A, rows["A"])
    np.testing.assert_array_equal(data.run_index, np.arange(6))


def _raw_ranges(path: Path) -> list[tuple[int, int]]:
    ranges = []
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                if obj.chunks is None:
                    ranges.append((obj.id.get_offset(), obj.id.get_storage_size()))
                else:
                    for c in range(obj.id.get_num_chunks()):
                        info = obj.id.get_chunk_info(c)
                        ranges.append((info.byte_offset, info.size))
        f.visititems(visit)
    return ranges


def _metadata_digest(path: Path, ranges) -> str:
    data = bytearray(path.read_bytes())
    for offset, size in ranges:
        data[offset : offset + size] = b"\0" * size
    return hashlib.sha256(data).hexdigest()


def test_writes_touch_raw_data_only(tiny, tmp_path):
    """The crash-safety argument: after creation, writing runs changes no metadata byte."""
    config = resolve_config(tiny)
    spec = file_spec(config, range(0, 6))
    path = ds.create_file(tmp_path / "d.h5", spec)
    ranges = _raw_ranges(path)
    assert len(ranges) == 6 + 7  # six /m chunks allocated up front + seven contiguous datasets
    before = _metadata_digest(path, ranges)
    rng = np.random.default_rng(0)
    rows = ds.RunRows(
        run_index=np.array([1, 2]),
        m=rng.normal(size=(2,) + spec.m_shape[1:]).astype(np.float32),
        labels=np.ones((2, 16, 16), np.uint8),
        A=np.ones((2, 16, 16), np.float32),
        Ku=np.ones((2, 16, 16), np.float32),
        easy_axis=np.ones((2, 16, 16, 3), np.float32),
    )
    with ds.DatasetWriter(path) as w:
        w.write(rows)
    assert _raw_ranges(path) == ranges
    assert _metadata_digest(path, ranges) == before
    np.testing.assert_array_equal(ds.pending_rows(path), [0, 3, 4, 5])
    np.testing.assert_array_equal(ds.read_runs(path, [2])["m"][0], rows.m[1])
    with ds.DatasetWriter(path) as w, pytest.raises(ValueError, match="outside the rows"):
        w.write(dataclasses.replace(rows, run_index=np.array([6, 7])))


def test_existing_file_and_resume_checks(tiny, written, tmp_path):
    with pytest.raises(FileExistsError, match="--resume .* --force"):
        simulate(tiny, out=written, progress=False)
    other = tiny.replace(simulation=dataclasses.replace(tiny.simulation, dt=5e-14))
    with pytest.raises(ValueError, match=r"different config \(simulation.dt: 1e-13 in the file, 5e-14 now\)"):
        simulate(other, out=written, resume=True, progress=False)
    with pytest.raises(ValueError, match="dataset.seed"):
        simulate(tiny, out=written, seed=8, resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        simulate(tiny, out=tmp_path / "none.h5", resume=True, progress=False)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="junk.h5 is not an HDF5 file"):
        simulate(tiny, out=tmp_path / "junk.h5", resume=True, progress=False)
    # a complete file resumes to a no-op, also with another batch size
    before = ds.read_runs(written)["m"]
    simulate(tiny, out=written, resume=True, batch=2, progress=False)
    np.testing.assert_array_equal(ds.read_runs(written)["m"], before)


def test_force_overwrites_and_failed_start_leaves_no_file(tiny, tmp_path):
    path = tmp_path / "d.h5"
    path.write_bytes(b"old")
    simulate(tiny, out=path, num=2, batch=2, force=True, progress=False)
    assert ds.summary(path).runs_done == 2
    crowded = tiny.replace(defects=dataclasses.replace(tiny.defects, size_min=70, size_max=80))
    with pytest.raises(ValueError, match="cannot fit"):
        simulate(crowded, out=tmp_path / "bad.h5", progress=False)
    assert not (tmp_path / "bad.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]  # no temporary left either


def test_shards_merge_virtual_and_copy(tiny, written, tmp_path):
    for pid in range(2):
        simulate(tiny, out=tmp_path / "data.h5", shard_index=pid, num_shards=2, batch=2, progress=False)
    shards = sorted(tmp_path.glob("data.shard*-of-002.h5"))
    assert [p.name for p in shards] == ["data.shard000-of-002.h5", "data.shard001-of-002.h5"]
    with h5py.File(shards[1], "r") as f:
        assert f.attrs["run_start"] == 3 and f["m"].shape[0] == 3
    full = ds.read_runs(written)
    virtual = ds.merge(shards, tmp_path / "merged.h5")
    copied = ds.merge(shards, tmp_path / "copied.h5", copy=True)
    cwd = os.getcwd()
    os.chdir("/")  # virtual sources resolve relative to the merged file, not the working dir
    try:
        for path, is_virtual in ((virtual, True), (copied, False)):
            got = ds.read_runs(path)
            for key in ("m", "labels", "A", "Ku", "easy_axis", "done", "run_index", "t"):
                np.testing.assert_array_equal(got[key], full[key], err_msg=key)
            info = ds.summary(path)
            assert info.virtual is is_virtual and info.runs_done == 6
            assert info.config_hash == ds.summary(written).config_hash
    finally:
        os.chdir(cwd)
    with pytest.raises(FileExistsError):
        ds.merge(shards, virtual)
    with pytest.raises(ValueError, match="overlapping"):
        ds.merge([shards[0], shards[0]], tmp_path / "x.h5")
    other = resolve_config(tiny, seed=8)
    ds.create_file(tmp_path / "other.h5", file_spec(other, range(3, 6)))
    with pytest.raises(ValueError, match="different config"):
        ds.merge([shards[0], tmp_path / "other.h5"], tmp_path / "y.h5")
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()


def test_summary_text(written):
    text = ds.summary(written).format()
    assert "runs done:     6 / 6" in text and "(6, 4, 2, 16, 16) float32" in text and "config hash:" in text


_MULTI = textwrap.dedent(
    """
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, numpy as np
    from jaxmag.assemble import simulate
    assert jax.local_device_count() == 4
    four = simulate(sys.argv[1], num=6, batch=3, progress=False)  # batch 3 -> 4 over 4 devices, padded
    one = simulate(sys.argv[1], num=6, batch=3, progress=False, devices=jax.local_devices()[:1])
    np.save(sys.argv[2], np.stack([four.m, one.m]))
    """
)


def test_four_host_devices_match_one(written, tmp_path):
    """Sharding over 4 devices gives the 1-device result bit for bit (same XLA flags). Against
    the default-flag process the compiled CPU code differs slightly (float32 rounding, then
    amplified by the dynamics), hence a tolerance there."""
    out = tmp_path / "m4.npy"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, "-c", _MULTI, str(TINY), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    four, one = np.load(out)
    np.testing.assert_array_equal(four, one)
    np.testing.assert_allclose(four, ds.read_runs(written)["m"], atol=2e-4)


def test_a_file_from_before_a_config_key_existed_still_resumes(tiny, tmp_path):
    """A dataset written before `[simulation] solver` existed stores a config without it (and
    a hash over that): resuming with today's config (solver = "heun", the only solver then) is
    accepted; a real change of the physics is still refused, naming the key."""
    import tomllib

    from jaxmag.config import dump_toml

    spec = file_spec(tiny, range(tiny.dataset.num_runs))
    old = tomllib.loads(spec.config_text)
    del old["simulation"]["solver"]
    old_text = dump_toml(old)
    old_hash = hashlib.sha256(old_text.encode()).hexdigest()[:16]  # any hash today's rules do not give
    path = ds.create_file(tmp_path / "old.h5", dataclasses.replace(spec, config_text=old_text, config_hash=old_hash))
    assert ds.check_matches(path, spec) == path
    hotter = tiny.replace(material=dataclasses.replace(tiny.material, temperature=tiny.material.temperature + 1))
    with pytest.raises(ValueError, match="different config"):
        ds.check_matches(path, file_spec(hotter, range(tiny.dataset.num_runs)))


def test_resume_never_mixes_thermal_generators(tiny, written, tmp_path):
    """A file started by another thermal noise generator is read, but its pending rows are not finished."""
    import shutil

    from jaxmag.rng import THERMAL_GENERATOR

    with h5py.File(written, "r") as f:
        assert f.attrs["thermal_generator"] == THERMAL_GENERATOR
    legacy = tmp_path / "legacy.h5"
    shutil.copyfile(written, legacy)
    with h5py.File(legacy, "r+") as f:
        del f.attrs["thermal_generator"]  # as written before the attribute existed
    simulate(tiny, out=legacy, resume=True, progress=False)  # finished: nothing to mix, no error
    with h5py.File(legacy, "r+") as f:
        f["done"][1] = False
    before = legacy.read_bytes()
    with pytest.raises(ValueError, match=r"thermal noise generator 'jax.random.normal.*--force"):
        simulate(tiny, out=legacy, resume=True, progress=False)
    assert legacy.read_bytes() == before
