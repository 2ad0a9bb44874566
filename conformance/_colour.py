"""Colour on the console: the status words and the summary's counts in ANSI SGR colours, only
when asked (``--color always``) or, by default, when stdout is a terminal and ``NO_COLOR`` is
unset or empty (https://no-color.org). Report files are never coloured.

Colour is added after a text has passed :func:`~conformance._shown.shown` (which escapes every
ESC the server sent), and only to words the suite writes: a server cannot colour a line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, TextIO

from conformance._outcome import Status

__all__ = ["MARKS", "ColorChoice", "counts_painted", "mark_painted", "painted", "wants_colour"]

ColorChoice = Literal["auto", "always", "never"]
MARKS = {  # status -> the word the console shows
    Status.PASSED: "PASS",
    Status.FAILED: "FAIL",
    Status.WARNING: "WARN",
    Status.SKIPPED: "SKIP",
    Status.ERROR: "ERROR",
}
_SGR = {  # status -> SGR parameters: green, red, yellow, dim, bold red
    Status.PASSED: "32",
    Status.FAILED: "31",
    Status.WARNING: "33",
    Status.SKIPPED: "2",
    Status.ERROR: "1;31",
}
_COUNT = re.compile(r"\b([1-9]\d*) (passed|failed|warning|skipped|error)\b")


def wants_colour(choice: ColorChoice, stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether to colour what goes to ``stream``: ``always``, ``never``, or (``auto``) when it
    is a terminal and ``NO_COLOR`` is unset or empty in ``environ``."""
    if choice != "auto":
        return choice == "always"
    return not environ.get("NO_COLOR") and stream.isatty()


def painted(text: str, status: Status) -> str:
    """``text`` in the colour of ``status`` (then the colour reset)."""
    return f"\x1b[{_SGR[status]}m{text}\x1b[0m"


def mark_painted(line: str, status: Status) -> str:
    """``line`` with the first occurrence of ``status``'s word (:data:`MARKS`) coloured."""
    word = MARKS[status]
    return line.replace(word, painted(word, status), 1)


def counts_painted(line: str) -> str:
    """``line`` (the summary's ``N passed, N failed, ...``) with each non-zero count coloured
    as its status."""
    return _COUNT.sub(lambda m: painted(m.group(), Status(m.group(2))), line, count=5)
