"""The movie layouts of jaxmag, and the only conversions between them.

Three layouts exist because each serves its consumer; every conversion goes through this
module so that no caller re-derives an axis order.

* **solver frames** ``(..., T, nz, ny, nx, C)``: what ``drivers.movie_simulator`` returns, the
  vector components last like the magnetisation state ``(nz, ny, nx, 3)``. Films have nz = 1.
* **stored movie** ``(run, frame, component, y, x)`` (``STORED_AXES``): the dataset file's ``/m``
  (its ``axes`` attribute), ``SimulationData.m`` and ``io.dataset.read_runs``. Frame-major,
  so a batch of frames is one contiguous HDF5 hyperslab.
* **measure input** ``(run, component, frame, y, x)`` (``MEASURE_AXES``): what
  ``noise.add_measurement_noise`` and ``channels.movie_maps`` take. Component-major, so each
  component's ``(T, ny, nx)`` movie is contiguous for the temporal reductions.

The functions use array methods only, so NumPy arrays stay NumPy and JAX arrays stay JAX
(traceable under ``jit``/``vmap``).
"""

from __future__ import annotations

from typing import Any

STORED_AXES = ("run", "frame", "component", "y", "x")
MEASURE_AXES = ("run", "component", "frame", "y", "x")


def _check_rank(movies: Any, rank: int, layout: str) -> None:
    if movies.ndim != rank:
        raise ValueError(f"expected a {rank}-d array in the {layout} layout, got shape {tuple(movies.shape)}")


def measure_from_stored(movies: Any) -> Any:
    """``(run, frame, component, y, x) -> (run, component, frame, y, x)``."""
    _check_rank(movies, 5, "stored (run, frame, component, y, x)")
    return movies.swapaxes(1, 2)


def stored_from_measure(movies: Any) -> Any:
    """``(run, component, frame, y, x) -> (run, frame, component, y, x)``."""
    _check_rank(movies, 5, "measure (run, component, frame, y, x)")
    return movies.swapaxes(1, 2)


def stored_from_solver(frames: Any) -> Any:
    """Batched solver frames of a film ``(run, T, 1, ny, nx, C) -> (run, T, C, ny, nx)``."""
    _check_rank(frames, 6, "solver (run, T, nz, ny, nx, C)")
    if frames.shape[2] != 1:
        raise ValueError(f"the movie layouts hold films (nz = 1); the solver frames have nz = {frames.shape[2]}")
    return frames[:, :, 0].transpose(0, 1, 4, 2, 3)


def measure_from_solver(frames: Any) -> Any:
    """Batched solver frames of a film ``(run, T, 1, ny, nx, C) -> (run, C, T, ny, nx)``."""
    _check_rank(frames, 6, "solver (run, T, nz, ny, nx, C)")
    if frames.shape[2] != 1:
        raise ValueError(f"the movie layouts hold films (nz = 1); the solver frames have nz = {frames.shape[2]}")
    return frames[:, :, 0].transpose(0, 4, 1, 2, 3)
