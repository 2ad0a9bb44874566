"""How a check ends: the statuses, the exceptions a check raises to end other than by passing,
and the typed :class:`Outcome` the reports read (message, expected, received, exchange, crash).

A check passes by returning. It ends otherwise by raising :class:`CheckFailed` (its requirement
is not met: status ``failed`` for a ``must`` check, ``warning`` for a ``should`` one, as the check
declares) or :class:`CheckSkipped` (it does not apply); anything else it raises is a crash of the
check itself, status ``error``.
"""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from conformance._shown import inline, redact

if TYPE_CHECKING:
    from conformance._http import Exchange
    from conformance._registry import Severity

__all__ = [
    "CheckFailed",
    "CheckSkipped",
    "Crash",
    "Outcome",
    "Status",
    "outcome_of",
]


class Status(StrEnum):
    """How a check ended; the value is the word reports print (``Status.FAILED == "failed"``)."""

    PASSED = "passed"
    FAILED = "failed"  # a `must` requirement is not met, or the check ran out of time
    WARNING = "warning"  # a `should` requirement is not met; the run still passes
    SKIPPED = "skipped"  # the check does not apply: capability not claimed, budget spent
    ERROR = "error"  # the check crashed: it raised an exception that is not an outcome


class CheckFailed(AssertionError):
    """The endpoint broke the check: says what was expected, what was received, and the
    exchange (request sent, answer seen) it was received in; ``pair``, the other exchange when
    the failure is about two (stream and not, two seeded runs): the report records both for
    reproduction; ``about``, the members of the request's JSON body the failure is about
    (top-level names, such as ``("stop",)``): the console's excerpt of the body keeps them whole."""

    def __init__(
        self,
        message: str,
        *,
        expected: str | None = None,
        received: str | None = None,
        exchange: Exchange | None = None,
        pair: Exchange | None = None,
        about: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected
        self.received = received
        self.exchange = exchange
        self.pair = pair
        self.about = about

    def __str__(self) -> str:
        return "\n".join(
            _lines(self.message, self.expected, self.received, self.exchange, self.about)
        )


class CheckSkipped(Exception):
    """The check does not apply to this endpoint; the message says why."""


@dataclass(frozen=True)
class Crash:
    """An exception a check raised that is not an outcome: its type name, its message and where
    it was raised (``path:line in function`` of the innermost frame)."""

    type: str
    message: str
    where: str

    @classmethod
    def of(cls, exc: BaseException) -> Crash:
        """The crash ``exc`` describes (where: its traceback's last frame, or "unknown")."""
        frames = traceback.extract_tb(exc.__traceback__)
        where = "unknown"
        if frames:
            where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}"
        return cls(type(exc).__name__, str(exc), where)


@dataclass(frozen=True)
class Outcome:
    """How one check ended, with what a report shows of it.

    ``message`` is ``""`` when the check passed; for a skip, the reason; for a failure or a
    warning, the failure's own message, with ``expected`` / ``received`` (either may be None)
    and the ``exchange`` it was seen in (None when the check had none to show); for an error,
    what crashed, and ``crash`` the exception's type, message and place. ``pair`` and ``about``
    are the failure's (see :class:`CheckFailed`).
    """

    status: Status
    message: str = ""
    expected: str | None = None
    received: str | None = None
    exchange: Exchange | None = None
    crash: Crash | None = None
    pair: Exchange | None = None
    about: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The details as the console prints them: the message, ``Expected:``, ``Received:``,
        the exchange (``Sent:``, ``Seen:``, ``Body:``) and, for a crash, ``At:`` its place;
        each on one line, line breaks and control characters as visible escapes
        (:func:`~conformance._shown.inline`)."""
        if self.status is Status.PASSED:
            return []
        lines = _lines(self.message, self.expected, self.received, self.exchange, self.about)
        if self.crash is not None:
            lines.append(inline(f"At: {self.crash.where}"))
        return lines

    @property
    def text(self) -> str:
        """:meth:`lines`, one per line."""
        return "\n".join(self.lines())

    def redacted(self, secret: str | None) -> Outcome:
        """This outcome with ``secret`` (the API key) replaced by ``<redacted>`` in every field,
        the exchange's request and answer included, in every form
        :func:`~conformance._shown.redact` knows (escaped, encoded, runs of 8 or more chars)."""
        if not secret:
            return self

        def hide(text: str | None) -> str | None:
            return None if text is None else redact(text, secret)

        crash = self.crash
        if crash is not None:
            crash = Crash(crash.type, redact(crash.message, secret), redact(crash.where, secret))
        return dataclasses.replace(
            self,
            message=redact(self.message, secret),
            expected=hide(self.expected),
            received=hide(self.received),
            exchange=None if self.exchange is None else self.exchange.redacted(secret),
            pair=None if self.pair is None else self.pair.redacted(secret),
            crash=crash,
        )


def _lines(
    message: str,
    expected: str | None,
    received: str | None,
    exchange: Exchange | None,
    about: tuple[str, ...] = (),
) -> list[str]:
    """One line each (:func:`~conformance._shown.inline`): what a check quotes of an answer
    cannot add a line of its own."""
    lines = [inline(message)]
    if expected is not None:
        lines.append(inline(f"Expected: {expected}"))
    if received is not None:
        lines.append(inline(f"Received: {received}"))
    if exchange is not None:
        lines.extend(exchange.describe(keep=about))
    return lines


def outcome_of(exc: BaseException | None, severity: Severity) -> Outcome:
    """How a check of ``severity`` ended, from what it raised (None: it returned).

    The one place statuses are decided: CheckSkipped is ``skipped``; CheckFailed is ``failed``
    in a ``must`` check and ``warning`` in a ``should`` one (the severity the check declares);
    any other exception is ``error``, with the exception as a :class:`Crash`.
    (The runner makes a check's own time limit and the run's deadline ``failed``: they are the
    endpoint's slowness.)"""
    if exc is None:
        return Outcome(Status.PASSED)
    if isinstance(exc, CheckSkipped):
        return Outcome(Status.SKIPPED, str(exc))
    if isinstance(exc, CheckFailed):
        return Outcome(
            Status.WARNING if severity == "should" else Status.FAILED,
            exc.message,
            exc.expected,
            exc.received,
            exc.exchange,
            pair=exc.pair,
            about=exc.about,
        )
    crash = Crash.of(exc)
    message = f"the check could not complete: {crash.type}: {crash.message}"
    return Outcome(Status.ERROR, message, crash=crash)
