"""The control routes: what the pytest plugin does in-process, over HTTP for tests in any
language. Under :data:`CONTROL_PREFIX` (``/_chatcompat``: no OpenAI path starts with ``/_``, so
they cannot collide with the API under any prefix); served only when
``MockConfig.control`` is on (``chatcompat mock --control``; always in the pytest plugin's
mocks, which listen on loopback for one test session); with an API key they want it too.

    POST   /_chatcompat/replies    queue a reply (a JSON object) or several (a list of them)
    GET    /_chatcompat/replies    the queued replies and the requests each still answers
    DELETE /_chatcompat/replies    drop them
    GET    /_chatcompat/requests   the request log, oldest first
    DELETE /_chatcompat/requests   empty it
    POST   /_chatcompat/reset      all of it, and the scripted faults, defects and cassettes

Bad input is a 400 in the OpenAI error envelope (``invalid_reply``), never a 5xx. Each answer
is JSON: ``{"object": "list", "data": [...]}``, or ``{"object": "reset"}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mockserver._body import parse_json
from mockserver._errors import ApiError
from mockserver._replies import reply_from_json
from mockserver._state import Call, MockState

__all__ = ["CONTROL_PREFIX", "CONTROL_ROUTES", "reset"]

CONTROL_PREFIX = "/_chatcompat"

Route = Callable[[MockState, Call], Awaitable[web.StreamResponse]]


def _listed(data: list[Any], status: int = 200) -> web.Response:
    body = json.dumps({"object": "list", "data": data}).encode()
    return web.Response(status=status, body=body, content_type="application/json")


def _pending(state: MockState) -> list[dict[str, Any]]:
    return [{**reply.described(), "left": left} for reply, left in state.replies.pending()]


async def add_replies(state: MockState, call: Call) -> web.Response:
    """POST /_chatcompat/replies: queue the replies of the body (all or none); 201 with the
    queue."""
    body = parse_json(call.raw) if call.raw else None
    items = body if isinstance(body, list) else [body]
    try:
        replies = [reply_from_json(item) for item in items]
    except ValueError as exc:
        raise ApiError(400, f"Invalid reply: {exc}.", code="invalid_reply") from None
    for reply in replies:
        state.replies.add(reply)
    return _listed(_pending(state), 201)


async def list_replies(state: MockState, call: Call) -> web.Response:
    """GET /_chatcompat/replies: the queued replies."""
    return _listed(_pending(state))


async def clear_replies(state: MockState, call: Call) -> web.Response:
    """DELETE /_chatcompat/replies: drop the queued replies."""
    state.replies.clear()
    return _listed([])


async def list_requests(state: MockState, call: Call) -> web.Response:
    """GET /_chatcompat/requests: the request log, oldest first."""
    return _listed([entry.as_json() for entry in state.requests.entries()])


async def clear_requests(state: MockState, call: Call) -> web.Response:
    """DELETE /_chatcompat/requests: empty the request log."""
    state.requests.clear()
    return _listed([])


def reset(state: MockState) -> None:
    """Forget what tests scripted (replies, faults, defects, cassettes, a validation level) and
    the request log; restart the fail-first counts and the replay order of the configured
    cassettes."""
    state.replies.clear()
    state.requests.clear()
    state.scripted_faults.clear()
    state.request_defects.clear()
    state.fail_counter.clear()
    state.scripted_cassettes.clear()
    state.cassettes.rewind()
    state.set_validation(state.config.validation)


async def reset_all(state: MockState, call: Call) -> web.Response:
    """POST /_chatcompat/reset: :func:`reset`."""
    reset(state)
    return web.json_response({"object": "reset"})


# method, path, route: the control routes (the app adds the 405 of their other methods)
CONTROL_ROUTES: tuple[tuple[str, str, Route], ...] = (
    ("POST", f"{CONTROL_PREFIX}/replies", add_replies),
    ("GET", f"{CONTROL_PREFIX}/replies", list_replies),
    ("DELETE", f"{CONTROL_PREFIX}/replies", clear_replies),
    ("GET", f"{CONTROL_PREFIX}/requests", list_requests),
    ("DELETE", f"{CONTROL_PREFIX}/requests", clear_requests),
    ("POST", f"{CONTROL_PREFIX}/reset", reset_all),
)
