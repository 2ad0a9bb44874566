"""The checks, one module per group; importing this package registers them all."""

from __future__ import annotations

from conformance._checks import (
    errors,
    json,
    logprobs,
    models,
    n,
    properties,
    reference,
    response,
    sampling,
    schemathesis_run,
    seed,
    stream,
    tools,
    usage,
)

__all__ = [
    "errors",
    "json",
    "logprobs",
    "models",
    "n",
    "properties",
    "reference",
    "response",
    "sampling",
    "schemathesis_run",
    "seed",
    "stream",
    "tools",
    "usage",
]
