"""Data parallelism over every device of every process, with ``jax.sharding``.

One code path for 1 device, many local devices and many hosts: a 1-D ``Mesh`` over all
devices with axis ``"data"``; batches are sharded along their first axis
(``NamedSharding(mesh, P("data"))``), parameters and optimiser state are replicated
(``NamedSharding(mesh, P())``), and the train/eval steps are ``jax.jit`` with those shardings,
so XLA inserts the gradient all-reduce. The global batch must be divisible by the number of
devices (checked by ``check_batch_size``).

Multi-host: call ``initialize_distributed`` first (before any other JAX call). Each process
then holds only its own contiguous slice of every global batch (``process_slice``) and
``global_batch`` assembles the global array with ``jax.make_array_from_process_local_data``.
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> bool:
    """Start ``jax.distributed`` if asked to, from arguments or environment variables.

    Arguments win over ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``.
    Nothing is started (returns False) when neither names a coordinator. On CPU, cross-process
    collectives use gloo.
    """
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and os.environ.get("JAX_PROCESS_ID"):
        process_id = int(os.environ["JAX_PROCESS_ID"])
    if coordinator is None:
        if num_processes not in (None, 1) or process_id not in (None, 0):
            raise ValueError("--num-processes/--process-id need --coordinator (or JAX_COORDINATOR_ADDRESS)")
        return False
    if num_processes is None or process_id is None:
        raise ValueError("a coordinator needs both the number of processes and this process's id")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process id {process_id} is out of range for {num_processes} processes")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    return True


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Shard the leading (batch) axis over the ``"data"`` axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Replicate on every device of the mesh."""
    return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
    """Raise ``ValueError`` unless the global batch splits evenly over devices and processes."""
    n_dev = mesh.devices.size
    if global_batch % n_dev:
        raise ValueError(
            f"global batch size {global_batch} is not divisible by the {n_dev} devices; "
            f"choose a multiple of {n_dev} (training.batch_size)"
        )
    if global_batch % jax.process_count():
        raise ValueError(f"global batch size {global_batch} is not divisible by {jax.process_count()} processes")


def process_slice(global_batch: int) -> slice:
    """The contiguous rows of a global batch that this process loads.

    The mesh lists devices process by process (``jax.devices()`` order), so process ``p``
    owns rows ``[p*B/P, (p+1)*B/P)``.
    """
    per = global_batch // jax.process_count()
    start = jax.process_index() * per
    return slice(start, start + per)


def global_batch(local: np.ndarray, sharding: NamedSharding, global_batch_size: int) -> jax.Array:
    """Assemble this process's rows ``local (B/P, ...)`` into the global sharded ``(B, ...)`` array."""
    shape = (global_batch_size,) + tuple(local.shape[1:])
    return jax.make_array_from_process_local_data(sharding, np.ascontiguousarray(local), shape)


def replicate(value: np.ndarray, mesh: Mesh) -> jax.Array:
    """A host array (identical on every process) as a replicated global array on ``mesh``."""
    value = np.asarray(value)
    return jax.make_array_from_callback(value.shape, replicated(mesh), lambda index: value[index])


_barriers = 0


def barrier(name: str, timeout_s: float = 900.0) -> None:
    """Wait until every process reaches this point (no-op with one process).

    Gloo creates its CPU communicator lazily at the first collective and gives the peers only
    30 s to arrive; processes that compile at different speeds miss that. This barrier uses
    the coordination service's key-value store instead, with a generous timeout, so the first
    collective starts in step.
    """
    global _barriers
    if jax.process_count() == 1:
        return
    _barriers += 1
    from jax._src import distributed  # the public multihost_utils barrier is itself a collective

    client = distributed.global_state.client
    if client is None or not hasattr(client, "wait_at_barrier"):
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
        return
    client.wait_at_barrier(f"jaxmag_{name}_{_barriers}", int(timeout_s * 1000))
