"""README.md: its first lines, its journeys run as written, its counts and figures match the
registries and a fresh run; the generated docs (scripts/readme_tables.py) are not stale; every
relative link in the README, docs/ and bench/README.md leads somewhere."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conformance import CAPABILITIES, CHECKS, PROFILES
from mockserver import DEFECTS, QUIRKS

from . import test_cli
from .conftest import INSTALLED_PACKAGE

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text("utf-8")


def load(name: str, path: Path) -> ModuleType:
    """The module of the file ``path`` (a script, or another test file), imported as ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


readme_tables = load("readme_tables", ROOT / "scripts" / "readme_tables.py")
# The console scripts of the environment running the tests (chatcompat, pytest) come first.
ENV = {
    **{k: v for k, v in os.environ.items() if k != "CHATCOMPAT_API_KEY"},
    "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
}


def journey(name: str) -> str:
    """The fenced block right after ``<!-- journey: NAME -->`` in README.md."""
    found = re.findall(rf"<!-- journey: {name} -->\n```\w+\n(.*?)^```$", TEXT, re.S | re.M)
    assert len(found) == 1, f"README.md: {len(found)} blocks marked journey {name}"
    return found[0]


def first_cells(table):
    """The first cell of every row of a generated table, backticks off."""
    return [line.split(" | ")[0].removeprefix("| `").removesuffix("`") for line in table[2:]]


# --- the first lines ---------------------------------------------------------------------------


def test_the_readme_opens_with_the_title_a_paragraph_and_the_two_set_up_commands():
    title, paragraph, block = TEXT.split("\n\n")[:3]
    assert title == "# chatcompat"
    assert not paragraph.startswith(("#", "```", "-", "|"))
    lines = block.splitlines()
    assert lines[0] == "```sh" and lines[-1] == "```"
    commands = [line.split("#")[0].strip() for line in lines[1:-1]]
    assert commands == [
        "pip install -c constraints.txt . && chatcompat check",
        "pip install -c constraints.txt tox && tox",
    ]


# --- the counts and figures ----------------------------------------------------------------------


def test_the_readme_counts_match_the_registries():
    must = sum(c.severity == "must" for c in CHECKS.values())
    for stated in (
        f"runs the {len(CHECKS)} checks",
        f"Each of the {len(CHECKS)} checks",
        f"a MUST ({must} checks:",
        f"a SHOULD ({len(CHECKS) - must}:",
        f"({len(CAPABILITIES)} capabilities; {len(PROFILES)} built-in profiles)",
        f"{len(DEFECTS)} defect modes, {len(QUIRKS)} of them quirks",
    ):
        assert stated in " ".join(TEXT.split()), stated


