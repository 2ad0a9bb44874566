"""Export the reference model as a HF checkpoint directory or as a GGUF file.

HF: ``model.safetensors`` + ``config.json`` (LlamaForCausalLM, llama3 ``rope_scaling``) +
``generation_config.json`` + ``tokenizer.json`` (a ``tokenizers`` byte-level BPE, written as
JSON) + ``tokenizer_config.json`` (the chat template) + ``special_tokens_map.json``; loads offline
with ``LlamaForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``. Our q/k weights
are already in HF's rotate_half layout, so they are written as they are.

GGUF: llama arch, the same weights with q/k permuted back to Meta's interleaved RoPE layout (as
llama.cpp's ``convert_hf_to_gguf.py`` does), llama3 scaling as a ``rope_freqs.weight`` tensor,
and the vocabulary as a ``gpt2`` BPE tokenizer with the ``llama-bpe`` pre-tokenizer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from .chat_format import CHAT_TEMPLATE
from .model import ModelArgs, Transformer
from .tokenizer import LLAMA3_PATTERN, SPECIAL_TOKENS, Tokenizer, default_tokenizer

__all__ = ["export_gguf", "export_hf", "export_model", "gguf_tensors", "hf_config", "hf_state_dict"]


def hf_state_dict(model: Transformer) -> dict[str, Tensor]:
    """Our weights under transformers' LlamaForCausalLM names."""
    sd = {"model.embed_tokens.weight": model.tok_embeddings.weight}
    for i, layer in enumerate(model.blocks):
        p = f"model.layers.{i}."
        att, ff = layer.attention, layer.feed_forward
        sd |= {
            p + "self_attn.q_proj.weight": att.wq.weight,
            p + "self_attn.k_proj.weight": att.wk.weight,
            p + "self_attn.v_proj.weight": att.wv.weight,
            p + "self_attn.o_proj.weight": att.wo.weight,
            p + "mlp.gate_proj.weight": ff.w1.weight,
            p + "mlp.up_proj.weight": ff.w3.weight,
            p + "mlp.down_proj.weight": ff.w2.weight,
            p + "input_layernorm.weight": layer.attention_norm.weight,
            p + "post_attention_layernorm.weight": layer.ffn_norm.weight,
        }
    sd |= {"model.norm.weight": model.norm.weight, "lm_head.weight": model.output.weight}
    return {k: v.detach().float().contiguous().clone() for k, v in sd.items()}


def hf_config(args: ModelArgs, tokenizer: Tokenizer) -> dict[str, Any]:
    """config.json for LlamaForCausalLM, in the Llama 3.1 layout (legacy ``rope_scaling``)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": args.vocab_size,
        "hidden_size": args.dim,
        "intermediate_size": args.hidden_dim,
        "num_hidden_layers": args.n_layers,
        "num_attention_heads": args.n_heads,
        "num_key_value_heads": args.n_kv_heads,
        "head_dim": args.head_dim,
        "hidden_act": "silu",
        # the context llama3 scaling targets (HF wants it above the original 8192); our own RoPE
        # table stops at args.max_seq_len
        "max_position_embeddings": max(
            args.max_seq_len, int(args.rope_factor * args.rope_original_max_pos)
        ),
        "rms_norm_eps": args.norm_eps,
        "rope_theta": args.rope_theta,
        "rope_scaling": {
            "factor": args.rope_factor,
            "low_freq_factor": args.rope_low_freq_factor,
            "high_freq_factor": args.rope_high_freq_factor,
            "original_max_position_embeddings": args.rope_original_max_pos,
            "rope_type": "llama3",
        }
        if args.rope_scaling
        else None,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.bos_id,
        "eos_token_id": sorted(tokenizer.stop_ids),
        "torch_dtype": "float32",
        "use_cache": True,
    }


def _pre_tokenizer() -> dict[str, Any]:
    """The Llama 3 split, then bytes as unicode characters (GPT-2's ByteLevel)."""
    return {
        "type": "Sequence",
        "pretokenizers": [
            {
                "type": "Split",
                "pattern": {"Regex": LLAMA3_PATTERN},
                "behavior": "Isolated",
                "invert": False,
            },
            {
                "type": "ByteLevel",
                "add_prefix_space": False,
                "trim_offsets": True,
                "use_regex": False,
            },
        ],
    }


def _post_processor(tokenizer: Tokenizer) -> dict[str, Any]:
    """``<|begin_of_text|>`` before each sequence."""
    bos = SPECIAL_TOKENS[0]
    return {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
        ],
        "pair": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": bos, "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {bos: {"id": bos, "ids": [tokenizer.bos_id], "tokens": [bos]}},
    }


