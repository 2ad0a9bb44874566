"""conformance.strategies: valid requests validate against the compatible request schema,
and every mutation makes one invalid."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatcompat import schemas
from conformance.strategies import (
    MUTATIONS,
    chat_requests,
    invalid_requests,
    logit_biases,
    messages,
    stops,
)

SCHEMA = schemas.validator("chat-completion-request", "compatible")
CHECKED = settings(
    max_examples=120, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
EACH = settings(CHECKED, max_examples=30)  # per mutation


def schema_errors(body):
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in SCHEMA.iter_errors(body)]


@CHECKED
@given(chat_requests("meta-llama/llama-3.3-70b-instruct", extensions=True))
def test_chat_requests_validate_against_the_compatible_schema(body):
    assert schema_errors(body) == []
    assert body["model"] == "meta-llama/llama-3.3-70b-instruct"
    assert 1 <= body.get("max_tokens", body.get("max_completion_tokens")) <= 16
    assert body.get("n", 1) <= 2
    assert "stream_options" not in body or body["stream"] is True
    assert "top_logprobs" not in body or body["logprobs"] is True
    assert body["messages"][-1]["role"] == "user"
    assert sum(len(str(m["content"])) for m in body["messages"]) < 400
    # token ids every byte-level vocabulary has: a 512-token model is served with 805 refused
    assert all(0 <= int(key) < 256 for key in body.get("logit_bias", {}))


@CHECKED
@given(chat_requests("m", max_n=1, logprobs=False, stream=False))
def test_chat_requests_respect_their_options(body):
    assert schema_errors(body) == []
    assert "n" not in body
    assert "logprobs" not in body
    assert "top_logprobs" not in body
    assert not body.get("stream")
    assert not {"top_k", "min_p", "repetition_penalty"} & set(body)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_every_mutation_makes_a_valid_request_invalid(mutation):
    @EACH
    @given(chat_requests("m", max_n=1, logprobs=False, stream=False), mutation.values)
    def mutated_is_invalid(body, value):
        assert schema_errors(body) == []
        assert schema_errors(mutation.apply(body, value)) != []

    mutated_is_invalid()


@CHECKED
@given(invalid_requests("m"))
def test_invalid_requests_are_invalid_and_named(case):
    name, body = case
    assert name in {m.name for m in MUTATIONS}
    assert schema_errors(body) != []


@CHECKED
@given(messages(), stops(), logit_biases())
def test_parts_are_short_and_in_range(conversation, stop, bias):
    assert 1 <= len(conversation) <= 3
    assert isinstance(stop, str) or 1 <= len(stop) <= 4
    assert all(0 <= int(k) < 256 and -100 <= v <= 100 for k, v in bias.items())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: chat_requests(""), "model"),
        (lambda: chat_requests("m", max_tokens=0), "max_tokens"),
        (lambda: chat_requests("m", max_n=0), "max_n"),
        (lambda: messages(max_size=0), "max_size"),
        (lambda: invalid_requests("m", mutations=()), "mutations"),
    ],
    ids=["empty-model", "max-tokens-0", "max-n-0", "messages-0", "no-mutations"],
)
def test_arguments_are_validated_up_front(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_strategies_are_search_strategies():
    for strategy in (chat_requests("m"), invalid_requests("m"), messages(), stops()):
        assert isinstance(strategy, st.SearchStrategy)
