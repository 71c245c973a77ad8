"""Checkpoints of a run, kept with orbax in ``RUN/checkpoints/{best,latest}``.

Each slot is an orbax ``CheckpointManager`` keeping one step (the epoch count), holding

- ``state``: ``{"step", "params", "opt_state", "key_data"}`` (arrays; the dropout key is stored
  as its raw ``key_data`` bits),
- ``meta``: JSON ``{"epoch", "best_dice", "best_epoch", "history"}``.

Saving writes a new step directory atomically (orbax finalises it by rename) before the old one
is removed, so an interrupted save never destroys the previous checkpoint. Restoring checks
everything and raises ``ValueError`` naming the folder if the checkpoint is missing, unreadable
or does not match the model, before anything in the run is modified. The resolved config,
split and normalisation statistics live beside the checkpoints in ``RUN/run.json``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxmag.io.errors import is_storage_error, write_error

SLOTS = ("best", "latest")


def _manager(directory: Path, slot: str, *, create: bool) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=1,
        create=create,
        # synchronous: the training loop depends on the file being complete when save returns
        enable_async_checkpointing=False,
    )
    return ocp.CheckpointManager(Path(directory).resolve() / slot, options=options)


def save(directory: str | Path, slot: str, step: int, state: dict[str, Any], meta: dict) -> None:
    """Save ``state`` (a pytree of arrays) and ``meta`` (JSON) as step ``step`` of ``slot``.

    Must be called by every process in a multi-host run (orbax coordinates the writes).
    """
    if slot not in SLOTS:
        raise ValueError(f"checkpoint slot must be one of {SLOTS}, got {slot!r}")
    try:
        _save(Path(directory), slot, step, state, meta)
    except Exception as exc:  # orbax wraps a full disk in several exception types
        cause = next((e for e in (exc, exc.__cause__, exc.__context__) if e is not None and is_storage_error(e)), None)
        if cause is None:
            raise
        raise write_error(Path(directory) / slot, cause,
                          hint="free some space and rerun with --resume (the previous checkpoint is kept)") from exc


def _save(directory: Path, slot: str, step: int, state: dict[str, Any], meta: dict) -> None:
    with _manager(directory, slot, create=True) as mngr:
        if step in mngr.all_steps():
            # a resumed run recomputing an epoch whose checkpoint survived the interruption:
            # the content is identical, so replace it.
            mngr.delete(step)
        mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
        mngr.wait_until_finished()


def exists(directory: str | Path, slot: str) -> bool:
    path = Path(directory) / slot
    if not path.is_dir():
        return False
    with _manager(Path(directory), slot, create=False) as mngr:
        return mngr.latest_step() is not None


def corrupt_error(path: str | Path, exc: BaseException, what: str = "the run's model") -> ValueError:
    """One line for a checkpoint orbax could not restore: the folder, the first sentence of the
    cause (TensorStore appends a 60-line spec dump, left out) and what to do."""
    text = str(exc).split(" See full TensorStore details")[0]
    text = " ".join((text.splitlines() or [""])[0].split())
    if len(text) > 160:
        text = text[:157] + "..."
    return ValueError(f"checkpoint {path} is corrupt or does not match {what} ({type(exc).__name__}: {text}); "
                      "nothing was overwritten: retrain the run, or restore the folder from a copy")


def restore(directory: str | Path, slot: str, abstract_state: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """Restore ``(state, meta)`` of ``slot``; ``abstract_state`` gives shapes, dtypes and shardings.

    Raises ``FileNotFoundError`` if there is no checkpoint and ``ValueError`` if it is corrupt
    or does not fit ``abstract_state``.
    """
    path = Path(directory) / slot
    if not path.is_dir():
        raise FileNotFoundError(f"no '{slot}' checkpoint in {Path(directory)}")
    try:
        with _manager(Path(directory), slot, create=False) as mngr:
            step = mngr.latest_step()
            if step is None:
                raise FileNotFoundError(f"no '{slot}' checkpoint in {Path(directory)}")
            restored = mngr.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()),
            )
    except FileNotFoundError:
        raise
    except Exception as exc:  # orbax/tensorstore raise many types; the user needs one message
        raise corrupt_error(path, exc, "this model and config") from exc
    state, meta = restored["state"], restored["meta"]
    got = jax.tree.structure(state)
    want = jax.tree.structure(abstract_state)
    if got != want or meta is None:
        raise ValueError(f"checkpoint {path} does not match this model and config; nothing was overwritten")
    return state, meta
