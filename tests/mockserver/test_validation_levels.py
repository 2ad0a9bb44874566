"""Validation levels (issue 14, item 1): ``strict`` (the default) refuses what OpenAI refuses,
``schema`` answers whatever OpenAI's published request schema accepts, ``off`` any JSON
object; auth, faults, defects and the error envelope work the same at each."""

from __future__ import annotations

import json

import pytest

from mockserver import MockConfig, MockServer
from mockserver._lenient import PLACEHOLDER_MESSAGE, answerable, repaired
from mockserver._validation import validate_request
from mockserver.cli import add_arguments

HI = [{"role": "user", "content": "Hi"}]
BASE = {"model": "m", "messages": HI}
LEVELS = ("strict", "schema", "off")


@pytest.fixture(scope="module")
def servers():
    """A template mock per level (no cassettes), with a key; all stopped after."""
    started = {}
    try:
        for level in LEVELS:
            config = MockConfig(validation=level, builtin_cassettes=False, api_key="k")
            started[level] = MockServer(config).start(timeout=60)
        yield started
    finally:
        for server in started.values():
            server.stop()


def post(server, body, headers=None):
    """(status, parsed answer: the JSON body, or the list of a stream's chunks)."""
    import http.client

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        sent = {"Content-Type": "application/json", "Authorization": "Bearer k", **(headers or {})}
        connection.request("POST", "/v1/chat/completions", body=data, headers=sent)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    if response.getheader("Content-Type", "").startswith("text/event-stream"):
        events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
        return response.status, [json.loads(e) for e in events if e != "[DONE]"]
    return response.status, json.loads(raw)


def test_the_default_is_strict_and_an_unknown_level_is_refused():
    assert MockConfig().validation == "strict"
    with pytest.raises(ValueError, match="unknown validation 'loose'"):
        MockConfig(validation="loose")


def test_the_cli_option():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).validation == "strict"
    assert parser.parse_args(["--validation", "schema"]).validation == "schema"
    with pytest.raises(SystemExit):
        parser.parse_args(["--validation", "loose"])


# Requests OpenAI's schema accepts and its API refuses (the strict level's rules): the param
# strict names, and what the schema level answers.
PLACEHOLDERS = {
    "max-tokens-0": ({"max_tokens": 0}, "max_tokens"),
    "max-completion-tokens-0": ({"max_completion_tokens": 0}, "max_completion_tokens"),
    "max-tokens-negative": ({"max_tokens": -5}, "max_tokens"),
    "stream-options-without-stream": (
        {"stream_options": {"include_usage": True}},
        "stream_options",
    ),
    "top-logprobs-without-logprobs": ({"top_logprobs": 2}, "top_logprobs"),
    "logit-bias-not-a-token": ({"logit_bias": {"foo": 0, "99999999": 5}}, "logit_bias"),
    "logit-bias-past-100": ({"logit_bias": {"12": 1000}}, "logit_bias"),
    "tool-choice-without-tools": ({"tool_choice": "required"}, "tool_choice"),
    "tool-choice-naming-no-tool": (
        {
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "g"}},
        },
        "tool_choice",
    ),
    "json-schema-without-schema": (
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "response_format.json_schema.schema",
    ),
    "image-part-text-model": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Hi"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                    ],
                }
            ]
        },
        "messages[0].content[1].type",
    ),
    "max-tokens-past-the-context": ({"max_tokens": 10**9}, "messages"),
}


@pytest.mark.parametrize("case", PLACEHOLDERS)
def test_strict_refuses_what_schema_answers(servers, case):
    extra, param = PLACEHOLDERS[case]
    status, answer = post(servers["strict"], {**BASE, **extra})
    assert status == 400, answer
    assert answer["error"]["param"] == param
    for level in ("schema", "off"):
        status, answer = post(servers[level], {**BASE, **extra})
        assert status == 200, (level, answer)
        assert answer["object"] == "chat.completion"


