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
# What transformers serve claims (no ext, no logprobs), with n so that the mock samples fast.
NO_EXT = load_profile("transformers").capabilities | {"reference", "n"}
# defect -> {mode, caught_by: [the check it was made for, then the others], why}
KILL_MATRIX = tomllib.loads(Path(__file__).with_name("kill_matrix.toml").read_text("utf-8"))


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    from reference_model import build_model, default_tokenizer, export_hf

    folder = tmp_path_factory.mktemp("reference") / "hf"
    export_hf(build_model(0), default_tokenizer(), folder)
    return str(folder)


def reference_run(export_dir, served, claimed, defects=(), samples=200, capabilities=CAPABILITIES):
    config = MockConfig(mode="generate", sampling=served, models=("m",), defects=defects)
    with MockServer(config) as server:
        endpoint = Endpoint(
            server.base_url,
            "m",
            timeout=60,
            capabilities=capabilities,
            reference=export_dir,
            sampling=claimed,
            reference_samples=samples,
        )
        result = run(endpoint, REFERENCE_CHECKS)
    return {r.check.id: r for r in result.results}


@pytest.mark.parametrize("dialect", ["vllm", "hf", "llamacpp", "llama-cpp-python"])
def test_reference_checks_pass_when_the_dialects_agree(export_dir, dialect):
    results = reference_run(export_dir, dialect, dialect)
    failures = {k: r.message for k, r in results.items() if r.status != "passed"}
    assert failures == {}


@pytest.mark.parametrize(
    ("served", "claimed"),
    [("vllm", "hf"), ("hf", "llamacpp"), ("llamacpp", "vllm"), ("llama-cpp-python", "llamacpp")],
    ids=[
        "vllm-served-hf-claimed",
        "hf-served-llamacpp-claimed",
        "llamacpp-served-vllm-claimed",
        "llama-cpp-python-served-llamacpp-claimed",
    ],
)
def test_sampling_fit_fails_when_the_dialects_differ(export_dir, served, claimed):
    # 400 samples: vllm and hf differ by one token of probability 0.09 (min_p with top_p), which
    # 200 samples show at p ~ 3e-5 (at the expected counts), only 4x below the per-case alpha
    # (1.1e-4); 400 at p ~ 1e-9.
    results = reference_run(export_dir, served, claimed, samples=400)
    # plain greedy is the same in every dialect; only the penalised chain may tell them apart
    # (it does for llama.cpp's two servers: the prompt in the penalty window or not)
    greedy = results["ref_greedy_chain"]
    if served == "llama-cpp-python":
        assert greedy.status == "failed"
    assert greedy.status == "passed" or "greedy chain with penalties" in greedy.message
    assert results["ref_logprobs"].status == "passed"  # raw logprobs are the same
    fit = results["ref_sampling_fit"]
    assert fit.status == "failed"
    assert f"{claimed}'s" in fit.message


def test_without_ext_and_logprobs_only_the_openai_cases_are_asked(export_dir):
    # transformers serve refuses top_k, min_p and repetition_penalty (422) and ignores logprobs:
    # ref_logprobs is skipped, ref_sampling_fit asks only the cases without ext fields.
    results = reference_run(export_dir, "hf", "hf", capabilities=NO_EXT)
    assert results["ref_logprobs"].status == "skipped"
    assert "needs capability 'logprobs'" in results["ref_logprobs"].message
    assert results["ref_greedy_chain"].status == "passed"
    assert results["ref_sampling_fit"].status == "passed"


def test_sampling_fit_names_every_case_that_fails(export_dir):
    # llama.cpp's temperature-last and its penalties over the prompt differ from hf in two of
    # the five OpenAI-field cases; both are named, not only the first.
    results = reference_run(export_dir, "llamacpp", "hf", samples=400, capabilities=NO_EXT)
    fit = results["ref_sampling_fit"]
    assert fit.status == "failed"
    assert "2 of 5 cases failed" in fit.message
    assert "case temperature-0.5-top_p-0.85: " in fit.message
    assert "case frequency-presence: " in fit.message


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


def test_oracle_knows_special_tokens_by_their_text(export_dir):
    from conformance._oracle import load_oracle

    oracle = load_oracle(export_dir)
    assert oracle.token_id(b"<|eot_id|>") == oracle.tokenizer.eot_id  # vLLM's last entry
    assert oracle.token_id(b"The") == oracle.tokenizer.bytes_to_id[b"The"]
    assert oracle.token_id(b"<|no_such_token|>") is None


def test_ref_logprobs_knows_the_parts_of_a_character_by_their_place(export_dir):
    """vLLM writes the first byte of U+03B1 as "" with bytes [] and the second as "\u03b1" with both
    bytes (vllm/v1/engine/logprobs.py: _correct_decoded_token)."""
    from conformance._checks.reference import _candidate_problem, _sampled_ids
    from conformance._oracle import load_oracle

    oracle = load_oracle(export_dir)
    chain = [206, 177, oracle.tokenizer.bytes_to_id[b"The"], oracle.tokenizer.eot_id]
    body = {"messages": [{"role": "user", "content": "Say hello."}]}
    rows = oracle.raw_logprobs(body, chain)
    entries = [
        {"token": "", "logprob": rows[0][206], "bytes": []},
        {"token": "\u03b1", "logprob": rows[1][177], "bytes": [206, 177]},
        {"token": "The", "logprob": rows[2][chain[2]], "bytes": list(b"The")},
        {"token": "<|eot_id|>", "logprob": rows[3][chain[3]], "bytes": list(b"<|eot_id|>")},
    ]
    assert _sampled_ids(oracle, entries, chain) == chain
    assert _sampled_ids(oracle, entries[2:], chain[2:]) == chain[2:]
    assert _sampled_ids(oracle, [{"token": "", "bytes": []}], [chain[2]]) == [None]
    for position, entry in enumerate(entries):  # each as a top_logprobs candidate of its row
        assert _candidate_problem(oracle, entry, rows[position]) is None
    off = {"token": "", "logprob": -1e-4, "bytes": []}  # no part of a character is that likely
    assert "no token, whole or part of a character" in _candidate_problem(oracle, off, rows[0])
    wrong = {**entries[2], "logprob": rows[2][chain[2]] - 0.5}
    assert (
        _candidate_problem(oracle, wrong, rows[2]) == f"{rows[2][chain[2]]:.4f} (raw log-softmax)"
    )
