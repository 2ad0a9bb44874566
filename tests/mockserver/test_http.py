"""The mock at the HTTP level: exact bytes, headers, and no 5xx for any bad input."""

from __future__ import annotations

import http.client
import json
from importlib import resources

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockserver._sse import DONE, encode_chunk, encode_data


def request(server, method, path, body=b"", headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def post(server, body, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request(server, "POST", "/v1/chat/completions", data, {"Content-Type": content_type})


def test_encode_data_writes_one_event():
    assert encode_data('{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_chunk({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    assert DONE == b"data: [DONE]\n\n"


def test_stream_bytes_are_the_chunks_then_done(mock):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    status, headers, raw = post(mock, body)
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    events = raw.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-2]]
    assert raw == b"".join(encode_chunk(c) for c in chunks) + DONE
    assert len(chunks) == 1 + 39 + 1  # role, one chunk per token, finish


@pytest.mark.parametrize("stop", ["", [""], ["", "zzz"]], ids=["string", "list", "list-of-two"])
def test_an_empty_stop_string_is_ignored(mock, stop):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    plain, stopped = post(mock, body), post(mock, {**body, "stop": stop})
    assert stopped[0] == plain[0] == 200
    answer, expected = json.loads(stopped[2]), json.loads(plain[2])
    assert answer["choices"] == expected["choices"]  # the whole text, finish "stop"
    assert answer["choices"][0]["message"]["content"]
    assert answer["usage"] == expected["usage"]


def test_a_prompt_without_room_for_a_completion_is_400(start_mock):
    server = start_mock(context_length=20)
    messages = [{"role": "user", "content": " a" * 20}]  # about 30 tokens
    status, _, raw = post(server, {"model": "m", "messages": messages})
    error = json.loads(raw)["error"]
    assert (status, error["code"], error["param"]) == (400, "context_length_exceeded", "messages")
    assert error["message"].startswith(
        "This model's maximum context length is 20 tokens. However, your messages resulted in "
    )


def shape(value):
    """The keys of ``value``, recursively, without the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def test_novita_flavour_has_the_seed_stream_shape(start_mock):
    server = start_mock(flavour="novita")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    _, _, raw = post(server, body)
    ours = [json.loads(e.removeprefix(b"data: ")) for e in raw.split(b"\n\n")[:-2]]
    seed_file = resources.files("mockserver") / "data" / "seed" / "stream.sse"
    seed = [
        json.loads(line.removeprefix("data: "))
        for line in seed_file.read_text().splitlines()
        if line.startswith("data: {")
    ]
    assert shape(ours[0]) == shape(seed[0])
    assert shape(ours[1]) == shape(seed[1])
    assert shape(ours[-1]) == shape(seed[-1])
    assert ours[-1]["choices"][0]["finish_reason"] == "stop"
    assert ours[-1]["choices"][0]["delta"] == {"content": "."}


def envelope(raw):
    error = json.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_malformed_json_is_a_400_envelope(mock):
    status, headers, raw = post(mock, b'{"model": ')
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    assert "could not parse the JSON body" in envelope(raw)["message"]


def test_missing_messages_is_a_400_naming_it(mock):
    status, _, raw = post(mock, {"model": "m"})
    assert status == 400
    assert "'messages' is a required property" in envelope(raw)["message"]


def test_wrong_type_names_the_path(mock):
    status, _, raw = post(mock, {"model": "m", "messages": [{"role": 123, "content": "x"}]})
    assert status == 400
    assert envelope(raw)["param"] == "messages[0].role" or envelope(raw)["param"] == "messages[0]"


def test_unknown_route_and_method_keep_the_envelope(mock):
    status, _, raw = request(mock, "GET", "/v1/nothing-here")
    assert status == 404
    assert envelope(raw)["code"] == "unknown_url"
    status, headers, raw = request(mock, "GET", "/v1/chat/completions")
    assert status == 405
    assert "POST" in headers["Allow"]
    envelope(raw)


def test_get_routes_answer_head_and_other_methods_get_405_naming_them(mock):
    status, _, raw = request(mock, "HEAD", "/v1/models")
    assert (status, raw) == (200, b"")
    for method, path in (("DELETE", "/v1/models"), ("POST", "/health"), ("PUT", "/v1/models/m")):
        status, headers, raw = request(mock, method, path)
        assert status == 405, (method, path)
        assert set(headers["Allow"].split(",")) == {"GET", "HEAD"}
        assert envelope(raw)["type"] == "invalid_request_error"


def test_the_api_key_guards_every_url_under_the_prefix_only(start_mock):
    server = start_mock(api_key="sk-test")
    status, _, raw = request(server, "GET", "/v1/nothing-here")
    assert (status, envelope(raw)["code"]) == (401, "invalid_api_key")
    status, _, raw = request(server, "GET", "/elsewhere")
    assert (status, envelope(raw)["code"]) == (404, "unknown_url")
    assert request(server, "GET", "/health")[0] == 200
    auth = {"Authorization": "Bearer sk-test"}
    assert request(server, "GET", "/v1/nothing-here", headers=auth)[0] == 404


def test_too_large_body_is_413(start_mock):
    server = start_mock(max_body_bytes=1000)
    status, _, raw = post(server, b"{" + b" " * 2000 + b"}")
    assert status == 413
    assert envelope(raw)["code"] == "request_too_large"


def test_health(mock):
    status, _, raw = request(mock, "GET", "/health")
    assert (status, json.loads(raw)) == (200, {"status": "ok"})


def test_every_answer_has_a_request_id(mock):
    _, headers, _ = post(mock, b"nope")
    assert headers["x-request-id"].startswith("req_")


def test_ids_are_32_hex_digits_and_never_repeat(mock):
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    request_ids, completion_ids = set(), set()
    for _ in range(200):
        _, headers, raw = post(mock, body)
        request_ids.add(headers["x-request-id"].removeprefix("req_"))
        completion_ids.add(json.loads(raw)["id"].removeprefix("chatcmpl-"))
    for ids in (request_ids, completion_ids):
        assert len(ids) == 200
        assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_defect_with_state_keeps_it_per_server(start_mock):
    first, second = (start_mock(defects=("abuse-poisons-user",)) for _ in range(2))
    valid = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "user": "u1"}
    assert post(first, {"model": "m", "user": "u1"})[0] == 400  # refused: u1 is poisoned
    assert post(first, valid)[0] == 500
    assert post(second, valid)[0] == 200  # another server never saw u1 refused


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
request_like = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values | st.just("m"),
        "messages": json_values
        | st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "role": json_values | st.sampled_from(["user", "system", "assistant", "tool"]),
                    "content": json_values,
                },
            ),
            max_size=3,
        ),
        "stream": json_values,
        "n": json_values,
        "max_tokens": json_values,
        "temperature": json_values,
        "logit_bias": json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "stop": json_values,
        "response_format": json_values,
        "stream_options": json_values,
        "seed": json_values,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.binary(max_size=64)
    | json_values.map(lambda v: json.dumps(v).encode())
    | request_like.map(lambda v: json.dumps(v).encode())
)
def test_garbage_never_gets_a_5xx(mock, body):
    status, _, raw = post(mock, body)
    assert status < 500, raw
    if status >= 400:
        envelope(raw)


def test_integral_floats_are_integers(mock):
    # JSON Schema counts 2.0 as an integer; the mock must answer it, not fail with a 500.
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "n": 2.0,
        "max_tokens": 5.0,
        "logprobs": True,
        "top_logprobs": 2.0,
        "seed": 7.0,
    }
    status, _, raw = post(mock, body)
    assert status == 200, raw
    answer = json.loads(raw)
    assert len(answer["choices"]) == 2
    assert len(answer["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 2
