"""The options every command spells, defaults and explains the same way, defined once here.

* ``--force`` (``add_force``): every command that would replace an existing file or a file it did
  not write takes it, and only it (``--overwrite``, an older spelling of some commands, is still
  read but not shown). Commands that continue interrupted work take ``--resume``.
* ``--noise`` (``add_noise``): every flag that takes a noise condition is ``--noise`` and reads
  both spellings, ``KIND:LEVEL`` (``gaussian:1e-2``, what everything prints) and the file-system
  name ``KIND_LEVEL`` (``gaussian_1e-2``, which names HDF5 groups, folders and ``eval_*.json``),
  and ``clean``; ``noise_condition`` turns either into the printed form when the parser reads
  it. A value that is no condition is kept as typed, so the command names it in its one-line error.
* the movie (``add_movie_options``): ``--component``, ``--dataset``, ``--rescale`` and
  ``--max-abs`` (default ``jaxmag.io.movie.MAX_ABS``) for ``detect``, ``predict`` and
  ``noise-estimate``, which all read movies through ``jaxmag.io.movie``.

(A private module: ``jaxmag.cli`` registers no command from it.)
"""
from __future__ import annotations

import argparse

from jaxmag.cli._choices import component_names, noise_forms

FILE_SYSTEM_NAMES = "KIND_LEVEL, the HDF5 group and folder name, is read too"


def add_force(parser, what: str) -> None:
    """``--force``: replace ``what`` (e.g. "an existing output file"); the old ``--overwrite`` is read as it."""
    parser.add_argument("--force", action="store_true", help=f"replace {what}")
    parser.add_argument("--overwrite", action="store_true", dest="force", help=argparse.SUPPRESS)  # old name


def noise_condition(text: str) -> str:
    """A noise condition as ``--noise`` stores it: either spelling -> ``KIND:LEVEL`` (or ``clean``);
    anything else unchanged (``auto``, or a mistake the command reports in its own words)."""
    from jaxmag.noise import condition_label

    return condition_label(text)


def add_noise(parser, purpose: str, *, default=None, repeatable: bool = False, required: bool = False,
              old_name: str | None = None, extra: str = "") -> None:
    """``--noise KIND:LEVEL``: ``purpose`` leads its help ("the training noise"); ``extra`` adds forms
    (``"auto (estimated from the movie) or "``); ``old_name`` is an earlier flag still read, not shown."""
    action = "append" if repeatable else "store"
    help_text = (f"{purpose}: {extra}{noise_forms()} ({FILE_SYSTEM_NAMES})"
                 + ("; repeatable" if repeatable else "")
                 + ("" if default in (None, []) else f"; default {default}"))
    parser.add_argument("--noise", action=action, type=noise_condition, default=default, required=required,
                        metavar="KIND:LEVEL", help=help_text)
    if old_name is not None:
        parser.add_argument(old_name, action=action, type=noise_condition, dest="noise", help=argparse.SUPPRESS)


def max_abs_help() -> str:
    from jaxmag.io.movie import MAX_ABS

    return (f"reject a movie whose 99.9th percentile of |value| after --rescale exceeds this (default {MAX_ABS:g}: "
            "unit-vector components, |m| <= 1, plus noise of variance up to 1, the strongest the models are "
            "trained for, stay below 4.3; A/m or camera counts lie far above)")


def add_movie_options(parser, component_help: str) -> None:
    """``--component``, ``--dataset``, ``--rescale``, ``--max-abs``: how ``jaxmag.io.movie`` reads the movie."""
    from jaxmag.io.movie import MAX_ABS

    parser.add_argument("--component", choices=component_names(), help=component_help)
    parser.add_argument("--dataset", metavar="PATH", help="dataset path inside an HDF5 movie")
    parser.add_argument("--rescale", default="none", metavar="MODE",
                        help="none | minmax | maxabs | ms:<Ms in A/m>: map the data to unit-vector components "
                             "(default none)")
    parser.add_argument("--max-abs", type=float, default=MAX_ABS, metavar="X", help=max_abs_help())


def add_classes(parser) -> None:
    """``--classes binary|typed``: the class scheme of the U-Net (``jaxmag.learn.classes``), over ``[model] classes``."""
    from jaxmag.learn.classes import SCHEMES

    parser.add_argument("--classes", choices=tuple(SCHEMES),
                        help="what the U-Net segments (overrides [model] classes): binary = background/defect, "
                             "typed = background and one class per [defects] group (softer, harder)")
