"""`chatcompat check` leaves no .hypothesis/ folder in the directory it was started from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import configuration

from conformance._hypothesis_home import hypothesis_home, hypothesis_home_outside_cwd

from ..conftest import INSTALLED_PACKAGE

PROPERTY_CHECKS = ("prop_valid_requests", "prop_invalid_requests", "schemathesis_openapi")


def test_check_writes_hypothesis_files_to_the_cache_not_the_cwd(tmp_path):
    cwd, cache = tmp_path / "project", tmp_path / "cache"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    env["XDG_CACHE_HOME"] = str(cache)
    checks = [arg for check in PROPERTY_CHECKS for arg in ("--check", check)]
    done = subprocess.run(
        [sys.executable, "-m", "chatcompat", "check", "--max-examples", "3", *checks],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    assert list(cwd.iterdir()) == []
    if not INSTALLED_PACKAGE:  # hypothesis writes the constants of local source: to the cache
        assert (cache / "chatcompat" / "hypothesis" / "constants").is_dir()


def test_the_home_is_the_xdg_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert hypothesis_home() == tmp_path / "chatcompat" / "hypothesis"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert hypothesis_home() == Path.home() / ".cache" / "chatcompat" / "hypothesis"


def test_the_home_is_set_for_the_block_only(monkeypatch, tmp_path):
    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    before = configuration.storage_directory("x", intent_to_write=False).path
    with hypothesis_home_outside_cwd():
        inside = configuration.storage_directory("x", intent_to_write=False).path
    assert inside == tmp_path / "chatcompat" / "hypothesis" / "x"
    assert configuration.storage_directory("x", intent_to_write=False).path == before


def test_an_explicit_storage_directory_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(tmp_path / "mine"))
    before = configuration.storage_directory("x", intent_to_write=False).path
    with hypothesis_home_outside_cwd():
        assert configuration.storage_directory("x", intent_to_write=False).path == before
