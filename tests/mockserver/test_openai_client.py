"""The official openai client against the mock, over real sockets."""

from __future__ import annotations

import openai
import pytest

SEED_MODEL = "meta-llama/llama-3.3-70b-instruct"
MESSAGES = [
    {"role": "system", "content": "Act like you are a helpful assistant."},
    {"role": "user", "content": "Hi there!"},
]


@pytest.fixture
def client():
    """Make sync openai clients for a server; all are closed after the test."""
    made = []

    def make(server, api_key="k"):
        made.append(
            openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0, timeout=10)
        )
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_non_stream_answer_is_the_seed_answer(mock, client):
    answer = client(mock).chat.completions.create(
        model=SEED_MODEL, messages=MESSAGES, max_tokens=100
    )
    assert answer.object == "chat.completion"
    assert answer.model == SEED_MODEL
    assert answer.id.startswith("chatcmpl-")
    assert answer.choices[0].message.content.startswith("Hello! It's nice to meet you.")
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 40


def test_stream_says_the_non_stream_text(mock, client):
    stream = client(mock).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    chunks = list(stream)
    answer = client(mock).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == (
        answer.choices[0].message.content
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.role for c in chunks[1:]] == [None] * (len(chunks) - 1)
    assert [c.choices[0].finish_reason for c in chunks][-2:] == [None, "stop"]
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {c.model for c in chunks} == {"gpt-4o"}


def test_max_tokens_truncates_with_length(mock, client):
    answer = client(mock).chat.completions.create(model="m", messages=MESSAGES, max_tokens=3)
    assert answer.choices[0].message.content == "Hello! It"
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == 3


def test_stream_include_usage_adds_a_usage_chunk(mock, client):
    chunks = list(
        client(mock).chat.completions.create(
            model="m",
            messages=MESSAGES,
            stream=True,
            max_completion_tokens=4,
            stream_options={"include_usage": True},
        )
    )
    assert [c.usage for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 4
    assert chunks[-2].choices[0].finish_reason == "length"


def test_n_choices_are_indexed_and_differ(mock, client):
    answer = client(mock).chat.completions.create(model="m", messages=MESSAGES, n=2)
    assert [c.index for c in answer.choices] == [0, 1]
    assert answer.choices[0].message.content != answer.choices[1].message.content


def test_stop_string_is_cut_out(mock, client):
    answer = client(mock).chat.completions.create(model="m", messages=MESSAGES, stop=["meet"])
    assert answer.choices[0].message.content == "Hello! It's nice to "
    assert answer.choices[0].finish_reason == "stop"


def test_models_list_and_retrieve(mock, client):
    models = client(mock).models.list()
    assert [m.id for m in models.data] == [SEED_MODEL]
    assert client(mock).models.retrieve(SEED_MODEL).id == SEED_MODEL
    with pytest.raises(openai.NotFoundError) as caught:
        client(mock).models.retrieve("no-such-model")
    assert caught.value.body["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"n": 0}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": 2**63}, "seed"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"logit_bias": {"999999999": 1}}, "logit_bias"),
        ({"tool_choice": "required"}, "tool_choice"),
    ],
    ids=[
        "temperature",
        "n",
        "max_tokens",
        "seed",
        "stream_options",
        "top_logprobs",
        "logit_bias-key",
        "logit_bias-vocab",
        "tool_choice-without-tools",
    ],
)
def test_bad_parameter_is_a_400_naming_it(mock, client, extra, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client(mock).chat.completions.create(model="m", messages=MESSAGES, **extra)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == param
    assert param in caught.value.body["message"]


def test_context_length_exceeded(start_mock, client):
    server = start_mock(context_length=100)
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(model="m", messages=MESSAGES, max_tokens=90)
    assert caught.value.body["code"] == "context_length_exceeded"


def test_api_key_is_enforced(start_mock, client):
    server = start_mock(api_key="sk-right")
    with pytest.raises(openai.AuthenticationError) as caught:
        client(server, api_key="sk-wrong").models.list()
    assert caught.value.body["code"] == "invalid_api_key"
    assert client(server, api_key="sk-right").models.list().data


def test_restricted_models_answer_404_for_others(start_mock, client):
    server = start_mock(models=("only-this",))
    with pytest.raises(openai.NotFoundError) as caught:
        client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.body["code"] == "model_not_found"
    assert client(server).chat.completions.create(model="only-this", messages=MESSAGES).choices


async def test_async_client_streams(mock):
    async with openai.AsyncOpenAI(base_url=mock.base_url, api_key="k", max_retries=0) as aclient:
        stream = await aclient.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text.startswith("Hello! It's nice to meet you.")
