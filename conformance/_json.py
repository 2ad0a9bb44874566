"""JSON as RFC 8259 defines it: the suite's one parser of what an endpoint sends.

Python's ``json.loads`` accepts ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON
(RFC 8259 section 6: "Numeric values that cannot be represented ... such as Infinity and NaN
are not permitted"); a server that writes a ``-inf`` logprob with Python's ``json.dumps``
produces them, and JavaScript's ``JSON.parse``, Go's ``encoding/json`` and the OpenAI SDKs'
strict decoders refuse the body. Here they raise ``ValueError`` like any other non-JSON text,
so a check reports them as a finding instead of reading them as numbers.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 section 6: numbers are finite)")


def loads(data: bytes | str) -> Any:
    """``data`` parsed as JSON; raises ``ValueError`` (``json.JSONDecodeError`` or the constant
    refused) when it is not JSON, ``NaN`` / ``Infinity`` / ``-Infinity`` included."""
    return json.loads(data, parse_constant=_refuse_constant)
