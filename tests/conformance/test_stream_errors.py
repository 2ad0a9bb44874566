"""Errors on the streaming path (conformance/_checks/stream_errors.py), content parts a model
cannot take (conformance/_checks/content_parts.py) and the stop check's word for a leaked start
of the stop string: what each check sends, and what its failure says it saw."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

from conformance import Endpoint, load_profile, run
from conformance._checks.parameters import _stop_start_in
from conformance._checks.stream_errors import stream_refusal_seen
from conformance._http import Exchange

from .test_broken_endpoints import RawServer

KEY = "sk-stream-errors"
PROFILE = load_profile("mock")


def exchange(status, content_type, body):
    return Exchange(
        "POST",
        "http://x/v1/chat/completions",
        b"{}",
        {},
        status,
        {"content-type": content_type},
        body,
    )


ENVELOPE = {
    "error": {"message": "too long", "type": "invalid_request_error", "param": None, "code": None}
}


@pytest.mark.parametrize(
    ("field", "named"),
    [(b"error: ", "an error: line"), (b"data: ", "a data error event")],
    ids=["error-line", "data-event"],
)
def test_the_error_a_200_stream_holds_is_named(field, named):
    body = field + json.dumps(ENVELOPE).encode() + b"\n\ndata: [DONE]\n\n"
    seen = stream_refusal_seen(exchange(200, "text/event-stream", body))
    assert seen.startswith(f"200 text/event-stream holding {named}")
    assert '"too long"' in seen


def test_a_stream_without_an_error_and_other_answers_are_named():
    assert stream_refusal_seen(exchange(200, "text/event-stream", b"data: [DONE]\n\n")) == (
        "200 text/event-stream of 1 events, none an error"
    )
    assert stream_refusal_seen(exchange(500, "text/plain", b"oops")) == "500 text/plain"
    gone = Exchange("POST", "http://x", b"{}", {}, error="connection refused")
    assert stream_refusal_seen(gone) == "no answer: connection refused"


@pytest.mark.parametrize(
    ("content", "leak"),
    [
        ("Hello w", "w"),  # the start of "world" before the answer ended
        ("Hello worl", "worl"),
        ("Hello ", ""),  # stopped where it should
        ("Hello x", ""),  # something else after: not the stop string's start
        (None, ""),
    ],
)
def test_the_start_of_the_stop_string_is_found(content, leak):
    assert _stop_start_in(content, "Hello ", "world") == leak


CLAIMED = PROFILE.capabilities | {"auth"}


def endpoint(server_url, *, capabilities=CLAIMED, key=KEY):
    return Endpoint(
        server_url,
        "m",
        key,
        timeout=60,
        capabilities=capabilities,
        context_length=PROFILE.context_length,
    )


def outcome(result, check_id):
    return next(r for r in result.results if r.check.id == check_id)


def auth_stream_proxy(mock_url):
    """A server in front of the mock that answers a stream request with a wrong key as a 200
    stream of one error event (every other request is the mock's answer)."""

    async def handler(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            streamed = json.loads(raw).get("stream") is True
        except (ValueError, AttributeError):
            streamed = False
        if streamed and request.headers.get("Authorization") != f"Bearer {KEY}":
            event = b"data: " + json.dumps(ENVELOPE).encode() + b"\n\ndata: [DONE]\n\n"
            return web.Response(body=event, content_type="text/event-stream")
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type")
        }
        async with aiohttp.ClientSession() as session:
            url = mock_url + request.path.removeprefix("/v1")
            async with session.request(request.method, url, data=raw, headers=headers) as answer:
                body = await answer.read()
                return web.Response(
                    status=answer.status, body=body, content_type=answer.content_type
                )

    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", handler)
    return RawServer(app)


def test_a_wrong_key_on_a_stream_is_provoked_when_auth_is_claimed(start_mock):
    mock = start_mock(models=("m",), api_key=KEY)
    with auth_stream_proxy(mock.base_url) as proxy:
        url = f"http://127.0.0.1:{proxy.port}/v1"
        result = run(endpoint(url), ["err_stream_prestart", "err_auth"])
        assert outcome(result, "err_auth").status == "passed"  # refused without a stream
        failed = outcome(result, "err_stream_prestart")
        assert failed.status == "failed"
        assert (
            "a wrong key -> 200 text/event-stream holding a data error event" in failed.outcome.text
        )
        # without capability auth the key is not tried: the other cases are the mock's own
        unclaimed = run(endpoint(url, capabilities=PROFILE.capabilities), ["err_stream_prestart"])
        assert unclaimed.results[0].status == "passed"


def test_a_vision_mock_answers_an_image_and_the_check_passes(start_mock):
    server = start_mock(models=("m",), api_key=KEY, vision=True)
    result = run(
        endpoint(server.base_url, capabilities=CLAIMED | {"vision"}),
        ["err_content_unsupported"],
    )
    assert outcome(result, "err_content_unsupported").status == "passed"


def test_an_image_answered_by_a_model_claimed_text_only_fails(start_mock):
    server = start_mock(models=("m",), api_key=KEY, vision=True)
    result = run(endpoint(server.base_url), ["err_content_unsupported"])
    failed = outcome(result, "err_content_unsupported")
    assert failed.status == "failed"
    assert "a chat completion: the part was answered unread" in failed.outcome.text


def test_an_error_object_for_an_image_fails_when_vision_is_claimed(start_mock):
    server = start_mock(
        models=("m",), api_key=KEY, vision=True, defects=("content-part-error-200",)
    )
    # the mock with vision refuses input_audio only; make it refuse images too: a text-only mock
    text_only = start_mock(models=("m",), api_key=KEY, defects=("content-part-error-200",))
    vision = CLAIMED | {"vision"}
    result = run(endpoint(text_only.base_url, capabilities=vision), ["err_content_unsupported"])
    failed = outcome(result, "err_content_unsupported")
    assert failed.status == "failed"
    assert "claimed to see (vision) got no answer" in failed.outcome.text
    assert "whose body is an error object without choices" in failed.outcome.text
    # the vision mock answers the image; its input_audio error object without choices fails
    result = run(endpoint(server.base_url, capabilities=vision), ["err_content_unsupported"])
    failed = outcome(result, "err_content_unsupported")
    assert failed.status == "failed"
    assert "an input_audio part" in failed.outcome.text
