"""The request rules (chatcompat.request_rules), and the three answer sources that share them
agreeing on every one: the template answers, generate mode (the reference model behind the mock's
model worker) and the suite's oracle."""

from __future__ import annotations

import asyncio

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatcompat.request_rules import (
    RuleViolation,
    check_context_length,
    completion_limit,
    forced_tools,
    integral,
    sampling_fields,
    stop_strings,
)
from conformance._oracle import Oracle
from mockserver import MockConfig
from mockserver._generate import ModelWorker
from mockserver._template import template_answer
from mockserver._validation import validate_request
from reference_model import (
    SamplingParams,
    build_model,
    default_tokenizer,
    export_hf,
    generation_request,
)

HI = [{"role": "user", "content": "Hi"}]
CONFIG = MockConfig()
VOCAB = default_tokenizer().vocab_size


def tool(name, parameters=None):
    parameters = parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


TOOLS = {
    "a": tool("a"),
    "bb": tool(
        "bb", {"type": "object", "properties": {"u": {"enum": ["c", "f"]}}, "required": ["u"]}
    ),
    "c": tool("c", {"type": "object", "properties": {"k": {"type": "integer"}}, "required": ["k"]}),
}
STOPS = ["", " ", "e", "you", "Hel", ".", "\n", '"', "!"]


# --- the rules, by example ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "expected"),
    [(None, ()), ("", ()), ("x", ("x",)), (["", "a", ""], ("a",)), (["a", "b"], ("a", "b"))],
    ids=["absent", "empty", "string", "list-with-empty", "list"],
)
def test_stop_strings_ignore_empty_strings(stop, expected):
    assert stop_strings({"stop": stop}) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_tokens": 5}, 5),
        ({"max_completion_tokens": 7, "max_tokens": 5}, 7),
        ({"max_tokens": 3.0}, 3),
        ({"max_tokens": None}, None),
        ({}, None),
    ],
    ids=["max_tokens", "max_completion_tokens-wins", "integral-float", "null", "absent"],
)
def test_completion_limit(fields, expected):
    assert completion_limit(fields) == expected


NAMED_BB = {"type": "function", "function": {"name": "bb"}}
ALL = list(TOOLS.values())


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("required", None, ["a", "bb", "c"]),
        ("required", True, ["a", "bb", "c"]),
        ("required", False, ["a"]),
        (NAMED_BB, None, ["bb"]),
        (NAMED_BB, False, ["bb"]),
        ("auto", None, []),
        ("none", None, []),
        (None, None, []),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}, None, []),
    ],
    ids=[
        "required",
        "required-parallel",
        "required-not-parallel",
        "named",
        "named-not-parallel",
        "auto",
        "none",
        "absent",
        "allowed-tools",
    ],
)
def test_forced_tools(choice, parallel, expected):
    forced = forced_tools(ALL, choice, parallel)
    assert [t["function"]["name"] for t in forced] == expected


def test_forced_tools_skip_custom_tools():
    custom = {"type": "custom", "custom": {"name": "x"}}
    assert forced_tools([custom, TOOLS["a"]], "required") == (TOOLS["a"],)
    assert forced_tools([custom], "required") == ()


def test_integral_makes_integral_floats_ints_and_keeps_the_rest():
    body = {"n": 2.0, "max_tokens": 3.0, "seed": 7.0, "top_k": 5.0, "temperature": 1.0}
    assert integral(body) == {"n": 2, "max_tokens": 3, "seed": 7, "top_k": 5, "temperature": 1.0}
    assert type(integral(body)["n"]) is int
    plain = {"n": 1}
    assert integral(plain) is plain


def test_sampling_fields_of_a_request():
    body = {
        "temperature": 0,
        "top_p": 1,
        "top_k": -1,
        "min_p": 0.1,
        "repetition_penalty": None,
        "logit_bias": {"3": 5, str(VOCAB): -100},
        "seed": 4.0,
    }
    assert sampling_fields(body, VOCAB) == {
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 0,  # -1 and 0 both mean off
        "min_p": 0.1,
        "logit_bias": {3: 5.0},  # the id the model does not have is dropped
        "seed": 4,
    }
    assert SamplingParams(**sampling_fields({}, VOCAB)) == SamplingParams()


