"""The conformance suite for OpenAI-compatible chat-completion endpoints."""

from __future__ import annotations

from conformance._compare import Comparison, compare_files
from conformance._compare_render import render_comparison
from conformance._context import Budget, Context
from conformance._http import Endpoint, Exchange
from conformance._matrix import MatrixColumn, read_report, render_matrix
from conformance._outcome import (
    CheckFailed,
    CheckSkipped,
    Crash,
    Outcome,
    Status,
    outcome_of,
)
from conformance._profiles import PROFILES, Profile, endpoint_claiming, load_profile
from conformance._redirects import Redirect
from conformance._registry import CAPABILITIES, CHECKS, GROUPS, Check, Severity, check
from conformance._report import (
    REPORT_VERSION,
    console_text,
    json_report,
    junit_xml,
    markdown_summary,
    write_reports,
)
from conformance._runner import Result, RunResult, run, run_checks

__all__ = [
    "CAPABILITIES",
    "CHECKS",
    "GROUPS",
    "PROFILES",
    "REPORT_VERSION",
    "Budget",
    "Check",
    "CheckFailed",
    "CheckSkipped",
    "Comparison",
    "Context",
    "Crash",
    "Endpoint",
    "Exchange",
    "MatrixColumn",
    "Outcome",
    "Profile",
    "Redirect",
    "Result",
    "RunResult",
    "Severity",
    "Status",
    "check",
    "compare_files",
    "console_text",
    "endpoint_claiming",
    "json_report",
    "junit_xml",
    "load_profile",
    "markdown_summary",
    "outcome_of",
    "read_report",
    "render_comparison",
    "render_matrix",
    "run",
    "run_checks",
    "write_reports",
]
