"""The two kinds of file errors every jaxmag reader and writer raises.

``InputError`` (a ``ValueError``): a file given to jaxmag is missing, unreadable, truncated or of
the wrong kind. ``WriteError`` (an ``OSError``): an output could not be written (full disk,
permission denied). Both carry a message that names the file and what to do; the CLI prints
them as one ``jaxmag: error:`` line with exit status 2. HDF5 readers use ``open_h5`` so that a
bad file gives an ``InputError``, never h5py's bare ``OSError``.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

# errno values that mean "the storage refused the write": the user can fix these
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}


class InputError(ValueError):
    """A file given to jaxmag is missing, unreadable, truncated or of the wrong kind.

    A ``ValueError``, so the CLI prints it as one ``jaxmag: error:`` line with exit status 2."""


class WriteError(OSError):
    """Writing an output file failed (full disk, permission denied, ...); the message names the
    file and the fix. Raised by ``jaxmag.io.atomic`` and by jaxmag's file writers."""

    def __str__(self) -> str:
        return str(self.strerror)


def write_error(path: str | Path, exc: BaseException, *, hint: str = "") -> WriteError:
    """A ``WriteError`` for ``exc`` raised while writing ``path`` (``hint``: what to do next)."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    elif isinstance(code, int) and code > 0:
        reason = os.strerror(code)
    else:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
    if not hint:
        if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            hint = "free some space (or choose another --out) and run the command again"
        elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = "choose a folder you can write to"
        else:
            hint = "check the disk (or choose another --out) and run the command again"
    err = WriteError(code if isinstance(code, int) else errno.EIO, f"cannot write {path}: {reason}; {hint}")
    err.filename = str(path)
    return err


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` (an ``OSError``, or an HDF5 error whose text carries the errno) means the
    storage refused a write, e.g. a full disk."""
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        return True
    text = str(exc)
    return "No space left on device" in text or "errno = 28" in text or "Disk quota exceeded" in text


def check_input_file(path: str | Path, what: str = "input file") -> Path:
    """``path`` as a ``Path`` if it is an existing regular file, else an ``InputError`` saying so."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the path of a {what}")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {path}: permission denied")
    return path


def open_h5(path: str | Path, what: str = "jaxmag HDF5 file", mode: str = "r"):
    """Open an HDF5 file for reading; an ``InputError`` naming the file for a missing, empty,
    truncated, zeroed or non-HDF5 file (h5py raises a bare ``OSError`` without the file name)."""
    import h5py

    path = check_input_file(path, what)
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path} is empty (0 bytes), not a {what}; was it written by an interrupted run?")
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not h5py.is_hdf5(path):
            raise InputError(f"{path} is not an HDF5 file (a {what} was expected)") from None
        raise InputError(f"{path} is a damaged or truncated HDF5 file ({first}); "
                         "recreate it (or rerun the command that wrote it with --resume)") from None
