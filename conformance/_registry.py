"""The check registry: one small async function per check, registered by decorator.

The function's name is the check's id, its config key and its name in reports; its docstring's
first line is its description.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from conformance._context import Context

__all__ = ["CHECKS", "GROUPS", "Check", "CheckFunc", "Severity", "check"]

Severity = Literal["must", "should"]
CheckFunc = Callable[["Context"], Awaitable[None]]
GROUPS = ("stream", "response", "errors", "models")


@dataclass(frozen=True)
class Check:
    id: str
    group: str
    severity: Severity  # "should": a failure is a warning, not a failed run
    capability: str  # what the endpoint must claim for the check to run ("core": every one)
    doc: str
    func: CheckFunc


CHECKS: dict[str, Check] = {}


def check(
    *, group: str, severity: Severity = "must", capability: str = "core"
) -> Callable[[CheckFunc], CheckFunc]:
    """Register the decorated function as a check whose id is its name."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; expected one of {GROUPS}")

    def register(func: CheckFunc) -> CheckFunc:
        name = func.__name__
        if name in CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        doc = (func.__doc__ or "").strip().splitlines()
        if not doc:
            raise ValueError(f"check {name!r} needs a one-line docstring")
        CHECKS[name] = Check(name, group, severity, capability, doc[0], func)
        return func

    return register
