"""Contract tests: what the official openai client raises or returns against each real-world
quirk of the catalogue (mockserver.QUIRKS), over real sockets, the quirk asked for per request
(the fault header) and per test (chat_mock.defect)."""

from __future__ import annotations

import datetime
import json

import openai
import pydantic
import pytest

from mockserver import DEFECTS, FAULT_HEADER, QUIRKS, MockConfig, MockServer

MESSAGES = [{"role": "user", "content": "Hi there!"}]


class get_weather(pydantic.BaseModel):  # the tool's name, as parse() sends it
    city: str


TOOLS = [openai.pydantic_function_tool(get_weather)]
FORCED = {"tools": TOOLS, "tool_choice": "required"}


def finishes(client, **params):
    """The finish_reason of every chunk of a stream, as the client gives them."""
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True, **params)
    return [choice.finish_reason for chunk in stream for choice in chunk.choices]


def final(client, **params):
    """The completion the client's stream helper (chat.completions.stream) puts together."""
    with client.chat.completions.stream(model="m", messages=MESSAGES, **params) as stream:
        for _ in stream:
            pass
        return stream.get_final_completion()


def error_as_string(client):
    # The body is the bare string: the client raises the right class, but code, type and param
    # are None and str(error) loses the message.
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="m", messages=MESSAGES, temperature=5)
    error = raised.value
    assert error.body == "Invalid value for 'temperature': 5 is greater than the maximum of 2"
    assert (error.code, error.type, error.param) == (None, None, None)
    assert str(error) == "Error code: 400"


def finish_reason_empty(client):
    # The client passes "" through; code that waits for `finish_reason is not None` stops at the
    # first chunk. The stream helper takes "" for "not finished" and ends with "stop".
    seen = finishes(client)
    assert seen[:-1] == [""] * (len(seen) - 1) and seen[-1] == "stop"
    answer = final(client)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content.startswith("Hello! It's nice to meet you.")


def finish_reason_eos(client):
    # "eos" is outside the client's Literal type, yet returned as it is, streamed or not.
    answer = client.chat.completions.create(model="m", messages=MESSAGES)
    assert answer.choices[0].finish_reason == "eos"
    assert finishes(client)[-1] == "eos"
    assert final(client).choices[0].finish_reason == "eos"


def finish_reason_key_missing(client):
    # A missing key reads as None: only model_fields_set tells it from null.
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    choices = [choice for chunk in stream for choice in chunk.choices]
    assert [c.finish_reason for c in choices[:-1]] == [None] * (len(choices) - 1)
    assert ["finish_reason" in c.model_fields_set for c in choices[-2:]] == [False, True]
    assert final(client).choices[0].finish_reason == "stop"


def tool_arguments_object(client):
    # The client keeps the object (a dict where its type says str): json.loads of it raises
    # TypeError, and parse() with a pydantic tool warns (pydantic's serializer) then raises
    # pydantic's ValidationError.
    answer = client.chat.completions.create(model="m", messages=MESSAGES, **FORCED)
    arguments = answer.choices[0].message.tool_calls[0].function.arguments
    assert arguments == {"city": "Paris"}
    with pytest.raises(TypeError):
        json.loads(arguments)
    serializer = pytest.warns(UserWarning, match="PydanticSerializationUnexpectedValue")
    with pytest.raises(pydantic.ValidationError), serializer:
        client.chat.completions.parse(
            model="m",
            messages=MESSAGES,
            **FORCED,
        )


def tool_call_delta_no_index(client):
    # Plain iteration gives index None; the stream helper cannot place the deltas and raises.
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True, **FORCED)
    deltas = [d for chunk in stream for c in chunk.choices for d in c.delta.tool_calls or []]
    assert deltas and [d.index for d in deltas] == [None] * len(deltas)
    with pytest.raises(TypeError, match="list indices must be integers"):
        final(client, **FORCED)


def created_in_milliseconds(client):
    # Returned as is: 1000 times the time, which datetime cannot read as seconds.
    answer = client.chat.completions.create(model="m", messages=MESSAGES)
    assert answer.created > 10**12
    with pytest.raises((ValueError, OverflowError, OSError)):
        datetime.datetime.fromtimestamp(answer.created, tz=datetime.UTC)


def choice_index_counts_chunks(client):
    # Plain iteration sees a new index in every chunk; the stream helper makes one choice per
    # chunk, none but the last one finished.
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    indices = [c.index for chunk in stream for c in chunk.choices]
    assert indices == list(range(len(indices)))
    answer = final(client)
    assert len(answer.choices) == len(indices)
    assert [c.finish_reason for c in answer.choices[:-1]] == [None] * (len(indices) - 1)


def usage_counts_one_choice(client):
    # Returned as is: with n=2 the completion tokens are about half the two choices' sum.
    answer = client.chat.completions.create(model="m", messages=MESSAGES, n=2)
    assert len(answer.choices) == 2
    assert answer.usage.completion_tokens < 60  # the two answers of 38 tokens each: 76
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def chunk_id_empty(client):
    # Returned as is: every chunk's id is "", so nothing tells two streams' chunks apart.
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert {chunk.id for chunk in stream} == {""}


def model_empty(client):
    # Returned as is, streamed or not: the client cannot tell which model answered.
    answer = client.chat.completions.create(model="m", messages=MESSAGES)
    assert answer.model == ""
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert {chunk.model for chunk in stream} == {""}


# quirk -> its contract (usage-counts-one-choice has no public report yet, so it is not in the
# catalogue; its contract runs all the same).
CONTRACTS = {
    "error-as-string": error_as_string,
    "finish-reason-empty": finish_reason_empty,
    "finish-reason-eos": finish_reason_eos,
    "finish-reason-key-missing": finish_reason_key_missing,
    "tool-arguments-object": tool_arguments_object,
    "tool-call-delta-no-index": tool_call_delta_no_index,
    "created-milliseconds": created_in_milliseconds,
    "choice-index-counts-chunks": choice_index_counts_chunks,
    "usage-counts-one-choice": usage_counts_one_choice,
    "chunk-id-empty": chunk_id_empty,
    "model-empty": model_empty,
}
NAMES = sorted(CONTRACTS)


def defined(name):
    """``name`` as a parameter, skipped while no defect has that name."""
    missing = pytest.mark.skipif(name not in DEFECTS, reason=f"no defect {name!r} on this branch")
    return pytest.param(name, id=name, marks=missing)


@pytest.fixture(scope="module")
def server():
    with MockServer(MockConfig()) as running:
        yield running


def client_of(base_url, headers=None):
    return openai.OpenAI(
        base_url=base_url, api_key="k", max_retries=0, timeout=30, default_headers=headers
    )


def test_every_quirk_has_a_contract():
    assert set(QUIRKS) <= set(CONTRACTS)


@pytest.mark.parametrize("name", [defined(n) for n in NAMES])
def test_quirk_per_request(server, name):
    with client_of(server.base_url, {FAULT_HEADER: f"defect={name}"}) as client:
        CONTRACTS[name](client)


@pytest.mark.parametrize("name", [defined(n) for n in NAMES])
def test_quirk_per_test(chat_mock, name):
    chat_mock.defect(name)
    with client_of(chat_mock.base_url) as client:
        CONTRACTS[name](client)


@pytest.mark.parametrize("name", [defined(n) for n in NAMES])
def test_the_contract_fails_without_its_quirk(server, name):
    # each contract shows its quirk: against the clean mock it does not hold
    with (
        client_of(server.base_url) as client,
        pytest.raises((AssertionError, pytest.fail.Exception)),
    ):
        CONTRACTS[name](client)
