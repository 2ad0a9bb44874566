"""Timing: delay specs, seeded draws, and the pauses a client observes (never shorter than
configured; loose upper bounds only, these machines are noisy)."""

from __future__ import annotations

import argparse
import json
import random
import socket
import time

import openai
import pytest

from mockserver import Delay, MockConfig, Timing, parse_delay
from mockserver.cli import add_arguments

MESSAGES = [{"role": "user", "content": "Take your time."}]  # no built-in cassette matches
EPSILON = 0.002  # the event loop's timer may fire a little early


@pytest.mark.parametrize(
    ("spec", "delay"),
    [
        ("0.2", Delay("fixed", 0.2)),
        (0.05, Delay("fixed", 0.05)),
        ("uniform:0.01,0.03", Delay("uniform", 0.01, 0.03)),
        ("lognormal:0.02,0.5", Delay("lognormal", 0.02, 0.5)),
    ],
    ids=["fixed-text", "fixed-number", "uniform", "lognormal"],
)
def test_parse_delay(spec, delay):
    assert parse_delay(spec) == delay


@pytest.mark.parametrize(
    "spec",
    ["-1", "abc", "uniform:0.3,0.1", "uniform:0.1", "normal:1,2", "inf", "1e9"],
    ids=["negative", "not-a-number", "low-above-high", "one-bound", "unknown", "inf", "huge"],
)
def test_bad_delay_is_a_value_error(spec):
    with pytest.raises(ValueError, match="bad delay"):
        parse_delay(spec)


def test_jitter_turns_a_fixed_itl_uniform():
    timing = Timing.from_specs(0.1, 0.02, itl_jitter=0.005)
    assert timing.itl == Delay("uniform", 0.015, 0.025)
    assert Timing.from_specs(0, 0.002, itl_jitter=0.005).itl == Delay("uniform", 0.0, 0.007)
    with pytest.raises(ValueError, match="fixed ITL"):
        Timing.from_specs(0, "uniform:0,1", itl_jitter=0.1)
    with pytest.raises(ValueError, match="bad delay"):
        MockConfig(ttft="soon")


def test_draws_are_seeded_and_within_bounds():
    timing = Timing.from_specs("lognormal:0.02,0.5", "uniform:0.01,0.03")
    first = timing.stream_delays(200, random.Random(7))
    assert first == timing.stream_delays(200, random.Random(7))
    assert first != timing.stream_delays(200, random.Random(8))
    assert all(0.01 <= d <= 0.03 for d in first[1:])
    lognormal = [timing.ttft.sample(random.Random(i)) for i in range(2000)]
    median = sorted(lognormal)[1000]
    assert 0.017 < median < 0.023


def test_timing_off_by_default():
    assert not MockConfig().timing.enabled
    assert MockConfig(ttft=0.1).timing.enabled


def test_cli_reads_the_timing_options():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--ttft", "uniform:0.1,0.2", "--itl", "0.02", "--itl-jitter", "0.01"])
    assert (args.ttft, args.itl, args.itl_jitter) == ("uniform:0.1,0.2", "0.02", 0.01)
    with pytest.raises(SystemExit):
        parser.parse_args(["--itl", "fast"])


def timed_events(server, body):
    """POST ``body`` over a raw socket: (seconds since sending, bytes) of every read."""
    data = json.dumps(body).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data
    reads = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(request)
        while piece := sock.recv(65536):
            reads.append((time.monotonic() - started, piece))
    return reads


def test_stream_pauses_are_never_shorter_than_configured(start_mock):
    server = start_mock(ttft=0.15, itl=0.03)
    reads = timed_events(
        server, {"model": "m", "messages": MESSAGES, "stream": True, "max_tokens": 4}
    )
    events = [(t, p) for t, p in reads if b"data: " in p]
    assert len(events) == 1 + 4 + 1 + 1  # one write per event: role, 4 tokens, finish, [DONE]
    assert events[0][0] >= 0.15 - EPSILON
    # sent no earlier than scheduled: event i after TTFT + i ITLs (a client-side gap alone may
    # look short when the previous event was read late)
    for i, (arrival, _) in enumerate(events):
        assert arrival >= 0.15 + i * 0.03 - EPSILON
    assert events[-1][0] < 0.15 + 6 * 0.03 + 10.0  # a safety net: no pause is wildly long


def test_non_stream_answer_waits_its_stream_time(start_mock):
    server = start_mock(ttft=0.1, itl=0.02)
    with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
        started = time.monotonic()
        answer = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=5)
        waited = time.monotonic() - started
    assert answer.usage.completion_tokens == 5
    assert 0.1 + 5 * 0.02 - EPSILON <= waited < 10.0  # the upper bound is a safety net


async def test_async_client_sees_the_ttft(start_mock):
    server = start_mock(ttft=0.2, itl="uniform:0.005,0.01", timing_seed=3)
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
        started = time.monotonic()
        stream = await client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, max_tokens=3
        )
        arrivals = [time.monotonic() - started async for _ in stream]
    assert arrivals[0] >= 0.2 - EPSILON
    assert arrivals[-1] - arrivals[0] >= 3 * 0.005 - EPSILON  # three more chunks, each >= 5 ms


def test_timing_off_stream_is_one_write(mock):
    reads = timed_events(mock, {"model": "m", "messages": MESSAGES, "stream": True})
    head, _, body = b"".join(p for _, p in reads).partition(b"\r\n\r\n")
    assert b"content-length:" in head.lower()  # a plain body, not chunked per event
    assert body.endswith(b"data: [DONE]\n\n")
