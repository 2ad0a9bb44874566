"""Model listing checks (group "models"): GET /models lists the served id, unknown ids get 404."""

from __future__ import annotations

import uuid

from conformance._assertions import envelope_problem, json_body, require_status
from conformance._context import Context
from conformance._outcome import CheckFailed, CheckWarning
from conformance._registry import check

__all__ = ["models_list"]


@check(group="models")
async def models_list(ctx: Context) -> None:
    """GET /models lists models; GET /models/{id} returns a listed one and 404 for others."""
    listing = await ctx.send("GET", "/models")
    require_status(listing, 200)
    body = json_body(listing)
    error = ctx.validate("model-list", body)
    if error:
        raise CheckFailed(
            f"GET /models does not match the model list schema ({ctx.schema_level})",
            received=error,
            exchange=listing,
        )
    ids = [m["id"] for m in body["data"]]
    if not ids:
        raise CheckFailed(
            "GET /models lists no model",
            expected="at least one model",
            received="[]",
            exchange=listing,
        )
    one = await ctx.send("GET", f"/models/{ids[0]}")
    require_status(one, 200)
    model = json_body(one)
    error = ctx.validate("model", model)
    if error or model.get("id") != ids[0]:
        raise CheckFailed(
            f"GET /models/{ids[0]} is not that model",
            received=error or f"id {model.get('id')!r}",
            exchange=one,
        )
    missing = await ctx.send("GET", f"/models/chatcompat-no-such-model-{uuid.uuid4().hex[:8]}")
    require_status(missing, 404)
    body = json_body(missing)
    error = envelope_problem(body) or ctx.validate("error", body)
    if error:
        raise CheckFailed(
            "the 404 for an unknown model is not the OpenAI envelope",
            received=error,
            exchange=missing,
        )
    if ctx.endpoint.model not in ids:
        raise CheckWarning(
            f"the model under test {ctx.endpoint.model!r} is not listed",
            expected=f"{ctx.endpoint.model!r} among the listed ids",
            received=", ".join(ids[:10]),
            exchange=listing,
        )