@pytest.mark.parametrize(
    ("prompt", "limit", "message"),
    [
        (90, 20, "you requested 110 tokens (90 in the messages, 20 in the completion)"),
        (100, None, "your messages resulted in 100 tokens"),
    ],
    ids=["with-limit", "without-limit"],
)
def test_context_length_rule_words_the_400_as_openai(prompt, limit, message):
    with pytest.raises(RuleViolation) as caught:
        check_context_length(prompt, limit, 100)
    assert caught.value.message.startswith("This model's maximum context length is 100 tokens.")
    assert message in caught.value.message
    assert (caught.value.param, caught.value.code) == ("messages", "context_length_exceeded")


@pytest.mark.parametrize(
    ("prompt", "limit"), [(80, 20), (99, None)], ids=["limit-fits", "one-token-of-room"]
)
def test_context_length_rule_lets_what_fits_pass(prompt, limit):
    check_context_length(prompt, limit, 100)


def test_template_answer_ignores_an_empty_stop_string():
    body = {"model": "m", "messages": HI}
    plain = template_answer(body, completion_id="x", created=0)
    for stop in ("", [""], ["", "zzz"]):
        answer = template_answer({**body, "stop": stop}, completion_id="x", created=0)
        assert answer == plain
    assert plain.choices[0].content and plain.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("limit", "stop"), [(1, "e"), (8, "you")], ids=["1-e", "8-you"])
def test_template_answer_cut_by_the_limit_then_a_stop_string_spends_the_limit(limit, stop):
    # found by the property test: "Hello" cut to one token, then cut again at "e" counted 2
    body = {"model": "m", "messages": HI, "max_tokens": limit, "stop": stop}
    answer = template_answer(body, completion_id="x", created=0)
    assert answer.choices[0].finish_reason == "stop"
    assert stop not in answer.choices[0].content
    assert answer.usage.completion_tokens == limit


# --- the three sources agree --------------------------------------------------------------------


def integral_or_float(values):
    """Integers, now and then as integral floats (valid JSON Schema integers)."""
    return values.flatmap(lambda i: st.sampled_from([i, float(i)]))


OPTIONAL = {
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0.05, 1),
    "top_k": integral_or_float(st.integers(-1, 50)),
    "min_p": st.floats(0, 0.5),
    "repetition_penalty": st.floats(0.5, 2),
    "frequency_penalty": st.floats(-2, 2),
    "presence_penalty": st.floats(-2, 2),
    "logit_bias": st.dictionaries(
        st.integers(0, VOCAB + 100).map(str), st.integers(-100, 100), max_size=3
    ),
    "stop": st.sampled_from(STOPS) | st.lists(st.sampled_from(STOPS), min_size=1, max_size=4),
    "n": st.sampled_from([1, 2, 2.0]),
}


@st.composite
def requests(draw):
    """Valid requests over the fields the sources share: a limit that cuts the answer or one
    that holds three forced calls (at most 200 tokens a choice), and always a seed, so that
    generate mode answers the same twice."""
    limit = draw(integral_or_float(st.integers(1, 40) | st.integers(100, 200)))
    body = {"model": "m", "messages": HI, "seed": draw(integral_or_float(st.integers(0, 2**31)))}
    key = draw(st.sampled_from(["max_tokens", "max_completion_tokens", "both"]))
    if key == "both":
        body["max_tokens"] = draw(st.integers(1, 200))  # max_completion_tokens wins
    body["max_completion_tokens" if key == "both" else key] = limit
    for name in draw(st.lists(st.sampled_from(sorted(OPTIONAL)), unique=True)):
        body[name] = draw(OPTIONAL[name])
    names = draw(st.lists(st.sampled_from(sorted(TOOLS)), max_size=3, unique=True))
    if names:
        body["tools"] = [TOOLS[name] for name in names]
        named = [{"type": "function", "function": {"name": name}} for name in names]
        choice = draw(st.sampled_from([None, "none", "auto", "required", *named]))
        if choice is not None:
            body["tool_choice"] = choice
        parallel = draw(st.sampled_from([None, True, False]))
        if parallel is not None:
            body["parallel_tool_calls"] = parallel
    return body


