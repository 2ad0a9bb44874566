"""How the mock sends a stream request's error (the JSON answer; with a defect, a data event or
an ``error:`` line of a 200 stream) and what it does with image_url / input_audio parts (a
text-only model refuses both; with ``vision`` an image is answered)."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request

import pytest

from mockserver.cli import add_arguments

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


def post(server, **overrides):
    """(status, content type, body bytes) of one chat request with ``overrides``."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **overrides}
    request = urllib.request.Request(
        server.base_url + "/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers.get_content_type(), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get_content_type(), error.read()


def with_part(part):
    return [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, part]}]


def test_an_error_line_stream_for_a_prompt_over_the_context(start_mock):
    server = start_mock(
        models=("m",), context_length=64, defects=("stream-context-length-error-line",)
    )
    long = [{"role": "user", "content": " a" * 200}]
    status, content_type, body = post(server, messages=long, stream=True)
    assert (status, content_type) == (200, "text/event-stream")
    line, done = body.split(b"\n\n", 1)
    assert line.startswith(b"error: {")
    assert json.loads(line.removeprefix(b"error: "))["error"]["code"] == "context_length_exceeded"
    assert done == b"data: [DONE]\n\n"
    # without a stream, and other errors of a stream, the JSON answer as before
    assert post(server, messages=long)[:2] == (400, "application/json")
    assert post(server, messages=[123], stream=True)[:2] == (400, "application/json")


@pytest.mark.parametrize(
    ("defect", "overrides"),
    [
        ("stream-unknown-model-as-sse", {"model": "nope"}),
        ("stream-range-error-as-sse", {"top_p": 1.5}),
        ("stream-stop-error-as-sse", {"stop": ["a", "b", "c", "d", "e"]}),
        ("stream-error-as-sse", {"messages": [123]}),
    ],
)
def test_a_data_error_event_for_that_error_only(start_mock, defect, overrides):
    server = start_mock(models=("m",), defects=(defect,))
    status, content_type, body = post(server, stream=True, **overrides)
    assert (status, content_type) == (200, "text/event-stream")
    event, done = body.split(b"\n\n", 1)
    assert "error" in json.loads(event.removeprefix(b"data: "))
    assert done == b"data: [DONE]\n\n"
    assert post(server, **overrides)[0] in (400, 404)
    if defect != "stream-error-as-sse":  # another error of a stream: the JSON answer
        assert post(server, stream=True, max_tokens=0)[:2] == (400, "application/json")


@pytest.mark.parametrize(("part", "index"), [(IMAGE, "image_url"), (AUDIO, "input_audio")])
def test_a_text_only_mock_refuses_media_parts(start_mock, part, index):
    status, _, body = post(start_mock(models=("m",)), messages=with_part(part))
    assert status == 400
    error = json.loads(body)["error"]
    assert error["param"] == "messages[0].content[1].type"
    assert error["code"] == "unsupported_content_type"
    assert index in error["message"]


def test_a_vision_mock_answers_an_image_and_refuses_audio(start_mock):
    server = start_mock(models=("m",), vision=True)
    status, _, body = post(server, messages=with_part(IMAGE))
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"]
    assert post(server, messages=with_part(AUDIO))[0] == 400


def test_text_parts_are_still_answered(start_mock):
    text = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert post(start_mock(models=("m",)), messages=text)[0] == 200


def test_the_media_defects(start_mock):
    ignored = start_mock(models=("m",), defects=("content-part-ignored",))
    assert post(ignored, messages=with_part(IMAGE))[0] == 200
    as_200 = start_mock(models=("m",), defects=("content-part-error-200",))
    status, _, body = post(as_200, messages=with_part(AUDIO))
    assert status == 200
    assert "choices" not in json.loads(body)


def test_the_vision_option():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--vision"]).vision is True
    assert parser.parse_args([]).vision is False
