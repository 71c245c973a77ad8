"""Output folders: jaxmag replaces only files it wrote itself, unless told to (``--force``).

A folder that a command writes into (a run folder, a prediction folder, an OVF export) gets a
small hidden manifest ``.jaxmag-files.json``: ``{name: owner}`` for every file jaxmag put
there, where ``owner`` says which command and run wrote it (e.g. ``"predict"``,
``"train 3f2a…"``). Before writing, a command calls ``claim(folder, names, owner)``; it raises
``FileExistsError`` naming the first of ``names`` that exists and either is not in the manifest
(a file of the user's) or belongs to another owner (another run), unless ``force``. ``claim``
records the names before anything is written, so a command killed half-way can be rerun.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from jaxmag.io.atomic import write_text

MANIFEST = ".jaxmag-files.json"


def prepare(folder: str | Path, what: str = "--out") -> Path:
    """Make ``folder`` (and its parents); a clear error if it is an existing file."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{what} {folder} is a file, not a folder; choose a folder name")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def written_by_jaxmag(folder: str | Path) -> dict[str, str]:
    """The manifest of ``folder``: ``{file name: owner}`` (empty if there is none)."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def claim(folder: str | Path, names: Iterable[str], owner: str, *, force: bool = False,
          fix: str = "move it away, choose another --out or pass --force") -> Path:
    """Allow ``owner`` to (over)write ``names`` in ``folder`` (created if missing); see the module
    docstring. Returns the folder."""
    folder = prepare(folder)
    names = list(names)
    manifest = written_by_jaxmag(folder)
    if not force:
        for name in names:
            path = folder / name
            if not path.exists():
                continue
            if name not in manifest:
                raise FileExistsError(f"{path} exists and was not written by jaxmag; {fix}")
            if manifest[name] != owner:
                raise FileExistsError(f"{path} was written by another jaxmag run ({manifest[name]}, not {owner}); {fix}")
    if any(manifest.get(n) != owner for n in names):
        manifest.update({n: owner for n in names})
        write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return folder
