"""Fault injection: the spec grammar, error statuses through the official openai client (sync
and async), retries against fail-first-N, and every mid-stream fault at the byte level."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import socket
import time

import httpx
import openai
import pytest

from mockserver import Fault, MockConfig, parse_fault
from mockserver._faults import MALFORMED_EVENT, FailCounter, StreamPlan, break_stream
from mockserver.cli import add_arguments

MESSAGES = [{"role": "user", "content": "Tell me about faults."}]  # no built-in cassette matches
STREAM_BODY = {"model": "m", "messages": MESSAGES, "stream": True, "max_tokens": 6}
STREAM_EVENTS = 1 + 6 + 1 + 1  # role, six tokens, finish, [DONE]


# --- the grammar ---------------------------------------------------------------------------


def test_parse_fault_reads_every_item():
    fault = parse_fault(" fail-first=3; status=503 ;key=abc;retry-after-ms=1500;model=m;path=/x")
    assert (fault.fail_first, fault.status, fault.key) == (3, 503, "abc")
    assert (fault.retry_after_ms, fault.model, fault.path) == (1500, "m", "/x")
    assert not fault.mid_stream
    stream = parse_fault("stall-after=2;stall=0.5;split-utf8;no-done")
    assert (stream.stall_after, stream.stall, stream.split_utf8, stream.no_done) == (
        2,
        0.5,
        True,
        True,
    )
    assert stream.mid_stream and stream.status is None


@pytest.mark.parametrize(
    ("spec", "status"),
    [("fail-first=2", 503), ("retry-after=1", 429), ("retry-after-ms=10", 429)],
    ids=["fail-first-alone-is-503", "retry-after-alone-is-429", "retry-after-ms-alone-is-429"],
)
def test_default_status(spec, status):
    assert parse_fault(spec).status == status


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("bogus=1", "unknown fault item"),
        ("status=200", "in [400, 599]"),
        ("status=abc", "integer"),
        ("status=500;disconnect-after=1", "cannot be combined"),
        ("status=500;status=503", "twice"),
        ("no-done=1", "flag"),
        ("disconnect-after", "needs a value"),
        ("stall=2", "stall-after"),
        ("key=abc", "nothing to inject"),
        ("stall-after=1;stall=nan", "in [0"),
    ],
    ids=[
        "empty",
        "unknown",
        "not-an-error-status",
        "not-a-number",
        "status-and-stream",
        "twice",
        "flag-with-value",
        "count-without-value",
        "stall-without-after",
        "nothing",
        "nan",
    ],
)
def test_bad_spec_is_a_value_error(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_fault(spec)


def test_bad_config_rule_is_a_value_error():
    with pytest.raises(ValueError, match="unknown fault item"):
        MockConfig(faults=("explode",))


def test_fail_counter_is_bounded():
    counter = FailCounter(capacity=2)
    assert [counter.attempt("a"), counter.attempt("a"), counter.attempt("b")] == [1, 2, 1]
    counter.attempt("c")  # "a" is the least recent: dropped
    assert counter.attempt("a") == 1
    assert counter.attempt("c") == 2


def test_break_stream_edits_the_events():
    events = [b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"]
    plan = StreamPlan(events)
    assert break_stream(parse_fault("no-done"), plan).events == events[:2]
    assert break_stream(parse_fault("malformed-after=1"), plan).events == [
        events[0],
        MALFORMED_EVENT,
        *events[1:],
    ]
    cut = break_stream(parse_fault("reset-after=1"), plan)
    assert (cut.events, cut.delays, cut.end) == ([events[0]], None, "reset")
    stalled = break_stream(parse_fault("stall-after=1;stall=2"), plan)
    assert stalled.delays == [0.0, 2.0, 0.0]


# --- error statuses through the openai client ----------------------------------------------

STATUSES = [
    (400, openai.BadRequestError),
    (401, openai.AuthenticationError),
    (403, openai.PermissionDeniedError),
    (404, openai.NotFoundError),
    (409, openai.ConflictError),
    (413, openai.APIStatusError),
    (422, openai.UnprocessableEntityError),
    (429, openai.RateLimitError),
    (500, openai.InternalServerError),
    (502, openai.InternalServerError),
    (503, openai.InternalServerError),
]


@pytest.fixture
def server(start_mock):
    return start_mock()


def _client(server, **options):
    return openai.OpenAI(
        base_url=server.base_url, api_key="k", timeout=10, **{"max_retries": 0, **options}
    )


def _async_client(server, **options):
    return openai.AsyncOpenAI(
        base_url=server.base_url, api_key="k", timeout=10, **{"max_retries": 0, **options}
    )


def _fault(spec, key=None):
    headers = {"X-Chatcompat-Fault": spec}
    if key is not None:
        headers["X-Chatcompat-Fault-Key"] = key
    return headers


@pytest.mark.parametrize(("status", "exception"), STATUSES, ids=[str(s) for s, _ in STATUSES])
def test_status_maps_to_the_sdk_exception(server, status, exception):
    with _client(server) as client, pytest.raises(exception) as caught:
        client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers=_fault(f"status={status}")
        )
    assert caught.value.status_code == status
    assert set(caught.value.body) == {"message", "type", "param", "code"}  # the envelope
    assert caught.value.response.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(("status", "exception"), STATUSES, ids=[str(s) for s, _ in STATUSES])
async def test_status_maps_to_the_sdk_exception_async(server, status, exception):
    async with _async_client(server) as client:
        with pytest.raises(exception) as caught:
            stream = await client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, extra_headers=_fault(f"status={status}")
            )
            [chunk async for chunk in stream]
    assert caught.value.status_code == status


def test_429_carries_both_retry_headers(server):
    with _client(server) as client, pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers=_fault("status=429;retry-after=2")
        )
    headers = caught.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("2", "2000")
    assert caught.value.code == "rate_limit_exceeded"


def test_models_routes_get_status_faults_too(server):
    with _client(server) as client:
        with pytest.raises(openai.InternalServerError):
            client.models.list(extra_headers=_fault("status=500"))
        with pytest.raises(openai.RateLimitError):
            client.models.retrieve(
                "meta-llama/llama-3.3-70b-instruct", extra_headers=_fault("status=429")
            )


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": "not a list"},
        {"model": "m", "messages": MESSAGES, "temperature": 3},
    ],
    ids=["bad-messages", "bad-temperature"],
)
def test_bad_request_keeps_its_400_under_a_fault(server, body):
    response = httpx.post(
        f"{server.base_url}/chat/completions", json=body, headers=_fault("status=503"), timeout=10
    )
    assert response.status_code == 400


def test_bad_fault_header_is_a_400(server):
    with _client(server) as client, pytest.raises(openai.BadRequestError, match="X-Chatcompat"):
        client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers=_fault("status=42")
        )


# --- retries ---------------------------------------------------------------------------------


def test_retry_after_ms_is_honoured_until_success(server):
    with _client(server, max_retries=2) as client:
        started = time.monotonic()
        answer = client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            extra_headers=_fault("fail-first=2;status=429;retry-after-ms=300", key="ms"),
        )
        waited = time.monotonic() - started
    assert answer.choices[0].message.content
    assert 0.6 <= waited < 10.0  # two waits of 0.3 s; the upper bound is a safety net


def test_retry_after_seconds_is_honoured(server):
    with _client(server, max_retries=1) as client:
        started = time.monotonic()
        client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            extra_headers=_fault("fail-first=1;status=503;retry-after=1;key=seconds"),
        )
        assert 1.0 <= time.monotonic() - started < 30.0  # seconds, not minutes (a safety net)


def test_too_few_retries_see_the_error(server):
    headers = _fault("fail-first=3;status=429;retry-after-ms=10", key="few")
    with _client(server, max_retries=1) as client:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="m", messages=MESSAGES, extra_headers=headers)
        # attempts 1 and 2 were spent above; the third fails, its retry (the fourth) succeeds
        assert client.chat.completions.create(model="m", messages=MESSAGES, extra_headers=headers)


async def test_async_client_retries_then_streams(server):
    async with _async_client(server, max_retries=2) as client:
        stream = await client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            stream=True,
            extra_headers=_fault("fail-first=2;status=503;retry-after-ms=50", key="async"),
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_keys_count_apart(server):
    with _client(server) as client:
        for key in ("one", "two"):
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(
                    model="m", messages=MESSAGES, extra_headers=_fault("fail-first=1", key=key)
                )
        client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers=_fault("fail-first=1", key="one")
        )


def test_config_rules_are_scoped(start_mock):
    server = start_mock(
        faults=("status=429;model=limited", "status=404;path=/models", "fail-first=1;status=500")
    )
    with _client(server) as client:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="limited", messages=MESSAGES)
        with pytest.raises(openai.NotFoundError):
            client.models.list()
        with pytest.raises(openai.InternalServerError):  # the catch-all, once
            client.chat.completions.create(model="free", messages=MESSAGES)
        assert client.chat.completions.create(model="free", messages=MESSAGES).choices
        with pytest.raises(openai.RateLimitError):  # the first rule in scope keeps applying
            client.chat.completions.create(model="limited", messages=MESSAGES)
        # the header wins over the rules
        assert client.chat.completions.create(
            model="limited", messages=MESSAGES, extra_headers=_fault("no-done")
        ).choices


# --- mid-stream faults at the byte level -----------------------------------------------------


def raw_stream(server, spec, body=STREAM_BODY):
    """POST ``body`` with fault ``spec`` over a raw socket: (head, [(seconds, bytes) per read],
    how it ended: "eof" or "reset")."""
    data = json.dumps(body).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        f"X-Chatcompat-Fault: {spec}\r\n\r\n"
    ).encode() + data
    reads, end = [], "eof"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(request)
        try:
            while piece := sock.recv(65536):
                reads.append((time.monotonic() - started, piece))
        except ConnectionResetError:
            end = "reset"
    raw = b"".join(piece for _, piece in reads)
    head, _, _ = raw.partition(b"\r\n\r\n")
    return head, reads, end


def dechunk(raw):
    """The chunks of a chunked body (``raw`` after the head) and whether its last chunk came."""
    chunks, rest = [], raw
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0:
            return chunks, True
        chunks.append(rest[:size])
        rest = rest[size + 2 :]
    return chunks, False


def body_of(reads):
    """The body's writes (chunks, or the whole body with a Content-Length) and whether it
    came whole."""
    head, _, body = b"".join(piece for _, piece in reads).partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        return dechunk(body)
    length = next(
        int(line.partition(b":")[2])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return [body], len(body) == length


def events_of(chunks):
    return [e + b"\n\n" for e in b"".join(chunks).split(b"\n\n") if e]


def test_disconnect_after_closes_mid_body(server):
    head, reads, end = raw_stream(server, "disconnect-after=3")
    chunks, complete = body_of(reads)
    assert head.startswith(b"HTTP/1.1 200")
    assert (end, complete) == ("eof", False)  # FIN without the terminating chunk
    assert len(events_of(chunks)) == 3


def test_reset_after_sends_a_tcp_reset(server):
    _, reads, end = raw_stream(server, "reset-after=2")
    chunks, complete = body_of(reads)
    assert (end, complete) == ("reset", False)
    assert len(events_of(chunks)) <= 2


def test_stall_after_pauses_between_events(server):
    _, reads, end = raw_stream(server, "stall-after=2;stall=0.4")
    chunks, complete = body_of(reads)
    assert (end, complete) == ("eof", True)
    assert len(events_of(chunks)) == STREAM_EVENTS
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(reads)]
    assert max(gaps) >= 0.38


def test_malformed_after_sends_a_non_json_event(server):
    _, reads, _ = raw_stream(server, "malformed-after=2")
    chunks, complete = body_of(reads)
    events = events_of(chunks)
    assert complete and events[2] == MALFORMED_EVENT
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[2].removeprefix(b"data: "))
    assert events[-1] == b"data: [DONE]\n\n" and len(events) == STREAM_EVENTS + 1


def test_error_after_sends_an_error_event_then_done(server):
    _, reads, _ = raw_stream(server, "error-after=3")
    chunks, complete = body_of(reads)
    events = events_of(chunks)
    assert complete and len(events) == 5
    error = json.loads(events[3].removeprefix(b"data: "))
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert events[4] == b"data: [DONE]\n\n"


def test_split_utf8_splits_a_character_across_writes(server):
    _, reads, _ = raw_stream(server, "split-utf8")
    chunks, complete = body_of(reads)
    assert complete
    split = [i for i, c in enumerate(chunks) if not _decodes(c)]
    assert len(split) == 2 and split[1] == split[0] + 1  # two halves, each undecodable alone
    assert _decodes(chunks[split[0]] + chunks[split[1]])
    text = "".join(
        json.loads(e.removeprefix(b"data: "))["choices"][0]["delta"].get("content") or ""
        for e in events_of(chunks)[:-1]
    )
    assert "你好" in text or "é" in text


def _decodes(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_no_done_ends_without_done(server):
    _, reads, _ = raw_stream(server, "no-done")
    chunks, complete = body_of(reads)
    events = events_of(chunks)
    assert complete and len(events) == STREAM_EVENTS - 1
    assert all(e != b"data: [DONE]\n\n" for e in events)


def test_mid_stream_faults_leave_non_stream_answers_alone(server):
    with _client(server) as client:
        answer = client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers=_fault("reset-after=0")
        )
    assert answer.choices[0].finish_reason == "stop"


# --- mid-stream faults through the openai client ---------------------------------------------


def _stream_text(client, spec):
    stream = client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, max_tokens=6, extra_headers=_fault(spec)
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("disconnect-after=3", openai.APIConnectionError),
        ("reset-after=3", openai.APIConnectionError),
        ("malformed-after=3", json.JSONDecodeError),
        ("error-after=3", openai.APIError),
    ],
    ids=["disconnect", "reset", "malformed", "error-event"],
)
def test_openai_client_raises_on_a_broken_stream(server, spec, error):
    with _client(server) as client, pytest.raises(error):
        _stream_text(client, spec)


@pytest.mark.parametrize(
    "spec", ["split-utf8", "no-done", "stall-after=3;stall=0.2"], ids=["split", "no-done", "stall"]
)
def test_openai_client_reads_a_stream_that_ends_well(server, spec):
    with _client(server) as client:
        text = _stream_text(client, spec)
        clean = _stream_text(client, "stall-after=99;stall=0")
    assert text.endswith(clean)
    assert text.startswith("Café 你好") if spec == "split-utf8" else text == clean


async def test_async_openai_client_raises_on_an_error_event(server):
    async with _async_client(server) as client:
        stream = await client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, extra_headers=_fault("error-after=2")
        )
        with pytest.raises(openai.APIError, match="injected fault"):
            [chunk async for chunk in stream]


def test_fault_dataclass_default_is_inert():
    assert not Fault(spec="").mid_stream


# --- faults on replayed cassettes ------------------------------------------------------------

SEED_STREAM = {  # the built-in cassette seed-chat-stream.json answers exactly this
    "model": "meta-llama/llama-3.3-70b-instruct",
    "messages": [
        {"role": "system", "content": "Act like you are a helpful assistant."},
        {"role": "user", "content": "Hi there!"},
    ],
    "max_tokens": 512,
    "stream": True,
}


def test_a_replayed_cassette_gets_status_faults(server):
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json=SEED_STREAM,
        headers=_fault("status=429;retry-after-ms=20"),
        timeout=10,
    )
    assert response.status_code == 429
    assert response.headers["retry-after-ms"] == "20"


def test_a_replayed_cassette_gets_mid_stream_faults(server):
    _, reads, _ = raw_stream(server, "no-done", body=SEED_STREAM)
    clean = httpx.post(f"{server.base_url}/chat/completions", json=SEED_STREAM, timeout=10)
    assert b"llama-3.1-8b-instruct" in clean.content  # the recorded answer, not a template one
    chunks, complete = body_of(reads)
    assert complete and events_of(chunks) == events_of([clean.content])[:-1]
    _, reads, end = raw_stream(server, "disconnect-after=2", body=SEED_STREAM)
    chunks, complete = body_of(reads)
    assert (end, complete, len(events_of(chunks))) == ("eof", False, 2)


def test_cli_reads_fault_rules():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--fault", "status=429;model=m", "--fault", "no-done"])
    assert args.fault == ["status=429;model=m", "no-done"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--fault", "status=200"])
