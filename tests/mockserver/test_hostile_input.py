"""Hostile request bodies (issue 10, items 1, 4 and 5): every bad request is a 4xx in the OpenAI
envelope in each answer mode, never a 5xx; a small request cannot make the mock build a huge
answer; the cassette matcher's memory is bounded in bytes. The same at each validation level
(issue 14: strict, schema, off), where a test says ``level``."""

from __future__ import annotations

import gzip
import http.client
import json
import sys
import tracemalloc
import zlib

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatcompat.request_rules import MAX_BUILT_BYTES, BuildBudget, RuleViolation
from mockserver import (
    Cassette,
    CassetteStore,
    MockConfig,
    MockServer,
    RecordConfig,
    Write,
    create_record_app,
    load_directory,
    start_site,
)
from mockserver._app import STATE
from mockserver._body import MAX_JSON_DEPTH, decode_body, parse_json
from mockserver._cassettes import MEMO_BYTES, parse_request_body
from mockserver._errors import ApiError
from mockserver._schema_limits import MAX_SCHEMA_DEPTH, MAX_SCHEMA_PROPERTIES, MAX_SCHEMA_VALUES
from mockserver._template import example_for
from reference_model.constraints import format_template

from ..conftest import captured_logs

# The mock's three ways to answer a chat completion, one server each for the module:
# replay (the built-in cassettes are matched first), template (no cassette), generate.
MODES = {
    "replay": {},
    "template": {"builtin_cassettes": False},
    "generate": {"mode": "generate"},
}
HI = [{"role": "user", "content": "Hi"}]
BASE = {"model": "m", "messages": HI, "max_tokens": 4}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def servers():
    """A started mock per answer mode (the generate one's model built); all stopped after."""
    started = {}
    try:
        for name, config in MODES.items():
            started[name] = MockServer(MockConfig(**config)).start(timeout=60)
        status, _, raw = post(started["generate"], BASE, timeout=300)
        assert status == 200, raw
        yield started
    finally:
        for server in started.values():
            server.stop()


# The validation levels (MockConfig.validation): each server is set to one for a test, then
# back to strict.
LEVELS = ("strict", "schema", "off")


@pytest.fixture(autouse=True)
def strict_after(request):
    """Every server of the module back at the strict level after each test."""
    yield
    if "servers" in request.fixturenames:
        for server in request.getfixturevalue("servers").values():
            server.app[STATE].set_validation("strict")


def at(servers, mode, level):
    """The server of ``mode``, validating at ``level`` until the test ends."""
    servers[mode].app[STATE].set_validation(level)
    return servers[mode]


@pytest.fixture
def server_log():
    with captured_logs("aiohttp", "mockserver") as records:
        yield records


def post(server, body, headers=None, *, timeout=120):
    """POST ``body`` (bytes as they are, else as JSON) to chat completions: (status, headers,
    the whole answer body)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        sent = {"Content-Type": "application/json", **(headers or {})}
        connection.request("POST", "/v1/chat/completions", body=data, headers=sent)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def envelope(raw):
    """The ``error`` of an OpenAI error envelope (its four fields asserted)."""
    error = json.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return error


def rejected(server, body, headers=None):
    """The error of a request that must be a 400 in the envelope."""
    status, answer_headers, raw = post(server, body, headers)
    assert status == 400, raw[:500]
    assert answer_headers["Content-Type"].startswith("application/json")
    return envelope(raw)


def nested(depth, inner="1"):
    """JSON text of ``depth`` nested arrays (built as text: no recursion)."""
    return "[" * depth + inner + "]" * depth


def properties_nested(levels):
    """A schema whose ``properties`` nest ``levels`` objects deep (two JSON levels each)."""
    schema = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


def with_schema(schema, *, where="response_format", **extra):
    """A request carrying ``schema`` as its response format, or as a forced tool's parameters."""
    if where == "response_format":
        spec = {"name": "x", "schema": schema}
        return {**BASE, "response_format": {"type": "json_schema", "json_schema": spec}, **extra}
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    return {**BASE, "tools": [tool], "tool_choice": "required", **extra}


