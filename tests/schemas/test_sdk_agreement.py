"""The compatible level is what openai-python accepts (issue 11, item 3).

Two halves: (1) a walk over the SDK's response models beside the compatible schema, field by
field: nullable in the SDK <=> the schema accepts null; required in the SDK (no default) =>
required in the schema. (2) Real vLLM shapes (field sets from vLLM's
``vllm/entrypoints/openai/protocol.py``: ``ChatMessage``, ``ChatCompletionLogProbs``,
``ChatCompletionResponseChoice``, ``ChatCompletionResponse``, ``DeltaToolCall``) pass both the
SDK's ``model_validate`` and the compatible schema; shapes the SDK rejects fail both.
"""

from __future__ import annotations

import copy
import types
import typing
from typing import Any, Union, get_args, get_origin

import pytest
from jsonschema import Draft202012Validator
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, ValidationError

from chatcompat import schemas

SDK_MODELS: dict[str, type[BaseModel]] = {
    "chat-completion": ChatCompletion,
    "chat-completion-chunk": ChatCompletionChunk,
}
# Known disagreements, each with its reason: (schema, JSON-ish path, what differs).
KNOWN: set[tuple[str, str, str]] = {
    # vLLM's ChatCompletionResponseChoice.finish_reason is Optional; the SDK's Choice.finish_reason
    # is a plain Literal, but the client's response parsing (construct, no validation) keeps null.
    ("chat-completion", "$.choices[].finish_reason", "nullable: sdk False, schema True"),
    # Kept required although the SDK gives them a default: every engine sends them (null when
    # empty), and a missing key is a defect the SDK hides (the kill matrix's
    # no-content-with-tool-calls and logprobs-completions-shape are caught by the schema checks).
    ("chat-completion", "$.choices[].message.content", "has a default in sdk, required in schema"),
    ("chat-completion", "$.choices[].logprobs.content", "has a default in sdk, required in schema"),
    (
        "chat-completion-chunk",
        "$.choices[].logprobs.content",
        "has a default in sdk, required in schema",
    ),
}


# --- walking the SDK's models beside the schema -------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    return get_args(annotation)[0] if get_origin(annotation) is typing.Annotated else annotation


