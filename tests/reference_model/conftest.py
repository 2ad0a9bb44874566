from __future__ import annotations

import pytest

from reference_model import Tokenizer, Transformer, build_model, default_tokenizer, export_hf


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return default_tokenizer()


@pytest.fixture(scope="session")
def model() -> Transformer:
    return build_model(0)


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory, model, tokenizer):
    return export_hf(model, tokenizer, tmp_path_factory.mktemp("hf") / "reference")


@pytest.fixture(scope="session")
def hf_model(hf_dir):
    transformers = pytest.importorskip("transformers")
    return transformers.LlamaForCausalLM.from_pretrained(hf_dir, local_files_only=True).eval()


@pytest.fixture(scope="session")
def hf_tokenizer(hf_dir):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