# 1 (a): nesting. Where the 100,000 levels sit in the body does not matter.
DEEP_PLACES = {
    "messages": '{"model":"m","messages":%s}',
    "content": '{"model":"m","messages":[{"role":"user","content":%s}]}',
    "metadata": '{"model":"m","messages":[{"role":"user","content":"Hi"}],"metadata":%s}',
    "parameters": '{"model":"m","messages":[{"role":"user","content":"Hi"}],"tools":'
    '[{"type":"function","function":{"name":"f","parameters":{"default":%s}}}]}',
}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("place", DEEP_PLACES)
def test_a_body_nested_100000_levels_is_a_400(servers, mode, place, level):
    body = (DEEP_PLACES[place] % nested(100_000)).encode()
    error = rejected(at(servers, mode, level), body)
    assert "nests deeper than 128 levels" in error["message"]


def test_the_parse_allows_128_levels_and_no_more():
    assert parse_json(nested(MAX_JSON_DEPTH).encode()) is not None
    with pytest.raises(ApiError) as raised:
        parse_json(nested(MAX_JSON_DEPTH + 1).encode())
    assert raised.value.status == 400
    assert "nests deeper than 128 levels (at '[0][0]" in raised.value.message
    # the place is abridged, its depth a number: not 128 times "[0]"
    assert "[0][0][0][0] ... [0][0]', level 129)" in raised.value.message
    assert raised.value.message.count("[0]") == 6


def test_a_deep_place_under_named_keys_is_abridged():
    body = '{"model":"m","messages":[{"content":' + nested(200) + "}]}"
    with pytest.raises(ApiError) as raised:
        parse_json(body.encode())
    assert "(at 'messages[0].content[0] ... [0][0]', level 129)" in raised.value.message


def test_the_cassette_matcher_keeps_a_too_deep_body_as_text():
    raw = nested(100_000).encode()
    assert parse_request_body(raw) == raw.decode()
    store = CassetteStore(
        [Cassette("POST", "/chat/completions", {"a": 1}, 200, {}, (Write(0, b"{}"),), False)]
    )
    assert store.match("POST", "/chat/completions", raw) is None


# 1 (b): a schema nesting 150 levels (300 JSON levels: past the body's bound), 40 levels (past
# the schema's), or holding too many properties.
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("where", ["response_format", "tools"])
def test_a_schema_nesting_150_levels_is_a_400(servers, mode, where, level):
    error = rejected(at(servers, mode, level), with_schema(properties_nested(150), where=where))
    assert "nests deeper" in error["message"]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("where", "param"),
    [
        ("response_format", "response_format.json_schema.schema"),
        ("tools", "tools[0].function.parameters"),
    ],
)
def test_a_schema_past_the_limits_is_a_400_naming_them(servers, mode, where, param, level):
    too_deep = rejected(at(servers, mode, level), with_schema(properties_nested(40), where=where))
    assert f"nests deeper than {MAX_SCHEMA_DEPTH} levels" in too_deep["message"]
    assert too_deep["param"] == param
    wide = {"type": "object", "properties": {f"p{i}": {} for i in range(5001)}, "required": []}
    too_wide = rejected(at(servers, mode, level), with_schema(wide, where=where))
    assert f"more than {MAX_SCHEMA_PROPERTIES} properties" in too_wide["message"]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
def test_a_schema_at_openai_limit_of_10_levels_is_answered(servers, mode, level):
    status, _, raw = post(at(servers, mode, level), with_schema(properties_nested(10)))
    assert status == 200, raw


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
def test_tool_parameters_that_are_no_schema_are_a_400(servers, mode, level):
    broken = {"type": "object", "properties": [], "required": 5, "minItems": "x"}
    error = rejected(at(servers, mode, level), with_schema(broken, where="tools"))
    assert error["code"] == "invalid_function_parameters"
    assert error["param"] == "tools[0].function.parameters"


