"""Seconds from ``chatcompat mock --mode generate`` to a ready ``GET /health``, with an empty
model cache (the model is built and written) and then with it filled (the model is read):

    python bench/mock_ready.py               # 2 starts, a fresh cache folder
    python bench/mock_ready.py --starts 3

Each start is the console script beside this Python with ``CHATCOMPAT_CACHE`` set to a
temporary folder; ``/health`` is polled every 0.1 s. Prints, per start: seconds to the banner
(listening: torch imported), to the first 200 of /health, the 503 answers before it, and the
log's readiness line.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _health(url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def start(cache: Path, log: Path) -> tuple[float, float, int, str]:
    """Seconds to the banner, to a ready /health, the 503s before it, the log's ready line."""
    port = _free_port()
    command = [str(Path(sys.executable).with_name("chatcompat")), "mock", "--mode", "generate"]
    env = {**os.environ, "CHATCOMPAT_CACHE": str(cache)}
    started = time.monotonic()
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    try:
        assert process.stdout is not None
        process.stdout.readline()
        listening = time.monotonic() - started
        loading = 0
        while _health(f"http://127.0.0.1:{port}/health") != 200:
            loading += 1
            time.sleep(0.1)
        ready = time.monotonic() - started
    finally:
        process.terminate()
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()
    said = next((line for line in log.read_text().splitlines() if "is ready" in line), "")
    return listening, ready, loading, said.split("mockserver ", 1)[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=2, help="starts (the first builds)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder) / "cache"
        for number in range(1, args.starts + 1):
            listening, ready, loading, said = start(cache, Path(folder) / "mock.log")
            print(
                f"start {number}: listening {listening:.1f} s, /health 200 at {ready:.1f} s "
                f"({loading} x 503 loading before); log: {said}",
                flush=True,
            )
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
