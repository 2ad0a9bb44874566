"""Requests per second of the mock against bare aiohttp handlers, side by side, with wrk.

Every server runs alone in its own process on a loopback port; wrk (1 thread, 32 connections)
POSTs to it for a few seconds; targets are interleaved over rounds and the median kept, and the
mock is reported as a ratio of the bare handler that writes the same bytes:

    python bench/mock_throughput.py                  # 3 rounds x 5 s per target
    python bench/mock_throughput.py --duration 2 --rounds 1 --only mock-stream,bare-stream

Targets: ``bare-stream`` (a 67-event stream in one write), ``bare-stream-per-event`` (one write
per event), ``bare-json`` (the non-stream body): bare aiohttp handlers, served by a plain
``web.AppRunner`` with aiohttp's defaults (as ``web.run_app`` serves them; no log configured).
``mock-stream`` / ``mock-json`` (template answers, the same request body every time),
``mock-stream-unique`` / ``mock-json-unique`` (a different body each request: nothing can be
cached), ``mock-replay`` (a built-in cassette): ``create_app()`` served by ``start_site`` in this
script's process, without an access log. ``cli-stream`` / ``cli-json``: the same requests to
``chatcompat mock`` started as users start it (the console script beside this Python, its
stderr, where it logs each request, written to a file); ``cli-stream-quiet`` /
``cli-json-quiet``: the same with ``--log-level warning`` (no line per request);
``cli-stream-usual`` / ``cli-json-usual``: the same with ``--no-quick-path`` (every request
through aiohttp's request machinery and the answer pipeline; see ``mockserver/_quick.py``).
Every server is a process of its own, started by a command, its stderr in a file.
The bare handlers serve bytes the mock made for the same request, so sizes match.

The ratio issue 14 asks for (``cli-*`` at least 0.8x ``bare-*``), side by side:

    python bench/mock_throughput.py --rounds 5 --only bare-stream,cli-stream,bare-json,cli-json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mockserver import builtin_cassettes

# n=2 choices of 31 tokens: 2 x (role + 31 tokens + finish) + [DONE] = 67 events
STREAM_BODY = {
    "model": "m",
    "messages": [{"role": "user", "content": "Benchmark me."}],
    "stream": True,
    "n": 2,
    "max_tokens": 31,
}
JSON_BODY = {**STREAM_BODY, "stream": False}
REPLAY_BODY = next(  # the request of the built-in cassette seed-chat-stream.json
    c.body for c in builtin_cassettes() if c.source.endswith("/seed-chat-stream.json")
)
PATH = "/v1/chat/completions"

LUA_FIXED = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
"""
# every request a different user message: no cache can answer it
LUA_UNIQUE = """counter = 0
request = function()
  counter = counter + 1
  local body = string.format([==[{body}]==], counter)
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, body)
end
"""

TARGETS = {
    # name: (server kind, request body, lua template)
    "bare-stream": ("bare-stream", STREAM_BODY, LUA_FIXED),
    "bare-stream-per-event": ("bare-stream-per-event", STREAM_BODY, LUA_FIXED),
    "bare-json": ("bare-json", JSON_BODY, LUA_FIXED),
    "mock-stream": ("mock", STREAM_BODY, LUA_FIXED),
    "mock-json": ("mock", JSON_BODY, LUA_FIXED),
    "mock-stream-unique": ("mock", STREAM_BODY, LUA_UNIQUE),
    "mock-json-unique": ("mock", JSON_BODY, LUA_UNIQUE),
    "mock-replay": ("mock", REPLAY_BODY, LUA_FIXED),
    "cli-stream": ("cli", STREAM_BODY, LUA_FIXED),
    "cli-json": ("cli", JSON_BODY, LUA_FIXED),
    "cli-stream-quiet": ("cli-quiet", STREAM_BODY, LUA_FIXED),
    "cli-json-quiet": ("cli-quiet", JSON_BODY, LUA_FIXED),
    "cli-stream-usual": ("cli-usual", STREAM_BODY, LUA_FIXED),
    "cli-json-usual": ("cli-usual", JSON_BODY, LUA_FIXED),
}
CLI_OPTIONS = {"cli": [], "cli-quiet": ["--log-level", "warning"], "cli-usual": ["--no-quick-path"]}
RATIOS = [
    ("mock-stream", "bare-stream"),
    ("mock-stream-unique", "bare-stream"),
    ("mock-replay", "bare-stream"),
    ("mock-json", "bare-json"),
    ("mock-json-unique", "bare-json"),
    ("cli-stream", "bare-stream"),
    ("cli-json", "bare-json"),
    ("cli-stream-quiet", "bare-stream"),
    ("cli-json-quiet", "bare-json"),
    ("cli-stream-usual", "bare-stream"),
    ("cli-json-usual", "bare-json"),
    ("bare-stream-per-event", "bare-stream"),
]


def _mock_answer(body: dict) -> bytes:
    """The bytes the mock answers ``body`` with (made in-process, once)."""
    from aiohttp.test_utils import TestClient, TestServer

    from mockserver import create_app

    async def fetch() -> bytes:
        async with TestClient(TestServer(create_app())) as client:
            response = await client.post(PATH, json=body)
            assert response.status == 200, await response.text()
            return await response.read()

    return asyncio.run(fetch())


