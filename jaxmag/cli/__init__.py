"""The ``jaxmag`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers) -> None`` which adds its parser and sets ``func`` (a callable taking the
parsed namespace and returning an exit code). Modules are discovered, so adding a command does
not touch this file.

Errors meant for the user (``ValueError``, ``FileNotFoundError``, ``FileExistsError``,
``KeyError`` from configs) are printed as one line ``jaxmag: error: ...`` with exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from jaxmag import __version__


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxmag",
        description="Differentiable stochastic micromagnetics and U-Net defect detection in JAX.",
    )
    parser.add_argument("--version", action="version", version=f"jaxmag {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"jaxmag: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxmag: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
