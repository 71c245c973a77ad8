"""Crash-safe writing: every file jaxmag writes goes through this module.

Contract. A file written with ``atomic_write`` or ``atomic_path`` is either absent (or the old
version, untouched) or complete: the new content is written under a temporary name in the same
folder, flushed, ``fsync``-ed, then renamed over the target with ``os.replace`` and the folder
is ``fsync``-ed. A kill or a power cut at any moment leaves at worst a stray ``.NAME.tmpPID``
file, never a half-written ``NAME``. Errors of the write, the flush, the fsync or the close
(full disk, permission denied, a read-only file system) are raised as ``WriteError`` (an
``OSError``) that names the target file and says what to do; the temporary file is removed.

Files that are filled in over a long time (the HDF5 dataset and measures files) are built
complete under a temporary name the same way, then their raw bytes are overwritten in place by
``RawFile`` (``os.pwrite`` at offsets fixed when the file was made, then ``fsync`` and a read
back), so no library cache can hold a failed write and report it only when it is freed.

    >>> with atomic_write("out/prediction.json", "w") as f:
    ...     f.write(text)
    >>> with atomic_path("out/mask.png") as tmp:     # for writers that take a file name
    ...     image.save(tmp, format="png")
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from jaxmag.io.errors import InputError, WriteError, is_storage_error, write_error

__all__ = ["WriteError", "InputError", "atomic_write", "atomic_path", "write_bytes", "write_text", "fsync_dir", "RawFile",
           "write_error", "is_storage_error", "ensure_free_space", "create_hdf5"]

# HDF5's own metadata, attributes and alignment on top of the datasets' bytes
_HDF5_OVERHEAD_BYTES = 64 << 10


def ensure_free_space(path: str | Path, nbytes: int, *, hint: str = "") -> None:
    """Refuse, before a library writes anything, to make ``path`` where fewer than ``nbytes``
    (plus HDF5 overhead) are free: HDF5 crashes (segfaults) rather than reporting a full disk
    while it creates a file, so the space its creation writes eagerly is checked first."""
    path = Path(path)
    try:
        free = os.statvfs(path.parent).f_bavail * os.statvfs(path.parent).f_frsize
    except (OSError, AttributeError):
        return  # cannot tell; the checked writes still catch a full disk later
    need = int(nbytes) + _HDF5_OVERHEAD_BYTES
    if free < need:
        raise write_error(path, OSError(errno.ENOSPC, f"No space left on device (needs {need / 1e6:.1f} MB, "
                                                      f"{free / 1e6:.1f} MB free)"), hint=hint)


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or a new file in ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename itself is atomic
    finally:
        os.close(fd)


def temp_name(path: str | Path) -> Path:
    """The temporary name ``path`` is written under (hidden, same folder, per process)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {path.parent}")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, hint: str = "") -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; on success fsync it and rename it to ``path``.

    For writers that take a file name (h5py, PIL, tifffile, numpy). If the block raises, the
    temporary file is removed and ``path`` is left as it was. ``OSError`` of the storage (and
    HDF5 errors carrying one) becomes a ``WriteError`` naming ``path``."""
    path = Path(path)
    _check_target(path)
    tmp = temp_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"the writer of {path} did not create its temporary file {tmp}")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except WriteError:
        raise
    except (OSError, RuntimeError) as exc:
        if is_storage_error(exc):
            raise write_error(path, exc, hint=hint) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8", hint: str = "") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing (``mode`` ``"w"`` or ``"wb"``); when the
    block ends, flush, fsync, close and rename it to ``path``. See ``atomic_path``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path, hint=hint) as tmp:
        f = open(tmp, mode, encoding=encoding if mode == "w" else None)
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()  # a failing close (delayed write error) raises here, before the rename


def write_bytes(path: str | Path, data: bytes, *, hint: str = "") -> Path:
    """Atomically replace ``path`` with ``data``."""
    with atomic_write(path, "wb", hint=hint) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, hint: str = "") -> Path:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    with atomic_write(path, "w", hint=hint) as f:
        f.write(text)
    return Path(path)


class RawFile:
    """Overwrite byte ranges of an existing file in place, checked: ``pwrite``, then ``sync()``
    (fsync) and ``verify`` (read the bytes back through the OS and compare).

    Used for files whose layout (every offset) is fixed when they are made, such as jaxmag's
    preallocated HDF5 files: no HDF5 handle is open for writing, so HDF5 caches never hold data
    and every failed write raises here, as a ``WriteError`` naming the file."""

    def __init__(self, path: str | Path, *, hint: str = ""):
        self.path = Path(path)
        self.hint = hint
        try:
            self._fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            raise write_error(self.path, exc, hint=hint) from exc

    def __enter__(self) -> "RawFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def _fail(self, exc: OSError) -> WriteError:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        return write_error(self.path, exc, hint=self.hint if full else "")

    def write(self, offset: int, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                n = os.pwrite(self._fd, view[done:], offset + done)
                if n <= 0:
                    raise OSError(errno.EIO, "short write")
                done += n
        except OSError as exc:
            raise self._fail(exc) from exc

    def read(self, offset: int, size: int) -> bytes:
        try:
            data = os.pread(self._fd, size, offset)
        except OSError as exc:
            raise self._fail(exc) from exc
        return data

    def sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise self._fail(exc) from exc

    def verify(self, offset: int, data: bytes | memoryview) -> None:
        """Raise ``WriteError`` unless the file holds ``data`` at ``offset``."""
        want = memoryview(data).cast("B")
        if self.read(offset, len(want)) != want:
            raise self._fail(OSError(errno.EIO, "the data read back differs from the data written"))


def create_hdf5(path: str | Path, fill: Callable[[Any], None], *, eager_bytes: int = 0, hint: str = "") -> Path:
    """Create the HDF5 file ``path`` complete and atomically: ``fill(h5py.File)`` writes its
    skeleton under a temporary name, which is flushed, fsync-ed and renamed into place.

    ``eager_bytes``: what the skeleton writes at creation (checked free first, see
    ``ensure_free_space``). A full disk or another storage error is a ``WriteError`` naming
    ``path``; nothing is left at ``path``."""
    import h5py  # only the HDF5 writers need it

    path = Path(path)
    ensure_free_space(path, eager_bytes, hint=hint)
    try:
        with atomic_path(path, hint=hint) as tmp:
            with h5py.File(tmp, "w") as f:
                fill(f)
                f.flush()
                os.fsync(f.id.get_vfd_handle())
    except WriteError:
        raise
    except (OSError, RuntimeError) as exc:  # h5py reports a full disk as either
        if is_storage_error(exc):
            raise write_error(path, exc, hint=hint) from exc
        raise
    return path
