"""The official openai npm client against the mock: ``node --test`` in tests/npm."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NPM_TESTS = Path(__file__).parent.parent / "npm"


@pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are not installed (CI installs them: .ci/run runs npm ci in tests/npm)",
)
def test_openai_npm_client_contract():
    if not (NPM_TESTS / "node_modules" / "openai").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NPM_TESTS, check=True, timeout=300
        )
    done = subprocess.run(
        ["node", "--test"],
        cwd=NPM_TESTS,
        env={**os.environ, "CHATCOMPAT_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    assert "# fail 0" in done.stdout
    assert "# pass 0" not in done.stdout
