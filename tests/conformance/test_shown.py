"""conformance._shown: the key redacted in every form before any cut, control characters
escaped, then the cut (issue 10, items 9 and 10); server text on one line and in safe code
spans (its follow-up: line breaks, U+2028, Markdown and HTML injection)."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import unicodedata
import xml.etree.ElementTree as ET
from html import unescape as html_unescape
from urllib.parse import quote

import pytest
from markdown_it import MarkdownIt

from conformance._outcome import Outcome, Status
from conformance._shown import (
    cut,
    cut_keeping,
    inline,
    markdown_code,
    printable,
    redact,
    redact_bytes,
    shown,
)

from .test_report import EXCHANGE

KEY = "sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN/OP+QR"
# Every length the suite cuts a shown text at: checks' received excerpts (80, 200, 300, 500),
# the exchange excerpts (300 for a request, 600 for an answer, halves of them), the model
# listing's error (200).
CUTS = (80, 150, 200, 300, 500, 600)


def fragments(text: str, size: int = 6) -> list[str]:
    """The runs of ``size`` consecutive chars of KEY that ``text`` holds."""
    return [KEY[i : i + size] for i in range(len(KEY) - size + 1) if KEY[i : i + size] in text]


def json_escaped(secret: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in secret)


FORMS = {
    "plain": KEY,
    "json-dumps": json.dumps(KEY)[1:-1].replace("/", "\\/"),
    "json-u-escaped": json_escaped(KEY),
    "json-u-escaped-upper": json_escaped(KEY).upper().replace("\\U", "\\u"),
    "percent-encoded": quote(KEY, safe=""),
    "mixed": KEY[:10] + json_escaped(KEY[10:30]) + quote(KEY[30:], safe=""),
}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_redact_hides_the_key_in_each_of_its_forms(form):
    assert redact(f"before {form} after", KEY) == "before <redacted> after"
    data = f'{{"echo": "{form}"}}'.encode()
    assert redact_bytes(data, KEY) == b'{"echo": "<redacted>"}'


@pytest.mark.parametrize("limit", CUTS, ids=[f"cut-{n}" for n in CUTS])
@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_no_cut_leaves_part_of_the_key(limit, form):
    """The key placed across each cut point, at every offset: nothing of it is shown."""
    for left in range(1, len(form)):
        head = "x" * (limit - left)
        for text in (head + form + "y" * 50, "y" * 50 + form + head[: limit // 2]):
            assert fragments(shown(text, KEY, limit)) == [], (limit, left)
            assert fragments(redact(text, KEY)[:limit]) == [], (limit, left)


def test_fragments_of_the_key_are_redacted_wherever_they_come_from():
    # what another cut (or an answer split into stream events) leaves of the key
    text = f"first half {KEY[:20]} | second half {KEY[25:]} | too short {KEY[:5]}"
    assert (
        redact(text, KEY) == f"first half <redacted> | second half <redacted> | too short {KEY[:5]}"
    )


def test_fragments_escaped_or_encoded_are_redacted_too():
    # a server that cut its own reflection of the escaped key
    escaped = json_escaped(KEY)
    text = f"head {escaped[:100]} | tail {escaped[-100:]} | url {quote(KEY, safe='')[:40]}"
    assert fragments(redact(text, KEY)) == []
    assert json_escaped(KEY[3:9]) not in redact(text, KEY)
    assert redact(f"{json_escaped(KEY[:8])}\\u0000", KEY) == "<redacted>\\u0000"


def test_a_short_key_is_redacted_whole():
    assert redact("key=abc, abc!", "abc") == "key=<redacted>, <redacted>!"
    assert redact("nothing", None) == redact("nothing", "") == "nothing"


def test_redact_bytes_keeps_json_json():
    body = json.dumps({"a": KEY, "b": [KEY, "x"]}).encode()
    assert json.loads(redact_bytes(body, KEY)) == {"a": "<redacted>", "b": ["<redacted>", "x"]}


def test_a_non_ascii_key_is_redacted_in_bytes_and_text():
    key = "clé-secrète-ünïcode"
    assert redact_bytes(f"[{key}]".encode(), key) == b"[<redacted>]"
    assert redact_bytes(json.dumps(key).encode(), key) == b'"<redacted>"'
    assert redact(f"[{key}]", key) == "[<redacted>]"


CONTROLS = "\x1b[2J\x1b]0;owned\x07 \x00 \r \x08 \x7f \x9b31m \ud800 \ufffe \u202e"


def test_printable_escapes_every_control_character_visibly():
    text = printable(f"a\tb\n{CONTROLS}")
    assert text == (
        "a\tb\n\\x1b[2J\\x1b]0;owned\\x07 \\x00 \\x0d \\x08 \\x7f \\x9b31m \\ud800 \\ufffe \\u202e"
    )
    assert printable(text) == text
    ET.fromstring(f"<a>{text}</a>")  # well-formed XML 1.0
    text.encode("utf-8")  # no lone surrogate left


def test_shown_redacts_escapes_then_cuts():
    text = shown(b"\x1b[2J" + KEY.encode() + b"\x00" * 500, KEY, 40)
    assert text.startswith("\\x1b[2J<redacted>\\x0")
    assert "[... " in text and "\x1b" not in text and "\x00" not in text
    assert cut("abc", 2) == "a [... 1 of 3 chars ...] c"


def test_outcome_and_exchange_lines_are_printable():
    exchange = dataclasses.replace(
        EXCHANGE,
        headers={"content-type": "application/json", "x-request-id": "\x1b[31mreq"},
        body=f"\x1b[2J{CONTROLS}".encode("utf-8", "surrogatepass"),
        error="reset \x00",
    )
    outcome = Outcome(Status.FAILED, "bad \x1b[2J", "\x00", CONTROLS, exchange)
    for line in outcome.lines():
        assert printable(line) == line, line
    excerpt = exchange.excerpt()
    assert "\x1b" not in json.dumps(excerpt, ensure_ascii=False)


# Characters that break a line or hide text (Unicode categories Zl, Zp, Cc, Cf): U+2028 and
# U+2029, NEL, the separators str.splitlines breaks on, zero-width and bidi marks, the BOM,
# the soft hyphen, a tag character (issue 10 follow-up: U+2028 passed raw where U+202E did not).
SEPARATORS = "\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e\u200b\u200d\u200e\u2066\ufeff\xad\U000e0041"
HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def hidden_chars(text: str, keep: str = "") -> set[str]:
    """The characters of ``text`` of a hidden category (but those in ``keep``)."""
    return {c for c in text if c not in keep and unicodedata.category(c) in HIDDEN}


def every_hidden_char() -> str:
    return "".join(
        chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in HIDDEN
    )


def test_printable_escapes_every_control_format_and_separator_character():
    chars = every_hidden_char()
    assert "\u2028" in chars and "\u2029" in chars and "\U000e0041" in chars
    text = printable(chars)
    assert hidden_chars(text, keep="\t\n") == set()
    assert text.count("\n") == 1 and text.count("\t") == 1
    assert printable(SEPARATORS) == (
        "\\u2028\\u2029\\x85\\x0b\\x0c\\x1c\\x1d\\x1e\\u200b\\u200d\\u200e\\u2066\\ufeff\\xad"
        "\\U000e0041"
    )
    assert printable(text) == text


def test_inline_leaves_no_line_break_of_any_kind():
    text = inline(every_hidden_char() + "a\nb\r\nc\td")
    assert hidden_chars(text) == set()
    assert len(text.splitlines()) == 1  # splitlines breaks on every separator, U+2028 too
    assert inline("a\nb\tc") == "a\\nb\\tc"
    assert shown("k=KEY\nforged", "KEY", inline=True) == "k=<redacted>\\nforged"
    assert inline(text) == text


# What a red-team server listed as its model id (/tmp/rt/mdinj.py): Markdown, HTML, an image
# (a tracking pixel), a link, a mention, a code span to close, a table cell to end.
MD_PAYLOAD = (
    "mx` | injected | cell |\n\n## HEADING\n![t](http://127.0.0.1:1/track.png) "
    "<img src=x onerror=alert(1)> @everyone </details> [click](javascript:alert(1)) ``` `"
)


def rendered(markdown: str) -> str:
    """``markdown`` as HTML, by a CommonMark parser with GFM tables (markdown-it-py, which
    schemathesis brings through rich)."""
    return str(MarkdownIt("commonmark").enable("table").render(markdown))


def outside_code(html: str) -> str:
    """``html`` without its <code> elements."""
    return re.sub(r"<code>.*?</code>", "", html, flags=re.S)


@pytest.mark.parametrize("cell", [False, True], ids=["inline", "table-cell"])
def test_markdown_code_renders_server_text_as_code_and_nothing_else(cell):
    span = markdown_code(MD_PAYLOAD, cell=cell)
    assert "\n" not in span and span.startswith("```` ") and span.endswith(" ````")
    row = f"| a | {span} | b |"
    html = rendered(f"| x | y | z |\n|---|---|---|\n{row}\n" if cell else f"# T {span} end\n")
    assert "<code>" in html
    for tag in ("<img", "<a ", "<h2", "</details>", "<script"):
        assert tag not in html
    rest = outside_code(html)
    assert "@everyone" not in rest and "HEADING" not in rest and "injected" not in rest
    if cell:
        assert re.findall(r"<td>(.*?)</td>", html, flags=re.S)[0::3] == ["a"]
        assert html.count("<td>") == 3  # the row kept its three cells
    (code,) = re.findall(r"<code>(.*?)</code>", html, flags=re.S)
    assert html_unescape(code) == inline(MD_PAYLOAD).replace("|", "\\x7c" if cell else "|")


@pytest.mark.parametrize("text", ["", " ", "`", "``a``", " a ", "a\\", "\\|", "a`b"], ids=repr)
def test_markdown_code_keeps_the_text_exactly(text):
    html = rendered(f"x {markdown_code(text)} y\n")
    (code,) = re.findall(r"<code>(.*?)</code>", html, flags=re.S)
    assert html_unescape(code) == (text or " ")  # an empty text shows as one space
    table = f"| a | b | c |\n|---|---|---|\n| x | {markdown_code(text, cell=True)} | y |\n"
    cells = re.findall(r"<td>(.*?)</td>", rendered(table), flags=re.S)
    assert cells[0::2] == ["x", "y"]
    (code,) = re.findall(r"<code>(.*?)</code>", cells[1], flags=re.S)
    assert html_unescape(code) == (text or " ").replace("|", "\\x7c")


def test_cut_keeping_keeps_the_named_spans_whole_and_cuts_the_rest():
    text = "a" * 200 + "[KEPT ONE]" + "b" * 200 + "[KEPT TWO]" + "c" * 200
    one, two = text.index("[KEPT ONE]"), text.index("[KEPT TWO]")
    kept = cut_keeping(text, 100, [(one, one + 10), (two, two + 10)])
    assert "[KEPT ONE]" in kept and "[KEPT TWO]" in kept
    assert kept.startswith("a" * 13) and kept.endswith("c" * 13)  # (100 - 20) // 3 // 2 each
    assert len(kept) < len(text)
    assert cut_keeping(text, 100, []) == cut(text, 100)
    assert cut_keeping("short", 100, [(0, 2)]) == "short"
