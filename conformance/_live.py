"""What ``chatcompat check`` shows while it runs, one call per finished check: a progress bar
on stderr when stderr is a terminal, else one flushed line per check on stdout (a CI log, or
``chatcompat check | cat``), where the final table and summary follow.

Why stdout: a pipe or a CI log then holds the run in one stream, in order (the lines, then the
table); without a terminal nothing else shows progress. With a terminal on stderr the bar
shows it there and stdout gets only the final text, as before."""

from __future__ import annotations

from typing import TextIO

from conformance._colour import MARKS, painted
from conformance._outcome import Status
from conformance._registry import CHECKS
from conformance._runner import Progress, Result
from conformance._shown import shown

__all__ = ["LiveLines", "live_output", "progress_bar"]

REASON_CHARS = 200  # of a live line's reason; the table's details below hold the whole message


def progress_bar(result: Result, finished: int, total: int, *, stream: TextIO) -> None:
    """A one-line progress bar on ``stream`` (a terminal), redrawn for each finished check."""
    width = 30
    filled = width * finished // max(total, 1)
    bar = "=" * filled + " " * (width - filled)
    end = "\n" if finished == total else ""
    print(f"\r[{bar}] {finished}/{total} {result.check.id:<32}", end=end, file=stream, flush=True)


class LiveLines:
    """One line per finished check on ``stream``, flushed: ``N/TOTAL WORD ID SECONDSs`` and, for
    a check that did not pass, the first line of its message (the key redacted, on one line,
    control characters escaped, cut to :data:`REASON_CHARS`: :func:`~conformance._shown.shown`
    ``inline``, so a server cannot forge a line); the word coloured with ``colour``."""

    def __init__(self, stream: TextIO, secret: str | None, *, colour: bool = False) -> None:
        self.stream, self.secret, self.colour = stream, secret, colour
        self.width = max(map(len, CHECKS))

    def line(self, result: Result, finished: int, total: int) -> str:
        """The line of ``result``, the ``finished``-th of ``total`` checks."""
        word = MARKS[result.status]
        pad = " " * (5 - len(word))
        if self.colour:
            word = painted(word, result.status)
        word += pad
        text = (
            f"{finished:>{len(str(total))}}/{total} {word} {result.check.id:<{self.width}} "
            f"{result.duration:6.2f}s"
        )
        if result.status is Status.PASSED:
            return text
        reason = (result.message.splitlines() or [""])[0]
        return f"{text}  {shown(reason, self.secret, REASON_CHARS, inline=True)}"

    def __call__(self, result: Result, finished: int, total: int) -> None:
        print(self.line(result, finished, total), file=self.stream, flush=True)


def live_output(
    stdout: TextIO, stderr: TextIO, secret: str | None, *, colour: bool = False
) -> Progress:
    """The bar on ``stderr`` when it is a terminal, else :class:`LiveLines` on ``stdout``."""
    if stderr.isatty():
        return lambda result, finished, total: progress_bar(result, finished, total, stream=stderr)
    return LiveLines(stdout, secret, colour=colour)