# 1 (c): lone surrogates, wherever they are.
SURROGATES = {
    "model-of-a-stream": (
        b'{"model":"\\ud800","messages":[{"role":"user","content":"Hi"}],"stream":true}',
        "model",
    ),
    "tool-name-required-stream": (
        b'{"model":"m","messages":[{"role":"user","content":"Hi"}],"stream":true,'
        b'"tool_choice":"required","tools":[{"type":"function","function":{"name":"\\ud800"}}]}',
        "tools[0].function.name",
    ),
    "content": (
        b'{"model":"m","messages":[{"role":"user","content":"a\\udfffb"}],"max_tokens":4}',
        "messages[0].content",
    ),
    "a-key": (b'{"model":"m","messages":[{"role":"user","content":"Hi"}],"\\ud800":1}', "\\ud800"),
    "utf8-bytes": (
        b'{"model":"m","messages":[{"role":"user","content":"\xed\xa0\x80"}],"stream":true}',
        "messages[0].content",
    ),
}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", SURROGATES)
def test_a_lone_surrogate_is_a_400_naming_its_place(servers, mode, case, level):
    body, param = SURROGATES[case]
    error = rejected(at(servers, mode, level), body)
    assert error["code"] == "invalid_unicode"
    assert error["param"] == param


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
def test_a_surrogate_pair_is_a_character(servers, mode, level):
    body = b'{"model":"m","messages":[{"role":"user","content":"\\ud83d\\ude00"}],"max_tokens":4}'
    status, _, raw = post(at(servers, mode, level), body)
    assert status == 200, raw


