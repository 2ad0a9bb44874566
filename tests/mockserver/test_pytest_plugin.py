"""The pytest plugin, shown by running small test files that use it: these are its how-to."""

from __future__ import annotations

import socket
import threading
from importlib.metadata import entry_points
from types import SimpleNamespace

import pytest

from mockserver import MockServer
from mockserver.pytest_plugin import SERVERS, pytest_sessionfinish

pytest_plugins = ["pytester"]

USING_THE_SESSION_MOCK = '''
import openai
import pytest

MESSAGES = [{"role": "user", "content": "Hi there!"}]


@pytest.fixture
def client(chat_mock):
    """An openai client of the mock that does not retry."""
    with openai.OpenAI(base_url=chat_mock.base_url, api_key="k", max_retries=0) as client:
        yield client


def test_answer(client):
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello! It's nice to meet you.")


def test_stream(client):
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert [c.choices[0].finish_reason for c in stream][-1] == "stop"


def test_rate_limited_twice_then_answered(chat_mock):
    chat_mock.fault("fail-first=2;status=429;retry-after-ms=10")
    with openai.OpenAI(base_url=chat_mock.base_url, api_key="k", max_retries=2) as client:
        raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.retries_taken == 2
    assert raw.parse().object == "chat.completion"


def test_a_fault_lasts_until_the_test_ends(chat_mock, client):
    chat_mock.fault("status=503")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.models.list()


def test_the_next_test_starts_clean(client):
    assert [m.id for m in client.models.list()] == ["meta-llama/llama-3.3-70b-instruct"]


def test_a_fault_for_one_request(chat_mock, client):
    headers = chat_mock.fault_headers("status=400")
    with pytest.raises(openai.BadRequestError):
        client.models.list(extra_headers=headers)
    assert client.models.list().data


def test_a_stream_cut_midway(chat_mock, client):
    chat_mock.fault("disconnect-after=3")
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    chunks = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            chunks.append(chunk)
    assert len(chunks) == 3


def test_one_server_per_session(chat_mock, chat_mock_server):
    assert chat_mock.base_url == chat_mock_server.base_url
    assert chat_mock.port != 0


def test_a_quirk_for_one_test(chat_mock, client):
    chat_mock.defect("finish-reason-eos")  # mockserver.QUIRKS: what real servers got wrong
    for _ in range(2):
        answer = client.chat.completions.create(model="m", messages=MESSAGES)
        assert answer.choices[0].finish_reason == "eos"


def test_the_quirk_is_gone_in_the_next_test(client):
    answer = client.chat.completions.create(model="m", messages=MESSAGES)
    assert answer.choices[0].finish_reason == "stop"


def test_a_quirk_for_one_request(chat_mock, client):
    headers = chat_mock.defect_headers("error-as-string")
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="m", messages=MESSAGES, n=0, extra_headers=headers)
    assert isinstance(raised.value.body, str)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="m", messages=MESSAGES, n=0)
    assert raised.value.code is not None
'''

CONFIGURED_IN_A_CONFTEST = """
import pytest

from mockserver import MockConfig


@pytest.fixture(scope="session")
def chat_mock_config():
    return MockConfig(api_key="sk-test", models=("my-model",))
"""

USING_THE_CONFIGURED_MOCK = """
import openai
import pytest

MESSAGES = [{"role": "user", "content": "Hi there!"}]


def test_the_key_is_checked(chat_mock):
    client = openai.OpenAI(base_url=chat_mock.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="my-model", messages=MESSAGES)


def test_only_my_model_is_served(chat_mock):
    client = openai.OpenAI(base_url=chat_mock.base_url, api_key="sk-test", max_retries=0)
    assert [m.id for m in client.models.list()] == ["my-model"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=MESSAGES)
"""

