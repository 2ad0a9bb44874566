"""Generate mode: the reference model answers, every sampling parameter takes effect, and the
answers pass the conformance suite in each flavour."""

from __future__ import annotations

import json
import logging
import sys

import jsonschema
import openai
import pytest

from chatcompat.cli import main
from conformance import Endpoint, load_profile, run
from mockserver import MockConfig, MockServer, ModelUnavailable
from mockserver._generate import require_reference_model
from reference_model import default_tokenizer

HI = [{"role": "user", "content": "Hi"}]
REPEATS = [{"role": "user", "content": "Say hello hello hello"}]  # greedy repeats itself
EXTRA = ("top_k", "min_p", "repetition_penalty")  # not in the client's signature
KEY = "sk-generate-mode"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    }
]
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer"},
        "capital": {"type": "boolean"},
        "unit": {"enum": ["km", "mi"]},
        "where": {
            "type": "object",
            "properties": {"country": {"type": "string"}},
            "required": ["country"],
        },
    },
    "required": ["city", "population", "capital", "unit", "where"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def servers():
    """Generate-mode mocks by flavour (started on first use, warmed up); all stopped after."""
    started: dict[str, MockServer] = {}

    def get(flavour, **config):
        key = json.dumps([flavour, config], sort_keys=True)
        if key not in started:
            server = MockServer(
                MockConfig(mode="generate", flavour=flavour, api_key=KEY, **config)
            ).start(timeout=60)
            started[key] = server
            with client_for(server, timeout=300) as warm:  # waits for the model build
                warm.chat.completions.create(model="m", messages=HI, max_tokens=1)
        return started[key]

    yield get
    for server in started.values():
        server.stop()


def client_for(server, timeout=60):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=timeout)


@pytest.fixture(params=["openai", "llamacpp"], ids=["openai", "llamacpp"])
def chat(request, servers):
    """``chat(**params)``: one non-stream completion from a generate-mode mock."""
    with client_for(servers(request.param)) as client:

        def chat(**params):
            extra = {k: params.pop(k) for k in EXTRA if k in params}
            params = {"model": "m", "messages": HI, "max_tokens": 8, **params}
            return client.chat.completions.create(**params, extra_body=extra)

        yield chat


@pytest.fixture(params=["openai", "llamacpp"], ids=["openai", "llamacpp"])
def client(request, servers):
    with client_for(servers(request.param)) as client:
        yield client


def text(answer, index=0):
    return answer.choices[index].message.content


def test_seed_reproduces_and_another_seed_differs(chat):
    first, again = chat(seed=7, temperature=1.0), chat(seed=7, temperature=1.0)
    assert text(first) == text(again)
    assert text(chat(seed=8, temperature=1.0)) != text(first)


def test_n_gives_indexed_choices_seeded_one_after_the_other(chat):
    answer = chat(n=3, seed=11, temperature=1.0)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert text(answer, 1) == text(chat(seed=12, temperature=1.0))


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_token_limit_ends_with_length(chat, key):
    answer = chat(**{"max_tokens": None, key: 3}, temperature=0)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == 3


def test_stop_string_is_excluded(chat):
    full = text(chat(temperature=0, max_tokens=12))
    stop = full[4:7]
    answer = chat(temperature=0, max_tokens=12, stop=[stop])
    assert text(answer) == full[: full.index(stop)]
    assert answer.choices[0].finish_reason == "stop"


def test_logprobs_one_entry_per_token_with_top_logprobs(chat):
    answer = chat(temperature=0, max_tokens=5, logprobs=True, top_logprobs=3)
    entries = answer.choices[0].logprobs.content
    assert len(entries) == answer.usage.completion_tokens == 5
    assert "".join(e.token for e in entries) == text(answer)
    for entry in entries:
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].token == entry.token  # greedy: the most likely token
        assert bytes(entry.bytes) == entry.token.encode()


def test_temperature_zero_is_greedy_like_top_k_one(chat):
    greedy = text(chat(temperature=0, max_tokens=12))
    assert text(chat(temperature=1.0, top_k=1, seed=3, max_tokens=12)) == greedy
    assert text(chat(temperature=1.0, top_p=1e-9, seed=4, max_tokens=12)) == greedy
    assert text(chat(temperature=1.0, min_p=1.0, seed=5, max_tokens=12)) == greedy
    assert text(chat(temperature=1.5, seed=6, max_tokens=12)) != greedy