# 1 (d): a body that is not what its Content-Encoding says.
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_not_in_its_content_encoding_is_a_400(servers, server_log, encoding):
    error = rejected(servers["replay"], BASE, {"Content-Encoding": encoding})
    assert f"not the {encoding} data its Content-Encoding says" in error["message"]
    logged = [r.getMessage() for r in server_log]
    assert not [m for m in logged if "Unhandled" in m or "unhandled" in m], logged


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda data: data[:-8], id="trailer-missing"),
        pytest.param(lambda data: data[:-4], id="size-missing"),
        pytest.param(lambda data: data[:-15], id="cut-in-the-data"),
        pytest.param(lambda data: data[:15], id="header-only"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_a_gzip_body_cut_short_is_a_400(servers, server_log, mode, cut, level):
    body = cut(gzip.compress(json.dumps(BASE).encode()))
    error = rejected(at(servers, mode, level), body, {"Content-Encoding": "gzip"})
    assert "not the gzip data its Content-Encoding says" in error["message"]
    logged = [r.getMessage() for r in server_log]
    assert not [m for m in logged if "nhandled" in m], logged


def test_gzip_and_deflate_are_decoded_here_within_bounds():
    data = json.dumps(BASE).encode()
    assert decode_body(gzip.compress(data[:9]) + gzip.compress(data[9:]), "gzip", 100) == data
    assert decode_body(zlib.compress(data), "deflate", 100) == data
    assert decode_body(zlib.compress(data)[2:-4], "deflate", 100) == data  # bare deflate
    assert decode_body(data, "identity", 10) == data
    with pytest.raises(ApiError) as raised:
        decode_body(zlib.compress(data) + b"x", "deflate", 100)
    assert raised.value.status == 400
    with pytest.raises(ApiError) as raised:
        decode_body(gzip.compress(data) + b"x", "gzip", 100)  # not a second member
    assert raised.value.status == 400
    with pytest.raises(ApiError) as raised:
        decode_body(gzip.compress(b" " * 10_000_000), "gzip", 8 * 1024 * 1024)
    assert (raised.value.status, raised.value.code) == (413, "request_too_large")
    with pytest.raises(ApiError) as raised:
        decode_body(data, "br", 100)
    assert (raised.value.status, raised.value.code) == (415, "unsupported_content_encoding")


def test_a_gzip_bomb_is_a_413(servers):
    bomb = gzip.compress(b" " * (64 * 1024 * 1024))  # 64 MiB of spaces in 64 KB
    status, _, raw = post(servers["template"], bomb, {"Content-Encoding": "gzip"})
    assert status == 413, raw[:300]
    assert envelope(raw)["code"] == "request_too_large"


def test_a_body_in_its_content_encoding_is_answered(servers):
    data = json.dumps(BASE).encode()
    for encoding, encoded in (("gzip", gzip.compress(data)), ("deflate", zlib.compress(data))):
        status, _, raw = post(servers["replay"], encoded, {"Content-Encoding": encoding})
        assert status == 200, raw


async def test_the_recorder_answers_a_bad_body_in_the_envelope_and_records_it_safely(
    servers, tmp_path
):
    config = RecordConfig(upstream=servers["template"].base_url, directory=str(tmp_path))
    runner, port = await start_site(create_record_app(config), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        async with aiohttp.ClientSession() as session:
            bad_gzip = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            async with session.post(url, data=b'{"model":"m"}', headers=bad_gzip) as answer:
                assert answer.status == 400
                envelope(await answer.read())
            cut = gzip.compress(json.dumps(BASE).encode())[:-8]
            async with session.post(url, data=cut, headers=bad_gzip) as answer:
                assert answer.status == 400  # answered here, not forwarded
                assert "gzip" in envelope(await answer.read())["message"]
            surrogate = SURROGATES["content"][0]
            async with session.post(url, data=surrogate, headers=JSON) as answer:
                assert answer.status == 400  # the upstream's answer, recorded
    finally:
        await runner.cleanup()
    (cassette,) = load_directory(tmp_path)  # the surrogate body kept as its text
    assert cassette.body == surrogate.decode()


# 4: a small request asking for a huge answer.
MILLION_ITEMS = {"type": "array", "minItems": 1_000_000, "items": {"type": "string"}}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", ["replay", "template"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_million_items_in_a_response_format_is_a_400(servers, mode, stream, level):
    body = with_schema(MILLION_ITEMS, stream=stream)
    assert len(json.dumps(body)) < 300  # the 247-byte request of the issue, give or take
    error = rejected(at(servers, mode, level), body)
    assert error["code"] == "answer_too_large"
    assert error["param"] == "response_format.json_schema.schema"
    assert f"passes {MAX_BUILT_BYTES} bytes" in error["message"]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", ["replay", "template"])
def test_a_million_items_in_forced_tool_arguments_is_a_400(servers, mode, level):
    parameters = {"type": "object", "properties": {"a": MILLION_ITEMS}, "required": ["a"]}
    error = rejected(at(servers, mode, level), with_schema(parameters, where="tools", stream=True))
    assert error["code"] == "answer_too_large"
    assert error["param"] == "tools"


def test_generate_mode_writes_a_million_items_array_as_empty(servers):
    parameters = {"type": "object", "properties": {"a": MILLION_ITEMS}, "required": ["a"]}
    body = with_schema(parameters, where="tools", max_tokens=64)
    status, _, raw = post(servers["generate"], body)
    assert status == 200, raw
    (call,) = json.loads(raw)["choices"][0]["message"]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"a": []}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", ["replay", "template"])
def test_the_bound_holds_for_all_choices_together(servers, mode, level):
    schema = {"type": "array", "minItems": 40, "items": {"type": "string"}}  # ~300 bytes
    status, _, raw = post(at(servers, mode, level), with_schema(schema, n=2))
    assert status == 200, raw
    error = rejected(at(servers, mode, level), with_schema(schema, n=128))
    assert error["code"] == "answer_too_large"


@pytest.mark.parametrize("level", LEVELS)
def test_generate_mode_bounds_the_forced_text_it_builds(servers, level):
    schema = {"type": "object", "properties": {"a": {"enum": ["x" * 20_000]}}, "required": ["a"]}
    for stream in (False, True):
        error = rejected(at(servers, "generate", level), with_schema(schema, stream=stream))
        assert error["code"] == "answer_too_large"
    with pytest.raises(RuleViolation):
        format_template({"type": "json_schema", "json_schema": {"schema": schema}})


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 1_000_000_000},
        {"type": "string", "minLength": 3.0, "maxLength": 2.0},
        {"type": "array", "minItems": 2.0, "items": {"type": "integer", "minimum": 1e300}},
    ],
    ids=["min-length-a-billion", "integral-floats", "huge-minimum"],
)
def test_odd_but_valid_schemas_get_a_small_answer(servers, mode, schema, level):
    status, _, raw = post(at(servers, mode, level), with_schema(schema))
    assert status == 200, raw
    assert len(raw) < 5000


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
def test_a_number_past_the_largest_double_is_a_400(servers, mode, level):
    spec = b'{"name":"x","schema":{"type":"integer","minimum":1e400}}'
    body = b'{"model":"m","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,'
    body += b'"response_format":{"type":"json_schema","json_schema":' + spec + b"}}"
    error = rejected(at(servers, mode, level), body)
    assert "the number 1e400 is past the largest double" in error["message"]
    too_hot = {**BASE, "temperature": 1e300}  # past the schema's maximum of 2
    if level == "off":  # answered as if no temperature was sent
        assert post(at(servers, mode, level), too_hot)[0] == 200
    else:
        assert rejected(at(servers, mode, level), too_hot)["param"] == "temperature"


