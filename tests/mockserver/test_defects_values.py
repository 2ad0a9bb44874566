"""The wrong-value defects: logprobs defects act only on logprobs requests with a sampling
filter or penalty; created and usage defects keep their answers consistent otherwise."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from mockserver._defects.values import sampling_filtered

KEY = "sk-defects-values"
LOGPROBS = {"logprobs": True, "top_logprobs": 3}


@pytest.mark.parametrize(
    ("extra", "filtered"),
    [
        ({}, False),
        ({"top_p": 1, "presence_penalty": 0, "repetition_penalty": 1.0, "top_k": -1}, False),
        ({"top_p": 0.5}, True),
        ({"top_k": 2}, True),
        ({"min_p": 0.1}, True),
        ({"frequency_penalty": 1}, True),
        ({"repetition_penalty": 1.3}, True),
    ],
    ids=["plain", "neutral", "top_p", "top_k", "min_p", "penalty", "repetition"],
)
def test_sampling_filtered(extra, filtered):
    assert sampling_filtered({**LOGPROBS, **extra}) is filtered
    assert sampling_filtered(extra) is False  # without logprobs, never


def _post(server, body):
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
        ).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read()


def test_minus_infinity_only_with_a_sampling_filter(start_mock):
    server = start_mock(models=("m",), api_key=KEY, defects=("logprobs-minus-infinity",))
    plain = _post(server, LOGPROBS)
    filtered = _post(server, {**LOGPROBS, "top_p": 0.5})
    streamed = _post(server, {**LOGPROBS, "top_p": 0.5, "stream": True})
    assert b"Infinity" not in plain
    assert b"-Infinity" in filtered
    assert b"-Infinity" in streamed
    assert b"Infinity" not in _post(server, LOGPROBS)  # the mark does not outlive its request


def test_created_in_milliseconds_is_one_value_per_answer(start_mock):
    server = start_mock(models=("m",), api_key=KEY, defects=("created-milliseconds",))
    events = _post(server, {"stream": True}).split(b"\n\n")
    created = {json.loads(e[6:])["created"] for e in events if e.startswith(b"data: {")}
    assert len(created) == 1
    assert abs(created.pop() / 1000 - time.time()) < 3600


def test_usage_of_one_choice_stays_consistent(start_mock):
    server = start_mock(models=("m",), api_key=KEY, defects=("usage-counts-one-choice",))
    usage = json.loads(_post(server, {"n": 3, "max_tokens": 8}))["usage"]
    assert usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
