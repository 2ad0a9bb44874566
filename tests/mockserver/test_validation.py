"""The compiled request validator agrees with jsonschema: it may only ever speed up a yes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatcompat import schemas
from mockserver._validation import compiled_validator

SCHEMA = "chat-completion-request"


def _property_names(schema, depth=0):
    """The property names the request schema mentions at the request object's level."""
    if not isinstance(schema, dict) or depth > 3:
        return set()
    names = set(schema.get("properties", {}))
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            names |= _property_names(part, depth + 1)
    return names


KEYS = sorted(_property_names(schemas.load(SCHEMA, "compatible")) | {"not_a_parameter"})
PLAUSIBLE = [
    True,
    False,
    None,
    0,
    1,
    2,
    -1,
    0.5,
    1.5,
    3,
    2**63,
    "auto",
    "none",
    "required",
    "low",
    "high",
    "default",
    "stop",
    ["stop", "end"],
    {"type": "json_object"},
    {"type": "text"},
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    {"include_usage": True},
    {"type": "function", "function": {"name": "f"}},
    [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    {"1": 10},
    {"a": "b"},
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
parts = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "refusal", "input_audio", "file"])},
    optional={
        "text": st.text(max_size=8) | json_values,
        "image_url": st.just({"url": "https://x/y.png"}) | json_values,
    },
)
messages = st.fixed_dictionaries(
    {
        "role": st.sampled_from(
            ["system", "developer", "user", "assistant", "tool", "function", "x"]
        )
    },
    optional={
        "content": st.text(max_size=8) | st.none() | st.lists(parts, max_size=2) | json_values,
        "name": st.text(max_size=5) | json_values,
        "tool_call_id": st.text(max_size=5),
        "tool_calls": st.just(
            [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
        )
        | json_values,
        "refusal": st.none() | st.text(max_size=5),
    },
)


VALID = {
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1),
    "n": st.integers(1, 128),
    "max_tokens": st.integers(1, 4096),
    "max_completion_tokens": st.integers(1, 4096),
    "stream": st.booleans(),
    "stop": st.text(max_size=4) | st.lists(st.text(min_size=1, max_size=4), max_size=4),
    "presence_penalty": st.floats(-2, 2),
    "frequency_penalty": st.floats(-2, 2),
    "seed": st.integers(-(2**63), 2**63 - 1),
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(0, 20),
    "user": st.text(max_size=8),
    "parallel_tool_calls": st.booleans(),
    "logit_bias": st.dictionaries(st.integers(0, 999).map(str), st.integers(-100, 100)),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "response_format": st.sampled_from(PLAUSIBLE[19:22]),
    "tool_choice": st.sampled_from(["auto", "none", "required", PLAUSIBLE[23]]),
    "tools": st.just(PLAUSIBLE[24]),
    "top_k": st.integers(-1, 100),
    "min_p": st.floats(0, 1),
    "repetition_penalty": st.floats(0.01, 2),
}
valid_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=8)}
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def requests(draw):
    """Request bodies near the schema's edges: a valid core with valid or wild parameters."""
    body = {"model": draw(st.text(min_size=1, max_size=8)), "messages": draw(valid_messages)}
    for key in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=5, unique=True)):
        body[key] = draw(VALID[key])
    if draw(st.booleans()):  # one wild value somewhere
        where = draw(st.sampled_from(["model", "messages", "message", "parameter"]))
        if where == "message":
            body["messages"][0] = draw(messages)
        else:
            key = draw(st.sampled_from(KEYS)) if where == "parameter" else where
            body[key] = draw(st.sampled_from(PLAUSIBLE) | json_values)
    if not draw(st.integers(0, 19)):
        del body[draw(st.sampled_from(["model", "messages"]))]
    return body


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_compiled_validator_agrees_with_jsonschema(body):
    assert compiled_validator(SCHEMA).is_valid(body) == schemas.validator(SCHEMA).is_valid(body)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_agrees_on_any_json(value):
    assert compiled_validator(SCHEMA).is_valid(value) == schemas.validator(SCHEMA).is_valid(value)


def test_common_bodies_take_the_fast_path():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    assert compiled_validator(SCHEMA).is_valid(body)
    assert compiled_validator(SCHEMA).is_valid({**body, "temperature": 0.7, "max_tokens": 9})
    assert not compiled_validator(SCHEMA).is_valid({**body, "temperature": 3})