@pytest.mark.parametrize(
    "penalty",
    [{"repetition_penalty": 3.0}, {"frequency_penalty": 2.0}, {"presence_penalty": 2.0}],
    ids=["repetition", "frequency", "presence"],
)
def test_penalties_change_the_greedy_answer(chat, penalty):
    greedy = text(chat(messages=REPEATS, temperature=0, max_tokens=24))
    assert text(chat(messages=REPEATS, temperature=0, max_tokens=24, **penalty)) != greedy


def test_repetition_penalty_zero_is_refused_like_vllm(chat):
    with pytest.raises(openai.BadRequestError) as caught:
        chat(repetition_penalty=0)
    assert "repetition_penalty" in caught.value.message  # the schema or the model's own rule


def test_logit_bias_minus_100_bans_a_token(chat):
    first = chat(temperature=0, max_tokens=4, logprobs=True).choices[0].logprobs.content[0]
    banned = default_tokenizer().bytes_to_id[bytes(first.bytes)]
    answer = chat(temperature=0, max_tokens=4, logprobs=True, logit_bias={str(banned): -100})
    tokens = [bytes(e.bytes) for e in answer.choices[0].logprobs.content]
    assert bytes(first.bytes) not in tokens


def test_tool_call_accumulates_in_the_client_stream_helper(client):
    with client.chat.completions.stream(
        model="m", messages=HI, tools=TOOLS, tool_choice="required", seed=1
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert sorted(json.loads(call.function.arguments)) == ["city", "days"]


def test_streamed_argument_fragments_join_to_valid_json(client):
    named = {"type": "function", "function": {"name": "get_weather"}}
    chunks = list(
        client.chat.completions.create(
            model="m", messages=HI, tools=TOOLS, tool_choice=named, seed=2, stream=True
        )
    )
    fragments = [
        call.function.arguments
        for chunk in chunks
        for call in chunk.choices[0].delta.tool_calls or []
        if chunk.choices
    ]
    assert fragments[0] == "" and len(fragments) > 3
    assert isinstance(json.loads("".join(fragments)), dict)


def test_tool_call_cut_by_the_limit_is_returned_as_text(chat):
    answer = chat(tools=TOOLS, tool_choice="required", max_tokens=None, max_completion_tokens=1)
    assert answer.choices[0].finish_reason == "length"
    assert answer.choices[0].message.tool_calls is None
    assert text(answer)


def test_an_empty_stop_string_is_ignored(chat):
    plain = chat(seed=5, temperature=1.0, max_tokens=12)
    for stop in ("", ["", "zzz"]):
        answer = chat(seed=5, temperature=1.0, max_tokens=12, stop=stop)
        assert text(answer) == text(plain) and text(answer)
        assert answer.choices[0].finish_reason == plain.choices[0].finish_reason
        assert answer.usage == plain.usage


WEATHER_AND_TIME = [*TOOLS, {"type": "function", "function": {"name": "get_time"}}]


def test_required_calls_every_tool_one_after_another(chat):
    answer = chat(tools=WEATHER_AND_TIME, tool_choice="required", seed=1, max_tokens=None)
    calls = answer.choices[0].message.tool_calls
    assert answer.choices[0].finish_reason == "tool_calls"
    assert [call.function.name for call in calls] == ["get_weather", "get_time"]
    assert sorted(json.loads(calls[0].function.arguments)) == ["city", "days"]
    assert json.loads(calls[1].function.arguments) == {}
    assert len({call.id for call in calls}) == 2


def test_required_without_parallel_calls_calls_the_first_tool(chat):
    answer = chat(
        tools=WEATHER_AND_TIME,
        tool_choice="required",
        parallel_tool_calls=False,
        seed=1,
        max_tokens=None,
    )
    assert [c.function.name for c in answer.choices[0].message.tool_calls] == ["get_weather"]


def test_streamed_calls_have_one_index_each(client):
    chunks = client.chat.completions.create(
        model="m", messages=HI, tools=WEATHER_AND_TIME, tool_choice="required", seed=2, stream=True
    )
    fragments = [
        c for chunk in chunks if chunk.choices for c in chunk.choices[0].delta.tool_calls or []
    ]
    heads = [(f.index, f.function.name) for f in fragments if f.id]
    assert heads == [(0, "get_weather"), (1, "get_time")]
    by_index = {0: "", 1: ""}
    for fragment in fragments:
        by_index[fragment.index] += fragment.function.arguments or ""
    assert json.loads(by_index[1]) == {} and sorted(json.loads(by_index[0])) == ["city", "days"]


def test_the_configured_context_bounds_prompt_and_completion(servers):
    with client_for(servers("openai", context_length=40)) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="m", messages=HI, max_tokens=39)
        assert caught.value.code == "context_length_exceeded"
        assert "in the completion" in caught.value.message
        bias = {str(token): -100 for token in default_tokenizer().stop_ids}
        answer = client.chat.completions.create(model="m", messages=HI, logit_bias=bias)
    assert answer.choices[0].finish_reason == "length"  # at the context's end
    assert answer.usage.total_tokens == 40