def test_the_default_run_gives_what_the_readme_says(tmp_path):
    """The main job (`chatcompat check`, the README's first command) as the README quotes it."""
    line = re.search(
        r"^(\d+) checks: (\d+) passed, (\d+) failed, (\d+) warning, (\d+) skipped, "
        r"(\d+) error in [\d.]+ s; (\d+) requests",
        TEXT,
        re.M,
    )
    assert line, "README.md quotes no summary line of `chatcompat check`"
    checks, passed, failed, warning, skipped, error, requests = map(int, line.groups())
    done = run(tmp_path, "chatcompat", "check", "--report-json", "r.json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "r.json").read_text("utf-8"))
    summary = {"passed": passed, "failed": failed, "warning": warning, "skipped": skipped}
    assert report["summary"] == {**summary, "error": error}
    assert checks == len(CHECKS) == len(report["checks"])
    if INSTALLED_PACKAGE:  # the README's figure is the installed package's (its first command)
        assert report["requests"] == requests
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no .hypothesis/


# --- the journeys, run as written ----------------------------------------------------------------


def mock_process(command: str):
    """The mock that the README line ``command`` (``chatcompat mock --port 8000 ...``) starts, on
    a free port instead, in a child process (tests/test_cli.py's ``mock_process``)."""
    args = command.split()
    assert args[:4] == ["chatcompat", "mock", "--port", "8000"], command
    return test_cli.mock_process(*args[4:])


def run(cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in ``cwd`` with the test environment's console scripts first on PATH."""
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def test_journey_ci_gate(tmp_path):
    with mock_process("chatcompat mock --port 8000 --model my-model") as base_url:
        script = journey("ci-gate").replace("http://127.0.0.1:8000/v1", base_url)
        done = run(tmp_path, "bash", "-c", script)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text("utf-8"))
    assert report["ok"] is True and report["model"] == "my-model"
    assert report["summary"]["failed"] == report["summary"]["warning"] == 0
    assert (tmp_path / "junit.xml").read_text("utf-8").startswith("<?xml")
    assert "chatcompat" in (tmp_path / "summary.md").read_text("utf-8")


def test_journey_contract_tests(tmp_path):
    (tmp_path / "test_contract.py").write_text(journey("contract-tests"), "utf-8")
    done = run(
        tmp_path, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_contract.py"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


def test_journey_offline_app(tmp_path):
    command = journey("offline-mock").split("#")[0].strip()
    assert command == "chatcompat mock --port 8000"
    with mock_process(command) as base_url:
        app = journey("offline-app").replace("http://127.0.0.1:8000/v1", base_url)
        (tmp_path / "app.py").write_text(app, "utf-8")
        done = run(tmp_path, sys.executable, "app.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


# --- the generated docs --------------------------------------------------------------------------


def test_the_generated_docs_match_the_registries():
    assert readme_tables.drift() == "", "docs/ drifted: python scripts/readme_tables.py"


def test_every_check_and_every_defect_has_a_row():
    assert sorted(first_cells(readme_tables.checks_table().splitlines())) == sorted(CHECKS)
    kill_matrix = readme_tables.tomllib.loads(readme_tables.KILL_MATRIX.read_text("utf-8"))
    defects = readme_tables.defects_table(kill_matrix).splitlines()
    assert sorted(first_cells(defects)) == sorted(DEFECTS)


def test_check_prints_the_drift_and_exits_1_then_a_rewrite_fixes_it(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in readme_tables.DOCUMENTS:
        shutil.copy(ROOT / "docs" / name, docs / name)
    row = f"| `missing-done` | {DEFECTS['missing-done'].doc} |"
    text = (docs / "defects.md").read_text("utf-8")
    assert text.count(row) == 1
    (docs / "defects.md").write_text(text.replace(row, "| `missing-done` | old text |"))
    (docs / "profiles.md").unlink()
    assert readme_tables.main(["--check", "--docs", str(docs)]) == 1
    diff = capsys.readouterr().out
    assert "-| `missing-done` | old text |" in diff
    assert f"+{row}" in diff
    assert "+# Capabilities and profiles" in diff
    assert readme_tables.main(["--docs", str(docs)]) == 0
    for name in readme_tables.DOCUMENTS:
        assert (docs / name).read_text("utf-8") == (ROOT / "docs" / name).read_text("utf-8")
    assert readme_tables.main(["--check", "--docs", str(docs)]) == 0
    assert capsys.readouterr().out == ""


def test_a_defect_without_a_row_is_an_error():
    with pytest.raises(ValueError, match="defects without a row"):
        readme_tables.defects_table({})


def test_the_options_tables_list_every_option_of_every_command():
    for name, (command, _) in readme_tables._subcommands().items():
        table = readme_tables.options_table(command)
        for action in command._actions:
            if action.option_strings and action.option_strings[0] != "-h":
                assert f"`{', '.join(action.option_strings)}" in table, (name, action)


# --- links and figures in the docs ---------------------------------------------------------------

PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but - and _ dropped, spaces -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(page):
    text = re.sub(r"^```.*?^```$", "", page.read_text("utf-8"), flags=re.S | re.M)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", linked.read_text("utf-8"), re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: {target}"


def test_every_benchmark_section_names_its_command():
    sections = re.split(r"^## ", (ROOT / "bench" / "README.md").read_text("utf-8"), flags=re.M)
    for section in sections[1:]:
        script = re.search(r"`(bench/\w+\.py)`", section.splitlines()[0])
        assert script, section.splitlines()[0]
        assert f"python {script[1]}" in section, script[1]
