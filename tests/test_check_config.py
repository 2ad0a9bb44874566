"""The config file of ``chatcompat check`` as a user meets it: the real command in a child
process, in a folder that holds the file (or below it), against the embedded mock."""

from __future__ import annotations

import json
import os

import pytest

from .test_check_run_control import check


def check_in(folder, *args, env=None):
    """``python -m conformance ARGS`` run in ``folder``."""
    return check(*args, cwd=folder, env=env)


@pytest.fixture
def repo(tmp_path):
    """A repository's root (a .git folder ends the search for a config file there)."""
    (tmp_path / ".git").mkdir()
    return tmp_path


def ran(report_path):
    """The ids of the checks the JSON report says ran (were not skipped)."""
    report = json.loads(report_path.read_text("utf-8"))
    return sorted(c["id"] for c in report["checks"] if c["status"] != "skipped")


def test_the_config_file_is_found_in_a_parent_and_its_paths_are_relative_to_it(repo):
    (repo / "chatcompat.toml").write_text(
        'check = ["sse_done", "models_list"]\nreport-json = "reports/run.json"\n'
        "max-requests = 50\nfail-fast = true\n",
        "utf-8",
    )
    below = repo / "src" / "pkg"
    below.mkdir(parents=True)
    done = check_in(below)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"config: {repo / 'chatcompat.toml'}" in done.stdout.splitlines()
    assert "2 checks: 2 passed" in done.stdout
    assert ran(repo / "reports" / "run.json") == ["models_list", "sse_done"]
    assert not (below / "reports").exists()


def test_the_command_line_wins_and_its_list_replaces_the_files(repo):
    (repo / "chatcompat.toml").write_text(
        'check = ["sse_done", "models_list"]\nreport-json = "from-file.json"\n', "utf-8"
    )
    done = check_in(repo, "--check", "role_first_only", "--report-json", "from-cli.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ran(repo / "from-cli.json") == ["role_first_only"]
    assert not (repo / "from-file.json").exists()


def test_the_pyproject_table_is_read_and_chatcompat_toml_wins_beside_it(repo):
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.chatcompat]\ncheck = ["models_list"]\n'
        'report-json = "r.json"\n',
        "utf-8",
    )
    done = check_in(repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"config: {repo / 'pyproject.toml'} [tool.chatcompat]" in done.stdout.splitlines()
    assert ran(repo / "r.json") == ["models_list"]
    (repo / "chatcompat.toml").write_text('check = ["sse_done"]\nreport-json = "r.json"\n', "utf-8")
    done = check_in(repo)
    assert f"config: {repo / 'chatcompat.toml'}" in done.stdout.splitlines()
    assert ran(repo / "r.json") == ["sse_done"]


def test_the_search_stops_at_the_repository_root(tmp_path):
    (tmp_path / "chatcompat.toml").write_text("max-request = 1\n", "utf-8")  # broken: not read
    (tmp_path / "project" / ".git").mkdir(parents=True)
    (tmp_path / "project" / "pyproject.toml").write_text('[project]\nname = "x"\n', "utf-8")
    done = check_in(tmp_path / "project", "--check", "models_list")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "config:" not in done.stdout


def test_config_names_a_file_explicitly(repo, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "ci.toml").write_text('check = ["models_list"]\nreport-json = "r.json"\n', "utf-8")
    (repo / "chatcompat.toml").write_text("max-request = 1\n", "utf-8")  # not read
    done = check_in(repo, "--config", str(elsewhere / "ci.toml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"config: {elsewhere / 'ci.toml'}" in done.stdout.splitlines()
    assert ran(elsewhere / "r.json") == ["models_list"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("max-request = 5\n", ["unknown key 'max-request'", "did you mean 'max-requests'?"]),
        ("probe = 1\n", ["probe must be a boolean", "got 1 (int)"]),
        ('max-requests = "5"\n', ["max-requests must be an integer", "got '5' (str)"]),
        ('check = "sse_done"\n', ["check must be a list of strings", "got 'sse_done' (str)"]),
        ('fail-on = "warnings"\n', ["fail-on must be one of failure, warning", "'warnings'"]),
        ('api-key = "sk-abcdefgh12345678"\n', ["api-key", "$CHATCOMPAT_API_KEY"]),
        ("check = [\n", ["chatcompat.toml"]),
    ],
    ids=["unknown-key", "not-bool", "not-int", "not-list", "not-a-choice", "api-key", "not-toml"],
)
def test_a_wrong_config_file_exits_2_naming_the_file_and_the_key(repo, text, said):
    (repo / "chatcompat.toml").write_text(text, "utf-8")
    done = check_in(repo)
    assert done.returncode == 2, done.stdout + done.stderr
    assert str(repo / "chatcompat.toml") in done.stderr
    for words in said:
        assert words in done.stderr
    assert "sk-abcdefgh12345678" not in done.stdout + done.stderr
    assert done.stdout == ""


def test_a_missing_config_file_exits_2(repo):
    done = check_in(repo, "--config", "nowhere.toml")
    assert done.returncode == 2
    assert "config file nowhere.toml not found" in done.stderr


def test_the_key_still_comes_from_the_environment_with_a_config_file(repo):
    (repo / "chatcompat.toml").write_text('check = ["err_auth"]\n', "utf-8")
    env = {**os.environ, "CHATCOMPAT_API_KEY": "sk-from-the-environment-123"}
    done = check_in(repo, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 checks: 1 passed" in done.stdout  # the embedded mock wants the key: auth claimed
    assert "sk-from-the-environment-123" not in done.stdout + done.stderr


def test_every_check_option_is_a_config_key_but_the_few_that_cannot_be():
    from conformance._config import options_from
    from conformance._profiles import PROFILES
    from conformance.cli import _OPTIONS

    keys = set(options_from(_OPTIONS, skip={"config", "list", "dialect"}, names=PROFILES))
    flags = {flags[0].removeprefix("--") for flags, _ in _OPTIONS}
    assert keys == flags - {"config", "list", "dialect", "api-key"}
    assert {"base-url", "check", "exclude", "fail-fast", "fail-on", "color"} <= keys
