"""Generate ``schemas/compatible/*.json`` from ``schemas/strict/*.json`` (stdlib only).

The compatible level is "what the official clients accept in practice": the strict OpenAI schema
plus the small relaxations in ``EDITS``, one line each with the reason. Run from anywhere:

    python schemas/make_compatible.py          # rewrite schemas/compatible/
    python schemas/make_compatible.py --check  # exit 1 if a committed file is stale
    python schemas/make_compatible.py --table  # the markdown table used in schemas/README.md

Each edit asserts that it changes something, so an upstream schema change that makes an edit moot
(or moves its target) stops the script instead of silently producing a different schema.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
NAMES = (
    "chat-completion-request",
    "chat-completion",
    "chat-completion-chunk",
    "error",
    "model",
    "model-list",
)
ID_BASE = "https://chatcompat.invalid/schemas/compatible/"

# top_k / min_p / repetition_penalty: bounds as vLLM's SamplingParams validates them.
TOP_K = {
    "description": "Provider extra (vLLM): sample from the k most likely tokens; 0 or -1 = off.",
    "type": ["integer", "null"],
    "minimum": -1,
}
MIN_P = {
    "description": "Provider extra (vLLM): drop tokens with prob < min_p * p(top token).",
    "type": ["number", "null"],
    "minimum": 0,
    "maximum": 1,
}
REPETITION_PENALTY = {
    "description": "Provider extra (vLLM): multiplicative penalty on seen tokens; 1.0 = off.",
    "type": ["number", "null"],
    "exclusiveMinimum": 0,
}
NULL = {"type": "null"}
INTEGER = {"type": "integer"}


class Edit(NamedTuple):
    """One relaxation: apply ``op`` (with ``arg``) at JSON pointer ``at`` in schema ``name``."""

    name: str
    at: str  # RFC 6901 JSON pointer into the strict schema
    op: str  # "unrequire" | "nullable" | "allow" | "add"
    arg: Any
    why: str


# One edit per call, kept table-like by hand.
# fmt: off
EDITS: tuple[Edit, ...] = (
    # chat-completion: the four points on which the seed provider's documented answer fails.
    Edit("chat-completion", "/properties/choices/items", "unrequire", "logprobs",
         "seed provider and llama.cpp omit it unless logprobs were asked; openai-python: Optional"),
    Edit("chat-completion", "/$defs/ChatCompletionResponseMessage", "unrequire", "refusal",
         "seed provider, llama.cpp and pre-Aug-2024 servers never send it; client: Optional"),
    Edit("chat-completion", "/$defs/CompletionUsage/properties/prompt_tokens_details",
         "nullable", None, "seed provider sends null; vLLM declares it Optional; client: Optional"),
    Edit("chat-completion", "/$defs/CompletionUsage/properties/completion_tokens_details",
         "nullable", None, "seed provider sends null; openai-python: Optional"),
    Edit("chat-completion", "/properties/system_fingerprint", "nullable", None,
         "vLLM declares it Optional and OpenAI itself sent null for some models; client: Optional"),
    Edit("chat-completion", "/properties/choices/items/properties/finish_reason", "nullable", None,
         "vLLM declares the choice's finish_reason Optional; same enum as the chunk schema"),
    # Derived from openai-python's response models (tests/schemas/test_sdk_agreement.py walks
    # them): a field typed Optional may be null, a field with a default may be missing. Kept
    # required on purpose although the SDK defaults them: message.content and logprobs.content
    # (every engine sends them, null when empty; a missing key hides a defect the SDK papers over).
    Edit("chat-completion",
         "/$defs/ChatCompletionResponseMessage/properties/function_call",
         "nullable", None,
         "vLLM's ChatMessage sends null; ChatCompletionMessage.function_call: Optional"),
    Edit("chat-completion",
         "/$defs/ChatCompletionResponseMessage/properties/annotations",
         "nullable", None,
         "vLLM's ChatMessage sends null; ChatCompletionMessage.annotations: Optional"),
    Edit("chat-completion",
         "/$defs/ChatCompletionResponseMessage/properties/tool_calls",
         "nullable", None, "ChatCompletionMessage.tool_calls: Optional (vLLM forks send null)"),
    Edit("chat-completion",
         "/properties/choices/items/properties/logprobs/anyOf/0",
         "unrequire", "refusal",
         "vLLM's logprobs carry only content; ChoiceLogprobs.refusal: default None"),
    Edit("chat-completion",
         "/$defs/ChatCompletionTokenLogprob",
         "unrequire", "bytes", "ChatCompletionTokenLogprob.bytes: Optional, default None"),
    Edit("chat-completion",
         "/$defs/ChatCompletionTokenLogprob/properties/top_logprobs/items",
         "unrequire", "bytes", "TopLogprob.bytes: Optional, default None"),
    Edit("chat-completion",
         "/properties/usage",
         "nullable", None, "ChatCompletion.usage: Optional"),
    Edit("chat-completion",
         "/$defs/CompletionUsage/properties/completion_tokens_details/properties/accepted_prediction_tokens",
         "nullable", None, "CompletionTokensDetails.accepted_prediction_tokens: Optional"),
    Edit("chat-completion",
         "/$defs/CompletionUsage/properties/completion_tokens_details/properties/audio_tokens",
         "nullable", None, "CompletionTokensDetails.audio_tokens: Optional"),
    Edit("chat-completion",
         "/$defs/CompletionUsage/properties/completion_tokens_details/properties/reasoning_tokens",
         "nullable", None, "CompletionTokensDetails.reasoning_tokens: Optional"),
    Edit("chat-completion",
         "/$defs/CompletionUsage/properties/completion_tokens_details/properties/rejected_prediction_tokens",
         "nullable", None, "CompletionTokensDetails.rejected_prediction_tokens: Optional"),
    Edit("chat-completion",
         "/$defs/CompletionUsage/properties/completion_tokens_details/properties/text_tokens",
         "nullable", None, "CompletionTokensDetails.text_tokens: Optional"),
    Edit("chat-completion",
         "/$defs/CompletionUsage/properties/prompt_tokens_details/properties/audio_tokens",
         "nullable", None, "PromptTokensDetails.audio_tokens: Optional"),
    Edit("chat-completion",
         "/$defs/CompletionUsage/properties/prompt_tokens_details/properties/cache_write_tokens",
         "nullable", None, "PromptTokensDetails.cache_write_tokens: Optional"),
    Edit("chat-completion",
         "/$defs/CompletionUsage/properties/prompt_tokens_details/properties/cached_tokens",
         "nullable", None, "PromptTokensDetails.cached_tokens: Optional"),
    Edit("chat-completion",
         "/$defs/CompletionUsage/properties/prompt_tokens_details/properties/image_tokens",
         "nullable", None, "PromptTokensDetails.image_tokens: Optional"),
    Edit("chat-completion",
         "/$defs/CompletionUsage/properties/prompt_tokens_details/properties/text_tokens",
         "nullable", None, "PromptTokensDetails.text_tokens: Optional"),
    # chat-completion-chunk: same usage object and fingerprint as the answer.
    Edit("chat-completion-chunk", "/$defs/CompletionUsage/properties/prompt_tokens_details",
         "nullable", None, "same CompletionUsage as chat-completion (seed provider sends null)"),
    Edit("chat-completion-chunk", "/$defs/CompletionUsage/properties/completion_tokens_details",
         "nullable", None, "same CompletionUsage as chat-completion (seed provider sends null)"),
    Edit("chat-completion-chunk", "/properties/system_fingerprint", "nullable", None,
         "same as chat-completion; openai-python ChatCompletionChunk: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionStreamResponseDelta/properties/role",
         "nullable", None, "ChoiceDelta.role: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionStreamResponseDelta/properties/function_call",
         "nullable", None, "ChoiceDelta.function_call: Optional (vLLM-style nulls in a delta)"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionStreamResponseDelta/properties/function_call/properties/arguments",
         "nullable", None, "ChoiceDeltaFunctionCall.arguments: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionStreamResponseDelta/properties/function_call/properties/name",
         "nullable", None, "ChoiceDeltaFunctionCall.name: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionStreamResponseDelta/properties/tool_calls",
         "nullable", None, "ChoiceDelta.tool_calls: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionMessageToolCallChunk/properties/id",
         "nullable", None, "vLLM DeltaToolCall.id: Optional; ChoiceDeltaToolCall.id: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionMessageToolCallChunk/properties/type",
         "nullable", None, "vLLM DeltaToolCall.type: Optional; ChoiceDeltaToolCall.type: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionMessageToolCallChunk/properties/function",
         "nullable", None, "vLLM DeltaToolCall.function: Optional; SDK: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionMessageToolCallChunk/properties/function/properties/arguments",
         "nullable", None, "ChoiceDeltaToolCallFunction.arguments: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionMessageToolCallChunk/properties/function/properties/name",
         "nullable", None, "ChoiceDeltaToolCallFunction.name: Optional"),
    Edit("chat-completion-chunk",
         "/properties/choices/items",
         "unrequire", "finish_reason", "Choice.finish_reason (chunk): Optional, default None"),
    Edit("chat-completion-chunk",
         "/properties/choices/items/properties/logprobs",
         "unrequire", "refusal",
         "vLLM's logprobs carry only content; ChoiceLogprobs.refusal: default None"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionTokenLogprob",
         "unrequire", "bytes", "ChatCompletionTokenLogprob.bytes: Optional, default None"),
    Edit("chat-completion-chunk",
         "/$defs/ChatCompletionTokenLogprob/properties/top_logprobs/items",
         "unrequire", "bytes", "TopLogprob.bytes: Optional, default None"),
    Edit("chat-completion-chunk",
         "/properties/obfuscation",
         "nullable", None, "ChatCompletionChunk.obfuscation: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/CompletionUsage/properties/completion_tokens_details/properties/accepted_prediction_tokens",
         "nullable", None, "CompletionTokensDetails.accepted_prediction_tokens: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/CompletionUsage/properties/completion_tokens_details/properties/audio_tokens",
         "nullable", None, "CompletionTokensDetails.audio_tokens: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/CompletionUsage/properties/completion_tokens_details/properties/reasoning_tokens",
         "nullable", None, "CompletionTokensDetails.reasoning_tokens: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/CompletionUsage/properties/completion_tokens_details/properties/rejected_prediction_tokens",
         "nullable", None, "CompletionTokensDetails.rejected_prediction_tokens: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/CompletionUsage/properties/completion_tokens_details/properties/text_tokens",
         "nullable", None, "CompletionTokensDetails.text_tokens: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/CompletionUsage/properties/prompt_tokens_details/properties/audio_tokens",
         "nullable", None, "PromptTokensDetails.audio_tokens: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/CompletionUsage/properties/prompt_tokens_details/properties/cache_write_tokens",
         "nullable", None, "PromptTokensDetails.cache_write_tokens: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/CompletionUsage/properties/prompt_tokens_details/properties/cached_tokens",
         "nullable", None, "PromptTokensDetails.cached_tokens: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/CompletionUsage/properties/prompt_tokens_details/properties/image_tokens",
         "nullable", None, "PromptTokensDetails.image_tokens: Optional"),
    Edit("chat-completion-chunk",
         "/$defs/CompletionUsage/properties/prompt_tokens_details/properties/text_tokens",
         "nullable", None, "PromptTokensDetails.text_tokens: Optional"),
    # chat-completion-request
    Edit("chat-completion-request",
         "/$defs/CreateModelResponseProperties/allOf/1/properties/top_logprobs", "nullable", None,
         "spec quirk: its allOf twin is nullable, the SDKs send null (request-params.md note 1)"),
    Edit("chat-completion-request", "/allOf/1/properties/top_k", "add", TOP_K,
         "provider extra, typed so bad values fail; integer >= -1 (vLLM), null = unset"),
    Edit("chat-completion-request", "/allOf/1/properties/min_p", "add", MIN_P,
         "provider extra, typed so bad values fail; number in [0, 1] (vLLM), null = unset"),
    Edit("chat-completion-request", "/allOf/1/properties/repetition_penalty", "add",
         REPETITION_PENALTY,
         "provider extra, typed so bad values fail; number > 0 (vLLM), null = unset"),
    # error
    Edit("error", "/$defs/Error", "unrequire", "type",
         "Azure errors ({code, message}) carry no type; openai-python reads it with .get"),
    Edit("error", "/$defs/Error/properties/type", "nullable", None,
         "Azure content-filter errors send type: null; openai-python: Optional"),
    Edit("error", "/$defs/Error", "unrequire", "param",
         "llama.cpp and Azure omit param; openai-python reads it with .get"),
    Edit("error", "/$defs/Error/properties/code", "allow", INTEGER,
         "llama.cpp and vLLM put the HTTP status (an integer) in code; openai-python str()s it"),
    # model, model-list: the one tightening (strict accepts a bare string as a model).
    Edit("model", "/type", "add", "object",
         "TIGHTENS: the spec's Model has no type, so a non-object passes; clients need an object"),
    Edit("model-list", "/$defs/Model/type", "add", "object",
         "TIGHTENS: same as model, for each entry of data[]"),
)
# fmt: on


def _tokens(pointer: str) -> list[str]:
    """RFC 6901 pointer -> reference tokens."""
    assert pointer == "" or pointer.startswith("/"), pointer
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def _resolve(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


def _nullable(node: dict[str, Any]) -> None:
    """Let ``node`` also accept null, in the form the schema already uses."""
    if "enum" in node:
        assert None not in node["enum"], node
        node["enum"].append(None)
    if isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    elif isinstance(node.get("type"), list):
        assert "null" not in node["type"], node
        node["type"].append("null")
    elif "anyOf" in node:
        assert NULL not in node["anyOf"], node
        node["anyOf"].append(dict(NULL))
    elif "$ref" in node:
        node["anyOf"] = [{"$ref": node.pop("$ref")}, dict(NULL)]
    else:
        raise AssertionError(f"do not know how to make {node} nullable")


def apply(schema: dict[str, Any], edit: Edit) -> None:
    """Apply one edit to ``schema`` in place; fail if it would change nothing."""
    tokens = _tokens(edit.at)
    if edit.op == "add":
        parent = _resolve(schema, tokens[:-1])
        assert tokens[-1] not in parent, f"{edit.at} already exists"
        parent[tokens[-1]] = copy.deepcopy(edit.arg)
        return
    node = _resolve(schema, tokens)
    if edit.op == "unrequire":
        assert edit.arg in node["required"], f"{edit.arg} not required at {edit.at}"
        node["required"].remove(edit.arg)
    elif edit.op == "nullable":
        _nullable(node)
    elif edit.op == "allow":
        assert edit.arg not in node["anyOf"], f"{edit.arg} already allowed at {edit.at}"
        node["anyOf"].insert(-1 if NULL in node["anyOf"] else len(node["anyOf"]), edit.arg)
    else:
        raise ValueError(f"unknown op {edit.op!r}")


def build(name: str) -> str:
    """The text of ``compatible/<name>.json``, made from ``strict/<name>.json``."""
    strict = json.loads((HERE / "strict" / f"{name}.json").read_text(encoding="utf-8"))
    body = {k: v for k, v in strict.items() if k not in ("$schema", "$id")}
    schema: dict[str, Any] = {
        "$schema": strict["$schema"],
        "$id": f"{ID_BASE}{name}.json",
        "$comment": f"GENERATED by schemas/make_compatible.py from strict/{name}.json "
        f"(was {strict['$id']}); do not edit by hand.",
        **copy.deepcopy(body),
    }
    for edit in EDITS:
        if edit.name == name:
            apply(schema, edit)
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def describe(edit: Edit) -> str:
    """A short human reading of ``edit.op`` / ``edit.arg``."""
    if edit.op == "unrequire":
        return f"`{edit.arg}` not required"
    if edit.op == "nullable":
        return "null allowed"
    if edit.op == "allow":
        return f"also `{json.dumps(edit.arg)}`"
    shown = edit.arg
    if isinstance(shown, dict):
        shown = {k: v for k, v in shown.items() if k != "description"}
    return f"added `{json.dumps(shown)}`"


def markdown_table() -> str:
    """The relaxations as the markdown table in schemas/README.md."""
    rows = ["| schema | where (JSON pointer) | change | why |", "|---|---|---|---|"]
    rows += [f"| {e.name} | `{e.at}` | {describe(e)} | {e.why} |" for e in EDITS]
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check compare) every compatible schema; --table prints the README table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--table", action="store_true", help="print the README table")
    args = parser.parse_args(argv)
    if args.table:
        sys.stdout.write(markdown_table())
        return 0
    stale = []
    for name in NAMES:
        path = HERE / "compatible" / f"{name}.json"
        text = build(name)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run python schemas/make_compatible.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
