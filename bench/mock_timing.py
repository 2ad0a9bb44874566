"""How close the mock's observed timing is to its configured TTFT and ITL.

A mock with fixed ``--ttft`` and ``--itl`` runs in its own process; an aiohttp client reads
streams over loopback and timestamps every event as it arrives. The error of an event is its
arrival (since the request was sent) minus its configured time (TTFT + i x ITL) for the
cumulative figure, and the gap to the previous event minus the ITL for the per-gap figure:

    python bench/mock_timing.py                          # ttft 0.2 s, itl 0.02 s, 20 streams
    python bench/mock_timing.py --ttft 0.05 --itl 0.005 --streams 50 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import statistics
import subprocess
import sys
import time

import aiohttp

BODY = {
    "model": "m",
    "messages": [{"role": "user", "content": "Time me."}],
    "stream": True,
    "max_tokens": 30,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _stream(session: aiohttp.ClientSession, url: str) -> list[float]:
    """Arrival times (seconds since sending) of every event of one stream."""
    started = time.monotonic()
    arrivals, buffer = [], b""
    async with session.post(url, json=BODY) as response:
        assert response.status == 200, response.status
        async for piece in response.content.iter_any():
            now = time.monotonic() - started
            buffer += piece
            while b"\n\n" in buffer:
                _, buffer = buffer.split(b"\n\n", 1)
                arrivals.append(now)
    return arrivals


async def measure(url: str, streams: int, concurrency: int) -> list[list[float]]:
    """Arrival times of ``streams`` streams, ``concurrency`` at a time."""
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        await _stream(session, url)  # warm up

        async def one() -> list[float]:
            async with limit:
                return await _stream(session, url)

        return await asyncio.gather(*(one() for _ in range(streams)))


def _summary(name: str, errors_ms: list[float]) -> str:
    ordered = sorted(errors_ms)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return (
        f"{name:<24} n={len(ordered):<6} mean {statistics.fmean(ordered):+7.2f} ms  "
        f"p50 {p(0.5):+7.2f} ms  p99 {p(0.99):+7.2f} ms  min {ordered[0]:+7.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ttft", type=float, default=0.2)
    parser.add_argument("--itl", type=float, default=0.02)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mockserver",
            "--port",
            str(port),
            "--ttft",
            str(args.ttft),
            "--itl",
            str(args.itl),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "chatcompat mock listening on ..."
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        runs = asyncio.run(measure(url, args.streams, args.concurrency))
    finally:
        server.terminate()
        server.wait(10)
    ttft, cumulative, gaps = [], [], []
    for arrivals in runs:
        ttft.append((arrivals[0] - args.ttft) * 1000)
        for i, arrival in enumerate(arrivals):
            cumulative.append((arrival - args.ttft - i * args.itl) * 1000)
        gaps.extend(((b - a) - args.itl) * 1000 for a, b in itertools.pairwise(arrivals))
    events = len(runs[0])
    print(
        f"ttft {args.ttft:g} s, itl {args.itl:g} s, {args.streams} streams of {events} events, "
        f"{args.concurrency} at a time, {os.cpu_count()} CPUs; observed minus configured:"
    )
    print(_summary("TTFT", ttft))
    print(_summary("event i vs TTFT + i*ITL", cumulative))
    print(_summary("gap vs ITL", gaps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
