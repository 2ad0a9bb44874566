"""``chatcompat mock --workers N``: N processes on one port, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mockserver import WORKER_HEADER
from mockserver._workers import reserve_port


def children(pid):
    """The pids of the direct children of ``pid`` (Linux /proc)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def alive(pid):
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def gone(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


@pytest.fixture
def workers_process():
    """Start ``python -m mockserver --workers 2 --port 0``; yields the process and its base URL;
    always stopped."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        if not line:  # it exited: say why
            process.wait(timeout=10)
            pytest.fail(f"the mock exited ({process.returncode}):\n{process.stderr.read()}")
        assert line.startswith("chatcompat mock listening on http://127.0.0.1:"), line
        assert not line.rstrip().endswith(":0/v1"), line
        yield process, line.split()[-1]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_two_workers_answer_on_one_port_and_stop_together(workers_process, sig):
    process, base_url = workers_process
    answered = []
    for _ in range(50):  # a new connection each time: the kernel spreads them over the workers
        with urllib.request.urlopen(f"{base_url}/models", timeout=10) as response:
            assert response.status == 200
            answered.append(int(response.headers[WORKER_HEADER]))
    workers = set(answered)
    assert len(workers) == 2, answered
    descendants = children(process.pid)
    assert workers <= descendants
    os.kill(process.pid, sig)
    assert process.wait(timeout=15) == 0, process.stderr.read()
    assert gone(descendants), [p for p in descendants if alive(p)]
    log = process.stderr.read()
    assert "Traceback" not in log, log


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_of_a_killed_parent_stop_by_themselves(workers_process):
    process, _ = workers_process
    workers = children(process.pid)
    process.kill()  # SIGKILL: no chance to stop the workers
    process.wait(timeout=10)
    assert gone(workers), [p for p in workers if alive(p)]


def test_port_zero_is_replaced_by_a_free_port_held_until_the_workers_bind():
    with reserve_port("127.0.0.1", 0) as reserved:
        port = reserved.getsockname()[1]
        assert port != 0
        with reserve_port("127.0.0.1", port) as shared:  # SO_REUSEPORT: the workers' way
            assert shared.getsockname()[1] == port


def test_workers_must_be_positive():
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "--port", "0", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--workers must be >= 1" in done.stderr
