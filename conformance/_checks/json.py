"""response_format checks (group "json"): JSON mode and structured outputs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from conformance._assertions import chunks_of, json_body, require_refused, require_status
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = ["rf_json"]

_CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
_PROMPT = "What is the capital of France, and about how many people live there? Answer in JSON."
_REFUSED = (
    ("an unknown response_format type", {"type": "chatcompat-no-such-format"}),
    (
        "an invalid json_schema",
        {"type": "json_schema", "json_schema": {"name": "bad", "schema": {"type": "nonsense"}}},
    ),
)


def _request(ctx: Context, response_format: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "You answer with one JSON object and nothing else."},
        {"role": "user", "content": _PROMPT},
    ]
    return ctx.request(
        messages=messages, response_format=response_format, temperature=0, **overrides
    )


def _schema_format() -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "city", "schema": _CITY, "strict": True}}


def _answer(exchange: Exchange, stream: bool) -> tuple[Any, Any]:
    """The content and finish_reason of choice 0, from a non-stream answer or a stream (its
    deltas up to the finish: what comes after is nothing_after_finish's business)."""
    if stream:
        _, chunks = chunks_of(exchange)
        text = ""
        for chunk in chunks:
            for choice in chunk.get("choices") or []:
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    piece = (choice.get("delta") or {}).get("content")
                    text += piece if isinstance(piece, str) else ""
                    if choice.get("finish_reason") is not None:
                        return text, choice["finish_reason"]
        return text, None
    require_status(exchange, 200)
    choices = json_body(exchange).get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content"), choices[0].get("finish_reason")


@check(group="json", severity="must", capability="json")
async def rf_json(ctx: Context) -> None:
    """json_object answers parse and json_schema answers validate; bad formats get 400.
    json_object answers parse as a JSON object; json_schema answers validate against the schema
    (draft 2020-12), plain and as joined stream deltas; an unknown response_format type and an
    invalid schema get 400.

    Clients parse these answers without a retry loop (the SDKs' parse helpers, structured
    output in agents); an answer that does not parse fails the whole call."""
    refused = await asyncio.gather(*(ctx.chat(_request(ctx, rf)) for _, rf in _REFUSED))
    for (what, _), exchange in zip(_REFUSED, refused, strict=True):
        require_refused(what, exchange)
    answers = await asyncio.gather(
        ctx.chat(_request(ctx, {"type": "json_object"})),
        ctx.chat(_request(ctx, _schema_format())),
        ctx.chat(_request(ctx, _schema_format(), stream=True)),
    )
    cut = False
    for (schema, stream), exchange in zip(
        ((None, False), (_CITY, False), (_CITY, True)), answers, strict=True
    ):
        require_status(exchange, 200)
        content, finish = _answer(exchange, stream)
        if finish == "length":
            cut = True  # cut at max_tokens: no verdict on its JSON
            continue
        how = "json_schema" if schema else "json_object"
        try:
            value = json.loads(content) if isinstance(content, str) else None
        except ValueError as exc:
            raise CheckFailed(
                f"the {how} answer is not JSON",
                expected="a JSON object",
                received=f"{exc}: {content[:200]!r}",
                exchange=exchange,
            ) from None
        if not isinstance(value, dict):
            raise CheckFailed(
                f"the {how} answer is not a JSON object",
                expected="a JSON object",
                received=repr(content)[:200],
                exchange=exchange,
            )
        error = best_match(Draft202012Validator(schema).iter_errors(value)) if schema else None
        if error is not None:
            raise CheckFailed(
                "the json_schema answer does not validate against the schema",
                expected=json.dumps(schema),
                received=f"{error.message}: {content[:200]!r}",
                exchange=exchange,
            )
    if cut:
        raise CheckSkipped("inconclusive: a JSON answer was cut at max_tokens")