USING_THE_ASYNC_MOCK = """
import openai
import pytest

MESSAGES = [{"role": "user", "content": "Hi there!"}]


@pytest.mark.asyncio
async def test_served_by_the_test_loop(chat_mock_async):
    async with openai.AsyncOpenAI(
        base_url=chat_mock_async.base_url, api_key="k", max_retries=0
    ) as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.asyncio
async def test_faults_too(chat_mock_async):
    chat_mock_async.fault("status=500")
    async with openai.AsyncOpenAI(
        base_url=chat_mock_async.base_url, api_key="k", max_retries=0
    ) as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="m", messages=MESSAGES)


@pytest.mark.asyncio
async def test_a_mock_per_test(chat_mock_async, chat_mock):
    assert chat_mock_async.port != chat_mock.port
"""


REPLAYING_CASSETTES = """
import json

import openai
import pytest

MESSAGES = [{"role": "user", "content": "Say hello in French."}]
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1731542400,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Bonjour !"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
}


@pytest.fixture
def cassette(tmp_path):  # a cassette file: this request gets this answer
    path = tmp_path / "bonjour.json"
    document = {
        "version": 1,
        "request": {
            "method": "POST",
            "path": "/chat/completions",
            "body": {"model": "m", "messages": MESSAGES},
        },
        "response": {
            "status": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(ANSWER),
        },
    }
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def client(chat_mock):
    with openai.OpenAI(base_url=chat_mock.base_url, api_key="k", max_retries=0) as client:
        yield client


def test_a_loaded_cassette_answers(chat_mock, client, cassette):
    (loaded,) = chat_mock.load_cassettes(cassette)
    assert loaded.path == "/chat/completions"
    answer = client.chat.completions.create(model="m", messages=MESSAGES)
    assert answer.choices[0].message.content == "Bonjour !"


def test_a_folder_of_cassettes_loose_matching(chat_mock, client, cassette):
    chat_mock.load_cassettes(cassette.parent, loose=True)  # model, messages and stream only
    answer = client.chat.completions.create(model="m", messages=MESSAGES, temperature=0.5)
    assert answer.choices[0].message.content == "Bonjour !"


def test_the_next_test_gets_the_template_answer(client):
    answer = client.chat.completions.create(model="m", messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello! It's nice to meet you.")
"""

INI = "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"


def mock_threads():
    return [t for t in threading.enumerate() if t.name == "chatcompat-mock"]


def test_the_session_hook_stops_servers_left_running():
    server = MockServer().start()
    try:
        session = SimpleNamespace(config=SimpleNamespace(stash={SERVERS: [server]}))
        socket.create_connection((server.host, server.port), timeout=5).close()  # listening
        pytest_sessionfinish(session, 0)
        with pytest.raises(OSError):
            socket.create_connection((server.host, server.port), timeout=5).close()
    finally:
        server.stop()


def test_the_plugin_is_a_pytest11_entry_point():
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "chatcompat"]
    assert plugin.value == "mockserver.pytest_plugin"


def test_session_mock_per_test_faults_defects_and_reset(pytester):
    pytester.makeini(INI)
    pytester.makepyfile(test_session_mock=USING_THE_SESSION_MOCK)
    before = mock_threads()
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=11)
    assert mock_threads() == before  # the session's server was stopped


def test_the_config_is_a_fixture_to_override(pytester):
    pytester.makeini(INI)
    pytester.makeconftest(CONFIGURED_IN_A_CONFTEST)
    pytester.makepyfile(test_configured=USING_THE_CONFIGURED_MOCK)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_cassettes_loaded_for_one_test(pytester):
    pytester.makeini(INI)
    pytester.makepyfile(test_cassettes=REPLAYING_CASSETTES)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_async_mock_in_the_test_event_loop(pytester):
    pytester.makeini(INI)
    pytester.makepyfile(test_async_mock=USING_THE_ASYNC_MOCK)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_bad_fault_spec_fails_the_test_that_gave_it(pytester):
    pytester.makeini(INI)
    pytester.makepyfile(
        "def test_bad(chat_mock):\n    chat_mock.fault('status=42')\n",
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ValueError: status='42': expected a value in [[]400, 599]*"])
