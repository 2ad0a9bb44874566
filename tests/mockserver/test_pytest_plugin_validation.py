"""The pytest plugin's validation level (issue 14, item 1): ``--chat-mock-validation``, the ini
option ``chat_mock_validation`` and the ``chat_mock_validation`` marker."""

from __future__ import annotations

pytest_plugins = ["pytester"]

INI = "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"

# The all-params placeholders of the SDKs' generated tests: 400 at strict, 200 at schema.
USING_THE_LEVELS = """
import openai
import pytest

PLACEHOLDERS = {"max_tokens": 0, "stream_options": {"include_usage": True}}


def create(chat_mock):
    with openai.OpenAI(base_url=chat_mock.base_url, api_key="k", max_retries=0) as client:
        return client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Hi"}], **PLACEHOLDERS
        )


@pytest.mark.chat_mock_validation("schema")
def test_schema_for_this_test(chat_mock):
    assert create(chat_mock).choices[0].finish_reason == "length"


def test_the_session_level_after_it(chat_mock, pytestconfig):
    if pytestconfig.getini("chat_mock_validation") == "strict" and not pytestconfig.getoption(
        "chat_mock_validation"
    ):
        with pytest.raises(openai.BadRequestError):
            create(chat_mock)
    else:
        assert create(chat_mock).choices[0].message.content == ""


def test_set_at_run_time(chat_mock):
    chat_mock.set_validation("off")
    assert create(chat_mock).choices[0].finish_reason == "length"
    with pytest.raises(ValueError, match="unknown validation level"):
        chat_mock.set_validation("loose")
"""


def test_the_marker_sets_one_test_and_strict_stays_the_default(pytester):
    pytester.makeini(INI)
    pytester.makepyfile(test_levels=USING_THE_LEVELS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_the_option_and_the_ini_set_the_session_level(pytester):
    pytester.makepyfile(test_levels=USING_THE_LEVELS)
    pytester.makeini(INI)
    result = pytester.runpytest("-p", "no:cacheprovider", "--chat-mock-validation", "schema")
    result.assert_outcomes(passed=3)
    pytester.makeini(INI + "chat_mock_validation = off\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
