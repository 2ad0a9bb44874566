"""The template's answer to a non-ASCII prompt, and the defects of issue 12 classes 3 (non-ASCII
text) and 4 (where the answer is), as a client sees them."""

from __future__ import annotations

import json

import httpx
import pytest

from mockserver._defects.text import _split_decoded, _surrogate_halves
from mockserver._template import MULTILINGUAL_TEXT

THAI = "Reply in Thai: สวัสดีครับ"


def _body(content, **extra):
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


def _post(server, body):
    return httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=30)


def _content(server, body):
    return _post(server, body).json()["choices"][0]["message"]["content"]


def _stream_events(server, body):
    raw = _post(server, {**body, "stream": True}).content
    return [e for e in raw.split(b"\n\n") if e and e != b"data: [DONE]"]


def _deltas(events):
    return [json.loads(e.removeprefix(b"data: "))["choices"][0]["delta"] for e in events]


def test_a_non_ascii_prompt_gets_the_seed_languages_and_emoji_first(mock):
    assert _content(mock, _body(THAI)).startswith(MULTILINGUAL_TEXT)
    assert _content(mock, _body([{"type": "text", "text": "Olá!"}])).startswith(MULTILINGUAL_TEXT)
    assert _content(mock, _body("Hello!")).isascii()
    assert any(ord(c) > 0xFFFF for c in MULTILINGUAL_TEXT)  # an emoji: a surrogate pair


def test_a_non_ascii_answer_streams_whole_from_the_clean_mock(mock):
    joined = "".join(d.get("content") or "" for d in _deltas(_stream_events(mock, _body(THAI))))
    assert joined == _content(mock, _body(THAI))


def test_split_decoded_gives_replacement_characters():
    assert _split_decoded("ü") == "\ufffd\ufffd"
    assert set(_split_decoded("ส")) == {"\ufffd"}
    assert _split_decoded("a") == "a"


def test_surrogate_halves_cut_an_emoji_between_its_utf16_halves():
    high, low = _surrogate_halves("hi 👋!")
    assert (high, low) == ("hi \ud83d", "\udc4b!")
    assert (high + low).encode("utf-16", "surrogatepass").decode("utf-16") == "hi 👋!"
    assert _surrogate_halves("no emoji: สวัสดี") is None


def test_stream_splits_utf8_puts_replacement_characters_in_the_stream(start_mock):
    server = start_mock(defects=("stream-splits-utf8",))
    joined = "".join(d.get("content") or "" for d in _deltas(_stream_events(server, _body(THAI))))
    assert "\ufffd" in joined
    assert "\ufffd" not in _content(server, _body(THAI))


def test_stream_splits_surrogates_writes_lone_escapes_in_two_events(start_mock):
    server = start_mock(defects=("stream-splits-surrogates",))
    events = _stream_events(server, _body(THAI))
    high = next(i for i, e in enumerate(events) if b"\\ud83d" in e)
    assert b"\\udc4b" in events[high + 1]
    assert _deltas(events)[high]["content"].endswith("\ud83d")


def _usage(server, body):
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    last = _stream_events(server, streamed)[-1]
    return (
        _post(server, body).json()["usage"]["prompt_tokens"],
        json.loads(last.removeprefix(b"data: "))["usage"]["prompt_tokens"],
    )


def test_stream_prompt_latin1_counts_a_non_ascii_prompt_differently_when_streamed(start_mock):
    server = start_mock(defects=("stream-prompt-latin1",))
    plain, streamed = _usage(server, _body(THAI))
    assert streamed > plain
    assert _usage(server, _body("Hello!"))[0] == _usage(server, _body("Hello!"))[1]


def test_prompt_drops_non_ascii_counts_no_non_ascii_word(start_mock):
    server = start_mock(defects=("prompt-drops-non-ascii",))
    assert _usage(server, _body("Say hello.")) == _usage(server, _body("Say hello. สวัสดี 👋"))


@pytest.mark.parametrize(
    ("defect", "extra", "field", "emptied"),
    [
        (
            "thinking-off-answer-in-reasoning",
            {"chat_template_kwargs": {"enable_thinking": False}},
            "reasoning_content",
            None,
        ),
        ("reasoning-effort-drops-content", {"reasoning_effort": "low"}, "reasoning", ""),
    ],
    ids=["thinking-off", "reasoning-effort"],
)
def test_reasoning_defects_move_the_answer_only_when_asked(
    start_mock, defect, extra, field, emptied
):
    server = start_mock(defects=(defect,))
    with httpx.Client(timeout=30) as client:  # one connection: the requests share its task
        url = f"{server.base_url}/chat/completions"
        moved = client.post(url, json=_body("Hi", **extra)).json()["choices"][0]["message"]
        plain = client.post(url, json=_body("Hi")).json()["choices"][0]["message"]
        streamed = client.post(url, json=_body("Hi", stream=True, **extra)).content
    assert moved["content"] == emptied and moved[field].startswith("Hello!")
    assert plain["content"].startswith("Hello!") and field not in plain
    deltas = _deltas([e for e in streamed.split(b"\n\n") if e and e != b"data: [DONE]"])
    assert "".join(d.get(field) or "" for d in deltas).startswith("Hello!")
    assert not any(d.get("content") for d in deltas)