@pytest.fixture(scope="module")
def worker():
    worker = ModelWorker("vllm")
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def oracle(tmp_path_factory, worker):
    # One torch thread, as the model worker sets anyway: the tiny model's fit takes seconds on
    # one thread and a minute on two busy cores.
    torch.set_num_threads(1)
    directory = export_hf(build_model(0), default_tokenizer(), tmp_path_factory.mktemp("oracle"))
    return Oracle(str(directory))


def template(body):
    return template_answer(body, completion_id="x", created=0)


def generated(worker, body):
    return asyncio.run(worker.answer(body, completion_id="x", created=0))


def summary(answer):
    """What an answer says, call ids aside: per choice its content, finish and calls."""
    choices = [
        (
            c.content,
            c.finish_reason,
            [(t["function"]["name"], t["function"]["arguments"]) for t in c.tool_calls],
            c.logprobs,
        )
        for c in answer.choices
    ]
    return choices, answer.usage


def without_empty_stops(body):
    stops = stop_strings(body)
    rest = {k: v for k, v in body.items() if k != "stop"}
    return {**rest, "stop": list(stops)} if stops else rest


def assert_rules(answer, body):
    """The shared rules, in one source's answer to ``body``."""
    limit, n = completion_limit(body), body.get("n") or 1
    tools = forced_tools(
        body.get("tools"), body.get("tool_choice"), body.get("parallel_tool_calls")
    )
    forced = [t["function"]["name"] for t in tools]
    assert len(answer.choices) == n
    finishes = [c.finish_reason for c in answer.choices]
    # the limit: never more tokens than it allows; a choice cut by it spent all of it
    assert limit * finishes.count("length") <= answer.usage.completion_tokens <= n * limit
    for choice in answer.choices:
        if forced:  # the forced calls, in order, unless the limit cut them (then no call)
            assert choice.finish_reason in ("tool_calls", "length")
            called = [t["function"]["name"] for t in choice.tool_calls]
            assert called == (forced if choice.finish_reason == "tool_calls" else [])
        else:  # stop strings: never in the content
            assert not any(stop in choice.content for stop in stop_strings(body))


@settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(body=requests())
def test_template_generate_mode_and_oracle_agree_on_the_shared_rules(body, worker, oracle):
    validate_request(body, CONFIG)  # drawn valid
    body = integral(body)
    empty_stop = without_empty_stops(body) != body
    for answer_to in (template, lambda b: generated(worker, b)):
        answer = answer_to(body)
        assert_rules(answer, body)
        if empty_stop:  # "" among the stops: answered exactly as without it
            assert summary(answer) == summary(answer_to(without_empty_stops(body)))
    expected = generation_request(body, vocab_size=VOCAB).sampling
    assert oracle.sampling_params(body) == expected


def test_both_sources_make_every_call_that_required_forces(worker):
    body = {"model": "m", "messages": HI, "seed": 1, "tools": ALL, "tool_choice": "required"}
    only_first = {**body, "parallel_tool_calls": False}
    for answer_to in (template, lambda b: generated(worker, b)):
        (choice,) = answer_to(body).choices
        assert choice.finish_reason == "tool_calls"
        assert [t["function"]["name"] for t in choice.tool_calls] == ["a", "bb", "c"]
        assert [t["function"]["arguments"] for t in choice.tool_calls][:2] == ["{}", '{"u": "c"}']
        (first,) = answer_to(only_first).choices
        assert [t["function"]["name"] for t in first.tool_calls] == ["a"]
