"""The control routes under /_chatcompat (scripted replies, the request log, reset) as a client
in another language uses them: plain HTTP, JSON in and out, bad input a 4xx in the envelope."""

from __future__ import annotations

import json

import httpx
import pytest

from mockserver._app import STATE
from mockserver._replies import Reply, ScriptedReplies, reply_from_json
from mockserver._request_log import RequestLog

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi there"}]}


@pytest.fixture
def control(start_mock):
    """A mock with its control routes on, and an HTTP client of its root."""
    server = start_mock(control=True)
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        yield client


def test_a_queued_reply_answers_the_next_call_once(control):
    queued = control.post("/_chatcompat/replies", json={"content": "Scripted."})
    assert queued.status_code == 201
    assert queued.json()["data"] == [{"content": "Scripted.", "times": 1, "left": 1}]
    first = control.post("/v1/chat/completions", json=CHAT).json()
    second = control.post("/v1/chat/completions", json=CHAT).json()
    assert first["choices"][0]["message"]["content"] == "Scripted."
    assert second["choices"][0]["message"]["content"] != "Scripted."  # the template again
    assert first["object"] == "chat.completion" and first["id"].startswith("chatcmpl-")
    assert control.get("/_chatcompat/replies").json()["data"] == []


def test_replies_match_by_model_text_and_body_subset(control):
    control.post(
        "/_chatcompat/replies",
        json=[
            {"content": "by model", "model": "other"},
            {"content": "by text", "contains": "weather"},
            {"content": "by body", "match": {"temperature": 0}, "times": None},
        ],
    )

    def content(**body):
        answer = control.post("/v1/chat/completions", json={**CHAT, **body}).json()
        return answer["choices"][0]["message"]["content"]

    assert content(temperature=0) == "by body"
    assert content(temperature=0) == "by body"  # times null: every request
    weather = [{"role": "user", "content": "the weather?"}]
    assert content(messages=weather) == "by text"
    assert content(model="other") == "by model"
    left = control.get("/_chatcompat/replies").json()["data"]
    assert left == [
        {"content": "by body", "match": {"temperature": 0}, "times": None, "left": None}
    ]


def test_chunks_answer_a_stream_as_given(control):
    chunks = [{"choices": [{"delta": {"content": "a"}}]}, "not json"]
    control.post("/_chatcompat/replies", json={"chunks": chunks, "done": False})
    plain = control.post("/v1/chat/completions", json=CHAT)  # not a stream: not matched
    assert plain.json()["object"] == "chat.completion"
    stream = control.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.content == b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: not json\n\n'


def test_an_error_reply_goes_out_in_the_envelope(control):
    error = {"message": "Overloaded.", "code": "overloaded"}
    control.post("/_chatcompat/replies", json={"status": 503, "error": error})
    answer = control.post("/v1/chat/completions", json=CHAT)
    assert answer.status_code == 503
    assert answer.json() == {
        "error": {
            "message": "Overloaded.",
            "type": "server_error",
            "param": None,
            "code": "overloaded",
        }
    }


def test_a_fault_comes_first_and_leaves_the_reply_queued(control):
    control.post("/_chatcompat/replies", json={"content": "after the retry"})
    headers = {"X-Chatcompat-Fault": "status=429"}
    assert control.post("/v1/chat/completions", json=CHAT, headers=headers).status_code == 429
    answer = control.post("/v1/chat/completions", json=CHAT).json()
    assert answer["choices"][0]["message"]["content"] == "after the retry"


