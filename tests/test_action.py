"""The GitHub Action (action.yml) and its example workflow: both validate against
check-jsonschema's vendored GitHub schemas, the workflow passes actionlint, and the action's own
shell steps run here with bash against the mock: the job summary holds the Markdown report, the
outputs are set, the step fails with the check's exit code, and the API key never shows.

The steps run as the runner runs a composite action's: each ``run:`` with ``bash --noprofile
--norc -eo pipefail``, its ``env:`` resolved from the inputs (their defaults from action.yml) by
a small evaluator of the only expressions the file may use (``inputs.X``,
``github.action_path``, ``steps.ID.outputs.X``), a fresh ``$GITHUB_OUTPUT`` per step, one
``$GITHUB_STEP_SUMMARY``; after a failed step only ``if: always()`` steps run. Skipped: the
``uses:`` steps (setup-python) and the pip install (``id: install``), which this environment
already has done."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
WORKFLOW = ROOT / "examples" / "github-workflow.yml"
KEY = "sk-test-5f3a9c1e-never-shown"
CHECKS = "--check sse_done --check 'chunk_schema' --check models_list"
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
ALLOWED = re.compile(
    r"inputs\.(?P<input>[A-Za-z0-9_-]+)|github\.action_path"
    r"|steps\.(?P<step>[A-Za-z0-9_-]+)\.outputs\.(?P<output>[A-Za-z0-9_-]+)"
)


def tool(name: str) -> str:
    """The path of a console script of the test extra: beside this Python, else on PATH. Not
    installed: a failure in CI (the test extra installs it), else a skip."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; the test extra installs it")
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


@pytest.mark.parametrize(
    ("schema", "path"),
    [("vendor.github-actions", ACTION), ("vendor.github-workflows", WORKFLOW)],
    ids=["action", "workflow"],
)
def test_validates_against_the_github_schema(schema, path):
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_example_workflow_passes_actionlint():
    done = subprocess.run(
        [tool("actionlint"), "-no-color", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def evaluate(text: str, inputs: dict[str, str], outputs: dict[str, dict[str, str]]) -> str:
    """``text`` with each ``${{ EXPR }}`` replaced; an expression the evaluator does not know
    fails the test (the action may use these and nothing else)."""

    def one(match: re.Match[str]) -> str:
        found = ALLOWED.fullmatch(match.group(1).strip())
        assert found, f"expression {match.group(0)!r} is not one the action may use"
        if found["input"]:
            return inputs[found["input"]]
        if found["step"]:
            return outputs.get(found["step"], {}).get(found["output"], "")
        return str(ROOT)

    return EXPRESSION.sub(one, text)


def read_outputs(path: Path) -> dict[str, str]:
    """A ``$GITHUB_OUTPUT`` file: ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    found: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for item in lines:
                if item == delimiter:
                    break
                block.append(item)
            found[name] = "\n".join(block)
        elif line:
            name, _, value = line.partition("=")
            found[name] = value
    return found


@dataclass
class StepRun:
    name: str
    returncode: int
    stdout: str
    stderr: str


@dataclass
class ActionRun:
    steps: list[StepRun] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # the action's (its outputs:)
    summary: str = ""
    returncode: int = 0  # the first failed step's, else 0

    def printed(self) -> str:
        """Everything the steps printed, but the ``::add-mask::`` commands (which the runner
        reads and never shows)."""
        text = "".join(s.stdout + s.stderr for s in self.steps)
        return "\n".join(x for x in text.splitlines() if not x.startswith("::add-mask::"))


def run_action(given: dict[str, str], workspace: Path) -> ActionRun:
    """Run action.yml's shell steps with ``given`` inputs in ``workspace``."""
    action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    declared = action["inputs"]
    assert set(given) <= set(declared), set(given) - set(declared)
    inputs = {name: str(spec.get("default", "")) for name, spec in declared.items()}
    inputs.update(given)
    missing = [n for n, spec in declared.items() if spec.get("required") and n not in given]
    assert not missing, missing
    summary = workspace / "summary.md"
    summary.touch()
    outputs: dict[str, dict[str, str]] = {}
    result = ActionRun()
    for at, step in enumerate(action["runs"]["steps"]):
        assert step.get("if", "always()") == "always()", step  # the only condition evaluated
        if "uses" in step:
            assert step["uses"].startswith("actions/setup-python@v"), step
            continue
        assert "${{" not in step["run"], f"an expression inside a run: script: {step['name']}"
        if step.get("id") == "install" or (result.returncode and "if" not in step):
            continue
        output_file = workspace / f"output-{at}"
        output_file.touch()
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(workspace),
            "LANG": "C.UTF-8",
            "RUNNER_TEMP": str(workspace),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_OUTPUT": str(output_file),
            "GITHUB_STEP_SUMMARY": str(summary),
        }
        env.update({k: evaluate(str(v), inputs, outputs) for k, v in step.get("env", {}).items()})
        script = workspace / f"step-{at}.sh"
        script.write_text(step["run"], encoding="utf-8")
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            capture_output=True,
            text=True,
            env=env,
            cwd=workspace,
            timeout=240,
        )
        result.steps.append(StepRun(step["name"], done.returncode, done.stdout, done.stderr))
        if "id" in step:
            outputs[step["id"]] = read_outputs(output_file)
        result.returncode = result.returncode or done.returncode
    result.outputs = {
        name: evaluate(spec["value"], inputs, outputs) for name, spec in action["outputs"].items()
    }
    result.summary = summary.read_text(encoding="utf-8")
    return result