def _bpe_model(tokenizer: Tokenizer) -> dict[str, Any]:
    """The vocabulary and merges, byte strings written as ByteLevel characters."""
    from .tokenizer import bytes_to_unicode

    b2u = bytes_to_unicode()

    def u(b: bytes) -> str:
        return "".join(b2u[c] for c in b)

    return {
        "type": "BPE",
        "dropout": None,
        "unk_token": None,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": False,  # merge by rank, exactly like Tokenizer._bpe
        "vocab": {u(b): i for i, b in enumerate(tokenizer.id_to_bytes)},
        "merges": [[u(a), u(b)] for a, b in tokenizer.merges],
    }


def _tokenizer_json(tokenizer: Tokenizer) -> dict[str, Any]:
    """tokenizer.json of a ``tokenizers`` byte-level BPE that encodes as ``tokenizer`` does."""
    added = [
        {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for s, i in tokenizer.special_ids.items()
    ]  # fmt: skip
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": _pre_tokenizer(),
        "post_processor": _post_processor(tokenizer),
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": _bpe_model(tokenizer),
    }


def export_hf(model: Transformer, tokenizer: Tokenizer, out_dir: str | Path) -> Path:
    """Write a transformers-loadable checkpoint directory; returns its path."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(hf_state_dict(model), str(out / "model.safetensors"), metadata={"format": "pt"})
    specials = {s: SPECIAL_TOKENS[i] for s, i in (("bos_token", 0), ("eos_token", 9))}
    files: dict[str, Any] = {
        "config.json": hf_config(model.args, tokenizer),
        "generation_config.json": {
            "bos_token_id": tokenizer.bos_id,
            "eos_token_id": sorted(tokenizer.stop_ids),
            "do_sample": True,
            "temperature": 1.0,
            "top_p": 1.0,
        },
        "tokenizer.json": _tokenizer_json(tokenizer),
        "special_tokens_map.json": specials,
        "tokenizer_config.json": specials
        | {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": model.args.max_seq_len,
            "clean_up_tokenization_spaces": False,
            "model_input_names": ["input_ids", "attention_mask"],
            "chat_template": CHAT_TEMPLATE,
            "added_tokens_decoder": {
                str(i): {
                    "content": s,
                    "lstrip": False,
                    "normalized": False,
                    "rstrip": False,
                    "single_word": False,
                    "special": True,
                }
                for s, i in tokenizer.special_ids.items()
            },
        },
    }
    for name, obj in files.items():
        (out / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    return out


def _permute_for_gguf(w: Tensor, n_head: int) -> Tensor:
    """HF rotate_half layout -> Meta interleaved (convert_hf_to_gguf.py LlamaModel.permute)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _rope_factors(args: ModelArgs) -> Tensor:
    """llama3 scaling as per-frequency divisors (convert_hf_to_gguf.py generate_extra_tensors)."""
    d, old = args.head_dim, args.rope_original_max_pos
    low_wavelen, high_wavelen = old / args.rope_low_freq_factor, old / args.rope_high_freq_factor
    factors = []
    for i in range(0, d, 2):
        wavelen = 2 * math.pi * args.rope_theta ** (i / d)
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(args.rope_factor)
        else:
            smooth = (old / wavelen - args.rope_low_freq_factor) / (
                args.rope_high_freq_factor - args.rope_low_freq_factor
            )
            factors.append(1 / ((1 - smooth) / args.rope_factor + smooth))
    return torch.tensor(factors, dtype=torch.float32)