def test_an_invalid_request_is_refused_as_usual(control):
    control.post("/_chatcompat/replies", json={"content": "never"})
    assert control.post("/v1/chat/completions", json={"model": "m"}).status_code == 400
    assert len(control.get("/_chatcompat/replies").json()["data"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{", id="not-json"),
        pytest.param(b'"text"', id="not-an-object"),
        pytest.param(b'{"contents": "x"}', id="unknown-field"),
        pytest.param(b'{"status": 200}', id="not-an-error-status"),
        pytest.param(b'{"content": "x", "chunks": []}', id="two-kinds"),
        pytest.param(b'{"tool_calls": [{"arguments": {}}]}', id="tool-call-without-name"),
        pytest.param(b'{"tool_calls": {}}', id="tool-calls-not-a-list"),
        pytest.param(b'{"logprobs": [{"token": "a"}]}', id="logprob-without-number"),
        pytest.param(b'{"times": 0}', id="times-zero"),
        pytest.param(b'{"usage": {"prompt_tokens": -1}}', id="negative-usage"),
        pytest.param(b'[{"content": "ok"}, {"times": "x"}]', id="one-bad-of-two"),
        pytest.param(b'{"content": 5}', id="content-not-a-string"),
    ],
)
def test_bad_input_is_a_400_in_the_envelope(control, body):
    answer = control.post("/_chatcompat/replies", content=body)
    assert answer.status_code == 400
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert control.get("/_chatcompat/replies").json()["data"] == []  # all or none


def test_other_methods_get_405_with_allow(control):
    answer = control.put("/_chatcompat/replies")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "DELETE,GET,HEAD,POST"
    assert "error" in answer.json()


def test_the_request_log_and_reset(control):
    control.post(
        "/v1/chat/completions?api-key=sk-query-secret-1", json=CHAT, headers={"api-key": "k"}
    )
    control.get("/v1/models")
    control.get("/_chatcompat/requests")  # the control routes are not logged
    logged = control.get("/_chatcompat/requests").json()["data"]
    assert [(r["method"], r["path"], r["status"]) for r in logged] == [
        ("POST", "/v1/chat/completions", 200),
        ("GET", "/v1/models", 200),
    ]
    assert logged[0]["body"] == CHAT
    assert logged[0]["headers"]["api-key"] == "[REDACTED]"
    assert logged[0]["url"] == "/v1/chat/completions?api-key=[REDACTED]"
    assert "sk-query-secret-1" not in json.dumps(logged)
    assert isinstance(logged[0]["time"], float)
    control.post("/_chatcompat/replies", json={"content": "x"})
    assert control.post("/_chatcompat/reset").json() == {"object": "reset"}
    assert control.get("/_chatcompat/requests").json()["data"] == []
    assert control.get("/_chatcompat/replies").json()["data"] == []
    control.post("/_chatcompat/replies", json={"content": "x"})
    assert control.delete("/_chatcompat/replies").json()["data"] == []
    control.get("/health")
    assert len(control.get("/_chatcompat/requests").json()["data"]) == 1
    assert control.delete("/_chatcompat/requests").json()["data"] == []


def test_off_unless_enabled(start_mock):
    server = start_mock()
    answer = httpx.post(f"http://127.0.0.1:{server.port}/_chatcompat/replies", json={})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "unknown_url"


def test_they_want_the_api_key(start_mock):
    server = start_mock(control=True, api_key="sk-control")
    url = f"http://127.0.0.1:{server.port}/_chatcompat/requests"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer sk-control"}).status_code == 200


def test_reply_queue_order_and_unused():
    queue = ScriptedReplies()
    every = queue.add(Reply("every", times=None))
    twice = queue.add(Reply("twice", times=2, model="m"))
    assert queue.first({"model": "m"}) is every
    queue.use(twice)
    assert queue.unused() == [(twice, 1)]
    queue.use(twice)
    assert queue.pending() == [(every, None)] and queue.unused() == []


def test_reply_from_json_normalises_tool_calls_and_logprobs():
    reply = reply_from_json(
        {
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
            "logprobs": [{"token": "é", "logprob": -1}],
        }
    )
    assert reply.tool_calls == (
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
    )
    assert reply.logprobs == (
        {"token": "é", "logprob": -1, "bytes": [195, 169], "top_logprobs": []},
    )
    with pytest.raises(ValueError, match="logprobs tokens joined"):
        Reply("other", logprobs=({"token": "a", "logprob": 0},))


def test_without_control_nothing_is_logged(start_mock):
    server = start_mock()
    httpx.post(server.base_url + "/chat/completions", json=CHAT)
    assert server.app[STATE].requests.entries() == []


def test_the_log_keeps_the_newest_within_its_bounds():
    log = RequestLog(size=3, max_bytes=10)
    for body in (b"1234", b"5678", b"901"):
        log.add("POST", "/v1/x", (), body)
    assert [e.raw for e in log.entries()] == [b"5678", b"901"]  # 10 bytes at most
    for _ in range(4):
        log.add("GET", "/v1/models", (), b"")
    assert [e.method for e in log.entries()] == ["GET"] * 3  # 3 entries at most
    log.add("POST", "/v1/x", (), b"a body past the bound")  # the newest always stays
    assert len(log.entries()) == 1
