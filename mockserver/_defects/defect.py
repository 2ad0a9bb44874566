"""The ``Defect`` type: a name, a one-line doc, the hooks it installs at named stages and, for a
quirk a real server showed, the public report it comes from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STAGES", "Defect", "Hook"]

Hook = Callable[[Any], Any]

# The stages at which mockserver/_app.py passes a value through the active defects' hooks (the
# package docstring gives each value's shape), in the order of the stage modules.
STAGES = (
    "request_raw",
    "request",
    "completion",
    "models",
    "chunks",
    "events",
    "stream_content_type",
    "stream_plan",
    "error",
    "auth",
    "stream_error",
    "fault",
    "retrieve_unknown",
)


@dataclass(frozen=True)
class Defect:
    """One broken behaviour of the mock, as hooks over the values of named stages.

    A defect with a ``report`` is a real-world quirk: the catalogue (:data:`QUIRKS` of
    mockserver._defects, the README's table of quirks) lists it with that link.

    Raises ValueError when a hook names a stage that is not in ``STAGES``, or when ``report``
    is not an https URL.
    """

    name: str
    doc: str  # one line: what breaks
    hooks: dict[str, Hook] = field(default_factory=dict)  # stage -> value transform
    # hooks that keep state (stage -> hook), made afresh for each server so none share it
    stateful: Callable[[], dict[str, Hook]] | None = None
    # the public report (an https URL: an issue or pull request) of a real server doing this
    report: str | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.hooks) - set(STAGES))
        if unknown:
            raise ValueError(f"defect {self.name!r}: unknown stage(s) {unknown}; known: {STAGES}")
        if self.report is not None and not self.report.startswith("https://"):
            raise ValueError(f"defect {self.name!r}: report {self.report!r} is not an https URL")
