"""Run control and what ``chatcompat check`` shows as it runs, as a user meets them: the real
command in a child process against the embedded mock, an in-process mock with a defect, or
``chatcompat mock`` in a child process (to hold a check in flight)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import pytest

from conformance import CHECKS

from .test_cli import mock_process

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check(*args, env=None, timeout=120, cwd=None):
    """``python -m conformance ARGS``, its output captured (pipes: no terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
        cwd=cwd,
    )


def statuses(report_path):
    """Check id -> (status, message) from a JSON report."""
    report = json.loads(report_path.read_text("utf-8"))
    return {c["id"]: (c["status"], c["message"]) for c in report["checks"]}


SSE = {i for i in CHECKS if i.startswith("sse_")}
MODEL = {i for i in CHECKS if i.startswith("model")}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--check", "sse_*", "--check", "models_list", "--exclude", "sse_d*"],
         {i for i in SSE if not i.startswith("sse_d")} | {"models_list"}),
        (["--check", "model*", "--exclude", "models_list"], MODEL - {"models_list"}),
    ],
    ids=["globs-and-exclude", "exclude-one"],
)  # fmt: skip
def test_check_takes_globs_and_exclude_removes_checks(tmp_path, args, expected):
    done = check(*args, "--report-json", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(statuses(tmp_path / "r.json")) == expected
    assert f"{len(expected)} checks: {len(expected)} passed" in done.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--exclude", "no_such_*"], "--exclude no_such_*"),
        (["--check", "nothing_matches_?"], "--check nothing_matches_?"),
        (["--check", "sse_done", "--exclude", "sse_*"], "no check is left to run"),
    ],
    ids=["exclude-unmatched", "check-glob-unmatched", "nothing-left"],
)
def test_a_pattern_that_matches_no_check_exits_2(args, said):
    done = check(*args)
    assert done.returncode == 2
    assert said in done.stderr
    assert done.stdout == ""


def test_fail_fast_skips_the_checks_not_started_after_the_first_failure(start_mock, tmp_path):
    server = start_mock(defects=("stop-ignored",))
    done = check(
        "--base-url", server.base_url, "--model", "m", "--concurrency", "1", "--fail-fast",
        "--check", "stop", "--check", "sse_done", "--check", "models_list",
        "--report-json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    seen = statuses(tmp_path / "r.json")
    assert seen["stop"][0] == "failed"
    reason = "not run: --fail-fast after stop failed"
    assert seen["sse_done"] == seen["models_list"] == ("skipped", reason)
    assert "1 failed, 0 warning, 2 skipped" in done.stdout
    # without it, the run goes on
    done = check(
        "--base-url", server.base_url, "--model", "m", "--concurrency", "1",
        "--check", "stop", "--check", "sse_done", "--report-json", str(tmp_path / "all.json"),
    )  # fmt: skip
    assert done.returncode == 1
    assert statuses(tmp_path / "all.json")["sse_done"][0] == "passed"


def test_fail_on_warning_makes_a_should_check_that_warns_fail_the_run(start_mock, tmp_path):
    server = start_mock(defects=("model-listed-by-path",))
    common = ["--base-url", server.base_url, "--model", "m", "--check", "model_under_test_listed"]
    warns = check(*common, "--report-md", str(tmp_path / "warns.md"))
    assert warns.returncode == 0, warns.stdout + warns.stderr
    assert "1 warning" in warns.stdout
    fails = check(*common, "--fail-on", "warning", "--report-json", str(tmp_path / "r.json"))
    assert fails.returncode == 1, fails.stdout + fails.stderr
    report = json.loads((tmp_path / "r.json").read_text("utf-8"))
    assert report["ok"] is False
    assert report["summary"]["warning"] == 1


def test_color_always_colours_the_console_and_never_a_report(tmp_path):
    reports = ["--report-json", "r.json", "--junit", "r.xml", "--report-md", "r.md"]
    done = check("--check", "models_list", "--color", "always", *reports, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\x1b[32mPASS\x1b[0m" in done.stdout
    assert "\x1b[32m1 passed\x1b[0m" in done.stdout
    for name in ("r.json", "r.xml", "r.md"):
        assert "\x1b" not in (tmp_path / name).read_text("utf-8")
        assert "\\x1b" not in (tmp_path / name).read_text("utf-8")
    assert "1 checks: 1 passed, 0 failed" in ANSI.sub("", done.stdout)
    plain = check("--check", "models_list", "--color", "never")
    assert "\x1b" not in plain.stdout + plain.stderr


def on_a_terminal(*args, env):
    """``python -m conformance ARGS`` with stdout on a pseudo-terminal (stderr a pipe); what
    the terminal received."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance", *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(follower)
    received = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(leader)
        process.wait(timeout=120)
        process.stderr.close()
    assert process.returncode == 0, received
    return received.decode("utf-8")


@pytest.mark.parametrize(
    ("no_color", "color", "coloured"),
    [
        (None, "auto", True),
        ("", "auto", True),
        ("1", "auto", False),
        ("1", "always", True),
        (None, "never", False),
    ],
    ids=["auto", "auto-empty-no-color", "auto-no-color", "always-beats-no-color", "never"],
)
def test_auto_colours_a_terminal_unless_no_color_is_set(no_color, color, coloured):
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color is not None:
        env["NO_COLOR"] = no_color
    seen = on_a_terminal("--check", "models_list", "--color", color, env=env)
    assert "1 checks: " in seen
    assert ("\x1b[" in seen) is coloured


def test_without_a_terminal_colour_is_off_by_default():
    done = check("--check", "models_list")
    assert "\x1b" not in done.stdout + done.stderr


def test_a_pipe_shows_each_check_as_it_finishes_before_the_run_ends():
    """``chatcompat check | cat``: the first check's line arrives while the last check is still
    held by the server (its stream stops for 60 s after the first event; a stall fault holds
    streams only, so the preflight's chat request is answered at once), so before the run
    ends."""
    with mock_process("--fault", "stall-after=1;stall=60") as url:
        run = subprocess.Popen(
            [sys.executable, "-m", "chatcompat", "check", "--base-url", url, "--model", "m",
             "--check", "models_list", "--check", "sse_done", "--timeout", "120"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        try:
            first = run.stdout.readline()
            still_running = run.poll() is None
        except BaseException:
            run.kill()
            raise
    # the mock has stopped: only now can sse_done end (its stream cut)
    with run:
        rest = run.stdout.read()
    assert re.fullmatch(r"1/2 PASS  models_list +\d+\.\d\ds\n", first), first
    assert still_running
    lines = rest.splitlines()
    assert re.match(r"2/2 FAIL  sse_done +\d+\.\d\ds  \S", lines[0]), lines[0]
    assert any(line.startswith("2 checks: 1 passed, 1 failed") for line in lines)
    assert run.returncode == 1


def test_live_lines_hold_the_reason_on_one_line_without_the_key(start_mock):
    key = "sk-live-lines-0123456789"
    server = start_mock(defects=("stop-ignored",), api_key=key)
    done = check(
        "--base-url", server.base_url, "--model", "m", "--check", "stop", "--check",
        "models_list", env={**os.environ, "CHATCOMPAT_API_KEY": key},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    live = done.stdout.split("chatcompat ", 1)[0].splitlines()
    assert len(live) == 2
    failed = next(line for line in live if " stop " in line)
    assert re.match(r"[12]/2 FAIL  stop +\d+\.\d\ds  \S", failed)
    assert key not in done.stdout + done.stderr
