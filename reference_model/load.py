"""Loading a Hugging Face export (``chatcompat export-model --format hf DIR``) back into our
model and tokenizer, so that the suite can act as the oracle of an endpoint serving it."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from .model import ModelArgs, Transformer
from .tokenizer import Tokenizer, bytes_to_unicode

__all__ = ["load_hf"]


def _tokenizer(path: Path) -> Tokenizer:
    """Our tokenizer rebuilt from tokenizer.json's merges; its vocabulary must match."""
    data = json.loads(path.read_text(encoding="utf-8"))
    u2b = {u: b for b, u in bytes_to_unicode().items()}

    def raw(text: str) -> bytes:
        return bytes(u2b[c] for c in text)

    merges = [
        (raw(a), raw(b))
        for a, b in (m if isinstance(m, list) else m.split(" ") for m in data["model"]["merges"])
    ]
    tokenizer = Tokenizer(merges)
    expected = {**data["model"]["vocab"], **{t["content"]: t["id"] for t in data["added_tokens"]}}
    if tokenizer.vocab() != expected:
        raise ValueError(f"{path}: the vocabulary does not follow from its merges")
    return tokenizer


def _args(config: dict[str, object]) -> ModelArgs:
    scaling = config.get("rope_scaling")
    rope = scaling if isinstance(scaling, dict) else {}
    args = ModelArgs(
        vocab_size=int(config["vocab_size"]),  # type: ignore[call-overload]
        dim=int(config["hidden_size"]),  # type: ignore[call-overload]
        n_layers=int(config["num_hidden_layers"]),  # type: ignore[call-overload]
        n_heads=int(config["num_attention_heads"]),  # type: ignore[call-overload]
        n_kv_heads=int(config["num_key_value_heads"]),  # type: ignore[call-overload]
        norm_eps=float(config["rms_norm_eps"]),  # type: ignore[arg-type]
        rope_theta=float(config["rope_theta"]),  # type: ignore[arg-type]
        rope_scaling=bool(rope),
        rope_factor=float(rope.get("factor", 8.0)),
        rope_low_freq_factor=float(rope.get("low_freq_factor", 1.0)),
        rope_high_freq_factor=float(rope.get("high_freq_factor", 4.0)),
        rope_original_max_pos=int(rope.get("original_max_position_embeddings", 8192)),
    )
    args.hidden_dim = int(config["intermediate_size"])  # type: ignore[call-overload]
    return args


def load_hf(directory: str | Path) -> tuple[Transformer, Tokenizer]:
    """The model and tokenizer of an HF export directory (float32, eval mode)."""
    folder = Path(directory)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise ValueError(f"{folder}: not a Llama export (model_type {config.get('model_type')!r})")
    args = _args(config)
    weights = load_file(str(folder / "model.safetensors"))
    ours: dict[str, object] = {
        "tok_embeddings.weight": weights["model.embed_tokens.weight"],
        "norm.weight": weights["model.norm.weight"],
        "output.weight": weights["lm_head.weight"],
    }
    names = {
        "self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk",
        "self_attn.v_proj": "attention.wv", "self_attn.o_proj": "attention.wo",
        "mlp.gate_proj": "feed_forward.w1", "mlp.up_proj": "feed_forward.w3",
        "mlp.down_proj": "feed_forward.w2", "input_layernorm": "attention_norm",
        "post_attention_layernorm": "ffn_norm",
    }  # fmt: skip
    for i in range(args.n_layers):
        for hf, own in names.items():
            ours[f"layers.{i}.{own}.weight"] = weights[f"model.layers.{i}.{hf}.weight"]
    model = Transformer(args)
    missing, unexpected = model.load_state_dict(ours, strict=False)
    if unexpected or any(not k.startswith(("rope_", "kv_cache")) for k in missing):
        raise ValueError(
            f"{folder}: weights do not fit (missing {missing}, unexpected {unexpected})"
        )
    return model.eval(), _tokenizer(folder / "tokenizer.json")