def assert_key_never_shown(run: ActionRun, workspace: Path) -> None:
    assert KEY not in run.printed()
    for path in workspace.rglob("*"):
        if path.is_file() and not path.name.startswith("step-"):
            assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path


def test_against_the_clean_mock_the_step_passes_and_the_summary_holds_the_report(
    start_mock, tmp_path
):
    mock = start_mock(api_key=KEY, models=("m",))
    run = run_action(
        {"base-url": mock.base_url, "api-key": KEY, "profile": "mock", "args": CHECKS},
        tmp_path,
    )
    assert run.returncode == 0, run.steps
    assert run.outputs["exit-code"] == "0"
    report_dir = tmp_path / "chatcompat-report"
    assert run.outputs["report-json"] == str(Path("chatcompat-report") / "report.json")
    for name, file in (("json", "report.json"), ("junit", "junit.xml"), ("md", "report.md")):
        assert (tmp_path / run.outputs[f"report-{name}"]) == report_dir / file
        assert (report_dir / file).stat().st_size > 0
    assert run.summary == (report_dir / "report.md").read_text(encoding="utf-8")
    assert "chatcompat passed" in run.summary and "3 passed, 0 failed" in run.summary
    # the model was not given: chatcompat took the first one GET /models lists
    assert '"model": "m"' in (report_dir / "report.json").read_text(encoding="utf-8")
    mask_step = run.steps[0]
    assert mask_step.stdout == f"::add-mask::{KEY}\n"
    assert_key_never_shown(run, tmp_path)


def test_against_a_defective_mock_the_step_fails_with_exit_1_after_the_summary(
    start_mock, tmp_path
):
    mock = start_mock(api_key=KEY, models=("m",), defects=("missing-done",))
    given = {"base-url": mock.base_url, "api-key": KEY, "model": "m", "profile": "mock"}
    run = run_action({**given, "args": CHECKS, "report-dir": "out/reports"}, tmp_path)
    assert run.returncode == 1
    assert run.outputs["exit-code"] == "1"
    assert [s.name for s in run.steps][-1] == "Fail on the check's exit code"
    assert run.steps[-1].returncode == 1
    assert "sse_done" in run.summary and "fail" in run.summary.lower()
    assert run.summary == (tmp_path / "out/reports/report.md").read_text(encoding="utf-8")
    assert_key_never_shown(run, tmp_path)


def test_what_the_check_prints_cannot_act_as_a_workflow_command(start_mock, tmp_path):
    mock = start_mock(models=("m",))
    run = run_action({"base-url": mock.base_url, "args": "--check models_list"}, tmp_path)
    check = next(s for s in run.steps if s.name == "Run chatcompat check")
    first, *_, last = check.stdout.splitlines()
    token = first.removeprefix("::stop-commands::")
    assert first != token and len(token) >= 32
    assert last == f"::{token}::"


def test_inputs_reach_chatcompat_as_data_never_as_shell(start_mock, tmp_path):
    mock = start_mock()  # serves any model name
    model = 'm"; touch pwned-model; echo "$(touch pwned-subst)'
    args = "--check models_list --timeout '30' `touch pwned-args` $(touch pwned-args2)"
    run = run_action({"base-url": mock.base_url, "model": model, "args": args}, tmp_path)
    assert not list(tmp_path.rglob("pwned*"))
    # the backquoted and $() words reached chatcompat as arguments, which it refused (exit 2)
    assert run.outputs["exit-code"] == "2", run.steps
    assert "unrecognized arguments: `touch pwned-args` $(touch pwned-args2)" in run.printed()
    assert "No report" in run.summary and "exited 2" in run.summary
    assert run.returncode == 2


def test_a_model_with_shell_characters_is_tested_by_its_name(start_mock, tmp_path):
    mock = start_mock()
    model = "m; $(touch pwned) `id` 'quoted'"
    run = run_action(
        {"base-url": mock.base_url, "model": model, "args": "--check models_list"}, tmp_path
    )
    assert not list(tmp_path.rglob("pwned*"))
    report = (tmp_path / "chatcompat-report" / "report.json").read_text(encoding="utf-8")
    assert '"model": "m; $(touch pwned) `id` \'quoted\'"' in report
    assert run.outputs["exit-code"] in ("0", "1")


def test_an_unreachable_endpoint_fails_with_exit_2_and_says_so_in_the_summary(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the step runs
    run = run_action({"base-url": f"http://127.0.0.1:{port}/v1", "model": "m"}, tmp_path)
    assert run.returncode == 2
    assert run.outputs == {
        "exit-code": "2",
        "report-json": "",
        "report-junit": "",
        "report-md": "",
    }
    assert "exited 2 before writing one" in run.summary
    assert "chatcompat check: " in run.printed()  # its one line on why it could not start


def test_an_unbalanced_quote_in_args_is_an_error_not_a_guess(start_mock, tmp_path):
    mock = start_mock(models=("m",))
    run = run_action({"base-url": mock.base_url, "args": "--check 'models_list"}, tmp_path)
    assert run.returncode == 2
    assert run.outputs["exit-code"] == "2"
    assert "::error::the args input cannot be split" in run.printed()
