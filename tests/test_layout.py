"""The movie layouts and their conversions (jaxmag.layout)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmag import layout


def _solver_frames(rng, runs=2, T=3, ny=4, nx=5, C=2):
    return rng.standard_normal((runs, T, 1, ny, nx, C)).astype(np.float32)


def test_conversions_name_the_same_cell():
    frames = _solver_frames(np.random.default_rng(0))
    stored = layout.stored_from_solver(frames)
    measure = layout.measure_from_solver(frames)
    assert stored.shape == (2, 3, 2, 4, 5) and measure.shape == (2, 2, 3, 4, 5)
    # run 1, frame 2, component 1, y 3, x 4: one value under every layout
    assert stored[1, 2, 1, 3, 4] == frames[1, 2, 0, 3, 4, 1] == measure[1, 1, 2, 3, 4]
    np.testing.assert_array_equal(layout.measure_from_stored(stored), measure)
    np.testing.assert_array_equal(layout.stored_from_measure(measure), stored)
    assert isinstance(stored, np.ndarray)  # NumPy in, NumPy out


def test_conversions_trace_under_jit():
    frames = jnp.asarray(_solver_frames(np.random.default_rng(1)))
    out = jax.jit(lambda f: layout.stored_from_measure(layout.measure_from_solver(f)))(frames)
    np.testing.assert_array_equal(np.asarray(out), layout.stored_from_solver(np.asarray(frames)))


def test_wrong_rank_or_thick_film_is_refused():
    with pytest.raises(ValueError, match="5-d array"):
        layout.measure_from_stored(np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match="nz = 2"):
        layout.stored_from_solver(np.zeros((1, 2, 2, 4, 4, 3)))


def test_dataset_axes_attribute_is_the_stored_layout(tmp_path):
    import h5py

    from jaxmag.io import dataset as ds

    spec = ds.FileSpec(config_text="", config_hash="0", seed=0, num_runs=2, run_start=0, num_rows=2, num_frames=3,
                       components="xz", ny=4, nx=5, store_dtype="float32", cell_size_m=(1e-9, 1e-9, 1e-9),
                       t=np.arange(3, dtype=np.float64))
    path = ds.create_file(tmp_path / "d.h5", spec)
    with h5py.File(path) as f:
        assert tuple(f["m"].attrs["axes"].split(",")) == layout.STORED_AXES
        assert f["m"].shape == (2, 3, 2, 4, 5)
