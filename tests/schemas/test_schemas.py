"""schemas/: validity, the strict/compatible difference, and the OpenAPI document."""

from __future__ import annotations

import copy
import importlib.util
import json
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from chatcompat import schemas

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
SEED = resources.files("mockserver") / "data" / "seed"  # the package's copy
COMPATIBLE_ID_BASE = "https://chatcompat.invalid/schemas/compatible/"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
FILES = [(level, name) for level in schemas.LEVELS for name in schemas.NAMES]
FILE_IDS = [f"{level}/{name}" for level, name in FILES]
SEED_RESPONSES = ["response.json", "response-2.json"]
SEED_RESPONSE_IDS = ["response", "response-2"]
DELETE = object()  # sentinel for mutate(): remove the key instead of setting it


def seed(name: str) -> Any:
    return json.loads((SEED / name).read_text(encoding="utf-8"))


def sse_events(text: str) -> list[str]:
    """The data of each server-sent event (``data:`` lines joined by newlines)."""
    events = []
    for block in text.split("\n\n"):
        lines = [line[len("data:") :].removeprefix(" ") for line in block.splitlines()]
        if block.strip():
            events.append("\n".join(lines))
    return events


def chunks() -> list[dict[str, Any]]:
    events = sse_events((SEED / "stream.sse").read_text(encoding="utf-8"))
    assert events[-1] == "[DONE]"
    return [json.loads(event) for event in events[:-1]]


def mutate(doc: Any, pointer: str, value: Any) -> Any:
    """A copy of ``doc`` with ``value`` at JSON pointer ``pointer`` (``DELETE`` removes it)."""
    doc = copy.deepcopy(doc)
    *parents, last = pointer.split("/")[1:]
    node = doc
    for token in parents:
        node = node[int(token)] if isinstance(node, list) else node[token]
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return doc


def failures(name: str, level: schemas.Level, instance: Any) -> set[tuple[str, str]]:
    """(JSON path, keyword) of every error; a ``required`` error points at the missing key."""
    found = set()
    for error in schemas.validator(name, level).iter_errors(instance):
        if error.validator == "required":
            missing = [key for key in error.validator_value if key not in error.instance]
            found |= {(f"{error.json_path}.{key}", "required") for key in missing}
        else:
            found.add((error.json_path, str(error.validator)))
    return found


def make_compatible() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_compatible", SCHEMAS / "make_compatible.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def resolve_pointer(doc: Any, fragment: str) -> Any:
    for token in fragment.split("/")[1:] if fragment else []:
        token = token.replace("~1", "/").replace("~0", "~")
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


# --- every file is a valid 2020-12 schema --------------------------------------------------------


@pytest.mark.parametrize(("level", "name"), FILES, ids=FILE_IDS)
def test_schema_file_is_valid_2020_12(level, name):
    schema = schemas.load(name, level)
    assert schema["$schema"] == DRAFT_2020_12
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(("level", "name"), FILES, ids=FILE_IDS)
def test_every_internal_ref_resolves(level, name):
    schema = schemas.load(name, level)
    for ref in refs(schema):
        assert ref.startswith("#/"), ref
        assert isinstance(resolve_pointer(schema, ref[1:]), dict), ref


def test_ids_are_distinct_and_compatible_ids_are_ours():
    ids = {(level, name): schemas.load(name, level)["$id"] for level, name in FILES}
    assert len(set(ids.values())) == len(FILES)
    for name in schemas.NAMES:
        assert ids["compatible", name] == f"{COMPATIBLE_ID_BASE}{name}.json"
        assert ids["strict", name].startswith("https://example.invalid/openai-openapi/2.3.0/")


# --- compatible is generated --------------------------------------------------------------------


@pytest.mark.parametrize("name", schemas.NAMES, ids=list(schemas.NAMES))
def test_committed_compatible_file_equals_generator_output(name):
    committed = (SCHEMAS / "compatible" / f"{name}.json").read_text(encoding="utf-8")
    assert committed == make_compatible().build(name)


def test_generator_check_mode_passes():
    assert make_compatible().main(["--check"]) == 0


def test_readme_lists_every_edit():
    readme = (SCHEMAS / "README.md").read_text(encoding="utf-8")
    assert make_compatible().markdown_table() in readme


