"""Reference mode: against the mock generating with the exported model, the sampling checks
pass when the claimed dialect is the one the mock samples with, and fail when it is not."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from conformance import Endpoint, load_profile, run
from mockserver import MockConfig, MockServer

pytest.importorskip("torch")

REFERENCE_CHECKS = ["ref_greedy_chain", "ref_logprobs", "ref_sampling_fit"]
CAPABILITIES = load_profile("vllm").capabilities | {"reference"}
# defect -> {mode, caught_by: [the check it was made for, then the others], why}
KILL_MATRIX = tomllib.loads(Path(__file__).with_name("kill_matrix.toml").read_text("utf-8"))


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    from reference_model import build_model, default_tokenizer, export_hf

    folder = tmp_path_factory.mktemp("reference") / "hf"
    export_hf(build_model(0), default_tokenizer(), folder)
    return str(folder)


def reference_run(export_dir, served, claimed, defects=(), samples=200):
    config = MockConfig(mode="generate", sampling=served, models=("m",), defects=defects)
    with MockServer(config) as server:
        endpoint = Endpoint(
            server.base_url,
            "m",
            timeout=60,
            capabilities=CAPABILITIES,
            reference=export_dir,
            sampling=claimed,
            reference_samples=samples,
        )
        result = run(endpoint, REFERENCE_CHECKS)
    return {r.check.id: r for r in result.results}


@pytest.mark.parametrize("dialect", ["vllm", "hf", "llamacpp"], ids=["vllm", "hf", "llamacpp"])
def test_reference_checks_pass_when_the_dialects_agree(export_dir, dialect):
    results = reference_run(export_dir, dialect, dialect)
    failures = {k: r.message for k, r in results.items() if r.status != "passed"}
    assert failures == {}


@pytest.mark.parametrize(
    ("served", "claimed"),
    [("vllm", "hf"), ("hf", "llamacpp"), ("llamacpp", "vllm")],
    ids=["vllm-served-hf-claimed", "hf-served-llamacpp-claimed", "llamacpp-served-vllm-claimed"],
)
def test_sampling_fit_fails_when_the_dialects_differ(export_dir, served, claimed):
    # 400 samples: vllm and hf differ by one token of probability 0.09 (min_p with top_p), which
    # 200 samples show at p ~ 3e-5 (at the expected counts), only 4x below the per-case alpha
    # (1.1e-4); 400 at p ~ 1e-9.
    results = reference_run(export_dir, served, claimed, samples=400)
    assert results["ref_greedy_chain"].status == "passed"  # greedy is the same in every dialect
    assert results["ref_logprobs"].status == "passed"  # raw logprobs too
    fit = results["ref_sampling_fit"]
    assert fit.status == "failed"
    assert f"{claimed}'s" in fit.message


def test_reference_checks_skip_without_the_capability(mock):
    result = run(Endpoint(mock.base_url, "m", timeout=10), REFERENCE_CHECKS)
    assert {r.status for r in result.results} == {"skipped"}


REFERENCE_DEFECTS = sorted(name for name, row in KILL_MATRIX.items() if row["mode"] == "reference")


def test_every_reference_check_has_a_defect():
    made_for = {KILL_MATRIX[name]["caught_by"][0] for name in REFERENCE_DEFECTS}
    assert made_for == set(REFERENCE_CHECKS)


@pytest.mark.parametrize("defect", REFERENCE_DEFECTS, ids=REFERENCE_DEFECTS)
def test_reference_defect_is_caught_by_its_check(export_dir, defect):
    results = reference_run(export_dir, "vllm", "vllm", (defect,))
    caught = {k for k, r in results.items() if r.status == "failed"}
    assert caught == set(KILL_MATRIX[defect]["caught_by"])
    assert "Received: " in results[KILL_MATRIX[defect]["caught_by"][0]].outcome.text
