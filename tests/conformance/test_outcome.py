"""How a check's end becomes an outcome: one status per kind of end, and the API key hidden in
every field."""

from __future__ import annotations

import pytest

from conformance import (
    CheckFailed,
    CheckSkipped,
    Crash,
    Exchange,
    Outcome,
    Status,
    outcome_of,
)

EXCHANGE = Exchange("GET", "http://h/v1/models", None, {}, status=404, body=b"{}")


def raised(exc):
    """``exc`` with a traceback, as a check would raise it."""
    try:
        raise exc
    except BaseException as caught:  # any exception, as the runner sees it
        return caught


@pytest.mark.parametrize(
    ("exc", "severity", "status"),
    [
        (None, "must", Status.PASSED),
        (CheckSkipped("n/a"), "must", Status.SKIPPED),
        (CheckFailed("bad"), "must", Status.FAILED),
        (CheckFailed("bad"), "should", Status.WARNING),
        (KeyError("choices"), "must", Status.ERROR),
        (KeyError("choices"), "should", Status.ERROR),
    ],
    ids=["returned", "skipped", "failed-must", "failed-should", "crash", "crash-should"],
)
def test_each_end_has_one_status(exc, severity, status):
    assert outcome_of(exc, severity).status is status


def test_a_failure_keeps_its_fields():
    failure = CheckFailed("not found", expected="200", received="404", exchange=EXCHANGE)
    assert outcome_of(failure, "must") == Outcome(
        Status.FAILED, "not found", "200", "404", EXCHANGE
    )


def test_a_crash_says_what_and_where():
    outcome = outcome_of(raised(KeyError("choices")), "must")
    assert outcome.message == "the check could not complete: KeyError: 'choices'"
    assert outcome.crash == Crash(
        "KeyError", "'choices'", f"{__file__}:{raised.__code__.co_firstlineno + 3} in raised"
    )
    assert outcome.lines()[-1] == f"At: {outcome.crash.where}"


def test_status_values_are_the_report_words():
    assert [s.value for s in Status] == ["passed", "failed", "warning", "skipped", "error"]
    assert Status.ERROR == "error"


def test_redacted_hides_the_key_in_every_field():
    key = "sk-secret-9"
    exchange = Exchange(
        "POST",
        f"http://h/v1/chat?key={key}",
        f'{{"user": "{key}"}}'.encode(),
        {"X-Echo": key},
        status=401,
        headers={"x-seen": key},
        body=f"bad key {key}".encode(),
        error=f"reset after {key}",
    )
    outcome = Outcome(
        Status.ERROR,
        f"crashed on {key}",
        expected=key,
        received=key,
        exchange=exchange,
        crash=Crash("ValueError", key, "f.py:1 in g"),
    )
    hidden = outcome.redacted(key)
    assert key not in repr(hidden)
    assert hidden.message == "crashed on <redacted>"
    assert hidden.exchange.body == b"bad key <redacted>"
    assert key in repr(exchange)  # the shared exchange itself is left alone
    assert outcome.redacted(None) is outcome
