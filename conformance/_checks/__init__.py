"""The checks, one module per group; importing this package registers them all."""

from __future__ import annotations

from conformance._checks import errors, json, models, n, response, stream, usage

__all__ = ["errors", "json", "models", "n", "response", "stream", "usage"]
