"""The plugin's scripted replies, request log and record modes, shown by running small test
files that use them (README.md's block for client authors among them)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).parents[2] / "README.md"
INI = "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"


def readme_example() -> str:
    """The first Python block of README.md's section for client authors."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### For client authors") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(pytester):
    pytester.makeini(INI)
    pytester.makepyfile(test_readme_example=readme_example())
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


SCRIPTING = """
import openai
import pytest

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def client(chat_mock):
    with openai.OpenAI(base_url=chat_mock.base_url, api_key="k", max_retries=0) as client:
        yield client


def test_a_predicate_and_forever(chat_mock, client):
    chat_mock.reply("cold", predicate=lambda body: body.get("temperature") == 0, times=None)
    for _ in range(3):
        answer = client.chat.completions.create(model="m", messages=MESSAGES, temperature=0)
        assert answer.choices[0].message.content == "cold"
    warm = client.chat.completions.create(model="m", messages=MESSAGES, temperature=1)
    assert warm.choices[0].message.content != "cold"


def test_a_malformed_reply_is_a_value_error(chat_mock):
    with pytest.raises(ValueError, match="status must be an HTTP error status"):
        chat_mock.reply(status=200)


def test_the_log_starts_empty_and_assert_helpers_say_what_differs(chat_mock, client):
    assert chat_mock.requests == []
    with pytest.raises(AssertionError, match="received none"):
        chat_mock.assert_called()
    client.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(AssertionError, match="expected 2 chat completion request"):
        chat_mock.assert_called(times=2)
    with pytest.raises(AssertionError, match="'model': 'm'"):
        chat_mock.assert_called_with(model="other")


def test_an_unused_reply_fails_the_test(chat_mock):
    chat_mock.reply("never asked for", model="nobody")


def test_the_next_test_starts_with_no_reply(chat_mock, client):
    answer = client.chat.completions.create(model="nobody", messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello!")


@pytest.mark.asyncio
async def test_the_async_mock_scripts_too(chat_mock_async):
    chat_mock_async.reply("async scripted")
    async with openai.AsyncOpenAI(
        base_url=chat_mock_async.base_url, api_key="k", max_retries=0
    ) as client:
        answer = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert answer.choices[0].message.content == "async scripted"
    chat_mock_async.assert_called(times=1)
"""


def test_scripting_and_an_unused_reply(pytester):
    pytester.makeini(INI)
    pytester.makepyfile(test_scripting=SCRIPTING)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, errors=1)  # the unused reply: an error at teardown
    result.stdout.fnmatch_lines(
        ["*test_an_unused_reply_fails_the_test*", "*1 scripted reply(ies) left unused: *nobody*"]
    )


ASYNC_WITHOUT_PYTEST_ASYNCIO = """
import pytest


def test_needs_pytest_asyncio(chat_mock_async):
    pass
"""

# pytest_asyncio not importable (pytest's assertion rewriting trips over the None module; its
# entry point must be disabled too, or loading it fails first)
BLOCKED = "import sys, pytest; sys.modules['pytest_asyncio'] = None; sys.exit(pytest.main())"


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["-m", "pytest", "-p", "no:asyncio"], id="disabled"),
        pytest.param(["-c", BLOCKED, "-p", "no:asyncio", "--assert=plain"], id="not-importable"),
    ],
)
def test_chat_mock_async_without_pytest_asyncio_says_so(pytester, command):
    pytester.makepyfile(test_async=ASYNC_WITHOUT_PYTEST_ASYNCIO)
    done = subprocess.run(
        [sys.executable, *command, "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "chat_mock_async needs pytest-asyncio" in done.stdout
    assert "1 error" in done.stdout


RECORDING = """
import openai
import pytest

MESSAGES = [{"role": "user", "content": "Hi"}]


def ask(chat_mock, content="Hi"):
    with openai.OpenAI(base_url=chat_mock.base_url, api_key="sk-dummy", max_retries=0) as client:
        messages = [{"role": "user", "content": content}]
        return client.chat.completions.create(model="m", messages=messages)


@pytest.mark.chat_mock(record_mode="once", cassettes="recorded")
def test_once_records_then_replays(chat_mock):
    assert ask(chat_mock).choices[0].message.content


@pytest.mark.chat_mock(record_mode="none", cassettes="recorded")
def test_none_replays_what_was_recorded(chat_mock):
    assert ask(chat_mock).choices[0].message.content
    with pytest.raises(openai.NotFoundError, match="No cassette"):
        ask(chat_mock, "never recorded")


@pytest.mark.chat_mock(record_mode="new_episodes", cassettes="recorded")
def test_new_episodes_records_the_new_one(chat_mock):
    ask(chat_mock)
    ask(chat_mock, "a new one")


@pytest.mark.chat_mock(record_mode="all", cassettes="everything")
def test_all_records_everything(chat_mock):
    ask(chat_mock)
    ask(chat_mock)


def test_the_ini_record_mode_and_folder(chat_mock):
    ask(chat_mock, "from the ini")
"""


def test_record_modes_with_an_upstream(pytester, start_mock, monkeypatch):
    upstream = start_mock(api_key="sk-upstream-key-42", control=True)
    monkeypatch.setenv("UPSTREAM_KEY", "sk-upstream-key-42")
    pytester.makeini(
        INI
        + f"chat_mock_upstream = {upstream.base_url}\nchat_mock_upstream_key_env = UPSTREAM_KEY\n"
        + "chat_mock_record_mode = new_episodes\n"
    )
    pytester.makepyfile(test_recording=RECORDING)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=5)
    recorded = sorted(p.parent.name for p in pytester.path.rglob("*.json"))
    assert recorded == [
        "everything",
        "everything",
        "recorded",
        "recorded",
        "test_the_ini_record_mode_and_folder",
    ]
    text = "".join(p.read_text() for p in pytester.path.rglob("*.json"))
    assert "sk-upstream-key-42" not in text and "sk-dummy" not in text
    default = pytester.path / "cassettes" / "test_recording" / "test_the_ini_record_mode_and_folder"
    assert default.is_dir()
