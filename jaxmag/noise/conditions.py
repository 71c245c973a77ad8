"""Noise conditions: ``NoiseSpec`` (one kind at one level), their names, and a job's sweep.

A condition has two spellings. Its ``label`` (``"clean"``, ``"gaussian:1e-2"``) is what people
read and type: every flag, message and report prints it. Its ``name`` (``"gaussian_1e-2"``) is a
file-system name: it names HDF5 groups, folders and ``eval_<name>.json``, and keys the noise
(``jaxmag.noise.draw.condition_hash``), so it never changes for a given kind and level.
``parse_noise_spec`` reads either spelling; ``condition_label`` turns either into the label.
``NoiseSweep`` is the ``[noise]`` section: levels per kind, and the noise seed.
"""
from __future__ import annotations

import dataclasses
import re

from jaxmag.noise.models import NOISE_MODELS, noise_model
from jaxmag.params import require


def accepted_forms() -> str:
    """``"'clean', 'gaussian:VARIANCE', 'speckle:VARIANCE' or 'shot:PHOTONS' (VARIANCE a positive number; ...)"``,
    from the registry."""
    forms = ["'clean'"] + [f"'{m.name}:{m.level_name.upper()}'" for m in NOISE_MODELS.values()]
    ranges = {m.level_name.upper(): m.range_text() for m in NOISE_MODELS.values()}
    example = next(iter(NOISE_MODELS), "KIND")
    return (", ".join(forms[:-1]) + " or " + forms[-1] + " ("
            + "; ".join(f"{name} {text}" for name, text in ranges.items()) + f", e.g. {example}:1e-2)")


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """One noise condition: ``kind`` ("clean" or a ``NOISE_MODELS`` name) at ``level`` (its
    parameter, e.g. the variance sigma²; 0 for clean)."""

    kind: str
    level: float = 0.0

    def __post_init__(self) -> None:
        if self.kind == "clean":
            if self.level != 0:
                raise ValueError(f"a clean condition has level 0, got {self.level!r}")
            return
        if self.kind not in NOISE_MODELS:
            raise ValueError(f"unknown noise kind {self.kind!r}: accepted forms are {accepted_forms()}")
        model = NOISE_MODELS[self.kind]
        if not model.accepts(self.level):
            raise ValueError(f"{self.kind} noise {model.level_name} must be {model.range_text()}, got {self.level!r}")

    @property
    def name(self) -> str:
        """File-system name (HDF5 groups, folders, file names), e.g. ``"gaussian_1e-2"``; ``"clean"`` without noise."""
        return "clean" if self.kind == "clean" else condition_name(self.kind, self.level)

    @property
    def label(self) -> str:
        """The printed form, e.g. ``"gaussian:1e-2"`` (what ``--noise`` takes); ``"clean"`` without noise."""
        return "clean" if self.kind == "clean" else f"{self.kind}:{format_level(self.level)}"


CLEAN = NoiseSpec("clean")


def format_level(level: float) -> str:
    """Canonical short form of a level: 0.01 -> ``"1e-2"``, 0.25 -> ``"2.5e-1"``, 1.0 -> ``"1e0"``."""
    mantissa, exponent = f"{float(level):.12e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def condition_name(kind: str, level: float) -> str:
    """``condition_name("gaussian", 1e-2) == "gaussian_1e-2"``."""
    return f"{kind}_{format_level(level)}"


def parse_noise_spec(text: str) -> NoiseSpec:
    """Parse ``"clean"`` or ``"KIND:LEVEL"`` for a registered kind (``"gaussian:1e-2"``,
    ``"speckle:0.1"``; the condition names ``"gaussian_1e-2"`` are accepted too). Raises
    ``ValueError`` naming the accepted forms."""
    text = text.strip()
    if text == "clean":
        return CLEAN
    match = re.match(r"^(%s)[:_](.+)$" % "|".join(map(re.escape, NOISE_MODELS)), text)
    if match is None:
        raise ValueError(f"invalid noise spec {text!r}: accepted forms are {accepted_forms()}")
    model = NOISE_MODELS[match.group(1)]
    try:
        level = float(match.group(2))
    except ValueError:
        raise ValueError(f"invalid noise spec {text!r}: accepted forms are {accepted_forms()}") from None
    if not model.accepts(level):
        raise ValueError(f"invalid noise spec {text!r}: the {model.level_name} must be {model.range_text()} "
                         f"and finite; accepted forms are {accepted_forms()}")
    return NoiseSpec(model.name, level)


def condition_label(text: str) -> str:
    """Either spelling of a condition as it is printed: ``"gaussian_1e-2"`` and ``"gaussian:0.01"``
    give ``"gaussian:1e-2"``. Text that is no condition (``"auto"``, a typo) comes back unchanged,
    so the command that uses it can name it in its error."""
    try:
        return parse_noise_spec(str(text)).label
    except ValueError:
        return str(text)


PAPER_LEVELS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # several decades, weak to very strong (study.md §2)


@dataclasses.dataclass(frozen=True)
class NoiseSweep:
    """The noise conditions of a job (the ``[noise]`` section): ``levels`` per kind, as
    ``((kind, (level, ...)), ...)``, kept in ``NOISE_MODELS`` order (a kind without levels is
    left out); ``specs()`` lists them kinds
    outermost, each kind's levels as given. ``seed`` keys the measurement noise (``jaxmag.noise``
    docstring)."""

    levels: tuple[tuple[str, tuple[float, ...]], ...] = (("gaussian", PAPER_LEVELS), ("speckle", PAPER_LEVELS))
    seed: int = 1

    def __post_init__(self) -> None:
        kinds = [kind for kind, _ in self.levels]
        require(len(set(kinds)) == len(kinds), "levels", f"names a kind twice: {kinds}")
        for kind, levels in self.levels:
            require(kind in NOISE_MODELS, kind,
                    f"is not a noise kind (registered: {', '.join(map(repr, NOISE_MODELS))})")
            model = noise_model(kind)
            for level in levels:
                require(model.accepts(level), kind, f"levels must each be {model.range_text()} "
                        f"(the {model.level_name}), got {level!r}")
        # one canonical form (equal sweeps compare equal): kinds in registry order, levels as
        # floats, a kind without levels left out
        order = list(NOISE_MODELS)
        canonical = tuple((kind, tuple(float(v) for v in levels))
                          for kind, levels in sorted(self.levels, key=lambda kv: order.index(kv[0])) if levels)
        object.__setattr__(self, "levels", canonical)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of the sweep, in registry order."""
        return tuple(kind for kind, _ in self.levels)

    def specs(self) -> tuple[NoiseSpec, ...]:
        """Every (kind, level) condition, kinds outer: gaussian_1e-4, ..., speckle_1e0."""
        return tuple(NoiseSpec(kind, float(v)) for kind, levels in self.levels for v in levels)