CUSTOM = {"type": "custom", "custom": {"name": "lookup"}}
ALLOWED = {"mode": "required", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}


@pytest.mark.parametrize(
    "tool_choice",
    [{"type": "allowed_tools", "allowed_tools": ALLOWED}, CUSTOM],
    ids=["allowed_tools", "custom"],
)
def test_a_tool_choice_naming_no_function_answers_text(chat, tool_choice):
    answer = chat(tools=[*TOOLS, CUSTOM], tool_choice=tool_choice)
    assert answer.choices[0].message.tool_calls is None
    assert text(answer)


def test_required_calls_the_first_function_tool(chat):
    answer = chat(tools=[CUSTOM, *TOOLS], tool_choice="required", max_tokens=None)
    assert [c.function.name for c in answer.choices[0].message.tool_calls] == ["get_weather"]


def test_json_schema_output_validates(chat):
    response_format = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
    for seed in (1, 2):
        answer = chat(response_format=response_format, seed=seed, max_tokens=None)
        jsonschema.validate(json.loads(text(answer)), SCHEMA)


def test_json_object_output_is_an_object(chat):
    answer = chat(response_format={"type": "json_object"}, seed=3, max_tokens=None)
    assert isinstance(json.loads(text(answer)), dict)


def test_stream_with_usage_says_the_non_stream_text(client):
    params = {"model": "m", "messages": HI, "max_tokens": 6, "seed": 9}
    chunks = list(
        client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
    )
    answer = client.chat.completions.create(**params)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text(answer)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == answer.usage.completion_tokens


def raw_stream(server, body):
    """The chunks of a stream (id and created blanked) and the seconds from sending to the
    first and to the last piece read."""
    import time

    import httpx

    started, first, data = time.perf_counter(), None, b""
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.stream(
        "POST", f"{server.base_url}/chat/completions", json=body, headers=headers, timeout=300
    ) as response:
        assert response.status_code == 200, response.read()
        for piece in response.iter_raw():
            first = first or time.perf_counter() - started
            data += piece
    last = time.perf_counter() - started
    events = [e.removeprefix(b"data: ") for e in data.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    chunks = [{**json.loads(e), "id": "", "created": 0} for e in events[:-1]]
    return chunks, first, last


LIVE_BODIES = {
    "plain": {"seed": 3, "temperature": 1.0, "max_tokens": 24},
    "usage and logprobs": {
        "seed": 4,
        "max_tokens": 12,
        "stream_options": {"include_usage": True},
        "logprobs": True,
        "top_logprobs": 2,
    },
    "stop": {"seed": 5, "max_tokens": 24, "stop": [" "]},
    "json": {"seed": 6, "max_tokens": 40, "response_format": {"type": "json_object"}},
}


@pytest.mark.parametrize("flavour", ["openai", "vllm", "llamacpp", "novita", "azure"])
@pytest.mark.parametrize("case", list(LIVE_BODIES))
def test_a_live_stream_has_the_chunks_of_the_whole_answer(servers, flavour, case):
    # the same request to a mock with a (tiny) TTFT, which renders the whole answer first
    body = {"model": "m", "messages": HI, "stream": True, **LIVE_BODIES[case]}
    live, _, _ = raw_stream(servers(flavour), body)
    whole, _, _ = raw_stream(servers(flavour, ttft=0.0001), body)
    assert live == whole
    texts = [c["choices"][0]["delta"].get("content") for c in live if c["choices"]]
    assert case == "stop" or sum(map(bool, texts)) > 1


def test_a_live_stream_starts_before_the_model_is_done(servers):
    stop_ids = default_tokenizer().stop_ids  # banned: the model writes all 400 tokens
    bias = {str(token): -100 for token in stop_ids}
    body = {"model": "m", "messages": HI, "stream": True, "max_tokens": 400, "logit_bias": bias}
    chunks, first, last = raw_stream(servers("openai"), body)
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) > 300
    assert first < last / 4, (first, last)  # ~1 token of 400 made before the first event