def _split_optional(annotation: Any) -> tuple[bool, Any]:
    """(whether None is allowed, the annotation without None)."""
    annotation = _unwrap(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        rest = tuple(arg for arg in args if arg is not type(None))
        inner = rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007 - built at run time
        return type(None) in args, _unwrap(inner)
    return False, annotation


def _alternatives(root: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-combinator subschemas ``node`` stands for ($ref followed, anyOf/oneOf flattened)."""
    while "$ref" in node:
        node = root["$defs"][node["$ref"].split("/")[-1]]
    for keyword in ("anyOf", "oneOf"):
        if keyword in node:
            return [leaf for alt in node[keyword] for leaf in _alternatives(root, alt)]
    return [node]


def _accepts_null(root: dict[str, Any], node: dict[str, Any]) -> bool:
    return Draft202012Validator({**node, "$defs": root["$defs"]}).is_valid(None)


def _walk_model(
    root: dict[str, Any], model: type[BaseModel], node: dict[str, Any], path: str
) -> list[str]:
    objects = [alt for alt in _alternatives(root, node) if "properties" in alt]
    assert objects, f"{path}: no object schema for {model.__name__}"
    found = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        owners = [obj for obj in objects if key in obj["properties"]]
        if not owners:
            continue  # a member the spec does not declare: unconstrained, extras are allowed
        sub = owners[0]["properties"][key]
        sdk_null, inner = _split_optional(field.annotation)
        schema_null = _accepts_null(root, sub)
        if sdk_null != schema_null:
            found.append(f"{path}.{key}|nullable: sdk {sdk_null}, schema {schema_null}")
        if field.is_required() and key not in owners[0].get("required", []):
            found.append(f"{path}.{key}|required in sdk, optional in schema")
        if not field.is_required() and key in owners[0].get("required", []):
            found.append(f"{path}.{key}|has a default in sdk, required in schema")
        found += _walk_type(root, inner, sub, f"{path}.{key}")
    return found


def _walk_type(root: dict[str, Any], annotation: Any, node: dict[str, Any], path: str) -> list[str]:
    _, annotation = _split_optional(annotation)
    if get_origin(annotation) is list:
        arrays = [alt for alt in _alternatives(root, node) if "items" in alt]
        assert arrays, f"{path}: the SDK has a list, the schema no array"
        return _walk_type(root, get_args(annotation)[0], arrays[0]["items"], f"{path}[]")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _walk_model(root, annotation, node, path)
    found = []
    if get_origin(annotation) in (Union, types.UnionType):  # tagged unions such as tool calls
        for member in map(_unwrap, get_args(annotation)):
            if not (isinstance(member, type) and issubclass(member, BaseModel)):
                continue
            tag = get_args(member.model_fields["type"].annotation)[0]
            tagged = [
                alt
                for alt in _alternatives(root, node)
                if tag in alt.get("properties", {}).get("type", {}).get("enum", [])
            ]
            assert tagged, f"{path}: no schema alternative with type {tag!r}"
            found += _walk_model(root, member, tagged[0], f"{path}<{tag}>")
    return found


@pytest.mark.parametrize("name", list(SDK_MODELS))
def test_compatible_schema_agrees_with_the_sdk_models(name):
    root = schemas.load(name, "compatible")
    disagreements = {
        (name, *entry.split("|")) for entry in _walk_model(root, SDK_MODELS[name], root, "$")
    }
    assert disagreements == {known for known in KNOWN if known[0] == name}


def test_the_walk_sees_the_strict_differences():
    """Guard for the walker itself: on strict it must find the nulls vLLM sends."""
    root = schemas.load("chat-completion", "strict")
    found = _walk_model(root, ChatCompletion, root, "$")
    assert "$.choices[].message.function_call|nullable: sdk True, schema False" in found
    assert "$.choices[].logprobs.refusal|has a default in sdk, required in schema" in found


# --- real shapes: parsed by the SDK and accepted by the compatible schema ------------------------

VLLM_TOKEN = {"token": "Hi", "logprob": -0.25, "bytes": [72, 105]}
VLLM_RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-5f0c",
    "object": "chat.completion",
    "created": 1764489600,
    "model": "tiny-llama",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hi",
                "refusal": None,
                "annotations": None,
                "audio": None,
                "function_call": None,
                "tool_calls": [],
                "reasoning": None,
                "reasoning_content": None,
            },
            "logprobs": {"content": [{**VLLM_TOKEN, "top_logprobs": [VLLM_TOKEN]}]},
            "finish_reason": "stop",
            "stop_reason": None,
            "token_ids": None,
        }
    ],
    "service_tier": None,
    "system_fingerprint": None,
    "usage": {
        "prompt_tokens": 5,
        "total_tokens": 6,
        "completion_tokens": 1,
        "prompt_tokens_details": None,
    },
    "prompt_logprobs": None,
    "prompt_token_ids": None,
    "kv_transfer_params": None,
}
VLLM_CHUNK: dict[str, Any] = {
    "id": "chatcmpl-5f0c",
    "object": "chat.completion.chunk",
    "created": 1764489600,
    "model": "tiny-llama",
    "choices": [
        {
            "index": 0,
            "delta": {"role": None, "content": "Hi", "reasoning": None, "tool_calls": []},
            "logprobs": {"content": [{**VLLM_TOKEN, "top_logprobs": [VLLM_TOKEN]}]},
            "finish_reason": None,
            "stop_reason": None,
            "token_ids": [13347],
        }
    ],
    "service_tier": None,
    "system_fingerprint": None,
    "prompt_token_ids": None,
}
VLLM_TOOL_DELTA = {
    "tool_calls": [
        {"index": 0, "id": None, "type": None, "function": {"name": None, "arguments": '{"a'}}
    ]
}


_DELETE = object()  # sentinel for _set(): remove the key


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


CHOICE = ("choices", 0)
ACCEPTED: dict[str, tuple[str, dict[str, Any]]] = {
    "vllm-answer": ("chat-completion", VLLM_RESPONSE),
    "answer-usage-null": ("chat-completion", _set(VLLM_RESPONSE, ("usage",), None)),
    "answer-details-counts-null": (
        "chat-completion",
        _set(VLLM_RESPONSE, ("usage", "prompt_tokens_details"), {"cached_tokens": None}),
    ),
    "answer-tool-calls-null": (
        "chat-completion",
        _set(VLLM_RESPONSE, (*CHOICE, "message", "tool_calls"), None),
    ),
    "vllm-chunk": ("chat-completion-chunk", VLLM_CHUNK),
    "chunk-tool-call-delta-nulls": (
        "chat-completion-chunk",
        _set(VLLM_CHUNK, (*CHOICE, "delta"), VLLM_TOOL_DELTA),
    ),
    "chunk-finish-reason-missing": (
        "chat-completion-chunk",
        _set(VLLM_CHUNK, (*CHOICE, "finish_reason"), _DELETE),
    ),
    "chunk-function-call-null": (
        "chat-completion-chunk",
        _set(VLLM_CHUNK, (*CHOICE, "delta", "function_call"), None),
    ),
    "chunk-usage-details-null": (
        "chat-completion-chunk",
        {**VLLM_CHUNK, "choices": [], "usage": VLLM_RESPONSE["usage"]},
    ),
}
# The SDK parses these (its defaults fill the gap), compatible keeps rejecting them (see KNOWN).
STRICTER_THAN_SDK: dict[str, tuple[str, dict[str, Any]]] = {
    "answer-content-missing": (
        "chat-completion",
        _set(VLLM_RESPONSE, (*CHOICE, "message", "content"), _DELETE),
    ),
    "answer-logprobs-legacy-completions-shape": (
        "chat-completion",
        _set(VLLM_RESPONSE, (*CHOICE, "logprobs"), {"tokens": ["Hi"], "token_logprobs": [-0.25]}),
    ),
}
REJECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "answer-choices-missing": ("chat-completion", _set(VLLM_RESPONSE, ("choices",), _DELETE)),
    "answer-role-a-number": (
        "chat-completion",
        _set(VLLM_RESPONSE, (*CHOICE, "message", "role"), 1),
    ),
    "answer-finish-reason-a-number": (
        "chat-completion",
        _set(VLLM_RESPONSE, (*CHOICE, "finish_reason"), 1),
    ),
    "answer-finish-reason-missing": (
        "chat-completion",
        _set(VLLM_RESPONSE, (*CHOICE, "finish_reason"), _DELETE),
    ),
    "answer-created-a-string": ("chat-completion", _set(VLLM_RESPONSE, ("created",), "today")),
    "answer-message-missing": (
        "chat-completion",
        _set(VLLM_RESPONSE, (*CHOICE, "message"), _DELETE),
    ),
    "answer-token-missing": (
        "chat-completion",
        _set(VLLM_RESPONSE, (*CHOICE, "logprobs", "content", 0, "token"), _DELETE),
    ),
    "answer-usage-count-missing": (
        "chat-completion",
        _set(VLLM_RESPONSE, ("usage", "prompt_tokens"), _DELETE),
    ),
    "chunk-choices-missing": ("chat-completion-chunk", _set(VLLM_CHUNK, ("choices",), _DELETE)),
    "chunk-delta-missing": ("chat-completion-chunk", _set(VLLM_CHUNK, (*CHOICE, "delta"), _DELETE)),
    "chunk-role-a-number": (
        "chat-completion-chunk",
        _set(VLLM_CHUNK, (*CHOICE, "delta", "role"), 1),
    ),
    "chunk-finish-reason-a-number": (
        "chat-completion-chunk",
        _set(VLLM_CHUNK, (*CHOICE, "finish_reason"), 1),
    ),
    "chunk-created-a-string": ("chat-completion-chunk", _set(VLLM_CHUNK, ("created",), "today")),
}


@pytest.mark.parametrize("case", list(ACCEPTED), ids=list(ACCEPTED))
def test_shape_the_sdk_parses_passes_compatible(case):
    name, document = ACCEPTED[case]
    SDK_MODELS[name].model_validate(document)
    assert list(schemas.validator(name, "compatible").iter_errors(document)) == []


@pytest.mark.parametrize("case", list(REJECTED), ids=list(REJECTED))
def test_shape_the_sdk_rejects_fails_compatible(case):
    name, document = REJECTED[case]
    with pytest.raises(ValidationError):
        SDK_MODELS[name].model_validate(document)
    assert not schemas.validator(name, "compatible").is_valid(document)


@pytest.mark.parametrize("case", list(STRICTER_THAN_SDK), ids=list(STRICTER_THAN_SDK))
def test_missing_key_the_sdk_defaults_still_fails_compatible(case):
    name, document = STRICTER_THAN_SDK[case]
    SDK_MODELS[name].model_validate(document)
    assert not schemas.validator(name, "compatible").is_valid(document)


def test_vllm_answer_fails_strict_on_its_nulls():
    """strict stays OpenAI's schema: the vLLM nulls are exactly what compatible relaxes."""
    errors = schemas.validator("chat-completion", "strict").iter_errors(VLLM_RESPONSE)
    paths = {error.json_path for error in errors}
    assert "$.choices[0].message.function_call" in paths
    assert "$.choices[0].message.annotations" in paths
