"""The ``jaxmag`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers) -> None`` which adds its parser and sets ``func`` (a callable taking the
parsed namespace and returning an exit code). Modules are discovered, so adding a command does
not touch this file. Every command, subcommands included, gets ``--no-progress`` here
(``args.no_progress``; pass ``progress=not args.no_progress`` to the library, whose
``jaxmag.progress`` shows a bar on a terminal and plain lines in a log).

This module is the one error boundary. Expected failures are printed as one line
``jaxmag: error: ...`` naming the file and the fix, with exit status 2: ``UserError``,
``ValueError`` (``jaxmag.io.errors.InputError`` for bad input files), ``KeyError`` from configs,
and every ``OSError`` (missing file, permission denied, full disk: ``WriteError``). Ctrl-C and
SIGTERM print one line and exit 130 / 143. Anything else is a bug: its traceback is printed
with a request to report it. Library logs (absl, orbax, TensorStore, jax) are quiet unless
``--verbose``.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import signal
import sys
import traceback

from jaxmag import __version__

ISSUES_URL = "the jaxmag issue tracker"


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like KeyboardInterrupt so files are closed cleanly."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxmag",
        description="Differentiable stochastic micromagnetics and U-Net defect detection in JAX.",
    )
    parser.add_argument("--version", action="version", version=f"jaxmag {__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="show library logs (orbax, absl, TensorStore) and full tracebacks of errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    for _, command in command_parsers(parser):
        if "--no-progress" not in command._option_string_actions:
            command.add_argument("--no-progress", action="store_true",
                                 help="no progress bars or progress lines (on stderr); results still print")
    return parser


def command_parsers(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    """``(name, parser)`` of every command that runs: ``"simulate"``, ``"dataset info"``, ... (not the
    groups ``dataset`` and ``mumax3``, whose actions are the commands)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        return [(prefix, parser)]
    found, seen = [], set()
    for group in groups:
        for name, sub in group.choices.items():
            if id(sub) not in seen:  # an alias names the same parser twice
                seen.add(id(sub))
                found += command_parsers(sub, f"{prefix} {name}".strip())
    return found


def quiet_library_logs() -> None:
    """Silence the INFO/WARNING chatter of absl, orbax, TensorStore and jax (errors reach the
    user as jaxmag's own one-line messages)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ absl logging (TensorStore, XLA)
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    for name in ("absl", "orbax", "jax", "jax._src", "tensorstore", "asyncio", "etils"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.FATAL)
        absl_logging.set_stderrthreshold("fatal")
    except ImportError:
        pass


def _one_line(exc: BaseException) -> str:
    """The message of an expected failure, on one line."""
    from jaxmag.io.errors import WriteError

    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    elif isinstance(exc, OSError) and not isinstance(exc, WriteError) and exc.errno is not None:
        text = _os_error_line(exc)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _os_error_line(exc: OSError) -> str:
    """``[Errno 17] File exists: 'x'`` -> ``x already exists; ...``: name the file, say the fix."""
    name = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    fixes = {
        errno.EEXIST: "choose another name or remove it",
        errno.ENOENT: "check the path",
        errno.EACCES: "check its permissions or choose another path",
        errno.EPERM: "check its permissions or choose another path",
        errno.ENOSPC: "free some space and run the command again (with --resume where the command has it)",
        errno.EDQUOT: "free some space and run the command again (with --resume where the command has it)",
        errno.EROFS: "choose a writable location",
        errno.EISDIR: "give a file name, not a folder",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
    }
    fix = fixes.get(exc.errno, "check the file and the disk")
    if exc.errno == errno.EEXIST and name:
        return f"{name} already exists; {fix}"
    return f"{name + ': ' if name else ''}{reason}; {fix}"


class _QuietTeardown:
    """``sys.unraisablehook`` that drops the noise of libraries cleaning up after an error:
    orbax/TensorStore coroutines never awaited, "Event loop is closed" from asyncio transports
    freed after their loop. Everything else goes to the previous hook."""

    def __init__(self, previous):
        self.previous = previous
        self.error_reported = False

    def __call__(self, unraisable) -> None:
        import inspect

        exc = unraisable.exc_value
        noise = inspect.iscoroutine(unraisable.object) or (isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc))
        if noise or self.error_reported:
            return
        self.previous(unraisable)


def quiet_teardown_warnings() -> None:
    """Drop the ``RuntimeWarning: coroutine ... was never awaited`` that orbax/TensorStore leave
    behind when a checkpoint read fails: Python emits it through ``warnings`` (not the
    unraisable hook) while it frees the coroutine, often at interpreter exit, after the one
    error line has been printed."""
    import warnings

    warnings.filterwarnings("ignore", message=r"coroutine '.*' was never awaited", category=RuntimeWarning)


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    verbose = bool(getattr(args, "verbose", False))
    hook = None
    if not verbose:
        quiet_library_logs()
        quiet_teardown_warnings()
        if not isinstance(sys.unraisablehook, _QuietTeardown):
            sys.unraisablehook = _QuietTeardown(sys.unraisablehook)
        hook = sys.unraisablehook
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. main() called from a worker thread)
        pass
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader of stdout left (`jaxmag plan ... --list | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    except (UserError, ValueError, OSError, KeyError) as exc:
        if verbose:
            traceback.print_exc()
        print(f"jaxmag: error: {_one_line(exc)}", file=sys.stderr)
        if hook is not None:
            hook.error_reported = True  # what is freed from here on is teardown after the error
        return 2
    except KeyboardInterrupt:
        print("jaxmag: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    except Terminated:
        print("jaxmag: terminated; rerun with --resume to continue", file=sys.stderr)
        return 143
    except Exception:
        traceback.print_exc()
        print(f"jaxmag: internal error (a bug in jaxmag {__version__}): please report it, with the traceback "
              f"above and the command line, to {ISSUES_URL}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
