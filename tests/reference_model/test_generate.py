from __future__ import annotations

import json

import pytest
import torch

from reference_model import (
    GenerationRequest,
    SamplingParams,
    encode_dialog,
    generate,
    tool_call_text,
)
from reference_model.constraints import TextStream

HELLO = [{"role": "user", "content": "Hello"}]
GREEDY = SamplingParams(temperature=0.0)


def _run(model, tokenizer, **kwargs):
    gen = generate(GenerationRequest(**kwargs), model=model, tokenizer=tokenizer)
    return gen, list(gen)


def _text(steps, index=0):
    return "".join(s.text for s in steps if s.index == index)


def test_greedy_matches_full_forward_argmax(model, tokenizer):
    gen, steps = _run(model, tokenizer, messages=HELLO, sampling=GREEDY, max_tokens=40)
    ids = encode_dialog(tokenizer, HELLO)
    out: list[int] = []
    with torch.no_grad():
        for _ in steps:
            logits = model(torch.tensor([ids + out]))[0, -1]
            out.append(int(logits.argmax()))
    assert [s.token for s in steps] == out
    last = torch.log_softmax(model(torch.tensor([ids + out[:-1]]))[0, -1], -1)
    assert steps[-1].logprob == pytest.approx(last[out[-1]].item(), abs=1e-5)
    assert steps[-1].finish_reason == "stop"
    assert steps[-1].token == tokenizer.eot_id
    assert _text(steps) == tokenizer.decode(out[:-1])
    assert gen.prompt_tokens == len(ids)
    assert gen.completion_tokens == len(steps)


def test_max_tokens_finishes_with_length(model, tokenizer):
    gen, steps = _run(model, tokenizer, messages=HELLO, sampling=GREEDY, max_tokens=3)
    assert len(steps) == 3
    assert [s.finish_reason for s in steps] == [None, None, "length"]
    assert gen.completion_tokens == 3


def test_n_choices_use_seed_plus_index(model, tokenizer):
    params = SamplingParams(temperature=1.2, seed=11)
    _, both = _run(model, tokenizer, messages=HELLO, sampling=params, n=2, max_tokens=20)
    _, second = _run(model, tokenizer, messages=HELLO, sampling=SamplingParams(temperature=1.2,
                     seed=12), max_tokens=20)  # fmt: skip
    assert [s.token for s in both if s.index == 1] == [s.token for s in second]
    assert [s.token for s in both if s.index == 0] != [s.token for s in second]
    _, again = _run(model, tokenizer, messages=HELLO, sampling=params, n=2, max_tokens=20)
    assert [s.token for s in again] == [s.token for s in both]


def test_top_logprobs_per_step(model, tokenizer):
    _, steps = _run(model, tokenizer, messages=HELLO, sampling=GREEDY, max_tokens=5,
                    top_logprobs=3)  # fmt: skip
    for s in steps:
        assert len(s.top_logprobs) == 3
        assert s.top_logprobs[0][0] == s.token  # greedy: the sampled token is the most likely
        assert s.top_logprobs[0][1] == pytest.approx(s.logprob)


def test_stop_string_spanning_tokens_is_excluded(model, tokenizer):
    _, steps = _run(model, tokenizer, messages=HELLO, sampling=GREEDY, max_tokens=60)
    full = _text(steps)
    pieces = [tokenizer.decode([s.token]) for s in steps]
    boundary = len(pieces[0]) + len(pieces[1])  # a stop string across tokens 2 and 3
    stop = full[boundary - 2 : boundary + 2]
    assert len(stop) == 4
    cut = full.index(stop)
    _, stopped = _run(model, tokenizer, messages=HELLO, sampling=GREEDY, max_tokens=60,
                      stop=[stop, "never-seen"])  # fmt: skip
    assert _text(stopped) == full[:cut]
    assert stopped[-1].finish_reason == "stop"
    assert stop not in _text(stopped)


def test_text_stream_never_splits_a_character():
    stream = TextStream(())
    data = "hé日🎉".encode()
    out = [stream.push(data[i : i + 1])[0] for i in range(len(data))]
    assert "".join(out) == "hé日🎉"
    assert all(len(o) <= 1 for o in out)
    assert out[2] == "é" and out[1] == ""


