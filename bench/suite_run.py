"""Wall time, requests and tokens of a full default run against the embedded mock, per group,
beside a baseline: the same number of plain requests sent one after another by aiohttp.

    python bench/suite_run.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import defaultdict

import aiohttp

from conformance import Endpoint, load_profile, run
from mockserver import MockConfig, MockServer

MODEL = "meta-llama/llama-3.3-70b-instruct"


async def plain_requests(base_url: str, count: int) -> float:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            async with session.post(f"{base_url}/chat/completions", json=body) as response:
                await response.read()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    capabilities = load_profile("mock").capabilities
    walls, baselines = [], []
    with MockServer(MockConfig(models=(MODEL,))) as server:
        endpoint = Endpoint(server.base_url, MODEL, timeout=60, capabilities=capabilities)
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = run(endpoint)
            walls.append(time.perf_counter() - started)
            baselines.append(asyncio.run(plain_requests(server.base_url, result.requests)))
    groups: dict[str, list[int | float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for r in result.results:
        row = groups[r.check.group]
        row[0] += 1
        row[1] += r.requests
        row[2] += r.tokens
        row[3] += r.duration
    print(f"{'group':<10} {'checks':>6} {'requests':>8} {'tokens':>7} {'check-s':>8}")
    for group, (checks, requests, tokens, seconds) in sorted(groups.items()):
        print(f"{group:<10} {checks:>6} {requests:>8} {tokens:>7} {seconds:>8.2f}")
    wall, base = statistics.median(walls), statistics.median(baselines)
    print(
        f"\n{len(result.results)} checks ({result.counts}), {result.requests} requests, "
        f"{result.tokens} tokens"
    )
    print(
        f"suite wall time (median of {args.repeats}): {wall:.2f} s; the same number of plain "
        f"sequential requests: {base:.2f} s; ratio {wall / base:.2f}x"
    )


if __name__ == "__main__":
    main()