def serve(kind: str, port: int) -> None:
    """Run one server (bare handler or the mock) on 127.0.0.1:``port`` until killed."""
    from aiohttp import web

    from mockserver import create_app, start_site

    if kind == "mock":
        app = create_app()
    else:
        raw = _mock_answer(JSON_BODY if kind == "bare-json" else STREAM_BODY)
        events = [e + b"\n\n" for e in raw.split(b"\n\n") if e]
        sse_headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        if kind == "bare-stream":
            assert len(events) == 67, len(events)

        async def stream(request: web.Request) -> web.StreamResponse:
            await request.read()
            response = web.StreamResponse(headers=sse_headers)
            response.content_type = "text/event-stream"
            await response.prepare(request)
            try:
                if kind == "bare-stream":
                    await response.write(raw)
                else:
                    for event in events:
                        await response.write(event)
                await response.write_eof()
            except ConnectionResetError:  # wrk closes its connections at the end of a run
                pass
            return response

        async def plain(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=raw, content_type="application/json")

        app = web.Application()
        app.router.add_post(PATH, plain if kind == "bare-json" else stream)

    async def main() -> None:
        if kind == "mock":
            runner, _ = await start_site(app, "127.0.0.1", port)
        else:  # bare aiohttp: its own runner and site, with its defaults
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _lua(body: dict, template: str, folder: Path) -> Path:
    text = json.dumps(body)
    if template is LUA_UNIQUE:  # a %d in the user message, the rest escaped for string.format
        marker = "Benchmark me." if "Benchmark me." in text else "Hi there!"
        text = text.replace("%", "%%").replace(marker, marker + " %d")
    path = folder / f"{abs(hash((text, template)))}.lua"
    path.write_text(template.format(body=text))
    return path


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(kind: str, port: int, log: Path) -> subprocess.Popen[str]:
    """The server process of ``kind``: the ``chatcompat mock`` command for "cli",
    "cli-quiet" and "cli-usual", else this script serving it; its first line on stdout says it
    listens."""
    if kind in CLI_OPTIONS:
        command = [str(Path(sys.executable).with_name("chatcompat")), "mock", "--port", str(port)]
        command += CLI_OPTIONS[kind]
    else:
        command = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
    with log.open("a") as stderr:  # the CLI logs each request there
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)


def measure(name: str, duration: int, connections: int, folder: Path) -> tuple[float, float, int]:
    """Requests per second, server CPU microseconds per request and non-2xx answers of one
    wrk run against a fresh server."""
    kind, body, template = TARGETS[name]
    port = _free_port()
    server = _start(kind, port, folder / "server.log")
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith(("ready", "chatcompat mock listening")):
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        url = f"http://127.0.0.1:{port}{PATH}"
        script = _lua(body, template, folder)
        subprocess.run(  # warm up (imports, caches, the reference tokenizer)
            ["wrk", "-t1", "-c4", "-d1s", "-s", str(script), url], capture_output=True, check=True
        )
        cpu_before = _cpu_seconds(server.pid)
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(script), url],
            capture_output=True,
            text=True,
            check=True,
            timeout=duration + 30,
        ).stdout
        cpu = _cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(10)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if errors:
        print(f"  {name}: {errors.group(0)}", file=sys.stderr)
    return rps, cpu / total * 1e6, int(bad.group(1)) if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per target (median kept)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", help="comma-separated targets (default: all)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    if shutil.which("wrk") is None:
        print("wrk not found (apt-get install -y wrk)", file=sys.stderr)
        return 2
    names = args.only.split(",") if args.only else list(TARGETS)
    results: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            # every other round in reverse order, so that drift in the machine's load over a
            # round does not always favour the same target
            for name in names if round_ % 2 == 0 else names[::-1]:
                rps, cpu, bad = measure(name, args.duration, args.connections, Path(tmp))
                if bad:
                    print(f"  {name}: {bad} non-2xx answers", file=sys.stderr)
                results[name].append(rps)
                cpus[name].append(cpu)
                print(f"round {round_ + 1} {name:<22} {rps:>7.0f} req/s {cpu:>6.0f} us", flush=True)
    median = {n: statistics.median(v) for n, v in results.items()}
    cpu_median = {n: statistics.median(v) for n, v in cpus.items()}
    print(
        f"\nwrk -t1 -c{args.connections} -d{args.duration:g}s, median of {args.rounds}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'target':<22} {'req/s':>9} {'server CPU us/req':>18}")
    for name in names:
        print(f"{name:<22} {median[name]:>9.0f} {cpu_median[name]:>18.0f}")
    print("\nratios by req/s: of the medians; in brackets the median and range of the rounds'")
    print("own ratios (the two runs of a round are minutes apart at most); then by server CPU")
    print("per request (bare / mock), which does not count time the server waited for a core")
    for num, den in RATIOS:
        if num in median and den in median:
            rounds = sorted(a / b for a, b in zip(results[num], results[den], strict=True))
            by_cpu = cpu_median[den] / cpu_median[num]
            print(
                f"{num} / {den}: {median[num] / median[den]:.2f}x "
                f"(rounds {statistics.median(rounds):.2f}x, {rounds[0]:.2f}-{rounds[-1]:.2f})  "
                f"CPU: {by_cpu:.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
