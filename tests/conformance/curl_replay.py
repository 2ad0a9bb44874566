"""Run a report's reproductions (``chatcompat repro``'s curl commands) with the real curl, and
judge whether they show the defect the check caught.

"Shows the defect", for one check (the rule test_kill_matrix.py applies to every failed check):
each request of its ``repro``, run as ``chatcompat repro`` prints it against the defective
server, gets the status that was recorded as seen; and at least one of them gets an answer
that matches what was recorded (status, and the body excerpt the report keeps, both with the
per-answer ids and times masked) and differs from what the clean server answers to the same
curl (``repro --base-url CLEAN``): status, media type, the set of header names (Date and
Content-Length aside) or the masked body. Nothing passes vacuously: a check that failed
without a repro, a curl that could not run, or an answer the clean server gives too fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass

from conformance._shown import shown
from conformance.repro_cli import repro_text

# per-answer values that differ between two answers to one request: ids (numbered in order of
# first appearance, so that ids that should be one and are not, or the reverse, still differ),
# the system fingerprint, an excerpt's count of elided chars
_IDS = re.compile(r"(chatcmpl-|(?:call|req|chatcmpl|resp|cmpl)_)[A-Za-z0-9_-]+")
_VOLATILE = [
    (re.compile(r'"system_fingerprint": ?"[^"]*"'), '"system_fingerprint": "FP"'),
    (re.compile(r"\[\.\.\. \d+ of \d+ chars \.\.\.\]"), "[...]"),
]
_UNSTABLE_HEADERS = {"date", "content-length", "x-request-id", "request-id"}
REPLAY_TIMEOUT = 120  # seconds for one curl process (its own --max-time is the run's timeout)


_CREATED = re.compile(r'("created": ?)(\d+)')
_NOW_WITHIN = 86400  # seconds: a "created" this near now is the answer's time (a fixed one is not)


def _created(match: re.Match[str]) -> str:
    recent = abs(int(match.group(2)) - time.time()) < _NOW_WITHIN
    return match.group(1) + ("N" if recent else match.group(2))


def masked(text: str) -> str:
    """``text`` with the values that differ between two answers to one request masked."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"{match.group(1)}ID{numbers.setdefault(match.group(), len(numbers) + 1)}"

    text = _IDS.sub(number, text)
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return _CREATED.sub(_created, text)


@dataclass(frozen=True)
class Answer:
    status: int | None
    media_type: str
    header_names: frozenset[str]
    body: str  # the body as the report's excerpt shows it, masked
    whole: str = ""  # the whole body, masked
    error: str = ""

    @property
    def fingerprint(self) -> tuple[object, ...]:
        return (self.status, self.media_type, self.header_names, self.whole)


def run_curl(command: str, key: str | None) -> Answer:
    """Run ``command`` (as printed) in bash with $CHATCOMPAT_API_KEY set to ``key``."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if key:
        env["CHATCOMPAT_API_KEY"] = key
    # given on stdin, as a user pastes it: one argument is capped at 128 KiB (bash -c CMD)
    done = subprocess.run(
        ["bash"], input=command.encode(), capture_output=True, env=env, timeout=REPLAY_TIMEOUT
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/"):
        return Answer(None, "", frozenset(), "", "", done.stderr.decode("utf-8", "replace"))
    status = int(lines[0].split()[1])
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    names = frozenset(headers) - _UNSTABLE_HEADERS
    excerpt = masked(shown(body, limit=600)) if body else ""
    return Answer(status, media, names, excerpt, masked(shown(body)))


def curls(entry: dict, base_url: str, new_base: str | None = None) -> list[str]:
    """The curl commands ``chatcompat repro`` prints for ``entry``."""
    lines = repro_text(entry, base_url, new_base).splitlines()
    return [line for line in lines if line.startswith(("curl ", "printf "))]


def shows_the_defect(entry: dict, base_url: str, clean_base: str, key: str | None) -> str | None:
    """None when ``entry``'s reproduction shows the defect (the module's rule), else why not."""
    repro = entry.get("repro")
    if not repro or not repro.get("requests"):
        return "the check recorded no request"
    records = repro["requests"]
    defective = [run_curl(c, key) for c in curls(entry, base_url)]
    clean = [run_curl(c, key) for c in curls(entry, base_url, clean_base)]
    why = []
    shown_once = False
    for number, (record, got, other) in enumerate(zip(records, defective, clean, strict=True)):
        seen = record["seen"]
        if got.status != seen["status"]:
            why.append(
                f"request {number}: status {got.status} ({got.error}), seen {seen['status']}"
            )
            continue
        recorded = masked(seen["body"] or "")
        if got.body == recorded and got.fingerprint != other.fingerprint:
            shown_once = True
        else:
            same = "the clean server's too" if got.fingerprint == other.fingerprint else "differs"
            why.append(
                f"request {number}: the answer {same}: {got.body[:160]!r} / {recorded[:160]!r}"
            )
    if shown_once and not any("status" in w for w in why):
        return None
    return "; ".join(why) or "no request showed it"
