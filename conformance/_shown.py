"""What the suite shows of what an endpoint sent: the one path from received bytes to any output
(console, JSON report, JUnit, Markdown, the pytest plugin, exchange excerpts, error messages).

The order is the rule: first the API key is redacted, then control characters are escaped, and
only then is a text cut. Redacting after a cut would let a cut that splits the key leave its
first half in the report (issue 10, item 9); a raw ESC or NUL would make junit.xml not well
formed (XML 1.0 allows no C0 character but tab, LF and CR, not even as an entity) and would
drive the reader's terminal (item 10).
"""

from __future__ import annotations

import bisect
import functools
import re

__all__ = ["REDACTED", "cut", "printable", "redact", "redact_bytes", "shown"]

REDACTED = "<redacted>"
_FRAGMENT = 8  # chars: a run of this many consecutive chars of the key counts as the key

# Characters shown as escapes: C0 but tab and LF, DEL, C1 (0x9b is CSI on some terminals),
# lone surrogates (not encodable, not XML), U+FFFE/U+FFFF (not XML) and the bidi overrides
# (they reorder what a reader sees).
_UNPRINTABLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character written as a visible escape (``ESC`` as ``\\x1b``,
    a lone surrogate as ``\\ud800``); tab and LF stay, CR becomes ``\\x0d``. The result is safe on
    a terminal and as XML 1.0 text."""
    return _UNPRINTABLE.sub(_escape, text)


def _forms(char: str, as_bytes: bool) -> list[str]:
    """The ways ``char`` may appear in an answer, as regex alternatives: itself (its UTF-8 bytes
    as latin-1 chars when ``as_bytes``), JSON-escaped (``\\u0041``, ``\\/``) and percent-encoded
    (``%41``); hex digits in either case."""
    forms = [re.escape(char.encode().decode("latin-1") if as_bytes else char)]
    if ord(char) < 0x10000:
        forms.append(f"\\\\u{_hex(f'{ord(char):04x}')}")
    if char in '"\\/':
        forms.append(re.escape("\\" + char))
    forms.append("".join(f"%{_hex(f'{b:02x}')}" for b in char.encode()))
    return forms


def _hex(digits: str) -> str:
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in digits)


@functools.lru_cache(maxsize=8)
def _pattern(secret: str, as_bytes: bool) -> re.Pattern[str]:
    """The key in any mix of its forms (see :func:`_forms`), char by char."""
    return re.compile("".join(f"(?:{'|'.join(_forms(c, as_bytes))})" for c in secret))


_UNIT = re.compile(r"\\u[0-9a-fA-F]{4}|\\[\\/\"]|%[0-7][0-9a-fA-F]")  # one escaped char
_Segment = tuple[
    int, int, int, bool
]  # start in the decoded text, start in the text, length, escape


def _decoded(text: str) -> tuple[str, list[_Segment]]:
    """``text`` with its JSON escapes and ASCII percent-escapes decoded, and the segments it is
    made of: runs of plain chars, and single escapes (one decoded char each)."""
    parts: list[str] = []
    segments: list[_Segment] = []
    at, size = 0, 0
    for match in _UNIT.finditer(text):
        if match.start() > at:
            segments.append((size, at, match.start() - at, False))
            parts.append(text[at : match.start()])
            size += match.start() - at
        unit = match.group()
        hexes = unit[2:] if unit.startswith("\\u") else unit[1:]
        parts.append(unit[1] if len(unit) == 2 else chr(int(hexes, 16)))
        segments.append((size, match.start(), len(unit), True))
        size, at = size + 1, match.end()
    segments.append((size, at, len(text) - at, False))
    parts.append(text[at:])
    return "".join(parts), segments


def _in_text(position: int, segments: list[_Segment], starts: list[int], *, end: bool) -> int:
    """Where the decoded char at ``position`` starts in the text (ends, when ``end``)."""
    start, at, length, escape = segments[bisect.bisect_right(starts, position) - 1]
    if escape:
        return at + length if end else at
    return at + position - start + (1 if end else 0)


@functools.lru_cache(maxsize=8)
def _escapes(secret: str) -> re.Pattern[str]:
    """Any escaped form (JSON, percent) of a char of ``secret``."""
    forms = {form for char in set(secret) for form in _forms(char, False)[1:]}
    return re.compile("|".join(sorted(forms)))


def _without_fragments(text: str, secret: str) -> str:
    """``text`` with every run of at least _FRAGMENT consecutive chars of ``secret`` (or all of
    a shorter one), plain or escaped (:func:`_decoded`), replaced by ``<redacted>``."""
    size = min(_FRAGMENT, len(secret))
    # escapes of the key's chars to decode, or are its plain chars enough?
    escaped = ("\\" in text or "%" in text) and _escapes(secret).search(text) is not None
    decoded, segments = _decoded(text) if escaped else (text, [])
    spans: list[tuple[int, int]] = []
    for offset in range(len(secret) - size + 1):
        window = secret[offset : offset + size]
        at = decoded.find(window)
        while at != -1:
            spans.append((at, at + size))
            at = decoded.find(window, at + 1)
    parts, end = [], 0
    starts = [segment[0] for segment in segments]
    for start, stop in sorted(spans):
        if segments:
            start = _in_text(start, segments, starts, end=False)
            stop = _in_text(stop - 1, segments, starts, end=True)
        if start >= end:
            parts += [text[end:start], REDACTED]
        end = max(end, stop)
    return "".join(parts) + text[end:]


def _redacted(text: str, secret: str, *, as_bytes: bool, fragments: bool) -> str:
    text = _pattern(secret, as_bytes).sub(REDACTED, text)
    if fragments:
        text = _without_fragments(text, secret.encode().decode("latin-1") if as_bytes else secret)
    return text


def redact(text: str, secret: str | None, *, fragments: bool = True) -> str:
    """``text`` with ``secret`` replaced by ``<redacted>``: the key itself, JSON-escaped or
    percent-encoded in part or whole, and (with ``fragments``) any run of 8 or more of its
    consecutive chars (what a cut, or an answer split into pieces, leaves of it). Unchanged when
    ``secret`` is empty."""
    if not secret:
        return text
    return _redacted(text, secret, as_bytes=False, fragments=fragments)


def redact_bytes(data: bytes, secret: str | None, *, fragments: bool = False) -> bytes:
    """``data`` with ``secret`` replaced by ``<redacted>`` in its literal (UTF-8), JSON-escaped
    and percent-encoded forms, and with ``fragments`` also its runs of 8 or more chars (see
    :func:`redact`). Without ``fragments`` an answer keeps its shape: JSON stays JSON."""
    if not secret or not data:
        return data
    chars = data.decode("latin-1")  # bytes as chars, one to one
    return _redacted(chars, secret, as_bytes=True, fragments=fragments).encode("latin-1")


def cut(text: str, limit: int) -> str:
    """``text`` with its middle elided past ``limit`` chars (the end of a stream matters)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} [... {len(text) - 2 * half} of {len(text)} chars ...] {text[-half:]}"


def shown(data: bytes | str, secret: str | None = None, limit: int | None = None) -> str:
    """``data`` as a report shows it: decoded (UTF-8, bad bytes replaced), ``secret`` redacted,
    control characters escaped, then cut to ``limit`` chars (the middle elided), in that order."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = printable(redact(text, secret))
    return text if limit is None else cut(text, limit)