def gguf_tensors(model: Transformer) -> dict[str, Tensor]:
    """Our weights under llama.cpp's GGUF names, q/k in Meta's interleaved layout."""
    a = model.args
    sd = {"token_embd.weight": model.tok_embeddings.weight}
    for i, layer in enumerate(model.blocks):
        att, ff = layer.attention, layer.feed_forward
        sd |= {
            f"blk.{i}.attn_norm.weight": layer.attention_norm.weight,
            f"blk.{i}.attn_q.weight": _permute_for_gguf(att.wq.weight, a.n_heads),
            f"blk.{i}.attn_k.weight": _permute_for_gguf(att.wk.weight, a.n_kv_heads),
            f"blk.{i}.attn_v.weight": att.wv.weight,
            f"blk.{i}.attn_output.weight": att.wo.weight,
            f"blk.{i}.ffn_norm.weight": layer.ffn_norm.weight,
            f"blk.{i}.ffn_gate.weight": ff.w1.weight,
            f"blk.{i}.ffn_up.weight": ff.w3.weight,
            f"blk.{i}.ffn_down.weight": ff.w2.weight,
        }
    sd |= {"output_norm.weight": model.norm.weight, "output.weight": model.output.weight}
    if a.rope_scaling:
        sd["rope_freqs.weight"] = _rope_factors(a)
    return {k: v.detach().float().contiguous().clone() for k, v in sd.items()}


def export_gguf(model: Transformer, tokenizer: Tokenizer, path: str | Path) -> Path:
    """Write a llama-arch GGUF file (float32 tensors) that llama.cpp can load; returns its path."""
    import gguf

    from .tokenizer import bytes_to_unicode

    a, out = model.args, Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("chatcompat-reference")
    w.add_context_length(a.max_seq_len)
    w.add_embedding_length(a.dim)
    w.add_block_count(a.n_layers)
    w.add_feed_forward_length(a.hidden_dim)
    w.add_head_count(a.n_heads)
    w.add_head_count_kv(a.n_kv_heads)
    w.add_rope_dimension_count(a.head_dim)
    w.add_rope_freq_base(a.rope_theta)
    w.add_layer_norm_rms_eps(a.norm_eps)
    w.add_vocab_size(a.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    b2u = bytes_to_unicode()
    tokens = ["".join(b2u[c] for c in b) for b in tokenizer.id_to_bytes] + list(SPECIAL_TOKENS)
    types = [gguf.TokenType.NORMAL] * tokenizer.n_base + [gguf.TokenType.CONTROL] * len(
        SPECIAL_TOKENS
    )
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([" ".join("".join(b2u[c] for c in x) for x in m) for m in tokenizer.merges])
    w.add_bos_token_id(tokenizer.bos_id)
    w.add_eos_token_id(tokenizer.eot_id)
    w.add_eot_token_id(tokenizer.eot_id)
    w.add_eom_token_id(tokenizer.eom_id)
    w.add_add_bos_token(True)
    w.add_chat_template(CHAT_TEMPLATE)
    for name, t in gguf_tensors(model).items():
        w.add_tensor(name, t.numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def export_model(fmt: Literal["hf", "gguf"], path: str | Path, *, seed: int = 0) -> Path:
    """Build the reference model of ``seed`` (``build_model``) and write it as ``fmt``: a HF
    directory (:func:`export_hf`) or a GGUF file (:func:`export_gguf`) at ``path``; returns
    the path written. ``chatcompat export-model`` runs this."""
    from .weights import build_model

    model, tokenizer = build_model(seed), default_tokenizer()
    if fmt == "hf":
        return export_hf(model, tokenizer, path)
    return export_gguf(model, tokenizer, path)