# An integer past the largest double (found by a red-team run after the first fix): Python keeps
# it exact, then float() of it raised OverflowError, a 500, wherever a rule compared it.
HUGE = "1" + "0" * 400


def with_number(body, text):
    """``body`` as JSON text with the string "NUMBER" in it replaced by the number ``text``."""
    return json.dumps(body).replace('"NUMBER"', text).encode()


HUGE_INTEGERS = {
    "repetition_penalty": with_number({**BASE, "repetition_penalty": "NUMBER"}, HUGE),
    "repetition_penalty-4250-digits": with_number(
        {**BASE, "stream": True, "n": 2, "repetition_penalty": "NUMBER"}, "7" * 4250
    ),
    "schema-minimum": with_number(with_schema({"type": "number", "minimum": "NUMBER"}), HUGE),
    "tool-parameters-streamed": with_number(
        with_schema({"type": "number", "minimum": "NUMBER"}, where="tools", stream=True), "-" + HUGE
    ),
}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", HUGE_INTEGERS)
def test_an_integer_past_the_largest_double_is_a_400(servers, mode, case, level):
    error = rejected(at(servers, mode, level), HUGE_INTEGERS[case])
    assert "is past the largest double" in error["message"]


def test_the_largest_double_as_an_integer_is_a_number():
    largest = int(sys.float_info.max)
    assert parse_json(str(largest).encode()) == largest
    assert parse_json(b'{"a": [12, -3]}') == {"a": [12, -3]}
    with pytest.raises(ApiError, match="past the largest double"):
        parse_json(str(largest * 2).encode())


# Checking a schema takes time in proportion to its size, on the event loop: 2,000,000 {} in
# an anyOf (8 MB) held it for 8 s, 300,000 patternProperties for 1.5 s.
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "schema",
    [{"anyOf": [{}] * 1_990_000}, {"patternProperties": {f"^p{i}$": {} for i in range(300_000)}}],
    ids=["anyOf-2M", "patternProperties-300k"],
)
def test_a_schema_of_too_many_values_is_a_400(servers, mode, schema, level):
    error = rejected(at(servers, mode, level), with_schema(schema))
    assert f"more than {MAX_SCHEMA_VALUES} JSON values" in error["message"]


