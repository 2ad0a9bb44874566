"""Non-stream response checks (catalogue group C)."""

from __future__ import annotations

from conformance._assertions import json_body, require_status
from conformance._context import Context
from conformance._outcome import CheckFailed
from conformance._registry import check

__all__ = ["resp_schema"]


@check(group="response")
async def resp_schema(ctx: Context) -> None:
    """A non-stream answer is a chat.completion that validates, with choices[i].index == i."""
    exchange = await ctx.completion()
    require_status(exchange, 200)
    if exchange.content_type != "application/json":
        raise CheckFailed(
            "wrong Content-Type",
            expected="application/json",
            received=exchange.content_type or "(none)",
            exchange=exchange,
        )
    body = json_body(exchange)
    error = ctx.validate("chat-completion", body)
    if error:
        raise CheckFailed(
            f"the answer does not match the chat.completion schema ({ctx.schema_level})",
            received=error,
            exchange=exchange,
        )
    for position, choice in enumerate(body["choices"]):
        if choice.get("index") != position:
            raise CheckFailed(
                f"choices[{position}].index is wrong",
                expected=str(position),
                received=repr(choice.get("index")),
                exchange=exchange,
            )
        role = (choice.get("message") or {}).get("role")
        if role != "assistant":
            raise CheckFailed(
                f"choices[{position}].message.role is wrong",
                expected="assistant",
                received=repr(role),
                exchange=exchange,
            )
