from __future__ import annotations

import json

import pytest
import torch

from reference_model import CHAT_TEMPLATE, ModelArgs, encode_dialog, export_gguf, export_model
from reference_model.export import gguf_tensors, hf_state_dict
from reference_model.model import precompute_rope

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
DIALOGS = {
    "user-only": ([{"role": "user", "content": "Hello!"}], None),
    "system-trimmed": (
        [
            {"role": "system", "content": " Be brief. "},
            {"role": "user", "content": " Hi there\n"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "ok 日本"},
        ],
        None,
    ),
    "tools-no-system": ([{"role": "user", "content": "Weather?"}], TOOLS),
    "tools-call-and-result": (
        [
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
        ],
        TOOLS,
    ),
}


def test_hf_logits_match(model, hf_model):
    assert hf_model.config.num_key_value_heads < hf_model.config.num_attention_heads
    assert hf_model.config.rope_parameters["rope_type"] == "llama3"
    idx = torch.randint(0, 512, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), hf_model(idx).logits, atol=1e-4, rtol=0)


def test_hf_logits_match_far_positions(model, hf_model):
    # positions up to 1500 exercise every RoPE frequency band of the llama3 scaling
    idx = torch.randint(0, 512, (1, 1500), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), hf_model(idx).logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "loaded", ["hf_model", "gguf_model"], ids=["hf-export", "gguf-export-read-by-transformers"]
)
def test_hf_state_dict_names(request, model, loaded):
    ours = hf_state_dict(model)
    theirs = request.getfixturevalue(loaded).state_dict()
    assert sorted(ours) == sorted(theirs)
    for k, v in ours.items():
        assert torch.equal(v, theirs[k]), k


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Hello! How are you?", id="ascii"),
        pytest.param("héllo wörld 日本語 🎉", id="multibyte"),
        pytest.param("  x\n\n\ty  it's 12345 I'LL  ", id="whitespace-digits"),
        pytest.param("The answer is 42.", id="corpus-like"),
    ],
)
def test_hf_tokenizer_encodes_like_ours(tokenizer, hf_tokenizer, text):
    ids = tokenizer.encode(text)
    assert hf_tokenizer.encode(text, add_special_tokens=False) == ids
    assert hf_tokenizer.decode(ids) == text
    assert hf_tokenizer.encode(text)[0] == tokenizer.bos_id


@pytest.mark.parametrize("name", list(DIALOGS), ids=list(DIALOGS))
def test_hf_chat_template_renders_like_ours(tokenizer, hf_tokenizer, name):
    messages, tools = DIALOGS[name]
    ours = encode_dialog(tokenizer, messages, tools)
    text = hf_tokenizer.apply_chat_template(
        messages, tools=tools, add_generation_prompt=True, tokenize=False
    )
    assert text == tokenizer.decode(ours)
    assert hf_tokenizer.encode(text, add_special_tokens=False) == ours


def test_hf_config_files(hf_dir, tokenizer):
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["rope_scaling"]["rope_type"] == "llama3"
    assert config["eos_token_id"] == sorted(tokenizer.stop_ids)
    tok_config = json.loads((hf_dir / "tokenizer_config.json").read_text())
    assert tok_config["chat_template"] == CHAT_TEMPLATE


def test_gguf_reads_back(tmp_path, model, tokenizer):
    gguf = pytest.importorskip("gguf")
    path = export_gguf(model, tokenizer, tmp_path / "m.gguf")
    reader = gguf.GGUFReader(path)
    fields = {name: f.contents() for name, f in reader.fields.items()}
    a = model.args
    assert fields["general.architecture"] == "llama"
    assert fields["llama.block_count"] == a.n_layers
    assert fields["llama.embedding_length"] == a.dim
    assert fields["llama.feed_forward_length"] == a.hidden_dim
    assert fields["llama.attention.head_count"] == a.n_heads
    assert fields["llama.attention.head_count_kv"] == a.n_kv_heads
    assert fields["llama.rope.freq_base"] == a.rope_theta
    assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(a.norm_eps)
    assert fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.ggml.pre"] == "llama-bpe"
    assert len(fields["tokenizer.ggml.tokens"]) == tokenizer.vocab_size
    assert fields["tokenizer.ggml.tokens"][tokenizer.eot_id] == "<|eot_id|>"
    assert len(fields["tokenizer.ggml.merges"]) == len(tokenizer.merges)
    assert fields["tokenizer.ggml.bos_token_id"] == tokenizer.bos_id
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.eot_id
    assert fields["tokenizer.chat_template"] == CHAT_TEMPLATE
    expected = gguf_tensors(model)
    got = {t.name: torch.from_numpy(t.data.copy()).reshape(expected[t.name].shape)
           for t in reader.tensors}  # fmt: skip
    assert sorted(got) == sorted(expected)
    for name, t in expected.items():
        assert torch.equal(got[name], t), name
    assert expected["rope_freqs.weight"].shape == (a.head_dim // 2,)


def test_gguf_qk_permutation_is_meta_layout(model):
    # Meta's interleaved RoPE pairs (2i, 2i+1) are HF's (i, i + D/2) within each head
    a = model.args
    wq = gguf_tensors(model)["blk.0.attn_q.weight"].view(a.n_heads, a.head_dim, a.dim)
    hf = model.layers[0].attention.wq.weight.detach().view(a.n_heads, a.head_dim, a.dim)
    half = a.head_dim // 2
    assert torch.equal(wq[:, 0::2], hf[:, :half])
    assert torch.equal(wq[:, 1::2], hf[:, half:])


def test_gguf_rope_freqs_reproduce_llama3_scaling(model):
    # llama.cpp divides each base frequency by rope_freqs[i]; that must give our RoPE table
    a = model.args
    factors = gguf_tensors(model)["rope_freqs.weight"].double()
    assert factors.min() == 1.0 and factors.max() == a.rope_factor
    assert ((factors > 1) & (factors < a.rope_factor)).any()  # the smooth band occurs too
    base = 1.0 / (a.rope_theta ** (torch.arange(0, a.head_dim, 2).double() / a.head_dim))
    cos, sin = precompute_rope(a)
    for pos in (1, 100, 1999):
        angles = torch.cat([pos * base / factors] * 2)
        torch.testing.assert_close(cos[pos].double(), angles.cos(), atol=2e-4, rtol=0)
        torch.testing.assert_close(sin[pos].double(), angles.sin(), atol=2e-4, rtol=0)


@pytest.mark.parametrize("fmt", ["hf", "gguf"], ids=["hf", "gguf"])
def test_export_model(tmp_path, fmt):
    out = tmp_path / ("dir" if fmt == "hf" else "m.gguf")
    assert export_model(fmt, out, seed=0) == out
    assert out.exists()


def test_default_args_export_vocab(tokenizer):
    assert ModelArgs().vocab_size == tokenizer.vocab_size
