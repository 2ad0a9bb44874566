"""The JSON Schemas a request brings (a ``json_schema`` response format's ``schema``, a function
tool's ``parameters``): within the size the mock answers, then valid JSON Schema.

The limits follow OpenAI's: "A schema may have up to 5000 object properties total, with up to
10 levels of nesting" (platform.openai.com/docs/guides/structured-outputs, "Supported schemas",
"Objects have limitations on nesting depth and size"; 100 properties and 5 levels when
Structured Outputs launched in August 2024, community.openai.com/t/918388). The mock bounds
every schema, strict or not (it builds an instance of any schema it is given), so that no
schema OpenAI accepts is refused:

- at most :data:`MAX_SCHEMA_PROPERTIES` (5000, OpenAI's) properties in all ``properties``
  objects;
- at most :data:`MAX_SCHEMA_VALUES` (50,000) JSON values in all (objects, arrays, their members
  and keys' values): checking a schema costs time in proportion to its size, on the event loop,
  and 2,000,000 ``{}`` in an 8 MiB ``anyOf`` took 8 s; OpenAI bounds size too (5000
  properties, 1000 enum values, 120,000 characters of names and values), and 50,000 leaves room
  for its 5000 properties with a few keywords each;
- at most :data:`MAX_SCHEMA_DEPTH` JSON levels (objects and arrays, the schema itself at level
  1): a level of OpenAI's is a ``properties`` object and a property in it, two JSON levels, so
  its 10 levels with an ``items`` or ``anyOf`` between each take about 40; 64 leaves room and
  keeps every recursive reader of a schema (jsonschema took about 6 stack frames per level;
  ``json.dumps``, the deep copies of the defects) far within Python's recursion limit.

Then the schema must be valid against the draft 2020-12 meta-schema (whatever its ``$schema``
says), checked by the compiled validator (jsonschema-rs: 5000 properties in about a
millisecond, where jsonschema takes seconds on the event loop), formats included: a
``pattern`` must be an ECMA-262 regular expression (JSON Schema Validation 2020-12, 7.3.8
"regex"). Past a limit, or when the schema is not one, :func:`schema_problem` says why; the
caller answers 400.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

from mockserver._body import json_path

__all__ = ["MAX_SCHEMA_DEPTH", "MAX_SCHEMA_PROPERTIES", "MAX_SCHEMA_VALUES", "schema_problem"]

MAX_SCHEMA_DEPTH = 64  # JSON levels of one schema
MAX_SCHEMA_PROPERTIES = 5000  # OpenAI's limit on object properties in one schema
MAX_SCHEMA_VALUES = 50_000  # JSON values in one schema: its checking time is in proportion
_MAX_MESSAGE = 300


def _size_problem(schema: Any) -> str | None:
    """Why ``schema`` is past the limits (walked without recursion, stopping at the first
    limit passed), or None."""
    properties = values = 0
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        values += 1
        if values > MAX_SCHEMA_VALUES:
            return f"it has more than {MAX_SCHEMA_VALUES} JSON values in all."
        if depth > MAX_SCHEMA_DEPTH:
            return f"it nests deeper than {MAX_SCHEMA_DEPTH} levels (objects and arrays)."
        if isinstance(node, dict):
            held = node.get("properties")
            properties += len(held) if isinstance(held, dict) else 0
            if properties > MAX_SCHEMA_PROPERTIES:
                return f"it has more than {MAX_SCHEMA_PROPERTIES} properties in all."
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        stack.extend((c, depth + 1) for c in children)
    return None


@functools.cache
def _meta_validator() -> jsonschema_rs.Validator:
    """The compiled validator of the draft 2020-12 meta-schema, formats checked."""
    return jsonschema_rs.Draft202012Validator(
        Draft202012Validator.META_SCHEMA, validate_formats=True
    )


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is past the mock's limits or not a JSON Schema (draft 2020-12; the
    message cut at 300 characters), or None."""
    problem = _size_problem(schema)
    if problem is not None:
        return problem
    try:
        error = next(iter(_meta_validator().iter_errors(schema)), None)
    except (ValueError, OverflowError):  # a value it cannot represent
        return "it holds a value that cannot be checked."
    if error is None:
        return None
    where = json_path(tuple(error.instance_path))
    message = error.message + (f" (at '{where}')" if where else "")
    return message[:_MAX_MESSAGE]
