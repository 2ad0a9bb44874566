"""Defects at the answer stages: ``completion`` (a non-stream answer) and ``models`` (the
GET /models listing), both dict -> dict. A defect that breaks streams the same way carries a
``chunks`` hook too and lives here, with its answer hook.
"""

from __future__ import annotations

import json
from typing import Any

from mockserver._defects.defect import Defect
from mockserver._defects.hooks import copied, fragments, message_calls, without

__all__ = ["DEFECTS"]


def _bad_model_entries(listing: dict[str, Any]) -> dict[str, Any]:
    return {**listing, "data": [{"id": m["id"], "object": "model"} for m in listing["data"]]}


def _listed_by_path(listing: dict[str, Any]) -> dict[str, Any]:
    return {**listing, "data": [{**m, "id": f"models/{m['id']}.gguf"} for m in listing["data"]]}


def _usage_total_off(body: dict[str, Any]) -> dict[str, Any]:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return body
    return {**body, "usage": {**usage, "total_tokens": usage["total_tokens"] + 1}}


def _no_content_with_tool_calls(body: dict[str, Any]) -> dict[str, Any]:
    def dropped(choice: dict[str, Any]) -> dict[str, Any]:
        message = choice.get("message") or {}
        if not message.get("tool_calls"):
            return choice
        return {**choice, "message": {k: v for k, v in message.items() if k != "content"}}

    return {**body, "choices": [dropped(c) for c in body.get("choices") or []]}


def _text_beside_tool_calls(body: dict[str, Any]) -> None:
    for choice in body.get("choices") or []:
        message = choice.get("message") or {}
        if message.get("tool_calls"):
            message["content"] = "Let me look that up."


def _broken_json(body: dict[str, Any]) -> dict[str, Any]:
    """JSON answers lose their last character (text answers are left alone)."""

    def broken(choice: dict[str, Any]) -> dict[str, Any]:
        message = choice.get("message") or {}
        content = message.get("content")
        try:
            parsed = json.loads(content) if isinstance(content, str) else None
        except ValueError:
            parsed = None
        if not isinstance(content, str) or not isinstance(parsed, dict):
            return choice
        return {**choice, "message": {**message, "content": content[:-1]}}

    return {**body, "choices": [broken(c) for c in body.get("choices") or []]}


# Tool calls: in-place changes, applied to a copy by copied().


def _arguments_as_objects(body: dict[str, Any]) -> None:
    for call in message_calls(body):
        call["function"]["arguments"] = json.loads(call["function"]["arguments"])


def _same_ids(value: Any) -> None:
    calls = message_calls(value) if isinstance(value, dict) else [f for _, f in fragments(value)]
    for call in calls:
        if "id" in call:
            call["id"] = "call_0"


# Logprobs: in-place changes, applied to a copy by copied().


def _completions_logprobs(body: dict[str, Any]) -> None:
    for choice in body.get("choices") or []:
        entries = (choice.get("logprobs") or {}).get("content")
        if not entries or not any(e["top_logprobs"] for e in entries):
            continue  # only answers with top_logprobs: the ones that ask for alternatives
        offsets = [sum(len(e["token"]) for e in entries[:i]) for i in range(len(entries))]
        choice["logprobs"] = {
            "tokens": [e["token"] for e in entries],
            "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [
                {t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries
            ],
            "text_offset": offsets,
        }


def _entries(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        entry
        for choice in body.get("choices") or []
        for entry in (choice.get("logprobs") or {}).get("content") or []
    ]


def _trimmed_tokens(body: dict[str, Any]) -> None:
    for entry in _entries(body):
        entry["token"] = entry["token"].lstrip()
        entry["bytes"] = list(entry["token"].encode("utf-8"))


def _last_token_one_short(body: dict[str, Any]) -> None:
    for choice in body.get("choices") or []:
        entries = (choice.get("logprobs") or {}).get("content") or []
        if len(entries) >= 2 and entries[-1]["top_logprobs"]:
            entries[-1]["top_logprobs"].pop()


def _runner_up_above(body: dict[str, Any]) -> None:
    for entry in _entries(body):
        if len(entry["top_logprobs"]) >= 2:
            entry["top_logprobs"][1]["logprob"] = min(0.0, entry["logprob"] + 0.5)


def _shift_logprobs(body: dict[str, Any]) -> None:
    for choice in body.get("choices", []):
        for entry in (choice.get("logprobs") or {}).get("content") or []:
            for item in [entry, *(entry.get("top_logprobs") or [])]:
                item["logprob"] -= 0.1


DEFECTS = (
    # The answer's shape and counts (completion), the model listing (models).
    Defect(
        "wrong-object",
        'Non-stream answers say object "text_completion" instead of "chat.completion".',
        {"completion": lambda body: {**body, "object": "text_completion"}},
    ),
    Defect(
        "model-list-incomplete",
        "GET /models lists entries without created and owned_by.",
        {"models": _bad_model_entries},
    ),
    Defect(
        "model-listed-by-path",
        'GET /models lists each model by a file path ("models/<id>.gguf"), not by its id.',
        {"models": _listed_by_path},
    ),
    Defect(
        "no-usage",
        "Non-stream answers leave usage out.",
        {"completion": without("usage")},
    ),
    Defect(
        "usage-total-wrong",
        "Non-stream usage says total_tokens one more than prompt + completion.",
        {"completion": _usage_total_off},
    ),
    Defect(
        "n-ignored",
        "Non-stream answers keep only the first of n choices.",
        {"completion": lambda body: {**body, "choices": body["choices"][:1]}},
    ),
    Defect(
        "no-content-with-tool-calls",
        "Non-stream answers with tool_calls leave the content key out (not null).",
        {"completion": _no_content_with_tool_calls},
    ),
    Defect(
        "text-beside-tool-calls",
        "Non-stream answers with tool_calls also carry text in content.",
        {"completion": copied(_text_beside_tool_calls)},
    ),
    Defect(
        "json-object-invalid",
        "Non-stream JSON answers (json_object, json_schema) are cut by one character.",
        {"completion": _broken_json},
    ),
    # Tool calls (completion; tool-ids-repeated in streams too).
    Defect(
        "tool-arguments-object",
        "Non-stream tool calls carry arguments as a JSON object, not a JSON string (llama.cpp "
        "server).",
        {"completion": copied(_arguments_as_objects)},
        report="https://github.com/ggml-org/llama.cpp/issues/20198",
    ),
    Defect(
        "tool-ids-repeated",
        'Every tool call has the id "call_0", so parallel calls share it.',
        {"completion": copied(_same_ids), "chunks": copied(_same_ids)},
    ),
    # Logprobs (completion).
    Defect(
        "logprobs-completions-shape",
        "Chat logprobs come in the legacy completions shape (tokens, token_logprobs, ...).",
        {"completion": copied(_completions_logprobs)},
    ),
    Defect(
        "logprobs-tokens-trimmed",
        "logprobs tokens lose their leading spaces, so they no longer spell the content.",
        {"completion": copied(_trimmed_tokens)},
    ),
    Defect(
        "top-logprobs-last-short",
        "The last token of a non-stream answer gets one top_logprobs alternative fewer.",
        {"completion": copied(_last_token_one_short)},
    ),
    Defect(
        "greedy-not-argmax",
        "top_logprobs list an alternative more likely than the token sampled at temperature 0.",
        {"completion": copied(_runner_up_above)},
    ),
    Defect(
        "logprobs-shifted",
        "Every returned logprob is 0.1 nats lower than the model's.",
        {"completion": copied(_shift_logprobs)},
    ),
)
