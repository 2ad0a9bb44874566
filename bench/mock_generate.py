"""Generate mode: completion tokens per second of the mock, per stream and in aggregate, against
the same model answering the same requests in-process (no HTTP), side by side.

The mock (``--mode generate``, the reference model of ``export-model``) runs in its own
process; clients stream requests over loopback, one at a time and then ``--concurrency`` at a
time, and count the completion tokens the usage chunk reports. The baseline is the mock's own
model worker called directly in this process on the same request bodies. Rounds alternate
baseline and mock; medians are kept:

    python bench/mock_generate.py                       # 16 requests, 128 tokens, 3 rounds
    python bench/mock_generate.py --requests 8 --max-tokens 64 --concurrency 4 --rounds 1

Per stream: completion tokens / (last event - request sent), median over streams, and the
share of that time spent before the first event (a stream is written token by token as the
model makes them). Aggregate: all completion tokens / wall time of the batch. The model runs
on one worker thread (it is not re-entrant), so concurrent streams share it: aggregate stays
near one stream's rate and each stream slows down by about the concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp


def bodies(count: int, max_tokens: int) -> list[dict[str, Any]]:
    """``count`` sampled stream requests with different seeds (so answers differ)."""
    return [
        {
            "model": "m",
            "messages": [{"role": "user", "content": f"Tell me a story, number {i}."}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": max_tokens,
            "temperature": 1.0,
            "seed": i,
        }
        for i in range(count)
    ]


async def direct(requests: list[dict[str, Any]]) -> tuple[float, int]:
    """Tokens per second and tokens of the mock's model worker answering ``requests`` one by
    one in this process."""
    from mockserver import ModelWorker

    worker = ModelWorker("vllm")
    try:
        await worker.answer(requests[0], completion_id="warm-up", created=0)
        started, tokens = time.perf_counter(), 0
        for body in requests:
            answer = await worker.answer(body, completion_id="chatcmpl-x", created=0)
            tokens += answer.usage.completion_tokens
        return tokens / (time.perf_counter() - started), tokens
    finally:
        await asyncio.to_thread(worker.close)


async def _stream(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[int, float, float]:
    """Completion tokens, seconds to the first event and seconds to the last of one stream."""
    started, tokens, buffer, first = time.perf_counter(), 0, b"", 0.0
    async with session.post(url, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {await response.text()}")
        async for piece in response.content.iter_any():
            first = first or time.perf_counter() - started
            buffer += piece
        elapsed = time.perf_counter() - started
    for event in buffer.split(b"\n\n"):
        data = event.removeprefix(b"data: ")
        if data and data != b"[DONE]":
            usage = json.loads(data).get("usage")
            tokens = usage["completion_tokens"] if usage else tokens
    if not tokens:
        raise RuntimeError("the stream carried no usage chunk")
    return tokens, first, elapsed


async def over_http(
    url: str, requests: list[dict[str, Any]], concurrency: int
) -> tuple[float, float, int, float]:
    """Median per-stream tokens/s, aggregate tokens/s, tokens and the median share of a
    stream's time spent before its first event, of ``requests`` streamed to the mock,
    ``concurrency`` at a time."""
    limit = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(body: dict[str, Any]) -> tuple[int, float, float]:
            async with limit:
                return await _stream(session, url, body)

        started = time.perf_counter()
        results = await asyncio.gather(*(one(b) for b in requests))
        wall = time.perf_counter() - started
    tokens = sum(t for t, _, _ in results)
    per_stream = statistics.median(t / s for t, _, s in results)
    first = statistics.median(f / s for _, f, s in results)
    return per_stream, tokens / wall, tokens, first


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=16, help="requests per measurement")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians kept)")
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--mode", "generate", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    requests = bodies(args.requests, args.max_tokens)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    figures: dict[str, list[float]] = {}
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "chatcompat mock listening on ..."
        asyncio.run(over_http(url, requests[:1], 1))  # waits for the model to be built
        for round_ in range(args.rounds):
            base, base_tokens = asyncio.run(direct(requests))
            one, _, one_tokens, first = asyncio.run(over_http(url, requests, 1))
            each, aggregate, many_tokens, _ = asyncio.run(
                over_http(url, requests, args.concurrency)
            )
            for name, value in (
                ("direct", base),
                ("stream", one),
                ("first", first),
                ("each", each),
                ("aggregate", aggregate),
            ):
                figures.setdefault(name, []).append(value)
            print(
                f"round {round_ + 1}: direct {base:.0f} tok/s ({base_tokens} tokens), "
                f"1 stream {one:.0f} tok/s ({one_tokens}), {args.concurrency} streams "
                f"{each:.0f} tok/s each, {aggregate:.0f} in all ({many_tokens})",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(10)
    median = {name: statistics.median(values) for name, values in figures.items()}
    print(
        f"\n{args.requests} requests of at most {args.max_tokens} tokens, median of "
        f"{args.rounds} rounds, {os.cpu_count()} CPUs"
    )
    print(f"direct (model worker, no HTTP)     {median['direct']:>7.0f} tok/s")
    print(
        f"mock, 1 stream at a time           {median['stream']:>7.0f} tok/s  "
        f"({median['stream'] / median['direct']:.2f}x direct)"
    )
    print(
        f"  share of a stream's time before its first event: {median['first']:.0%} "
        "(tokens are written as the model makes them)"
    )
    print(
        f"mock, {args.concurrency} streams at a time, each    {median['each']:>7.0f} tok/s  "
        f"({median['each'] / median['direct']:.2f}x direct)"
    )
    print(
        f"mock, {args.concurrency} streams at a time, in all  {median['aggregate']:>7.0f} tok/s  "
        f"({median['aggregate'] / median['direct']:.2f}x direct)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
