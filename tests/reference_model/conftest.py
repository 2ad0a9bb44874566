from __future__ import annotations

import pytest

from reference_model import (
    Tokenizer,
    Transformer,
    build_model,
    default_tokenizer,
    export_gguf,
    export_hf,
)


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


@pytest.fixture(scope="session")
def gguf_model(tmp_path_factory, model, tokenizer, hf_dir):
    """transformers' LlamaForCausalLM holding the tensors that transformers' GGUF reader (its own
    reverse of the Q/K permutation) reads from the GGUF export."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    path = export_gguf(model, tokenizer, tmp_path_factory.mktemp("gguf") / "m.gguf")
    # The HF export's config: transformers' GGUF config reader leaves out the llama3 RoPE
    # scaling, which llama.cpp takes from the rope_freqs tensor (test_export checks that one).
    config = transformers.AutoConfig.from_pretrained(hf_dir, local_files_only=True)
    hf_model = transformers.LlamaForCausalLM(config)
    loaded = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=hf_model)
    shape = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
             "num_key_value_heads", "head_dim", "vocab_size")  # fmt: skip
    assert {k: loaded["config"][k] for k in shape} == {k: getattr(config, k) for k in shape}
    hf_model.load_state_dict(loaded["tensors"], strict=True)
    return hf_model.eval()
