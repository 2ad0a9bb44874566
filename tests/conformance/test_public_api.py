"""conformance's public names: what tests, bench/ and users import."""

from __future__ import annotations

import conformance

# Grouped by use; tests/test_public_api.py checks that __all__ is sorted and importable.
USED = {
    # running the suite (bench/suite_run.py, the tests, users' scripts)
    "Endpoint", "Budget", "run", "run_checks", "Profile", "PROFILES", "load_profile",
    "endpoint_claiming", "CAPABILITIES", "CHECKS", "GROUPS",
    # reading a run's outcome
    "RunResult", "Result", "Outcome", "Status", "Crash", "Exchange", "Redirect",
    "console_text", "json_report", "junit_xml", "markdown_summary", "write_reports",
    "REPORT_VERSION",
    # a compatibility matrix of several JSON reports
    "MatrixColumn", "read_report", "render_matrix",
    # two JSON reports compared (chatcompat compare)
    "Comparison", "compare_files", "render_comparison",
    # writing checks
    "check", "Check", "Severity", "Context", "CheckFailed", "CheckSkipped",
    "outcome_of",
}  # fmt: skip


def test_the_public_names_are_what_is_used():
    assert set(conformance.__all__) == USED


def test_no_public_module_name_is_left_out():
    public = {
        name
        for name, value in vars(conformance).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("conformance")
    }
    assert public <= set(conformance.__all__)
