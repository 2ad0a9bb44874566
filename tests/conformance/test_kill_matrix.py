"""Every check can fail: each defect mode of the mock is caught by exactly the checks that
kill_matrix.toml (beside this file) names for it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from conformance import CHECKS, Endpoint, json_report, load_profile, run
from mockserver import DEFECTS, FLAVOURS

from .curl_replay import shows_the_defect

KEY = "sk-kill-matrix"
# The template mode does not sample: checks that need real sampling run in generate mode.
CAPABILITIES = load_profile("mock").capabilities | {"auth"}
CONTEXT_LENGTH = load_profile("mock").context_length  # err_context_length needs it
# defect -> {mode, caught_by: [the check it was made for, then the others], why: {check: reason}}
KILL_MATRIX = tomllib.loads(Path(__file__).with_name("kill_matrix.toml").read_text("utf-8"))
MODES = ("template", "generate", "reference")


# Safety nets, not speed figures: the mock answers in milliseconds, but a busy 2-core machine
# (load average 10) can make one request take seconds and schemathesis_openapi sends hundreds.
REQUEST_TIMEOUT = 60
CHECK_TIMEOUT = 240


# The property checks draw their requests (hypothesis, schemathesis): what they draw varies with
# the modules loaded, so a defect they catch only sometimes is not listed in its row (see the
# head of kill_matrix.toml), and their failure beside the listed checks is not a mistake.
BROAD_CHECKS = frozenset(c.id for c in CHECKS.values() if c.group == "property")


def failed_ids(server, model="m"):
    """The checks that caught something (failed; a "should" check warns), and the run."""
    endpoint = Endpoint(
        server.base_url,
        model,
        KEY,
        timeout=REQUEST_TIMEOUT,
        capabilities=CAPABILITIES,
        context_length=CONTEXT_LENGTH,
    )
    result = run(endpoint, check_timeout=CHECK_TIMEOUT)
    return {r.check.id for r in result.results if r.status in ("failed", "warning")}, result


def said(result, ids):
    """What the run said of the checks ``ids``: the text an assertion shows when they differ."""
    return "\n".join(f"{r.check.id}: {r.outcome.text}" for r in result.results if r.check.id in ids)


def test_clean_mock_passes_every_check(start_mock):
    server = start_mock(models=("m",), api_key=KEY)
    failed, result = failed_ids(server)
    assert failed == set(), said(result, failed)
    assert result.counts["failed"] == 0
    assert result.counts["warning"] == 0
    skipped = {r.check.id for r in result.results if r.status == "skipped"}
    assert skipped == {c.id for c in CHECKS.values() if c.capability not in CAPABILITIES}


# What a clean mock warns about in each dialect (all real server shapes, none a failure).
DIALECT_WARNINGS = {
    "openai": set(),
    "vllm": set(),
    "llamacpp": set(),
    "novita": {"finish_empty_delta"},  # finish_reason rides on the last content chunk
    # Azure's first chunk carries only prompt_filter_results, with choices []: the SDKs skip it,
    # clients indexing choices[0] break (a warning, not a failure).
    "azure": {"no_prompt_filter_chunk"},
}


@pytest.mark.parametrize("dialect", sorted(DIALECT_WARNINGS), ids=sorted(DIALECT_WARNINGS))
def test_clean_mock_passes_in_each_dialect(start_mock, dialect):
    server = start_mock(models=("m",), api_key=KEY, flavour=dialect)
    caught, result = failed_ids(server)
    assert caught == DIALECT_WARNINGS[dialect], said(result, caught ^ DIALECT_WARNINGS[dialect])
    assert result.counts["failed"] == 0


def test_every_dialect_is_in_the_dialect_test():
    assert set(FLAVOURS) == set(DIALECT_WARNINGS)


def test_every_defect_has_a_row_and_every_row_a_defect():
    assert sorted(KILL_MATRIX) == sorted(DEFECTS)


@pytest.mark.parametrize("defect", list(KILL_MATRIX), ids=list(KILL_MATRIX))
def test_kill_matrix_row_is_well_formed(defect):
    row = KILL_MATRIX[defect]
    assert set(row) <= {"mode", "caught_by", "why"}
    assert row["mode"] in MODES
    caught = row["caught_by"]
    assert caught, "a defect no check catches shows nothing"
    assert len(set(caught)) == len(caught)
    assert set(row.get("why", {})) <= set(caught[1:])  # reasons for the checks caught besides
    assert all(isinstance(reason, str) and reason for reason in row.get("why", {}).values())


def test_every_id_in_the_kill_matrix_is_a_check():
    named = {check for row in KILL_MATRIX.values() for check in row["caught_by"]}
    assert named - set(CHECKS) == set()


def test_every_check_has_a_defect_that_it_catches():
    # every check is the one some defect was made for (the first of its caught_by)
    assert {row["caught_by"][0] for row in KILL_MATRIX.values()} == set(CHECKS)


def defects_in(mode):
    return sorted(name for name, row in KILL_MATRIX.items() if row["mode"] == mode)


def caught_by(defect):
    """The checks that must catch ``defect``: the one it was made for first."""
    return KILL_MATRIX[defect]["caught_by"]


# Defects of sampling behaviour are shown in generate mode (below): the template does not sample.
TEMPLATE_DEFECTS = defects_in("template")  # the reference defects: test_reference_mode.py


# Checks whose failure the curl of `chatcompat repro` does not show, by defect: each with why
# (unreproduced.toml beside this file). Every other failed check's curl, run as printed with
# the real curl against the same defective mock, must show the defect (curl_replay.py's rule).
UNREPRODUCED = tomllib.loads(Path(__file__).with_name("unreproduced.toml").read_text("utf-8"))


def unreproduced(server, clean, result):
    """{check id: why its reproduction does not show the defect} for every failed check."""
    report = json_report(result)
    problems = {}
    for entry in report["checks"]:
        if entry["status"] in ("failed", "warning"):
            why = shows_the_defect(entry, report["base_url"], clean.base_url, KEY)
            if why is not None:
                problems[entry["id"]] = why
    return problems


def test_every_unreproduced_check_is_a_template_row_s_check_with_a_reason():
    for defect, checks in UNREPRODUCED.items():
        assert defect in TEMPLATE_DEFECTS
        assert set(checks) <= set(caught_by(defect))
        assert all(isinstance(why, str) and why for why in checks.values())


@pytest.mark.parametrize("defect", TEMPLATE_DEFECTS, ids=TEMPLATE_DEFECTS)
def test_defect_is_caught_by_its_check(start_mock, defect):
    server = start_mock(models=("m",), defects=(defect,), api_key=KEY)
    failed, result = failed_ids(server)
    listed = set(caught_by(defect))
    # a broad property check not listed may catch the defect too, by what it happened to draw
    unexpected = {check for check in failed - listed if check not in BROAD_CHECKS}
    assert listed <= failed and not unexpected, said(result, (listed - failed) | unexpected)
    message = next(r.outcome.text for r in result.results if r.check.id == caught_by(defect)[0])
    assert "Sent: " in message or "Received: " in message
    # ... and the repro curl of every failed check shows it (but those listed, with why)
    clean = start_mock(models=("m",), api_key=KEY)
    problems = unreproduced(server, clean, result)
    unshown = UNREPRODUCED.get(defect, {})
    assert set(problems) == set(unshown), problems


# Generate mode: the reference model samples, so the sampling checks can pass and fail for real.
GENERATE_DEFECTS = defects_in("generate")
GENERATE_CAPABILITIES = frozenset({"core", "sampling", "logprobs", "ext", "seed"})
GENERATE_CHECKS = sorted(
    {check for name in GENERATE_DEFECTS for check in caught_by(name)}
    | {"greedy_is_argmax", "lp_shape"}
)


def generate_results(start_mock, defects=()):
    """The generate-mode checks run against a generate-mode mock with ``defects``."""
    server = start_mock(models=("m",), api_key=KEY, mode="generate", defects=defects)
    # The first answer in a process waits for the model to be fitted: minutes on a busy CPU.
    slow = Endpoint(server.base_url, "m", KEY, 800, 800, capabilities=GENERATE_CAPABILITIES)
    assert run(slow, ["lp_shape"]).counts["passed"] == 1  # the model is built for the first
    endpoint = Endpoint(server.base_url, "m", KEY, timeout=60, capabilities=GENERATE_CAPABILITIES)
    return {r.check.id: r for r in run(endpoint, GENERATE_CHECKS).results}


@pytest.mark.timeout(900)
def test_clean_generate_mock_passes_the_sampling_checks(start_mock):
    results = generate_results(start_mock)
    assert {i: r.status for i, r in results.items()} == dict.fromkeys(GENERATE_CHECKS, "passed")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("defect", GENERATE_DEFECTS, ids=GENERATE_DEFECTS)
def test_generate_defect_is_caught_by_its_check(start_mock, defect):
    results = generate_results(start_mock, (defect,))
    caught = {i for i, r in results.items() if r.status in ("failed", "warning")}
    assert caught == set(caught_by(defect))
    assert "Received: " in results[caught_by(defect)[0]].outcome.text
