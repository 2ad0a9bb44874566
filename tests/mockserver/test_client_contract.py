"""Issue 14's contract test: the official ``openai`` client against the pytest plugin's mock,
answered by scripted replies (content, a tool call, finish_reason length, a stream, a refusal,
logprobs, usage, exact chunks, an error), with the request log asserting what the client sent.
The record modes' half is in test_pytest_plugin.py (a pytest run of its own, as users run it)."""

from __future__ import annotations

import json

import openai
import pytest

from mockserver.pytest_plugin import ChatMock

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def client(chat_mock: ChatMock):
    with openai.OpenAI(
        base_url=chat_mock.base_url, api_key="sk-test-1234567890", max_retries=0
    ) as c:
        yield c


def test_content(chat_mock, client):
    chat_mock.reply("Sunny, 24 degrees.")
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "Sunny, 24 degrees."
    assert answer.choices[0].finish_reason == "stop"
    chat_mock.assert_called(times=1)
    chat_mock.assert_called_with(model="gpt-4o", messages=MESSAGES)


def test_a_tool_call(chat_mock, client):
    chat_mock.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    assert chat_mock.last_request.body["tools"] == TOOLS


def test_finish_reason_length(chat_mock, client):
    chat_mock.reply("Sunny and", finish_reason="length", usage={"completion_tokens": 3})
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=3)
    assert (answer.choices[0].finish_reason, answer.usage.completion_tokens) == ("length", 3)
    chat_mock.assert_called_with(max_tokens=3)


def test_a_stream_with_usage(chat_mock, client):
    chat_mock.reply("Sunny, 24 degrees.", usage={"prompt_tokens": 7, "completion_tokens": 5})
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Sunny, 24 degrees."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.total_tokens) == (7, 12)
    chat_mock.assert_called_with(stream=True, stream_options={"include_usage": True})


def test_a_streamed_tool_call(chat_mock, client):
    chat_mock.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, tools=TOOLS, stream=True
    )
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in stream
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == {"city": "Paris"}


def test_a_refusal_and_logprobs(chat_mock, client):
    chat_mock.reply(refusal="I can't help with that.")
    logprobs = [{"token": "Hi", "logprob": -0.1}, {"token": "!", "logprob": -0.5}]
    chat_mock.reply(logprobs=logprobs)
    refused = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert refused.choices[0].message.refusal == "I can't help with that."
    assert refused.choices[0].message.content is None
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, logprobs=True)
    assert answer.choices[0].message.content == "Hi!"
    assert [e.logprob for e in answer.choices[0].logprobs.content] == [-0.1, -0.5]


def test_exact_chunks(chat_mock, client):
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": "exact"}, "finish_reason": "stop"}],
    }
    chat_mock.reply(chunks=[chunk])
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert [c.model_dump(exclude_unset=True) for c in stream] == [chunk]


def test_an_error_reply_then_matched_replies(chat_mock, client):
    chat_mock.reply(status=429, error={"message": "Slow down."}, headers={"retry-after": "0"})
    chat_mock.reply("For Paris.", contains="Paris")
    chat_mock.reply("For the other model.", model="other")
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert raised.value.body["message"] == "Slow down."
    other = client.chat.completions.create(
        model="other", messages=[{"role": "user", "content": "Hi"}]
    )
    paris = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert (other.choices[0].message.content, paris.choices[0].message.content) == (
        "For the other model.",
        "For Paris.",
    )


def test_the_request_log_has_headers_without_the_key(chat_mock, client):
    chat_mock.reply("ok", times=None)  # every request, for as long as the test runs
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, user="u-1")
    client.models.list()
    sent = chat_mock.last_request
    assert sent.headers["authorization"] == "[REDACTED]"
    assert "sk-test-1234567890" not in json.dumps([r.as_json() for r in chat_mock.requests])
    assert sent.headers["content-type"] == "application/json"
    assert sent.body["user"] == "u-1"
    assert [(r.method, r.path, r.status) for r in chat_mock.requests] == [
        ("POST", "/v1/chat/completions", 200),
        ("GET", "/v1/models", 200),
    ]


async def test_the_async_client(chat_mock):
    chat_mock.reply("Async hello.")
    async with openai.AsyncOpenAI(
        base_url=chat_mock.base_url, api_key="k", max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "Async hello."
    assert chat_mock.last_request.headers["x-stainless-async"].startswith("async")
