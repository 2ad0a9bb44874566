"""Model listing checks (group "models"): GET /models lists the served id, unknown ids get 404."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable

from conformance._assertions import envelope_problem, json_body, require_status
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed
from conformance._registry import check

__all__ = ["model_under_test_listed", "models_list"]


def _listing(ctx: Context) -> Awaitable[Exchange]:
    """GET /models, sent once per run."""
    return ctx.shared("models:list", lambda: ctx.send("GET", "/models"))


@check(group="models", severity="must")
async def models_list(ctx: Context) -> None:
    """GET /models lists models; GET /models/{id} returns a listed one and 404 for others.
    GET /models validates against the model list schema and lists at least one model, GET
    /models/{id} of the first returns that model, and an unknown id gets 404 in the error
    envelope.

    Clients read the list to offer the models (Open WebUI's model picker, the SDKs'
    models.list) and GET /models/{id} to look one up (models.retrieve)."""
    listing = await _listing(ctx)
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
    try:
        require_status(one, 200)
    except CheckFailed as failure:
        failure.pair = listing  # the id came from the listing: a reproduction needs both
        raise
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


@check(group="models", severity="should")
async def model_under_test_listed(ctx: Context) -> None:
    """GET /models lists the model under test.
    The model the run sends its requests to is one of the ids GET /models lists.

    A server may answer a model it does not list (an alias, llama.cpp's one model under any
    name), but clients that offer the models of the list (Open WebUI's model picker) do not
    offer it."""
    listing = await _listing(ctx)
    require_status(listing, 200)
    body = json_body(listing)
    data = body.get("data") if isinstance(body, dict) else None
    ids = [m.get("id") for m in data if isinstance(m, dict)] if isinstance(data, list) else []
    if ctx.endpoint.model not in ids:
        raise CheckFailed(
            f"the model under test {ctx.endpoint.model!r} is not listed",
            expected=f"{ctx.endpoint.model!r} among the listed ids",
            received=", ".join(map(str, ids[:10])) or "no ids",
            exchange=listing,
        )
