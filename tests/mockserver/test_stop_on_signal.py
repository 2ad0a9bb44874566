"""``chatcompat mock`` stops within a few seconds of SIGTERM whatever it is doing (issue 10,
item 4): a generation running, the model being built, a request blocking the event loop, one
process or several. The limit is a safety net over the 5 s watchdog (``_signals.STOP_GRACE``)."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from mockserver._signals import STOP_GRACE
from reference_model import default_tokenizer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

HI = [{"role": "user", "content": "Hi"}]
NO_END = {str(token): -100 for token in default_tokenizer().stop_ids}
# the request: n=128 at the context's end with the end of turn banned (minutes of work)
HUGE = {"model": "m", "messages": HI, "n": 128, "max_tokens": 2000, "logit_bias": NO_END}
STOPPED_WITHIN = 3 * STOP_GRACE  # seconds: the safety net


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port):
    """Whether a server could listen on ``port`` again (nothing listens on it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no listener
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def mock_process(tmp_path, *args):
    """``chatcompat mock --port P ARGS`` once it listens: the process and P; always ended."""
    port = free_port()
    with open(tmp_path / "mock.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatcompat", "mock", "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        line = process.stdout.readline()
        assert line.startswith("chatcompat mock listening"), (tmp_path / "mock.log").read_text()
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()


def send_raw(port, body):
    """A socket that has sent ``body`` as a chat completion request (its answer unread)."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )
    return sock


def terminated(process, port, log):
    """Send SIGTERM; the exit status once the process has ended, failing after the net."""
    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=STOPPED_WITHIN)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timeout: not stopped {STOPPED_WITHIN} s after SIGTERM\n{log.read_text()}")
    deadline = time.monotonic() + STOPPED_WITHIN  # --workers: the workers' sockets close last
    while not port_free(port):
        assert time.monotonic() < deadline, f"timeout: port {port} still taken"
        time.sleep(0.1)
    return status


def warmed(port):
    """Wait for the model to be built (the first answer)."""
    body = {"model": "m", "messages": HI, "max_tokens": 1}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    assert httpx.post(url, json=body, timeout=600).status_code == 200


@pytest.mark.parametrize("workers", ["1", "2"], ids=["one-process", "workers"])
def test_sigterm_stops_a_running_generation(tmp_path, workers):
    with mock_process(tmp_path, "--mode", "generate", "--workers", workers) as (process, port):
        for _ in range(int(workers)):
            warmed(port)
        with send_raw(port, HUGE):
            time.sleep(0.5)  # it is generating
            assert terminated(process, port, tmp_path / "mock.log") == 0


def test_sigterm_stops_while_the_model_is_built(tmp_path, monkeypatch):
    # the build (torch fit steps) cannot be cut short: the exit waits for it up to the
    # watchdog, never aborting ("terminate called without an active exception"); an empty
    # model cache, so that the model is built, not read
    monkeypatch.setenv("CHATCOMPAT_CACHE", str(tmp_path / "empty-cache"))
    with mock_process(tmp_path, "--mode", "generate") as (process, port):
        status = terminated(process, port, tmp_path / "mock.log")
    assert status in (0, 128 + signal.SIGTERM), (tmp_path / "mock.log").read_text()


def test_sigterm_stops_while_a_template_build_holds_the_loop(tmp_path):
    # issue 10 item 4: a 247-byte request whose schema asks for a million items (a long build,
    # or a quick 400 once such builds are capped): either way the mock stops
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 1000000}
    response_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    body = {"model": "m", "messages": HI, "response_format": response_format}
    with mock_process(tmp_path, "--no-builtin-cassettes") as (process, port), send_raw(port, body):
        time.sleep(0.5)
        status = terminated(process, port, tmp_path / "mock.log")
    assert status in (0, 128 + signal.SIGTERM)  # stopped, or ended by the watchdog


BLOCKING_SERVER = """
import sys, time
from aiohttp import web
from mockserver._server import run_until_signalled

async def blocks(request):
    time.sleep(600)  # holds the event loop
    return web.Response()

app = web.Application()
app.router.add_get("/", blocks)
run_until_signalled(app, "127.0.0.1", int(sys.argv[1]), lambda port: f"listening on {port}")
"""


def test_the_watchdog_ends_a_process_whose_loop_stays_blocked(tmp_path):
    port = free_port()
    with open(tmp_path / "server.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", BLOCKING_SERVER, str(port)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        assert process.stdout.readline().startswith("listening on")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.5)  # the loop is blocked
            status = terminated(process, port, tmp_path / "server.log")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()
    assert status == 128 + signal.SIGTERM
    assert "not stopped 5 s after the signal: exiting now" in (tmp_path / "server.log").read_text()
