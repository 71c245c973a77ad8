"""Reliability under faults (issue 14): full disks, hard kills, bad input files, corrupt checkpoints.

Every test here would fail on main a76b839. Full disks are made two ways: a small tmpfs where the
test may mount one (root on Linux; skipped with the reason otherwise) and an ``OSError(ENOSPC)``
injected into the writer. Kill tests run the CLI in a subprocess; the rest call
``jaxmag.cli.main`` in-process. The slow kill -9 test is marked ``slow``.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from jaxmag.io import atomic


# --- the atomic-write helper ------------------------------------------------------------------

def test_atomic_write_replaces_only_when_complete(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_write(target) as f:
            f.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary left
    atomic.write_text(target, "new")
    assert target.read_text() == "new"


def test_atomic_write_storage_error_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / "b.bin"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(atomic.WriteError, match=r"cannot write .*b\.bin: No space left on device; free some space"):
        atomic.write_bytes(target, b"x" * 10)
    assert not target.exists() and not list(tmp_path.iterdir())
