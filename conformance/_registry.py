"""The check registry: one small async function per check, registered by decorator.

The function's name is the check's id, its config key and its name in reports; its docstring's
first line is its description. Each check states one requirement and declares its severity:
``must`` (not met: the check fails) or ``should`` (not met: a warning). A requirement with both
levels is two checks, one of each (JSON-Schema-Test-Suite and h2spec quote MUST or SHOULD per
case the same way).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from conformance._context import Context

__all__ = [
    "CAPABILITIES",
    "CHECKS",
    "GROUPS",
    "SEVERITIES",
    "Check",
    "CheckFunc",
    "Severity",
    "check",
]

# What a check's CheckFailed means: "must" -> status failed (the run fails), "should" -> status
# warning (the run passes); see conformance._outcome.outcome_of. A requirement with both levels
# is two checks, one of each severity.
Severity = Literal["must", "should"]
SEVERITIES: tuple[Severity, ...] = ("must", "should")
CheckFunc = Callable[["Context"], Awaitable[None]]
GROUPS = (
    "stream",
    "usage",
    "response",
    "errors",
    "tools",
    "logprobs",
    "n",
    "seed",
    "json",
    "sampling",
    "models",
    "property",
)
# What an endpoint may claim. "core" is always claimed; the rest come from flags or a profile.
CAPABILITIES = {
    "core": "every OpenAI-compatible endpoint",
    "tools": "tools and tool_choice, streamed tool calls",
    "logprobs": "logprobs and top_logprobs",
    "n": "n > 1 choices",
    "seed": "seed gives reproducible samples",
    "sampling": "answers are sampled: temperature, top_k, top_p, penalties take effect",
    "json": "response_format json_object and json_schema",
    "ext": "top_k, min_p, repetition_penalty as top-level fields",
    "auth": "requests without the right bearer key get 401",
    "ratelimit": "429 with Retry-After and 503 on overload can be provoked (opt-in)",
    "faults": "the chatcompat mock's X-Chatcompat-Fault header (mid-stream errors)",
    "reference": "serves the model of chatcompat export-model (--reference DIR)",
    "vision": "image_url content parts are answered (a vision model)",
}


@dataclass(frozen=True)
class Check:
    id: str
    group: str
    severity: Severity  # "must" | "should": a CheckFailed is `failed` | `warning`
    capability: str  # what the endpoint must claim for the check to run ("core": every one)
    doc: str
    func: CheckFunc


CHECKS: dict[str, Check] = {}


def check(
    *, group: str, severity: Severity, capability: str = "core"
) -> Callable[[CheckFunc], CheckFunc]:
    """Register the decorated function as a check whose id is its name, in ``group``, of the
    declared ``severity``, run when the endpoint claims ``capability``.

    Raises ValueError for an unknown group, severity or capability, a name registered twice
    or a function without a docstring."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; expected one of {GROUPS}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; expected one of {SEVERITIES}")
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; expected one of {CAPABILITIES}")

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
