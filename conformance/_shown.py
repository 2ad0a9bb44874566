"""What the suite shows of what an endpoint sent: the one path from received bytes to any output
(console, JSON report, JUnit, Markdown, the pytest plugin, exchange excerpts, error messages).

The order is the rule: first the API key is redacted, then control characters are escaped, and
only then is a text cut. Redacting after a cut would let a cut that splits the key leave its
first half in the report (issue 10, item 9); a raw ESC or NUL would make junit.xml not well
formed (XML 1.0 allows no C0 character but tab, LF and CR, not even as an entity) and would
drive the reader's terminal (item 10).

One path per output, for every string the server controls (model ids, header values, error
messages, body excerpts, redirect URLs):

- console and text reports (JUnit included): ``shown(text, key, inline=True)``, one line: no
  line break and no control or format character (Unicode categories Cc, Cf, Zl, Zp) is left
  raw, so a server cannot forge an output line; the lines the suite writes around it are joined
  with LF and the whole passes :func:`shown` again (which keeps LF and tab);
- Markdown: :func:`markdown_code` of that one line, a code span whose fence is longer than any
  backtick run inside (Markdown, HTML, links, images and mentions are inert in it);
- JSON: ``shown(text, key)`` for every string (LF kept: json.dumps escapes it), the file written
  with ``ensure_ascii`` so that U+2028 / U+2029 never appear raw.
"""

from __future__ import annotations

import bisect
import functools
import re
import sys
import unicodedata

from chatcompat.encoded_secrets import char_forms, secret_source

__all__ = [
    "REDACTED",
    "cut",
    "cut_keeping",
    "inline",
    "markdown_code",
    "printable",
    "redact",
    "redact_bytes",
    "shown",
]

REDACTED = "<redacted>"
_FRAGMENT = 8  # chars: a run of this many consecutive chars of the key counts as the key

# Characters shown as escapes: every control (Cc: C0, DEL, C1 with NEL and 0x9b, CSI on some
# terminals), format (Cf: bidi overrides and isolates, zero-width chars, soft hyphen, BOM, tags),
# line and paragraph separator (Zl U+2028, Zp U+2029) and lone surrogate (Cs: not encodable,
# not XML) by this Python's Unicode data, and U+FFFE/U+FFFF (not XML). str.splitlines breaks
# on no other character.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_KEPT = "\t\n"  # by printable (a text's own layout); inline escapes them too


@functools.cache
def _hidden_codes() -> frozenset[int]:
    """The code points shown as escapes, from this Python's unicodedata (about 0.1 s, once)."""
    codes = (c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in _HIDDEN)
    return frozenset({*codes, 0xFFFE, 0xFFFF})


@functools.cache
def _unprintable(keep: str) -> re.Pattern[str]:
    """A character class of the characters shown as escapes, but those in ``keep``."""
    codes = sorted(_hidden_codes() - {ord(c) for c in keep})
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    spans = "".join(f"\\U{a:08x}" + (f"-\\U{b:08x}" if b > a else "") for a, b in ranges)
    return re.compile(f"[{spans}]")


_NAMED = {"\n": "\\n", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every control, format or separator character (Unicode categories Cc, Cf,
    Zl, Zp; a lone surrogate) written as a visible escape (``ESC`` as ``\\x1b``, U+2028 as
    ``\\u2028``, U+E0041 as ``\\U000e0041``); tab and LF stay, CR becomes ``\\x0d``. For a
    text whose lines the suite laid out; safe on a terminal and as XML 1.0 text."""
    return _escaped(text, _KEPT)


def _escaped(text: str, keep: str) -> str:
    return _unprintable(keep).sub(_escape, text)


def inline(text: str) -> str:
    """:func:`printable` on one line: LF written ``\\n`` and tab ``\\t`` as well. For any text
    the server controls that an output line holds: no raw line break is left to forge a line."""
    return _escaped(text, "")


def markdown_code(text: str, *, cell: bool = False) -> str:
    """``text`` (made :func:`inline` first) as a Markdown code span: fenced by one more backtick
    than its longest run of backticks (so no run inside closes it), padded by a space each side
    when it starts or ends with a backtick or a space (CommonMark 0.31, 6.1: then one space each
    side is stripped, unless the text is all spaces; an empty text shows as one space), so
    Markdown, HTML, links, images and mentions in it are shown, not rendered. In a table
    ``cell``, ``|`` is written ``\\x7c`` (GFM splits a row at every ``|`` not escaped, code spans
    included, and a ``\\`` before ``\\|`` would escape the backslash instead)."""
    text = inline(text)
    if cell:
        text = text.replace("|", "\\x7c")
    runs = re.findall("`+", text)
    fence = "`" * (max(map(len, runs), default=0) + 1)
    if not text.strip(" "):  # all spaces are kept as they are; empty shows as one space
        text = text or " "
    elif text[0] in "` " or text[-1] in "` ":
        text = f" {text} "
    return f"{fence}{text}{fence}"


@functools.lru_cache(maxsize=8)
def _pattern(secret: str, as_bytes: bool) -> re.Pattern[str]:
    """The key in any mix of its forms (:func:`chatcompat.encoded_secrets.char_forms`), char by
    char; with ``as_bytes``, for bytes read as latin-1 chars (a char as itself is its UTF-8)."""
    return re.compile(secret_source(secret, raw=as_bytes), re.DOTALL)


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
    forms = {form for char in set(secret) for form in char_forms(char)}
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


def cut_keeping(text: str, limit: int, keep: list[tuple[int, int]]) -> str:
    """``text`` cut as :func:`cut` cuts it, but the spans ``keep`` ((start, end) offsets, what
    a failure names) whole: the text between and around them shares what ``limit`` leaves,
    each stretch cut in its middle. :func:`cut` itself when nothing is kept or nothing cut."""
    spans = sorted((max(0, a), min(len(text), b)) for a, b in keep if a < b)
    if len(text) <= limit or not spans:
        return cut(text, limit)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    kept = sum(end - start for start, end in merged)
    share = max(limit - kept, 0) // (len(merged) + 1)
    parts, at = [], 0
    for start, end in merged:
        parts += [cut(text[at:start], share), text[start:end]]
        at = end
    parts.append(cut(text[at:], share))
    return "".join(parts)


def shown(
    data: bytes | str,
    secret: str | None = None,
    limit: int | None = None,
    *,
    inline: bool = False,
) -> str:
    """``data`` as a report shows it: decoded (UTF-8, bad bytes replaced), ``secret`` redacted,
    control characters escaped (:func:`printable`; :func:`inline`, on one line, when
    ``inline``), then cut to ``limit`` chars (the middle elided), in that order."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = _escaped(redact(text, secret), "" if inline else _KEPT)
    return text if limit is None else cut(text, limit)
