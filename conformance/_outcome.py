"""How a check ends other than by passing: failed, warned or skipped, with what was seen."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conformance._http import Exchange

__all__ = ["CheckFailed", "CheckSkipped", "CheckWarning"]


class CheckFailed(AssertionError):
    """The endpoint broke the check: says what was expected, what was received, and the
    exchange (request sent, answer seen) it was received in."""

    def __init__(
        self,
        message: str,
        *,
        expected: str | None = None,
        received: str | None = None,
        exchange: Exchange | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected
        self.received = received
        self.exchange = exchange

    def __str__(self) -> str:
        lines = [self.message]
        if self.expected is not None:
            lines.append(f"Expected: {self.expected}")
        if self.received is not None:
            lines.append(f"Received: {self.received}")
        if self.exchange is not None:
            lines.extend(self.exchange.describe())
        return "\n".join(lines)


class CheckWarning(CheckFailed):
    """A recommendation (SHOULD) is not met; the run still passes."""


class CheckSkipped(Exception):
    """The check does not apply to this endpoint; the message says why."""
