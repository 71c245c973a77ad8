"""The commands' choices and their help, read from the library's registries when the parser is built.

Nothing here lists a measure, a component or a noise kind again: an entry added to
``jaxmag.measures.MEASURE_FUNCTIONS``, ``jaxmag.channels.COMPONENTS`` or
``jaxmag.noise.NOISE_MODELS`` (before ``jaxmag.cli.build_parser`` runs) shows in every command's
``choices`` and ``--help``. (A private module: ``jaxmag.cli`` registers no command from it.)
"""
from __future__ import annotations


def measure_names() -> tuple[str, ...]:
    """The registered measures, e.g. ``("mean", "std", "latent_entropy")``."""
    from jaxmag.measures import MEASURE_FUNCTIONS

    return tuple(MEASURE_FUNCTIONS)


def component_names() -> tuple[str, ...]:
    """The magnetisation components an input channel may take."""
    from jaxmag.channels import COMPONENTS

    return tuple(COMPONENTS)


def noise_kinds() -> tuple[str, ...]:
    """The registered noise kinds (``clean`` is no kind: it is the absence of noise)."""
    from jaxmag.noise import NOISE_MODELS

    return tuple(NOISE_MODELS)


def noise_forms() -> str:
    """The accepted noise conditions in words, for ``--help``: ``clean or KIND:LEVEL (KIND: ...)``."""
    kinds = noise_kinds()
    example = f", e.g. {kinds[0]}:1e-2" if kinds else ""
    return f"clean or KIND:LEVEL with KIND one of {', '.join(kinds)}{example}"