def test_the_template_stops_building_at_the_bound():
    tracemalloc.start()
    try:
        with pytest.raises(RuleViolation):
            example_for({"type": "array", "minItems": 10**9, "items": {"type": "string"}})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024  # a billion items were never made


def test_a_budget_raises_once_past_its_limit():
    budget = BuildBudget(10, "p")
    budget.spend(10)
    with pytest.raises(RuleViolation) as raised:
        budget.spend(1)
    assert raised.value.param == "p"
    assert raised.value.code == "answer_too_large"


# 5: the cassette matcher's memo of parsed bodies.
def test_the_cassette_memo_is_bounded_in_bytes():
    cassette = Cassette("POST", "/chat/completions", {"a": 1}, 200, {}, (Write(0, b"{}"),), False)
    store = CassetteStore([cassette])
    tracemalloc.start()
    try:
        for i in range(12):  # 12 distinct 5 MB bodies: 240 MB kept without the bound
            raw = json.dumps({"model": "m", "messages": HI, "pad": f"{i:03d}" * 1_700_000})
            assert store.match("POST", "/chat/completions", raw.encode()) is None
            del raw
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store._seen.weight <= MEMO_BYTES
    assert kept < 2 * MEMO_BYTES, kept


# Any of it, in any mode: no 5xx, and an error is always the envelope.
def _deep_text(draw):
    return nested(draw(st.sampled_from([2, 60, 127, 128, 129, 300, 1000, 5000, 100_000])))


@st.composite
def hostile_bodies(draw):
    """(raw body bytes, extra headers): a plausible request with one or more hostile parts."""
    body = dict(BASE)
    if draw(st.booleans()):
        body["stream"] = draw(st.booleans() | st.integers() | st.none())
    if draw(st.booleans()):
        body["n"] = draw(st.sampled_from([1, 3, 129, 0, -1, 2.0, "2", None, 1e300]))
    schema = draw(hostile_schemas())
    if schema is not None:
        body = with_schema(schema, where=draw(st.sampled_from(["response_format", "tools"])))
    if draw(st.booleans()):
        field = draw(st.sampled_from(["model", "messages", "tools", "tool_choice", "stop", "seed"]))
        body[field] = draw(odd_values())
    text = json.dumps(body)
    # text-level hostility: a deep value or a lone surrogate dropped into a string or a value
    if draw(st.booleans()):  # a lone surrogate in a value or a key
        target = draw(st.sampled_from(['"Hi"', '"m"', '"x"', '"f"', '"max_tokens"', '"a"']))
        surrogate = draw(st.sampled_from(["\\ud800", "\\udc00x", "\\udbff\\udbff"]))
        text = text.replace(target, target[:-1] + surrogate + '"', 1)
    if draw(st.booleans()):
        text = text.replace('"Hi"', _deep_text(draw), 1)
    if draw(st.booleans()):  # a number past the largest double, or a huge integer
        text = text.replace(
            " 4", draw(st.sampled_from([" 1e400", " -1e999", " " + "9" * 5000, " " + HUGE])), 1
        )
    if draw(st.booleans()):
        text = text[:-1] + ',"metadata":' + _deep_text(draw) + "}"
    data = text.encode()
    if draw(st.booleans()):
        data = data.replace(b"Hi", b"\xed\xa0\x80", 1)  # a surrogate as UTF-8 bytes
    return data, draw(content_encodings(data))


def odd_values():
    return st.sampled_from(
        [
            *(None, True, 0, -1, 2**64, 10**400, 1.5, "", "x", [], {}, [[]], {"a": {}}),
            *(["\u00e9"], "\U0001f600"),
        ]
    )


