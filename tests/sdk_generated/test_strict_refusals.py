"""The requests of the SDKs' generated "create with all params" tests, which
``--validation schema`` answers, are refused by the default (strict) level with the 400s
OpenAI gives, one rule at a time (issue 14, "the strict default still refuses what OpenAI
refuses")."""

from __future__ import annotations

import importlib
import json
import urllib.error
import urllib.request

import openai
import pytest

from .conftest import API_KEY

# Imported as a module, so that its test classes are not collected a second time here.
generated = importlib.import_module(__package__ + ".test_openai_python_chat_completions")

# The rules the all-params bodies break, in the order the strict level names them (param,
# code): stream_options without stream, then each token limit of 0 (OpenAI: "integer below
# minimum value. Expected a value >= 1"), then a logit_bias key that is no token id.
LIMITS = [
    ("max_tokens", "integer_below_min_value"),
    ("max_completion_tokens", "integer_below_min_value"),
    ("logit_bias", None),
]
ALL_PARAMS = {
    "stream-false": ("test_method_create_with_all_params_overload_1", [("stream_options", None)]),
    "stream-true": ("test_method_create_with_all_params_overload_2", []),
}


def refusal(server, body):
    """The ``error`` of the strict mock's 400 for ``body``, or None when it answers 200."""
    request = urllib.request.Request(
        server.base_url + "/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200
            answer.read()
            return None
    except urllib.error.HTTPError as error:
        assert error.code == 400, error.read()[:300]
        return json.loads(error.read())["error"]


@pytest.mark.parametrize("case", ALL_PARAMS)
def test_the_strict_default_refuses_the_all_params_requests_rule_by_rule(strict_mock, case):
    name, first = ALL_PARAMS[case]
    with (
        openai.OpenAI(base_url=strict_mock.base_url, api_key=API_KEY) as client,
        pytest.raises(openai.BadRequestError) as raised,
    ):
        getattr(generated.TestCompletions(), name)(client)
    body = json.loads(raised.value.response.request.content)
    assert raised.value.body["param"] == [*first, *LIMITS][0][0]
    refused = []
    while (error := refusal(strict_mock, body)) is not None:
        refused.append((error["param"], error["code"]))
        del body[error["param"]]  # the next rule's turn
    assert refused == [*first, *LIMITS]


def test_the_strict_default_answers_the_required_params_requests(strict_mock):
    tests = generated.TestCompletions()
    with openai.OpenAI(base_url=strict_mock.base_url, api_key=API_KEY) as client:
        tests.test_method_create_overload_1(client)
        tests.test_method_create_overload_2(client)
