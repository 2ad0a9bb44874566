"""chatcompat matrix: real reports of the suite against the mock (flavours, a defect), rendered
as one matrix in Markdown and HTML; bad input is exit 2 naming the file."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from chatcompat.cli import main
from conformance import CHECKS, GROUPS, read_report, render_matrix
from mockserver import MockConfig, MockServer

HOSTILE_MODEL = "evil|<script>alert(1)</script>`**x**`"
# column -> (MockConfig keywords, model id)
ENDPOINTS = {
    "defect": ({"defects": ("missing-done",)}, "m"),
    "vllm": ({"flavour": "vllm"}, HOSTILE_MODEL),
    "llamacpp": ({"flavour": "llamacpp"}, "m"),
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """column -> the JSON report of ``chatcompat check --profile mock`` against the mock so
    configured (every mock stopped)."""
    folder = tmp_path_factory.mktemp("reports")
    paths = {}
    for name, (config, model) in ENDPOINTS.items():
        with MockServer(MockConfig(models=(model,), **config)) as server:  # type: ignore[arg-type]
            path = folder / f"{name}.json"
            args = ["check", "--base-url", server.base_url, "--model", model, "--profile", "mock"]
            main([*args, "--report-json", str(path)])
        paths[name] = path
    return paths


def table(markdown: str) -> tuple[list[str], dict[str, list[str]]]:
    """The head and the rows (check id -> cells) of the first table, as markdown-it-py (GFM
    tables) parses it; cell text as rendered (code spans' contents)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    rows: list[list[str]] = []
    for token in tokens:
        if token.type == "table_close":
            break
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append("".join(child.content for child in token.children or ()))
    head, *body = rows
    return head, {cells[1]: cells for cells in body}


def notes(markdown: str) -> dict[int, str]:
    """The numbered reasons under the table: number -> the line after ``N. ``."""
    found = {}
    for line in markdown.split("Reasons:", 1)[1].strip().splitlines():
        number, _, text = line.partition(". ")
        found[int(number)] = text
    return found


def test_the_defect_fails_in_its_column_and_passes_in_the_clean_ones(reports):
    columns = [read_report(path, name) for name, path in reports.items()]
    head, rows = table(render_matrix(columns, "markdown"))
    assert head == ["group", "check", "severity", "defect", "vllm", "llamacpp"]
    assert rows["sse_done"][3].startswith("✗ failed [")
    assert rows["sse_done"][4:] == ["✓ passed", "✓ passed"]
    assert rows["chunk_schema"][3:] == ["✓ passed"] * 3
    assert rows["err_auth"][3].startswith("○ skipped [")  # the mock profile claims no auth


def test_rows_follow_the_registry_by_group_with_severity(reports):
    columns = [read_report(reports["vllm"], "vllm")]
    _, rows = table(render_matrix(columns, "markdown"))
    expected = sorted(CHECKS.values(), key=lambda c: GROUPS.index(c.group))  # stable: registry
    assert list(rows) == [c.id for c in expected]
    assert [(r[0], r[2]) for r in rows.values()] == [(c.group, c.severity) for c in expected]


def test_each_reason_is_a_numbered_footnote_once(reports):
    markdown = render_matrix([read_report(p, n) for n, p in reports.items()], "markdown")
    _, rows = table(markdown)
    reasons = notes(markdown)
    number = int(rows["sse_done"][3].split("[")[1].rstrip("]"))
    assert reasons[number] == "failed: `the last event is not [DONE]`"
    skipped = {r[4] for check_id, r in rows.items() if CHECKS[check_id].capability == "auth"}
    assert len(skipped) == 1  # the same reason twice is one footnote
    assert sorted(reasons) == list(range(1, len(reasons) + 1))
    assert len(set(reasons.values())) == len(reasons)


def test_the_default_label_is_model_at_host_and_the_model_stays_a_code_span(reports):
    column = read_report(reports["vllm"])
    assert column.label.startswith(f"{HOSTILE_MODEL} @ 127.0.0.1:")
    markdown = render_matrix([column], "markdown")
    head, rows = table(markdown)
    assert len(head) == 4  # the | in the model id does not split the head
    assert all(len(cells) == 4 for cells in rows.values())
    assert head[3].startswith("evil\\x7c<script>alert(1)</script>`**x**` @ ")
    html_text = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<script>" not in html_text and "<strong>" not in html_text


class Checked(HTMLParser):
    """Raises on an end tag that closes no open element; keeps the tags and the titles."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.tags: list[str] = []
        self.titles: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.titles += [value for name, value in attrs if name == "title"]
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, (tag, self.open)
        self.open.pop()


def parsed(document: str) -> Checked:
    checker = Checked()
    checker.feed(document)
    checker.close()
    assert checker.open == []
    return checker


def test_the_html_is_one_well_formed_file_with_reasons_on_hover(reports):
    columns = [read_report(p, n) for n, p in reports.items()]
    document = render_matrix(columns, "html")
    checker = parsed(document)
    assert "script" not in checker.tags and "link" not in checker.tags
    assert "http" not in document.split("<body>")[0]  # nothing fetched from the network
    assert "the last event is not [DONE]" in checker.titles
    assert '<li id="note-1" value="1">failed: <code>the last event is not [DONE]</code>' in (
        document
    )


def test_the_html_holds_no_raw_server_text(reports):
    document = render_matrix([read_report(reports["vllm"])], "html")
    checker = parsed(document)
    assert "script" not in checker.tags
    assert "<script>" not in document and "&lt;script&gt;alert(1)&lt;/script&gt;" in document


def hostile(report: Path, folder: Path) -> Path:
    """``report`` with sse_done failed by a message full of markup and a line break, a check
    this suite does not know, and chunk_schema left out (an older or newer suite)."""
    data = json.loads(report.read_text("utf-8"))
    checks = [c for c in data["checks"] if c["id"] != "chunk_schema"]
    for entry in checks:
        if entry["id"] == "sse_done":
            entry |= {"status": "failed", "message": 'a | b\n<img src=x onerror="x()"> `c` "d"'}
    checks.append({**checks[0], "id": "future_check", "group": "future", "status": "passed"})
    path = folder / "hostile.json"
    path.write_text(json.dumps({**data, "checks": checks}), "utf-8")
    return path


def test_checks_missing_from_a_report_are_not_run_and_messages_are_escaped(reports, tmp_path):
    columns = [
        read_report(hostile(reports["llamacpp"], tmp_path), "old"),
        read_report(reports["vllm"], "new"),
    ]
    markdown = render_matrix(columns, "markdown")
    head, rows = table(markdown)
    assert rows["chunk_schema"][3:] == ["— not run", "✓ passed"]
    assert rows["future_check"][3:] == ["✓ passed", "— not run"]
    assert list(rows)[-1] == "future_check"  # an unknown group after the known ones
    assert all(len(cells) == len(head) for cells in rows.values())
    number = int(rows["sse_done"][3].split("[")[1].rstrip("]"))
    assert notes(markdown)[number] == 'failed: ``a | b\\n<img src=x onerror="x()"> `c` "d"``'
    document = render_matrix(columns, "html")
    checker = parsed(document)
    assert "img" not in checker.tags
    assert 'a | b\\n<img src=x onerror="x()"> `c` "d"' in checker.titles


def test_the_command_writes_markdown_and_html_and_labels_columns(reports, tmp_path, capsys):
    out_md, out_html = tmp_path / "m.md", tmp_path / "out" / "m.html"
    paths = [str(reports["defect"]), str(reports["llamacpp"])]
    label = f"clean={reports['llamacpp']}"
    args = ["matrix", *paths, "--label", label, "--markdown", str(out_md), "--html", str(out_html)]
    assert main(args) == 0
    head, _ = table(out_md.read_text("utf-8"))
    assert head[3].startswith("m @ 127.0.0.1:") and head[4] == "clean"
    parsed(out_html.read_text("utf-8"))
    assert capsys.readouterr().out == ""
    assert main(["matrix", paths[0], paths[0]]) == 0  # the same label twice: the stems follow
    head, _ = table(capsys.readouterr().out)
    assert head[3] == head[4] and head[3].endswith("(defect)")


def bad(folder: Path, name: str, text: str | None) -> str:
    path = folder / name
    if text is not None:
        path.write_text(text, "utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not JSON"),
        ('{"report_version": 1, "checks": []}', "report_version is 1, expected 2"),
        ("[]", "not a JSON object"),
        ('{"report_version": 2, "base_url": "u", "model": "m"}', "checks is not a list"),
        (
            '{"report_version": 2, "base_url": "u", "model": "m", "checks": [{"id": "a", '
            '"group": "g", "severity": "must", "status": "great"}]}',
            "checks[0].status is not one of",
        ),
        (None, "cannot read it"),
    ],
    ids=["not-json", "version-1", "a-list", "no-checks", "unknown-status", "missing-file"],
)
def test_a_file_that_is_not_a_v2_report_is_exit_2_naming_it(tmp_path, capsys, text, says):
    path = bad(tmp_path, "bad\x1b.json", text)
    assert main(["matrix", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"chatcompat matrix: {tmp_path}/bad\\x1b.json: ")
    assert says in err and "Traceback" not in err


def test_a_label_for_a_report_not_given_is_exit_2(reports, capsys):
    assert main(["matrix", str(reports["vllm"]), "--label", "x=other.json"]) == 2
    assert "other.json is not a report given" in capsys.readouterr().err
    assert main(["matrix", str(reports["vllm"]), "--label", "nolabel"]) == 2
    assert "expected NAME=REPORT" in capsys.readouterr().err


def test_the_console_script_says_why_without_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "chatcompat", "matrix", bad(tmp_path, "r.json", "{}")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"chatcompat matrix: {tmp_path}/r.json: not a chatcompat JSON report v2 "
        "(report_version is null, expected 2)\n"
    )