def hostile_schemas():
    """A schema that is deep, wide, huge to instantiate, odd-typed, or none."""
    leaf = st.sampled_from(
        [{"type": "string"}, {"type": "integer"}, {}, True, False, {"enum": []}, {"enum": [1]}]
    )
    return st.one_of(
        st.none(),
        st.builds(properties_nested, st.sampled_from([1, 10, 30, 31, 32, 40, 150])),
        st.builds(
            lambda n: {"type": "object", "properties": {f"p{i}": {} for i in range(n)}},
            st.sampled_from([10, 5000, 5001]),
        ),
        st.builds(
            lambda key, value, item: {"type": "array", key: value, "items": item},
            st.sampled_from(["minItems", "minLength", "maxItems", "minimum"]),
            st.sampled_from([0, 1, 2000, 10**6, 10**18, 10**400, -1, 2.5, "x", None]),
            leaf,
        ),
        st.builds(lambda leaf: {"properties": {"a": leaf}, "required": ["a"]}, leaf),
        st.builds(lambda n: {"anyOf": [{}] * n}, st.sampled_from([2, MAX_SCHEMA_VALUES + 1])),
        leaf,
        st.builds(
            lambda key, value: {"type": "object", key: value},
            st.sampled_from(["properties", "required", "type", "enum", "anyOf", "items"]),
            odd_values(),
        ),
    )


def content_encodings(data):
    """Headers naming a content encoding, and the body made to match it or not. (br and zstd,
    which this aiohttp cannot decode, are answered before the mock sees the request: item 2.)"""
    encodings = st.sampled_from(["gzip", "deflate", "identity", "x-unknown", "gzip, gzip"])
    return st.one_of(
        st.just({}),
        st.builds(lambda e: {"Content-Encoding": e}, encodings),
        st.just({"Content-Encoding": "gzip", "X-Body": "gzip"}),
        st.just({"Content-Encoding": "gzip", "X-Body": "truncated"}),
    )


def _encoded(data, headers):
    """The body as sent: gzip-compressed (whole or cut short) when the test asked for it."""
    headers = dict(headers)
    how = headers.pop("X-Body", None)
    if how == "gzip":
        return gzip.compress(data), headers
    if how == "truncated":
        return gzip.compress(data)[:20], headers
    return data, headers


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.sampled_from(sorted(MODES)), st.sampled_from(LEVELS), hostile_bodies())
def test_hostile_bodies_never_get_a_5xx(servers, mode, level, hostile):
    data, headers = _encoded(*hostile)
    status, answer_headers, raw = post(at(servers, mode, level), data, headers)
    assert status < 500, raw[:500]
    if status >= 400:
        assert answer_headers["Content-Type"].startswith("application/json"), raw[:500]
        envelope(raw)


# A body wide as well as deep (red team, second round): 2,000,000 {} held the event loop for 6 s
# in the walk that checks depth and surrogates; refused bodies over 1 MiB are not walked again
# to name the place.
def test_a_wide_body_is_read_and_a_wide_bad_body_refused_saying_why():
    assert len(parse_json(json.dumps({"a": [{}] * 2_000_000}).encode())["a"]) == 2_000_000
    wide = "{}," * 400_000
    with pytest.raises(ApiError, match=f"nests deeper than {MAX_JSON_DEPTH} levels"):
        parse_json(("[" + wide + nested(MAX_JSON_DEPTH) + "]").encode())
    with pytest.raises(ApiError, match="lone surrogate"):
        parse_json(("[" + wide + '{"k": "\\udc00"}]').encode())
    with pytest.raises(ApiError, match="lone surrogate"):
        parse_json(("[" + wide + '{"\\udc00": 1}]').encode())
    assert parse_json(("[" + wide + '"\\ud83d\\ude00"]').encode())[-1] == "\U0001f600"


@pytest.mark.parametrize("body", [b"5", b'"abc"', b"null", b"[]"])
def test_a_body_that_is_no_object_passes_the_walk(body):
    parse_json(body)  # refused later, by validation, as not an object
