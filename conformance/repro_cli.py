"""The ``chatcompat repro`` command: the curl command(s) that send a failed check's request(s)
again, from a JSON report (its ``repro`` field: :mod:`conformance._repro`)."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from conformance._repro import curl_command, rebased
from conformance._shown import inline, printable

__all__ = [
    "DESCRIPTION",
    "EXIT_OK",
    "EXIT_USAGE",
    "HELP",
    "add_arguments",
    "repro_text",
    "run_command",
]

EXIT_OK, EXIT_USAGE = 0, 2
HELP = "print the curl command(s) that send a failed check's request(s) again"
DESCRIPTION = (
    "The request(s) a failed check's failure is about, from a JSON report, as curl commands "
    "(a comment line before each says what was seen); the key is read from $CHATCOMPAT_API_KEY."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``chatcompat repro``."""
    parser.add_argument("report", type=Path, metavar="REPORT.json", help="a JSON report (v2)")
    parser.add_argument("check", metavar="CHECK_ID", help="a check that failed, warned or crashed")
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="send to URL instead of the report's base URL (the same server elsewhere)",
    )


def _entry(path: Path, check_id: str) -> tuple[dict[str, Any], str]:
    """The report's entry of ``check_id`` and the report's base URL; raises ValueError saying
    what is wrong (no file, not a report, no such check, a check that did not fail)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON report ({exc})") from None
    if not isinstance(report, dict) or not isinstance(report.get("checks"), list):
        raise ValueError(f"{path}: not a chatcompat JSON report (no checks)")
    entries = [c for c in report["checks"] if isinstance(c, dict) and c.get("id") == check_id]
    if not entries:
        raise ValueError(f"{path}: the report has no check {inline(check_id)!r}")
    entry = entries[0]
    status = entry.get("status")
    if status not in ("failed", "warning", "error"):
        raise ValueError(f"{inline(check_id)} did not fail: its status is {inline(str(status))}")
    repro = entry.get("repro")
    if not isinstance(repro, dict) or not repro.get("requests"):
        raise ValueError(
            f"{inline(check_id)} ({inline(str(status))}) records no request to reproduce "
            "(a report written before chatcompat recorded them, or a failure without one: "
            "a time limit, a crash)"
        )
    return entry, str(report.get("base_url", ""))


def _safe(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with a body that is not plain text (a hand-edited report) moved to base64,
    so that the command printed holds no control character."""
    body = record.get("body")
    if isinstance(body, str) and printable(body) != body:
        encoded = base64.b64encode(body.encode()).decode("ascii")
        return {**record, "body": None, "body_base64": encoded}
    return record


def repro_text(entry: dict[str, Any], base_url: str, new_base: str | None = None) -> str:
    """For each request of ``entry``'s ``repro``: a comment line with what was seen, then its
    curl command (built again from the record, sent to ``new_base`` when given)."""
    requests = entry["repro"]["requests"]
    lines = [f"# {inline(entry['id'])} ({inline(entry['status'])}): {inline(entry['message'])}"]
    for number, record in enumerate(requests, 1):
        seen = record.get("seen") or {}
        what = f"{seen.get('status')} {seen.get('content_type') or ''}".rstrip()
        if seen.get("error"):
            what += f" ({seen['error']})"
        if seen.get("body"):
            what += f": {seen['body']}"
        head = f"# request {number} of {len(requests)}, " if len(requests) > 1 else "# "
        lines.append(inline(f"{head}seen: {what}"))
        url = rebased(record["url"], base_url, new_base) if new_base else None
        # printable, not inline: a raw body's own line breaks are part of the command
        lines.append(printable(curl_command(_safe(record), url=url)))
    return "\n".join(lines)


def run_command(args: argparse.Namespace) -> int:
    """``chatcompat repro``: print the curl command(s) (0), or say why there are none (2)."""
    try:
        entry, base_url = _entry(args.report, args.check)
    except ValueError as exc:
        print(f"chatcompat repro: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(repro_text(entry, base_url, args.base_url))
    return EXIT_OK
