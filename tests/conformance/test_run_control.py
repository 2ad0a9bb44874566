"""Run control in the runner (check selection by globs, --fail-fast, --fail-on) and the console's
colour and live lines, on small made-up checks."""

from __future__ import annotations

import asyncio
import io
import re

import pytest

from conformance import (
    CHECKS,
    Check,
    CheckFailed,
    Endpoint,
    Outcome,
    Result,
    RunResult,
    Status,
    console_text,
    run_checks,
)
from conformance._colour import wants_colour
from conformance._live import LiveLines, live_output
from conformance._runner import selected_ids

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def made_up(check_id, func, severity="must"):
    return Check(check_id, "stream", severity, "core", f"{check_id} is right.", func)


async def fails(ctx):
    """Fails at once."""
    raise CheckFailed("it broke")


async def passes_slowly(ctx):
    """Passes after a moment."""
    await asyncio.sleep(0.3)


async def passes(ctx):
    """Passes."""


def test_selected_ids_expands_globs_in_order_once_each_and_excludes():
    sse = [i for i in CHECKS if i.startswith("sse_")]
    assert selected_ids(["models_list", "sse_*", "sse_done"]) == ["models_list", *sse]
    assert selected_ids(["sse_*"], ["sse_done"]) == [i for i in sse if i != "sse_done"]
    assert selected_ids(None, ["sse_*"]) == [i for i in CHECKS if i not in sse]
    assert selected_ids() == list(CHECKS)


@pytest.mark.parametrize(
    ("patterns", "exclude", "said"),
    [
        (["no_such"], [], "--check no_such"),
        (None, ["zz_*"], "--exclude zz_*"),
        (["sse_done"], ["sse_*"], "no check is left to run"),
    ],
    ids=["unknown-id", "unmatched-exclude", "nothing-left"],
)
def test_selected_ids_refuses_patterns_that_match_nothing(patterns, exclude, said):
    with pytest.raises(ValueError, match=re.escape(said)):
        selected_ids(patterns, exclude)


def test_fail_fast_lets_running_checks_finish_and_starts_no_other():
    checks = [
        made_up("slow", passes_slowly),
        made_up("broken", fails),
        made_up("later", passes),
        made_up("last", passes),
    ]
    result = asyncio.run(
        run_checks(Endpoint("http://127.0.0.1:9/v1", "m"), checks, concurrency=2, fail_fast=True)
    )
    seen = {r.check.id: (r.status, r.message) for r in result.results}
    skipped = (Status.SKIPPED, "not run: --fail-fast after broken failed")
    assert seen == {
        "slow": (Status.PASSED, ""),
        "broken": (Status.FAILED, "it broke"),
        "later": skipped,
        "last": skipped,
    }


def test_with_fail_on_warning_a_warning_fails_the_run_and_stops_it_with_fail_fast():
    checks = [made_up("warns", fails, "should"), made_up("later", passes)]
    endpoint = Endpoint("http://127.0.0.1:9/v1", "m")
    default = asyncio.run(run_checks(endpoint, checks, concurrency=1, fail_fast=True))
    assert [r.status for r in default.results] == [Status.WARNING, Status.PASSED]
    assert default.ok
    strict = asyncio.run(
        run_checks(endpoint, checks, concurrency=1, fail_fast=True, fail_on="warning")
    )
    assert [r.status for r in strict.results] == [Status.WARNING, Status.SKIPPED]
    assert strict.results[1].message == "not run: --fail-fast after warns warned"
    assert not strict.ok


HOSTILE = "\x1b[32mPASS\x1b[0m\nFAIL forged line"


@pytest.fixture
def a_run():
    results = [
        Result(made_up("good", passes), Outcome(Status.PASSED), 0.25),
        Result(made_up("bad", fails), Outcome(Status.FAILED, HOSTILE), 0.5),
        Result(made_up("meh", fails, "should"), Outcome(Status.WARNING, "hm"), 0.5),
    ]
    return RunResult(Endpoint("http://h/v1", "m"), results, 0.0, 1.0, 3, "compatible")


def test_colour_only_adds_escapes_to_the_suites_own_words(a_run):
    plain = console_text(a_run)
    coloured = console_text(a_run, color=True)
    assert ANSI.sub("", coloured) == plain
    assert "\x1b" not in plain
    painted = ANSI.findall(coloured)
    # 3 table rows, 2 detail headers, 3 non-zero counts: each word opened and reset
    assert len(painted) == 2 * (3 + 2 + 3)
    assert "\\x1b[32mPASS\\x1b[0m\\nFAIL forged line" in coloured  # the server's, escaped


def test_a_live_line_per_check_with_its_reason_on_one_line(a_run):
    stream = io.StringIO()
    lines = LiveLines(stream, "sk-0123456789abcdef")
    for at, result in enumerate(a_run.results, 1):
        lines(result, at, 3)
    good, bad, meh = stream.getvalue().splitlines()
    assert re.fullmatch(r"1/3 PASS  good +0\.25s", good)
    assert re.fullmatch(r"2/3 FAIL  bad +0\.50s  \\x1b\[32mPASS\\x1b\[0m", bad)  # first line
    assert re.fullmatch(r"3/3 WARN  meh +0\.50s  hm", meh)
    keyed = Result(made_up("k", fails), Outcome(Status.FAILED, "got sk-0123456789abcdef"), 0.1)
    assert (
        LiveLines(io.StringIO(), "sk-0123456789abcdef").line(keyed, 1, 1).endswith("got <redacted>")
    )
    assert "\x1b[31mFAIL\x1b[0m " in LiveLines(stream, None, colour=True).line(keyed, 1, 1)


class Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize(
    ("choice", "tty", "environ", "wanted"),
    [
        ("auto", True, {}, True),
        ("auto", True, {"NO_COLOR": ""}, True),
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", False, {}, False),
        ("always", False, {"NO_COLOR": "1"}, True),
        ("never", True, {}, False),
    ],
    ids=["tty", "empty-no-color", "no-color", "pipe", "always", "never"],
)
def test_wants_colour_follows_no_color_org(choice, tty, environ, wanted):
    assert wants_colour(choice, Stream(tty), environ) is wanted


def test_the_bar_is_for_a_terminal_and_lines_for_anything_else():
    result = Result(made_up("good", passes), Outcome(Status.PASSED), 0.25)
    out, err = Stream(False), Stream(True)
    live_output(out, err, None)(result, 1, 1)
    assert out.getvalue() == "" and err.getvalue().startswith("\r[")
    out, err = Stream(False), Stream(False)
    live_output(out, err, None)(result, 1, 1)
    assert err.getvalue() == "" and out.getvalue().startswith("1/1 PASS  good")