def test_text_stream_holds_back_stop_prefix():
    stream = TextStream(["abc", "日本"])
    assert stream.push(b"xab") == ("x", False)
    assert stream.push(b"d") == ("abd", False)
    assert stream.push("z日".encode()[:2]) == ("z", False)
    assert stream.push("日".encode()[1:]) == ("", False)  # held back: could start "日本"
    assert stream.push("本tail".encode()) == ("", True)


def test_text_stream_flush_releases_held_text():
    stream = TextStream(["abc"])
    assert stream.push(b"ab") == ("", False)
    assert stream.flush() == "ab"


@pytest.mark.parametrize("seed", [0, 1, 2], ids=["seed0", "seed1", "seed2"])
def test_json_object_output_parses(model, tokenizer, seed):
    _, steps = _run(model, tokenizer, messages=HELLO, response_format={"type": "json_object"},
                    sampling=SamplingParams(temperature=1.5, seed=seed))  # fmt: skip
    assert isinstance(json.loads(_text(steps)), dict)
    assert steps[-1].finish_reason == "stop"


def test_json_object_leaves_room_to_close(model, tokenizer):
    _, steps = _run(model, tokenizer, messages=HELLO, response_format={"type": "json_object"},
                    sampling=SamplingParams(seed=0), max_tokens=12)  # fmt: skip
    assert len(steps) <= 12
    assert json.loads(_text(steps))


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "unit": {"enum": ["c", "f"]},
                },
                "required": ["city", "days", "unit"],
            },
        },
    }
]


@pytest.mark.parametrize(
    "tool_choice",
    ["required", {"type": "function", "function": {"name": "get_weather"}}],
    ids=["required", "named"],
)
def test_forced_tool_call(model, tokenizer, tool_choice):
    gen, steps = _run(model, tokenizer, messages=HELLO, tools=TOOLS, tool_choice=tool_choice,
                      sampling=SamplingParams(seed=4))  # fmt: skip
    assert steps[-1].finish_reason == "tool_calls"
    (call,) = steps[-1].tool_calls
    assert call.name == "get_weather"
    args = json.loads(call.arguments)
    assert sorted(args) == ["city", "days", "unit"]
    assert isinstance(args["city"], str) and isinstance(args["days"], int)
    assert args["unit"] == "c"
    # the text is the call in the chat format's layout; each step says what it wrote of it
    assert _text(steps) == tool_call_text("get_weather", call.arguments)
    assert "".join(s.call.arguments for s in steps) == call.arguments
    assert {(s.call.index, s.call.name) for s in steps} == {(0, "get_weather")}
    assert gen.completion_tokens == len(steps)


def test_auto_tool_choice_generates_text(model, tokenizer):
    _, steps = _run(model, tokenizer, messages=HELLO, tools=TOOLS, sampling=GREEDY,
                    max_tokens=10)  # fmt: skip
    assert all(not s.tool_calls for s in steps)
    assert steps[-1].finish_reason in ("stop", "length")


def test_generations_stepped_in_turns_make_the_steps_they_make_alone(model, tokenizer):
    # one model, three generations stepped a token each in turn (as generate mode's worker
    # does): each keeps its KV caches and seeded generators, so its steps are its solo ones
    requests = [
        GenerationRequest(HELLO, sampling=SamplingParams(temperature=1.0, seed=5), n=2,
                          max_tokens=30, top_logprobs=2),
        GenerationRequest([{"role": "user", "content": "Tell me a story."}],
                          sampling=SamplingParams(temperature=0.8, seed=9), max_tokens=45),
        GenerationRequest(HELLO, sampling=GREEDY, max_tokens=25,
                          response_format={"type": "json_object"}),
    ]  # fmt: skip
    alone = [list(generate(r, model=model, tokenizer=tokenizer)) for r in requests]
    running = {i: generate(r, model=model, tokenizer=tokenizer) for i, r in enumerate(requests)}
    in_turns: dict[int, list] = {i: [] for i in running}
    turns = []
    while running:
        for i, generation in list(running.items()):
            step = next(generation, None)
            if step is None:
                del running[i]
            else:
                in_turns[i].append(step)
                turns.append(i)
    assert list(in_turns.values()) == alone
    assert turns[:6] == [0, 1, 2, 0, 1, 2]  # they did take turns
    assert all(len(steps) > 10 for steps in alone)
