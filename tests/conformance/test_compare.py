"""chatcompat compare: two real reports of the suite against the mock (clean, then with defects,
another model, a capability withdrawn and other checks), in each format; exit 1 when OTHER
regresses, 0 when not, 2 for input that is not a report v2 or an output that cannot be
written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from chatcompat.cli import main
from mockserver import MockConfig, MockServer

BASE_CHECKS = ("sse_done", "chunk_schema", "finish_empty_delta", "models_list", "n_nonstream")
# OTHER: models_list not run, usage_nonstream run; n withdrawn, so n_nonstream is skipped
OTHER_CHECKS = ("sse_done", "chunk_schema", "finish_empty_delta", "n_nonstream", "usage_nonstream")
DEFECTS = ("missing-done", "content-in-finish-chunk")  # sse_done fails, finish_empty_delta warns


def check(path: Path, model: str, checks: tuple[str, ...], *extra: str, **config) -> Path:
    """Run ``chatcompat check --profile mock`` against a mock serving ``model`` so configured;
    the JSON report at ``path``."""
    with MockServer(MockConfig(models=(model,), **config)) as server:
        args = ["check", "--base-url", server.base_url, "--model", model, "--profile", "mock"]
        args += [word for check_id in checks for word in ("--check", check_id)]
        main([*args, *extra, "--report-json", str(path)])
    return path


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("reports")
    base = check(folder / "base.json", "m", BASE_CHECKS)
    other = check(folder / "other.json", "m2", OTHER_CHECKS, "--without", "n", defects=DEFECTS)
    return base, other


def compare(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["compare", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_lists_each_kind_of_change_by_group_with_both_sides(reports, capsys):
    base, other = reports
    code, out, err = compare(capsys, str(base), str(other), "--format", "json")
    assert (code, err) == (1, "")
    data = json.loads(out)
    kinds = {c["id"]: c["kind"] for c in data["regressions"]}
    assert kinds == {
        "sse_done": "regressed",
        "finish_empty_delta": "now_warns",
        "models_list": "no_longer_run",
        "n_nonstream": "no_longer_run",
    }
    groups = [c["group"] for c in data["regressions"]]
    assert groups == ["stream", "stream", "n", "models"]  # GROUPS order
    by_id = {c["id"]: c for c in data["regressions"] + data["improvements"]}
    assert by_id["sse_done"]["base"] == {"status": "passed", "reason": ""}
    assert by_id["sse_done"]["other"]["status"] == "failed"
    assert "[DONE]" in by_id["sse_done"]["other"]["reason"]
    assert by_id["finish_empty_delta"]["severity"] == "should"
    assert by_id["models_list"]["other"] == {"status": None, "reason": ""}
    assert by_id["n_nonstream"]["other"]["status"] == "skipped"
    assert "n" in by_id["n_nonstream"]["other"]["reason"]  # why it was skipped
    assert [(c["id"], c["kind"]) for c in data["improvements"]] == [
        ("usage_nonstream", "newly_run")
    ]
    assert data["counts"] == {
        "regressed": 1,
        "now_warns": 1,
        "no_longer_run": 2,
        "fixed": 0,
        "newly_run": 1,
        "unchanged": 1,
        "compared": 6,
    }
    assert data["regressed"] is True
    assert (data["base"]["model"], data["other"]["model"]) == ("m", "m2")
    assert data["base"]["checks"] == data["other"]["checks"] == 5


def test_the_runs_differences_are_named(reports, capsys):
    base, other = reports
    _, out, _ = compare(capsys, str(base), str(other), "--format", "json")
    differences = {d["what"]: (d["base"], d["other"]) for d in json.loads(out)["differences"]}
    assert list(differences) == ["endpoint", "model", "capabilities", "checks"]
    assert differences["model"] == ("m", "m2")
    assert differences["capabilities"] == ("n only here", "none only here")
    assert differences["checks"] == (
        "1 only here: models_list",
        "1 only here: usage_nonstream",
    )


def test_text_groups_changes_and_gives_reasons_and_the_verdict(reports, capsys):
    base, other = reports
    code, out, _ = compare(capsys, str(base), str(other))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"chatcompat compare: BASE {base} -> OTHER {other}"
    assert "  model: BASE m; OTHER m2" in lines
    at = lines.index("regressions (pass on BASE, not on OTHER): 4")
    assert lines[at + 1 : at + 3] == [
        "  stream:",
        "    sse_done [must] regressed: ✓ passed -> ✗ failed",
    ]
    assert lines[at + 3].startswith("      OTHER: the last event is not [DONE]")
    assert lines[at + 4] == "    finish_empty_delta [should] now warns: ✓ passed -> ⚠ warning"
    assert lines[at + 6 : at + 8] == [
        "  n:",
        "    n_nonstream [must] no longer run: ✓ passed -> ○ skipped",
    ]
    assert lines[at + 8].startswith("      OTHER: the endpoint does not claim capability 'n'")
    assert lines[at + 9 : at + 12] == [
        "  models:",
        "    models_list [must] no longer run: ✓ passed -> — not run",
        "      OTHER: the report has no such check",
    ]
    assert "improvements (pass on OTHER, not on BASE): 1" in lines
    assert lines[-1].startswith("OTHER regresses: 4 regression(s) (1 failed or crashed")


def test_markdown_is_two_tables_and_the_reverse_direction_does_not_regress(reports, capsys):
    base, other = reports
    code, out, _ = compare(capsys, str(other), str(base), "--format", "markdown")
    assert code == 0  # OTHER (the clean run) fails nothing that BASE passed
    tokens = MarkdownIt("commonmark").enable("table").parse(out)
    assert sum(t.type == "table_open" for t in tokens) == 3  # differences, two directions
    assert "## Regressions (pass on BASE, not on OTHER): 1" in out
    assert "| `usage` | `usage_nonstream` | `must` | no longer run | ✓ passed |" in out
    assert "## Improvements (pass on OTHER, not on BASE): 4" in out
    assert "| `stream` | `sse_done` | `must` | fixed | ✗ failed: `" in out
    assert out.rstrip().endswith("**")
    assert "**OTHER does not regress:" in out


def test_a_report_against_itself_changes_nothing(reports, capsys, tmp_path):
    base, _ = reports
    out_path = tmp_path / "deep" / "same.md"
    code, out, _ = compare(
        capsys, str(base), str(base), "--format", "markdown", "--output", str(out_path)
    )
    assert (code, out) == (0, "")
    written = out_path.read_text("utf-8")
    assert "Nothing: the same endpoint, model, capabilities" in written
    _, text, _ = compare(capsys, str(base), str(base))
    assert "the runs: the same endpoint, model" in text
    assert "## Regressions (pass on BASE, not on OTHER): 0\n\nNone." in written


def test_an_error_regresses_and_a_warning_that_passes_is_fixed(reports, capsys, tmp_path):
    base, _ = reports
    report = json.loads(base.read_text("utf-8"))
    for entry in report["checks"]:
        if entry["id"] == "chunk_schema":
            entry["status"], entry["message"] = "error", "KeyError: 'choices'"
    crashed = tmp_path / "crashed.json"
    crashed.write_text(json.dumps(report), "utf-8")
    code, out, _ = compare(capsys, str(base), str(crashed), "--format", "json")
    assert code == 1
    (change,) = json.loads(out)["regressions"]
    assert (change["id"], change["kind"], change["other"]["status"]) == (
        "chunk_schema",
        "regressed",
        "error",
    )
    code, out, _ = compare(capsys, str(crashed), str(base), "--format", "json")
    assert code == 0
    assert [c["kind"] for c in json.loads(out)["improvements"]] == ["fixed"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "cannot read it"),
        ("{not json", "not JSON"),
        (
            '{"report_version": 1, "base_url": "u", "model": "m", "checks": []}',
            "report_version is 1",
        ),
        ('{"report_version": 2, "base_url": "u", "model": "m", "checks": [1]}', "checks[0]"),
    ],
    ids=["missing", "not-json", "version-1", "bad-check"],
)
def test_input_that_is_not_a_report_is_exit_2_naming_the_file(
    reports, capsys, tmp_path, text, says
):
    path = str(tmp_path / "odd.json")
    if text is not None:
        Path(path).write_text(text, "utf-8")
    for args in ((str(reports[0]), path), (path, str(reports[0]))):
        code, out, err = compare(capsys, *args)
        assert (code, out) == (2, "")
        assert err.startswith(f"chatcompat compare: {path}: ") and says in err


def test_an_output_that_cannot_be_written_is_exit_2(reports, capsys, tmp_path):
    code, _, err = compare(capsys, str(reports[0]), str(reports[1]), "--output", str(tmp_path))
    assert code == 2 and "cannot write it" in err


def test_the_console_script_exits_with_the_verdict(reports):
    base, other = reports
    command = [
        sys.executable,
        "-c",
        "import sys; from chatcompat.cli import main; sys.exit(main())",
    ]
    regressed = subprocess.run([*command, "compare", str(base), str(other)], capture_output=True)
    fine = subprocess.run([*command, "compare", str(other), str(base)], capture_output=True)
    assert (regressed.returncode, fine.returncode) == (1, 0)
    assert b"OTHER regresses" in regressed.stdout
