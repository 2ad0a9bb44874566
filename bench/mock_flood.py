"""Whether the mock keeps serving under a connection flood, and what its log says.

``chatcompat mock`` runs as its own process under a 1,024 open-file limit; this script opens
1,100 connections that never finish their request (half of them send their headers one byte
a second, half send whole headers and then their body one byte a second), opens again each
one the server closes, and meanwhile times ``GET /health`` and a small chat completion, each
on a new connection, side by side with the same requests before the flood (the flood runs in a
process of its own, so that the timings are the server's alone):

    python bench/mock_flood.py                           # 1,100 connections, 20 s
    python bench/mock_flood.py --kind noread             # answers being sent, never read
    python bench/mock_flood.py --source /work/main       # the mock of another checkout
    python bench/mock_flood.py --connections 2000 --seconds 30 -- --max-connections 500

With ``--kind noread`` each flooding connection sends a whole stream request instead, whose
answer stalls for an hour after its first event (an ``X-Chatcompat-Fault`` stall), and opens
again a second after the server closes it: the server is answering all of them and no client
reads (as ``--itl 2`` with ``max_tokens: 2000`` would, without slowing the timed chat
completions).

Arguments after ``--`` go to ``chatcompat mock``. Needs Linux (``/proc``, RLIMIT_NOFILE) and
an open-file limit of its own above ``--connections``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: flood\r\nContent-Type: application/json\r\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Flood:
    """Counts of the flooding connections."""

    opened: int = 0
    closed_by_server: int = 0
    failed_to_open: int = 0
    open_now: int = 0
    most_open: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)


Talk = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Flood], Awaitable[None]]


async def _connection(port: int, flood: Flood, talk: Talk, reopen_after: float) -> None:
    """One flooding connection that ``talk`` s until the server closes it (a closing counted
    there, or by an OSError); opened again ``reopen_after`` seconds later."""
    while not flood.stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        except (OSError, TimeoutError):
            flood.failed_to_open += 1
            await asyncio.sleep(0.5)
            continue
        flood.opened += 1
        flood.open_now += 1
        flood.most_open = max(flood.most_open, flood.open_now)
        try:
            await talk(reader, writer, flood)
        except (OSError, StopIteration):
            flood.closed_by_server += 1
        finally:
            flood.open_now -= 1
            writer.close()
        await asyncio.sleep(reopen_after)


def _slow_request(slow_body: bool) -> Talk:
    """A request that never finishes: its headers, or its body, a byte a second."""

    async def talk(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flood: Flood
    ) -> None:
        if slow_body:
            writer.write(HEAD + b"Content-Length: 100000\r\n\r\n{")
        else:
            writer.write(HEAD[:20])
        drip = iter((b"x" * 100000) if slow_body else HEAD[20:] + b"X-Slow: " + b"y" * 99999)
        while not flood.stop.is_set():
            try:
                await asyncio.wait_for(reader.read(1024), 1.0)  # b"" (or an answer): closed
                flood.closed_by_server += 1
                break
            except TimeoutError:
                writer.write(bytes([next(drip)]))

    return talk


STALLED = (
    b'{"model":"m","messages":[{"role":"user","content":"Hi"}],"stream":true,"max_tokens":2000}'
)
NOREAD = (
    HEAD
    + b"X-Chatcompat-Fault: stall-after=1;stall=3600\r\nContent-Length: %d\r\n\r\n" % len(STALLED)
    + STALLED
)


async def _unread_answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flood: Flood
) -> None:
    """A whole request whose answer stalls after its first event, held until closed."""
    writer.write(NOREAD)
    while not flood.stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_closed(reader), 1.0)
            flood.closed_by_server += 1
            break


async def _closed(reader: asyncio.StreamReader) -> None:
    """Return when the server closes (asyncio takes the bytes off the socket regardless; the
    answer is one event, then the stall, so nothing piles up either way)."""
    while await reader.read(65536):
        pass


@dataclass
class Timings:
    """Latencies (ms) of the requests that were answered, and the count of those that were not."""

    name: str
    ms: list[float] = field(default_factory=list)
    failed: int = 0

    def row(self) -> str:
        n = len(self.ms) + self.failed
        if not self.ms:
            return f"{self.name:<22} {n:>4} {0:>4} {'-':>8} {'-':>8} {'-':>8} {self.failed:>7}"
        ordered = sorted(self.ms)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return (
            f"{self.name:<22} {n:>4} {len(ordered):>4} {statistics.median(ordered):>8.1f} "
            f"{p99:>8.1f} {ordered[-1]:>8.1f} {self.failed:>7}"
        )


async def _probe(
    port: int, seconds: float, health: Timings, chat: Timings, fds: Callable[[], int]
) -> int:
    """GET /health every 0.25 s and a chat completion every 0.5 s, each on a new connection
    with a 5 s limit, for ``seconds``; the most file descriptors the server held meanwhile."""
    base = f"http://127.0.0.1:{port}"
    timeout = aiohttp.ClientTimeout(total=5)
    most_fds = 0

    async def timed(into: Timings, method: str, path: str, body: object = None) -> None:
        started = time.monotonic()
        try:
            connector = aiohttp.TCPConnector(force_close=True)
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.request(method, base + path, json=body) as response,
            ):
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            into.ms.append((time.monotonic() - started) * 1000)
        else:
            into.failed += 1

    tasks = []
    end = time.monotonic() + seconds
    tick = 0
    while time.monotonic() < end:
        tasks.append(asyncio.create_task(timed(health, "GET", "/health")))
        if tick % 2 == 0:
            tasks.append(asyncio.create_task(timed(chat, "POST", "/v1/chat/completions", CHAT)))
        most_fds = max(most_fds, fds())
        tick += 1
        await asyncio.sleep(0.25)
    await asyncio.gather(*tasks)
    return most_fds


async def _flood(port: int, connections: int, seconds: float, kind: str) -> Flood:
    """``connections`` slow (or, ``kind`` noread, unread) connections for ``seconds``; what
    happened to them."""
    flood = Flood()
    flooders = [
        asyncio.create_task(
            _connection(port, flood, _unread_answer, 1.0)
            if kind == "noread"
            else _connection(port, flood, _slow_request(i % 2 == 1), 0.0)
        )
        for i in range(connections)
    ]
    await asyncio.sleep(seconds)
    flood.stop.set()
    await asyncio.gather(*flooders, return_exceptions=True)
    return flood


def _flood_process(port: int, connections: int, seconds: float, kind: str, out: Any) -> None:
    """The target of the flooding process (apart, so the timings are the server's alone)."""
    flood = asyncio.run(_flood(port, connections, seconds, kind))
    out.put((flood.opened, flood.most_open, flood.closed_by_server, flood.failed_to_open))


async def run(port: int, args: argparse.Namespace, fds: Callable[[], int]) -> list[str]:
    """Both phases; the report's lines."""
    quiet = [Timings("health, no flood"), Timings("chat, no flood")]
    await _probe(port, args.baseline, *quiet, fds)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    flooder = context.Process(
        target=_flood_process,
        args=(port, args.connections, args.ramp + args.seconds + 1, args.kind, out),
    )
    flooder.start()
    await asyncio.sleep(args.ramp)
    loud = [Timings("health, during flood"), Timings("chat, during flood")]
    most_fds = await _probe(port, args.seconds, *loud, fds)
    opened, most_open, closed, failed = await asyncio.to_thread(out.get, True, 120)
    await asyncio.to_thread(flooder.join, 30)
    header = f"{'':<22} {'n':>4} {'ok':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'failed':>7}"
    return [
        header,
        *(t.row() for t in (*quiet, *loud)),
        f"flood: {opened} connections opened ({most_open} open at once at most), "
        f"{closed} closed by the server, {failed} failed to open; "
        f"the server held at most {most_fds} file descriptors",
    ]


def _limit_files(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument(
        "--kind", choices=("slow", "noread"), default="slow", help="of flood (default slow)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="flood phase (default 20)")
    parser.add_argument("--baseline", type=float, default=10.0, help="no-flood phase (10)")
    parser.add_argument("--ramp", type=float, default=3.0, help="flood before timing (3)")
    parser.add_argument("--fd-limit", type=int, default=1024, help="the server's (1024)")
    parser.add_argument("--source", help="import mockserver from this checkout instead")
    parser.add_argument("--log", help="also copy the server's log to this file")
    parser.add_argument("mock_args", nargs="*", help="after --: more chatcompat mock options")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < args.connections + 200:
        parser.error(f"this process may open {hard} files; --connections needs more")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = _free_port()
    env = dict(os.environ)
    if args.source:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.source, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "mockserver", "--port", str(port), *args.mock_args]
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            preexec_fn=_limit_files(args.fd_limit),
        )
        try:
            assert server.stdout is not None
            server.stdout.readline()  # "chatcompat mock listening on ..."
            fd_dir = f"/proc/{server.pid}/fd"
            lines = asyncio.run(run(port, args, lambda: len(os.listdir(fd_dir))))
        finally:
            server.terminate()
            server.wait(10)
        log.seek(0)
        logged = log.read().splitlines()
    if args.log:
        with open(args.log, "w") as copy:
            copy.write("\n".join(logged) + "\n")
    emfile = sum("Too many open files" in line for line in logged)
    print(
        f"chatcompat mock ({args.source or 'this checkout'}) under a {args.fd_limit}-file "
        f"limit; {args.connections} {args.kind} connections for {args.ramp:g} + "
        f"{args.seconds:g} s; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print("\n".join(lines))
    print(f"server log: {len(logged)} lines, {emfile} with 'Too many open files'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
