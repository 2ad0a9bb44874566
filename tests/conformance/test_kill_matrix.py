"""Every check can fail: each defect mode of the mock is caught by the check it names."""

from __future__ import annotations

import pytest

from conformance import CHECKS, Endpoint, run
from conformance._profiles import load_profile
from mockserver import DEFECTS

KEY = "sk-kill-matrix"
# The template mode does not sample: checks that need real sampling run in generate mode.
CAPABILITIES = load_profile("mock").capabilities | {"auth"}


def failed_ids(server, model="m"):
    result = run(Endpoint(server.base_url, model, KEY, timeout=10, capabilities=CAPABILITIES))
    return {r.check.id for r in result.results if r.status == "failed"}, result


def test_clean_mock_passes_every_check(start_mock):
    server = start_mock(models=("m",), api_key=KEY)
    failed, result = failed_ids(server)
    assert failed == set()
    assert result.counts["failed"] == 0
    assert result.counts["warning"] == 0
    skipped = {r.check.id for r in result.results if r.status == "skipped"}
    assert skipped == {c.id for c in CHECKS.values() if c.capability not in CAPABILITIES}


def test_every_check_has_a_defect_that_it_catches():
    assert {d.caught_by for d in DEFECTS.values()} == set(CHECKS)


@pytest.mark.parametrize("defect", sorted(DEFECTS), ids=sorted(DEFECTS))
def test_defect_is_caught_by_its_check(start_mock, defect):
    server = start_mock(models=("m",), defects=(defect,), api_key=KEY)
    failed, result = failed_ids(server)
    assert DEFECTS[defect].caught_by in failed
    assert failed == {DEFECTS[defect].caught_by, *DEFECTS[defect].also_caught_by}
    message = next(r.message for r in result.results if r.check.id == DEFECTS[defect].caught_by)
    assert "Sent: " in message or "Received: " in message
