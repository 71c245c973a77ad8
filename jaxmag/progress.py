"""How long jobs show their progress: one place decides, every job calls it.

Three modes, chosen when a bar is made:

* ``enabled`` and stderr is a terminal: a tqdm bar on stderr (carriage-return frames redraw
  one line in place).
* ``enabled`` and stderr is not a terminal (a log file, a pipe, a batch system): plain lines,
  at most ``lines`` of them per bar (one each time another ``1/lines`` of the total is done,
  and one at the end), each ending in ``\\n`` and never holding ``\\r``. A log keeps a readable
  record instead of the kilobytes of redrawn frames a bar writes there.
* not ``enabled`` (``--no-progress``, or a process other than the first of several): nothing.

Every command takes ``--no-progress`` (``jaxmag.cli``) and passes ``progress=not
args.no_progress`` down; the library decides nothing else about progress. Results and summaries
(the per-epoch line of training, a command's final report) are not progress: they go through
``write`` to stdout whatever the mode, without breaking a live bar.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")

LINES = 10  # default plain lines per bar when stderr is not a terminal


def is_terminal(stream: TextIO | None) -> bool:
    """Whether ``stream`` is an interactive terminal (closed or odd streams are not)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class _Off:
    """The disabled bar: accepts every call, shows nothing."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass


class _Lines:
    """A bar for logs: a plain line each time another ``1/lines`` of ``total`` is done, and at the end."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int, lines: int, stream: TextIO):
        self.total, self.desc, self.unit, self.lines, self.stream = total, desc, unit, lines, stream
        self.n = self.start = self.shown = initial
        self.postfix: dict[str, Any] = {}
        self.t0 = time.perf_counter()
        self.closed = False

    def _step(self, n: int) -> int:
        """Which ``1/lines`` part of the total ``n`` is in."""
        return n * self.lines // self.total if self.total else 0

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.lines > 0 and self.total and self._step(self.n) > self._step(self.shown):
            self._emit()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.lines > 0 and self.n > self.shown:  # the end, unless its line is out already
            self._emit()

    def _emit(self) -> None:
        self.shown = self.n
        elapsed = time.perf_counter() - self.t0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        percent = f" ({100 * self.n // self.total}%)" if self.total else ""
        rate = f", {(self.n - self.start) / elapsed:.3g} {self.unit}/s" if elapsed > 0 else ""
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        self.stream.write(f"{self.desc}: {done} {self.unit}{percent}, {elapsed:.0f} s{rate}{extra}\n")
        self.stream.flush()


def bar(total: int | None, *, desc: str, unit: str = "it", enabled: bool = True, initial: int = 0,
        lines: int = LINES, leave: bool = True, stream: TextIO | None = None, **tqdm_options: Any):
    """A progress bar over ``total`` units (``None``: unknown), in the mode the module docstring gives.

    Returns an object with ``update(n=1)``, ``set_postfix(**values)`` and ``close()``, usable as
    ``with bar(...) as b:``. ``initial`` units are already done (a resumed job). ``lines`` caps the
    plain lines when stderr is not a terminal (``0``: none, for a bar whose end a summary line
    already reports). ``stream`` defaults to ``sys.stderr`` at the call; ``leave`` and
    ``tqdm_options`` (e.g. ``bar_format``) apply to the terminal bar only.
    """
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return _Bar(_Off())
    if not is_terminal(stream):
        return _Bar(_Lines(total, desc, unit, initial, lines, stream))
    from tqdm.auto import tqdm

    return _Bar(tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave, file=stream, **tqdm_options))


class _Bar:
    """The one interface of the three modes (a context manager that closes the bar)."""

    def __init__(self, impl):
        self._impl = impl

    @property
    def n(self) -> int:
        """Units done so far (``initial`` included)."""
        return int(self._impl.n)

    def update(self, n: int = 1) -> None:
        self._impl.update(n)

    def set_postfix(self, **values: Any) -> None:
        self._impl.set_postfix(**values)

    def close(self) -> None:
        self._impl.close()

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iterate(items: Iterable[T], *, desc: str, unit: str = "it", total: int | None = None, enabled: bool = True,
            lines: int = LINES, stream: TextIO | None = None) -> Iterator[T]:
    """``items``, counting each one on a ``bar`` (``total`` defaults to ``len(items)`` where it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total, desc=desc, unit=unit, enabled=enabled, lines=lines, stream=stream) as b:
        for item in items:
            yield item
            b.update(1)


def stage(message: str, *, enabled: bool = True, stream: TextIO | None = None) -> None:
    """One plain progress line on stderr (a job's stage starting), or nothing when not ``enabled``."""
    if enabled:
        write(message, file=sys.stderr if stream is None else stream)


def write(line: str, *, file: TextIO | None = None) -> None:
    """Print ``line`` (to stdout by default) without breaking a live terminal bar.

    For results and summaries, which show whatever the progress mode."""
    file = sys.stdout if file is None else file
    if "tqdm" in sys.modules or "tqdm.auto" in sys.modules:  # a bar may be live: clear and redraw it
        from tqdm.auto import tqdm

        tqdm.write(line, file=file)
    else:
        file.write(line + "\n")
        file.flush()