def test_a_live_stream_left_by_its_client_stops_the_model(servers):
    import socket
    import time

    from ..conftest import captured_logs

    server = servers("openai")
    bias = {str(token): -100 for token in default_tokenizer().stop_ids}
    # 2,000 tokens: about the model's whole context (2,048), the most a request may ask for
    body = {"model": "m", "messages": HI, "stream": True, "max_tokens": 2000, "logit_bias": bias}
    payload = json.dumps(body).encode()
    with captured_logs("mockserver", "aiohttp") as records:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nAuthorization: Bearer "
                + KEY.encode()
                + b"\r\nContent-Length: "
                + str(len(payload)).encode()
                + b"\r\n\r\n"
                + payload
            )
            assert b"200 OK" in sock.recv(65536)  # the stream has started: leave
        deadline = time.monotonic() + 60  # 2,000 tokens would take seconds
        while not any("stopped" in r.getMessage() for r in records):
            assert time.monotonic() < deadline, [r.getMessage() for r in records]
            time.sleep(0.05)
        with client_for(server) as client:  # the worker is free again
            assert client.chat.completions.create(model="m", messages=HI, max_tokens=2).choices
    assert not [r for r in records if r.levelno >= logging.WARNING]


def test_a_live_stream_whose_model_fails_ends_with_an_error_event(servers, monkeypatch):
    import httpx

    from mockserver import _generate

    from ..conftest import captured_logs

    made = []

    def failing(*args):
        made.append(1)
        if len(made) == 3:
            raise RuntimeError("the model broke")
        return real(*args)

    real = _generate._token
    monkeypatch.setattr(_generate, "_token", failing)
    bias = {str(token): -100 for token in default_tokenizer().stop_ids}
    body = {"model": "m", "messages": HI, "stream": True, "max_tokens": 50, "logit_bias": bias}
    headers = {"Authorization": f"Bearer {KEY}"}
    with captured_logs("mockserver") as records:
        url = f"{servers('openai').base_url}/chat/completions"
        answer = httpx.post(url, json=body, headers=headers, timeout=60)
    events = [e.removeprefix(b"data: ") for e in answer.content.split(b"\n\n") if e]
    assert answer.status_code == 200  # the stream had started with the first token
    assert json.loads(events[-1])["error"]["type"] == "server_error"
    assert b"[DONE]" not in events
    assert [r.getMessage() for r in records if r.levelno >= logging.ERROR] == [
        "generation failed mid-stream"
    ]


def test_the_flavour_picks_the_sampler_and_sampling_overrides_it(servers):
    def sampled(server):
        with client_for(server) as c:
            params = {"model": "m", "messages": HI, "max_tokens": 12, "seed": 21}
            return c.chat.completions.create(**params, temperature=1.0).choices[0].message.content

    vllm, llamacpp = sampled(servers("openai")), sampled(servers("llamacpp"))
    assert vllm != llamacpp
    assert sampled(servers("llamacpp", sampling="vllm")) == vllm


def test_prompt_beyond_the_model_context_is_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "a " * 3000}], max_tokens=1
        )
    assert caught.value.code == "context_length_exceeded"


@pytest.mark.parametrize("flavour", ["openai", "vllm", "llamacpp", "novita", "azure"])
def test_conformance_suite_passes(servers, flavour):
    profile = load_profile("openai" if flavour == "azure" else flavour)  # Azure serves OpenAI's
    endpoint = Endpoint(
        servers(flavour).base_url,
        "m",
        KEY,
        timeout=60,
        capabilities=profile.capabilities,
        context_length=profile.context_length,
    )
    # One check at a time: the model answers one request at a time anyway, and CPython 3.11's
    # ast is not thread-safe (gh-106905): schemathesis and hypothesis parsing code in two check
    # threads at once fail now and then with "AST constructor recursion depth mismatch".
    result = run(endpoint, concurrency=1)
    failed = {r.check.id: r.message for r in result.results if r.status == "failed"}
    assert failed == {}
    assert result.counts["passed"] > 20


def test_without_the_reference_model_generate_mode_fails_at_startup(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "reference_model", None)  # import raises ImportError
    with pytest.raises(ModelUnavailable, match=r"pip install -c constraints\.txt"):
        require_reference_model()
    assert main(["mock", "--port", "0", "--mode", "generate"]) == 2
    assert main(["mock", "--port", "0", "--on-miss", "generate"]) == 2
    assert "needs the reference model" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="needs the reference model"):
        MockServer(MockConfig(mode="generate")).start()
