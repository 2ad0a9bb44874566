"""The foreground server's access log: a line per request, buffered and written in batches,
credentials in the query redacted, the line ``logging`` wrote before; ``--log-level warning``
writes none."""

from __future__ import annotations

import asyncio
import io
import re
import sys
import urllib.request
from pathlib import Path
from types import MappingProxyType

import pytest

from mockserver._access_log import AccessLines, buffered_access_logger

from ..conftest import cli_mock

LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} aiohttp\.access 127\.0\.0\.1 "
    r'"GET /health HTTP/1\.1" 200 \d+ \d+\.\d{3}s "Python-urllib/[\d.]+"'
)


class Request:
    remote, method, version = "127.0.0.1", "GET", (1, 1)
    raw_path = "/v1/models?api-key=sk-secret-123&limit=2"
    headers = MappingProxyType({"User-Agent": "ua"})
    protocol = None


class Response:
    status, body_length = 200, 10


def test_lines_wait_for_the_batch_then_come_in_one_write():
    out = io.StringIO()

    async def scenario() -> tuple[str, str]:
        lines = AccessLines(out, interval=0.05)
        logger = buffered_access_logger(lines)(None, "")  # type: ignore[arg-type]
        logger.log(Request(), Response(), 0.0123)  # type: ignore[arg-type]
        logger.log(Request(), Response(), 0.0123)  # type: ignore[arg-type]
        before = out.getvalue()
        await asyncio.sleep(0.2)
        return before, out.getvalue()

    before, after = asyncio.run(scenario())
    assert before == ""
    first, second, end = after.split("\n")
    assert first == second and end == ""
    assert first.endswith(
        ' aiohttp.access 127.0.0.1 "GET /v1/models?api-key=[REDACTED]&limit=2 HTTP/1.1" '
        '200 10 0.012s "ua"'
    )
    assert "sk-secret-123" not in after


def test_a_worker_names_its_pid():
    out = io.StringIO()

    async def scenario() -> None:
        lines = AccessLines(out)
        logger = buffered_access_logger(lines, "[123] aiohttp.access")(None, "")  # type: ignore[arg-type]
        logger.log(Request(), Response(), 0.0)  # type: ignore[arg-type]
        lines.flush()

    asyncio.run(scenario())
    assert " [123] aiohttp.access 127.0.0.1 " in out.getvalue()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    ("args", "logged"), [([], 3), (["--log-level", "warning"], 0)], ids=["info", "warning"]
)
def test_the_cli_logs_each_request_unless_quiet(tmp_path: Path, args: list[str], logged: int):
    log = tmp_path / "mock.log"
    with cli_mock(log, *args) as base_url:
        url = re.sub(r"/v1$", "/health", base_url)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for _ in range(3):
            with opener.open(url, timeout=30) as response:
                assert response.status == 200
    lines = [line for line in log.read_text().splitlines() if "aiohttp.access" in line]
    assert len(lines) == logged, log.read_text()
    assert all(LINE.fullmatch(line) for line in lines), lines