# --- seed examples ------------------------------------------------------------------------------

SEED_STRICT_FAILURES = {
    ("$.choices[0].logprobs", "required"),
    ("$.choices[0].message.refusal", "required"),
    ("$.usage.prompt_tokens_details", "type"),
    ("$.usage.completion_tokens_details", "type"),
}


@pytest.mark.parametrize("file", SEED_RESPONSES, ids=SEED_RESPONSE_IDS)
def test_seed_response_passes_compatible(file):
    assert failures("chat-completion", "compatible", seed(file)) == set()


@pytest.mark.parametrize("file", SEED_RESPONSES, ids=SEED_RESPONSE_IDS)
def test_seed_response_fails_strict_on_exactly_the_four_known_points(file):
    assert failures("chat-completion", "strict", seed(file)) == SEED_STRICT_FAILURES


@pytest.mark.parametrize("level", schemas.LEVELS, ids=list(schemas.LEVELS))
def test_seed_stream_chunks_pass(level):
    found = chunks()
    assert len(found) == 9
    for chunk in found:
        assert failures("chat-completion-chunk", level, chunk) == set()


@pytest.mark.parametrize("level", schemas.LEVELS, ids=list(schemas.LEVELS))
@pytest.mark.parametrize("file", ["request.json", "request-stream.json"], ids=["plain", "stream"])
def test_seed_request_passes(file, level):
    assert failures("chat-completion-request", level, seed(file)) == set()


def test_seed_copies_are_the_documented_files():
    assert sorted(p.name for p in SEED.iterdir()) == [
        "request-stream.json",
        "request.json",
        "response-2.json",
        "response.json",
        "stream.sse",
    ]


# --- request: top_logprobs quirk and provider extras --------------------------------------------


def test_top_logprobs_null_fails_strict_and_passes_compatible():
    request = {**seed("request.json"), "top_logprobs": None}
    assert failures("chat-completion-request", "strict", request) == {("$.top_logprobs", "type")}
    assert failures("chat-completion-request", "compatible", request) == set()


def test_top_logprobs_range_still_enforced():
    request = {**seed("request.json"), "top_logprobs": 21}
    assert ("$.top_logprobs", "maximum") in failures(
        "chat-completion-request", "compatible", request
    )