@pytest.mark.parametrize("level", ["schema", "off"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_max_tokens_0_is_an_empty_answer_cut_by_length(servers, level, stream):
    body = {**BASE, "max_tokens": 0, "stream": stream, "stream_options": {"include_usage": True}}
    status, answer = post(servers[level], body)
    assert status == 200, answer
    if stream:
        choices = [c for chunk in answer for c in chunk["choices"]]
        assert "".join(c["delta"].get("content") or "" for c in choices) == ""
        assert [c["finish_reason"] for c in choices if c["finish_reason"]] == ["length"]
        assert answer[-1]["usage"]["completion_tokens"] == 0
    else:
        (choice,) = answer["choices"]
        assert (choice["message"]["content"], choice["finish_reason"]) == ("", "length")
        assert answer["usage"]["completion_tokens"] == 0


def test_schema_answers_n_128_with_its_tool_call(servers):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = {**BASE, "n": 128, "tools": [tool], "tool_choice": "required", "max_tokens": 0}
    status, answer = post(servers["schema"], body)
    assert status == 200, answer
    assert len(answer["choices"]) == 128
    assert {c["finish_reason"] for c in answer["choices"]} == {"length"}  # a cut call is none
    status, answer = post(servers["schema"], {**body, "max_tokens": 64})
    assert {c["finish_reason"] for c in answer["choices"]} == {"tool_calls"}


# What OpenAI's schema refuses: a 400 naming the place at strict and schema; off answers.
SCHEMA_REFUSES = {
    "n-0": ({"n": 0}, "n"),
    "n-129": ({"n": 129}, "n"),
    "temperature-3": ({"temperature": 3}, "temperature"),
    "stop-a-number": ({"stop": 5}, "stop"),
    "tools-not-a-list": ({"tools": 5}, "tools"),
    "a-message-without-role": ({"messages": [{"content": "Hi"}]}, "messages[0]"),
}


@pytest.mark.parametrize("case", SCHEMA_REFUSES)
def test_the_schema_level_refuses_what_the_schema_refuses(servers, case):
    extra, param = SCHEMA_REFUSES[case]
    for level in ("strict", "schema"):
        status, answer = post(servers[level], {**BASE, **extra})
        assert status == 400, (level, answer)
        assert answer["error"]["param"] == param
        assert answer["error"]["code"] == "invalid_value"
    status, answer = post(servers["off"], {**BASE, **extra})
    assert status == 200, answer


@pytest.mark.parametrize(
    "body",
    [{}, {"messages": "x"}, {"model": 5, "messages": [1, {"role": "user"}]}, {"n": "z", "x": [{}]}],
    ids=["empty", "messages-a-string", "no-valid-message", "junk"],
)
def test_off_answers_any_json_object(servers, body):
    status, answer = post(servers["off"], body)
    assert status == 200, answer
    assert answer["model"] == "meta-llama/llama-3.3-70b-instruct"  # the first listed model
    assert answer["choices"][0]["message"]["content"]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    ("body", "message"),
    [(b"[]", "must be a JSON object"), (b"{", "")],
    ids=["not-an-object", "not-json"],
)
def test_every_level_refuses_what_is_no_json_object(servers, level, body, message):
    status, answer = post(servers[level], body)
    assert status == 400
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    assert message in answer["error"]["message"]


@pytest.mark.parametrize("level", LEVELS)
def test_auth_faults_and_defects_at_every_level(servers, level):
    server = servers[level]
    status, answer = post(server, BASE, {"Authorization": "Bearer wrong"})
    assert status == 401
    assert answer["error"]["code"] == "invalid_api_key"
    status, answer = post(server, BASE, {"X-Chatcompat-Fault": "status=429"})
    assert status == 429
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    status, answer = post(server, BASE, {"X-Chatcompat-Fault": "defect=wrong-object"})
    assert (status, answer["object"]) == (200, "text_completion")


def test_a_served_model_list_holds_at_schema_not_at_off():
    config = MockConfig(models=("a",), builtin_cassettes=False)
    body = {"model": "b", "messages": HI}
    with pytest.raises(Exception, match="does not exist") as raised:
        validate_request(body, config, "schema")
    assert raised.value.status == 404
    assert validate_request(body, config, "off")["model"] == "b"


def test_repaired_drops_what_the_schema_refuses():
    body = {"model": 1, "messages": [{"content": "x"}, {"role": "user", "content": "Hi"}]}
    body |= {"n": "z", "temperature": 0.5, "tools": [{"type": "nope"}]}
    assert repaired(body, "dflt") == {
        "model": "dflt",
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.5,
    }
    assert repaired({}, "dflt") == {"model": "dflt", "messages": [PLACEHOLDER_MESSAGE]}


def test_answerable_makes_placeholders_usable():
    body = {**BASE, "max_tokens": -1, "logit_bias": {"foo": 1, "12": 500, "13": -7}}
    body |= {"seed": 2**63}
    assert answerable(body) == {
        **BASE,
        "max_tokens": 0,
        "logit_bias": {"12": 100, "13": -7},
        "seed": None,
    }
    assert answerable(BASE) is BASE


def test_the_level_changes_at_run_time_and_forgets_kept_answers(servers):
    from mockserver._app import STATE

    server, body = servers["strict"], {**BASE, "max_tokens": 0}
    try:
        server.app[STATE].set_validation("schema")
        assert post(server, body)[0] == 200  # kept in the answer cache
        server.app[STATE].set_validation("strict")
        assert post(server, body)[0] == 400  # not served from the cache
    finally:
        server.app[STATE].set_validation("strict")
    with pytest.raises(ValueError, match="unknown validation level"):
        server.app[STATE].set_validation("loose")
