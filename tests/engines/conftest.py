"""Fixtures of the engines tier (`tox -e engines`, which sets CHATCOMPAT_ENGINES_TIER=1; in the
ordinary test run these tests are skipped). CHATCOMPAT_ENGINES=vllm,llamacpp runs a subset.

One engine runs at a time: the ``engine`` fixture is session-scoped and parametrized, so pytest
runs every test of one engine, stops it, then starts the next."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from engine_harness import ROOT, EngineRun, load_specs, running, tail

SPECS = load_specs()
TIER = os.environ.get("CHATCOMPAT_ENGINES_TIER") == "1"
SELECTED = [
    name
    for name in os.environ.get("CHATCOMPAT_ENGINES", ",".join(SPECS)).split(",")
    if name in SPECS
]
# The reports and logs: $CHATCOMPAT_ENGINES_REPORTS, else build/engines (left for CI upload).
REPORTS = Path(os.environ.get("CHATCOMPAT_ENGINES_REPORTS", ROOT / "build" / "engines"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TIER:
        return
    skip = pytest.mark.skip(reason="the engines tier runs with `tox -e engines`")
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def reports_dir() -> Path:
    REPORTS.mkdir(parents=True, exist_ok=True)
    return REPORTS


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The reference model as `chatcompat export-model` writes it: (HF directory, GGUF file)."""
    where = tmp_path_factory.mktemp("model")
    hf_dir, gguf = where / "hf", where / "model.gguf"
    for fmt, path in (("hf", hf_dir), ("gguf", gguf)):
        subprocess.run(
            [sys.executable, "-m", "chatcompat", "export-model", "--format", fmt, str(path)],
            check=True,
            timeout=900,
        )
    return hf_dir, gguf


@pytest.fixture(scope="session", params=SELECTED)
def engine(
    request: pytest.FixtureRequest, exported_model: tuple[Path, Path], reports_dir: Path
) -> Iterator[EngineRun]:
    """One engine, installed in its cached environment, started on the exported model, and
    stopped after its tests (also when they fail)."""
    spec = SPECS[request.param]
    hf_dir, gguf = exported_model
    log = reports_dir / f"{spec.name}.server.log"
    log.write_text("")
    try:
        with running(spec, hf_dir if spec.model == "hf" else gguf, log) as server:
            yield EngineRun(server, hf_dir, reports_dir / f"{spec.name}.json")
    except RuntimeError as error:  # install or start failed: every test of it fails with why
        pytest.fail(f"{spec.name}: {error}\n{tail(log)}", pytrace=False)