EXTRAS_OK = [
    {"top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1},
    {"top_k": -1, "min_p": 0, "repetition_penalty": 0.5},
    {"top_k": 0, "min_p": 1, "repetition_penalty": 2},
    {"top_k": None, "min_p": None, "repetition_penalty": None},
    {"top_k": 40, "ignore_eos": True, "stop_token_ids": [1, 2]},  # unknown keys stay allowed
]


@pytest.mark.parametrize(
    "extras", EXTRAS_OK, ids=["typical", "off-values", "bounds", "nulls", "unknown-keys"]
)
def test_provider_extras_pass_compatible(extras):
    request = {**seed("request.json"), **extras}
    assert failures("chat-completion-request", "compatible", request) == set()


EXTRAS_BAD = [
    ("top_k", -2, "minimum"),
    ("top_k", 1.5, "type"),
    ("top_k", "40", "type"),
    ("min_p", 1.5, "maximum"),
    ("min_p", -0.1, "minimum"),
    ("repetition_penalty", 0, "exclusiveMinimum"),
    ("repetition_penalty", -1.0, "exclusiveMinimum"),
]


@pytest.mark.parametrize(
    ("key", "value", "keyword"),
    EXTRAS_BAD,
    ids=[f"{key}={value!r}" for key, value, _ in EXTRAS_BAD],
)
def test_bad_provider_extras_fail_compatible_only(key, value, keyword):
    request = {**seed("request.json"), key: value}
    assert failures("chat-completion-request", "compatible", request) == {(f"$.{key}", keyword)}
    assert failures("chat-completion-request", "strict", request) == set()  # strict: untyped


# --- what real servers send: passes compatible, fails strict ------------------------------------

RESPONSE = seed("response.json")
OPENAI_RESPONSE = RESPONSE
for pointer, value in [
    ("/choices/0/logprobs", None),
    ("/choices/0/message/refusal", None),
    ("/usage/prompt_tokens_details", {"cached_tokens": 0}),
    ("/usage/completion_tokens_details", DELETE),
]:
    OPENAI_RESPONSE = mutate(OPENAI_RESPONSE, pointer, value)
ERROR = {"error": {"message": "bad", "type": "invalid_request_error", "param": "x", "code": None}}

# (schema, document, the strict failures it shows)
REAL = {
    "vllm-null-fingerprint": (
        "chat-completion",
        mutate(OPENAI_RESPONSE, "/system_fingerprint", None),
        {("$.system_fingerprint", "type")},
    ),
    "null-finish-reason": (
        "chat-completion",
        mutate(OPENAI_RESPONSE, "/choices/0/finish_reason", None),
        {("$.choices[0].finish_reason", "type"), ("$.choices[0].finish_reason", "enum")},
    ),
    "chunk-null-fingerprint-and-details": (
        "chat-completion-chunk",
        {
            **chunks()[0],
            "choices": [],
            "system_fingerprint": None,
            "usage": RESPONSE["usage"],
        },
        {
            ("$.system_fingerprint", "type"),
            ("$.usage", "anyOf"),
        },
    ),
    "llama-cpp-error": (
        "error",
        {"error": {"code": 400, "message": "bad", "type": "invalid_request_error"}},
        {("$.error.param", "required"), ("$.error.code", "anyOf")},
    ),
    "azure-error": (
        "error",
        {"error": {"code": "DeploymentNotFound", "message": "no such deployment"}},
        {("$.error.param", "required"), ("$.error.type", "required")},
    ),
    "azure-content-filter-error": (
        "error",
        mutate(mutate(ERROR, "/error/type", None), "/error/code", "content_filter"),
        {("$.error.type", "type")},
    ),
}


@pytest.mark.parametrize("case", list(REAL), ids=list(REAL))
def test_real_server_output_passes_compatible_and_fails_strict(case):
    name, document, strict_failures = REAL[case]
    assert failures(name, "compatible", document) == set()
    assert failures(name, "strict", document) == strict_failures


@pytest.mark.parametrize("level", schemas.LEVELS, ids=list(schemas.LEVELS))
def test_openai_shaped_response_passes_both_levels(level):
    assert failures("chat-completion", level, OPENAI_RESPONSE) == set()
    assert failures("error", level, ERROR) == set()


# --- garbage still fails compatible -------------------------------------------------------------

CHUNK = chunks()[0]
MODEL = {"id": "m", "object": "model", "created": 0, "owned_by": "me"}
GARBAGE = {
    "response-object-foo": ("chat-completion", mutate(RESPONSE, "/object", "foo")),
    "response-object-is-chunk": (
        "chat-completion",
        mutate(RESPONSE, "/object", "chat.completion.chunk"),
    ),
    "response-choices-null": ("chat-completion", mutate(RESPONSE, "/choices", None)),
    "response-finish-reason-eos-token": (
        "chat-completion",
        mutate(RESPONSE, "/choices/0/finish_reason", "eos_token"),
    ),
    "response-missing-id": ("chat-completion", mutate(RESPONSE, "/id", DELETE)),
    "response-missing-model": ("chat-completion", mutate(RESPONSE, "/model", DELETE)),
    "response-created-string": ("chat-completion", mutate(RESPONSE, "/created", "1731584707")),
    "response-missing-message": ("chat-completion", mutate(RESPONSE, "/choices/0/message", DELETE)),
    "response-missing-finish-reason": (
        "chat-completion",
        mutate(RESPONSE, "/choices/0/finish_reason", DELETE),
    ),
    "response-missing-index": ("chat-completion", mutate(RESPONSE, "/choices/0/index", DELETE)),
    "response-role-user": ("chat-completion", mutate(RESPONSE, "/choices/0/message/role", "user")),
    "response-usage-details-string": (
        "chat-completion",
        mutate(RESPONSE, "/usage/prompt_tokens_details", "none"),
    ),
    "chunk-object-is-completion": (
        "chat-completion-chunk",
        mutate(CHUNK, "/object", "chat.completion"),
    ),
    "chunk-object-empty-azure-prelude": ("chat-completion-chunk", mutate(CHUNK, "/object", "")),
    "chunk-choices-null": ("chat-completion-chunk", mutate(CHUNK, "/choices", None)),
    "chunk-finish-reason-eos-token": (
        "chat-completion-chunk",
        mutate(CHUNK, "/choices/0/finish_reason", "eos_token"),
    ),
    "chunk-missing-delta": ("chat-completion-chunk", mutate(CHUNK, "/choices/0/delta", DELETE)),
    "chunk-missing-id": ("chat-completion-chunk", mutate(CHUNK, "/id", DELETE)),
    "error-bare-vllm-legacy": ("error", {"object": "error", "message": "bad", "code": 400}),
    "error-missing-message": ("error", mutate(ERROR, "/error/message", DELETE)),
    "error-code-float": ("error", mutate(ERROR, "/error/code", 1.5)),
    "model-object-foo": ("model", {**MODEL, "object": "foo"}),
    "model-not-an-object": ("model", "gpt-4o"),
    "model-list-entry-string": ("model-list", {"object": "list", "data": ["gpt-4o"]}),
    "model-list-data-null": ("model-list", {"object": "list", "data": None}),
    "request-no-messages": (
        "chat-completion-request",
        mutate(seed("request.json"), "/messages", []),
    ),
}


@pytest.mark.parametrize("case", list(GARBAGE), ids=list(GARBAGE))
def test_garbage_fails_compatible(case):
    name, document = GARBAGE[case]
    assert failures(name, "compatible", document) != set()


@pytest.mark.parametrize("level", schemas.LEVELS, ids=list(schemas.LEVELS))
def test_model_and_list_pass(level):
    assert failures("model", level, MODEL) == set()
    assert failures("model-list", level, {"object": "list", "data": [MODEL]}) == set()


def test_model_type_object_is_the_one_tightening():
    assert failures("model", "strict", "gpt-4o") == set()  # the spec's Model has no type
    assert failures("model", "compatible", "gpt-4o") == {("$", "type")}


# --- the OpenAPI document -----------------------------------------------------------------------


def openapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(schemas.openapi_text())
    return document


def test_openapi_document_shape():
    document = openapi()
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [
        {
            "url": "http://127.0.0.1:8000/v1",
            "description": "a local server (the chatcompat mock, vLLM, llama.cpp, ...)",
        }
    ]
    assert {(path, method) for path, item in document["paths"].items() for method in item} == {
        ("/chat/completions", "post"),
        ("/models", "get"),
        ("/models/{model}", "get"),
    }
    ok = document["paths"]["/chat/completions"]["post"]["responses"]["200"]["content"]
    assert sorted(ok) == ["application/json", "text/event-stream"]
    assert document["security"] == [{"bearerAuth": []}, {}]


def test_every_openapi_ref_resolves():
    document = openapi()
    found = refs(document)
    assert len(found) >= 10
    for ref in found:
        file, _, fragment = ref.partition("#")
        target = document if not file else json.loads((SCHEMAS / file).read_text("utf-8"))
        if file:
            assert file.startswith("./compatible/"), ref
        assert isinstance(resolve_pointer(target, fragment), dict), ref


def test_openapi_document_passes_openapi_spec_validator():
    validator = pytest.importorskip("openapi_spec_validator")
    path = SCHEMAS / "openapi.yaml"
    validator.validate(yaml.safe_load(path.read_text("utf-8")), base_uri=path.as_uri())


def stream_event_validator() -> Draft202012Validator:
    """The OpenAPI ``text/event-stream`` schema, its relative $ref resolved by the files' $ids."""
    event = openapi()["components"]["schemas"]["ChatCompletionStreamEvent"]
    schema = {"$id": "https://chatcompat.invalid/schemas/openapi.yaml", **event}
    chunk = schemas.load("chat-completion-chunk", "compatible")
    registry: Registry[Any] = Registry().with_resource(chunk["$id"], Resource.from_contents(chunk))
    return Draft202012Validator(schema, registry=registry)


def test_every_seed_sse_event_matches_the_openapi_stream_event_schema():
    validator = stream_event_validator()
    events = sse_events((SEED / "stream.sse").read_text(encoding="utf-8"))
    for event in events:
        instance = event if event == "[DONE]" else json.loads(event)
        assert list(validator.iter_errors(instance)) == []
    assert not validator.is_valid("[done]")
    assert not validator.is_valid(mutate(chunks()[0], "/object", "chat.completion"))
