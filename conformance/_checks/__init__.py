"""The checks, in modules by group (a large group in several); importing this package
registers them all."""

from __future__ import annotations

from conformance._checks import (
    abuse,
    content_parts,
    errors,
    json,
    logprobs,
    models,
    n,
    parameters,
    properties,
    reference,
    refusals,
    response,
    sampling,
    schemathesis_run,
    seed,
    stream,
    stream_errors,
    tool_streams,
    tools,
    usage,
)

__all__ = [
    "abuse",
    "content_parts",
    "errors",
    "json",
    "logprobs",
    "models",
    "n",
    "parameters",
    "properties",
    "reference",
    "refusals",
    "response",
    "sampling",
    "schemathesis_run",
    "seed",
    "stream",
    "stream_errors",
    "tool_streams",
    "tools",
    "usage",
]
