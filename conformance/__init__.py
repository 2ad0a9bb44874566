"""The conformance suite for OpenAI-compatible chat-completion endpoints."""

from __future__ import annotations

from conformance._context import Context
from conformance._http import Endpoint, Exchange
from conformance._outcome import CheckFailed, CheckSkipped, CheckWarning
from conformance._registry import CHECKS, Check, check
from conformance._report import REPORT_VERSION, console_text, json_report, junit_xml
from conformance._runner import Result, RunResult, run, run_checks

__all__ = [
    "CHECKS",
    "REPORT_VERSION",
    "Check",
    "CheckFailed",
    "CheckSkipped",
    "CheckWarning",
    "Context",
    "Endpoint",
    "Exchange",
    "Result",
    "RunResult",
    "check",
    "console_text",
    "json_report",
    "junit_xml",
    "run",
    "run_checks",
]
