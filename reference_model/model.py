"""A Llama 3 style GQA transformer in small, in the shape of pytorch-labs/gpt-fast ``model.py``.

RMSNorm (float32), RoPE with llama3 frequency scaling in HF's rotate_half convention (so the HF
export needs no q/k permutation), SwiGLU, grouped-query attention, no biases, causal mask, and a
static KV cache for incremental decoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["KVCache", "ModelArgs", "Transformer", "precompute_rope", "repeat_kv"]


@dataclass
class ModelArgs:
    vocab_size: int = 512  # the default tokenizer's 496 base tokens + 16 specials
    dim: int = 128  # head_dim 32: vLLM's CPU attention refuses head_dim 16 (issue 11)
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2  # GQA: query head h reads KV head h // (n_heads // n_kv_heads)
    multiple_of: int = 32  # SwiGLU hidden size is rounded up to a multiple of this
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    rope_scaling: bool = True  # llama3 scaling (factor 8, low 1, high 4, original 8192)
    rope_factor: float = 8.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_pos: int = 8192
    max_seq_len: int = 2048  # positions the RoPE table (and the largest KV cache) covers
    head_dim: int = -1  # derived: dim // n_heads
    hidden_dim: int = -1  # derived: Llama's FFN rule

    def __post_init__(self) -> None:
        assert self.dim % self.n_heads == 0, "dim must be a multiple of n_heads"
        assert self.n_heads % self.n_kv_heads == 0, "n_heads must be a multiple of n_kv_heads"
        self.head_dim = self.dim // self.n_heads
        assert self.head_dim % 2 == 0, "RoPE rotates pairs: head_dim must be even"
        hidden = int(2 * 4 * self.dim / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        self.hidden_dim = self.multiple_of * math.ceil(hidden / self.multiple_of)

    @property
    def n_rep(self) -> int:
        return self.n_heads // self.n_kv_heads


class KVCache(nn.Module):
    k_cache: Tensor  # [B, H_kv, S_max, D]
    v_cache: Tensor

    def __init__(self, batch: int, max_seq_len: int, n_kv_heads: int, head_dim: int) -> None:
        super().__init__()
        shape = (batch, n_kv_heads, max_seq_len, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape), persistent=False)

    def update(self, input_pos: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        # input_pos: [S], k/v: [B, H_kv, S, D]; returns the cache up to the last position
        end = int(input_pos[-1]) + 1
        self.k_cache[: k.shape[0], :, input_pos] = k
        self.v_cache[: v.shape[0], :, input_pos] = v
        return self.k_cache[: k.shape[0], :, :end], self.v_cache[: v.shape[0], :, :end]


class Transformer(nn.Module):
    rope_cos: Tensor
    rope_sin: Tensor

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        cos, sin = precompute_rope(args)
        self.register_buffer("rope_cos", cos, persistent=False)  # [max_seq_len, head_dim]
        self.register_buffer("rope_sin", sin, persistent=False)

    @property
    def blocks(self) -> list[TransformerBlock]:
        return [cast(TransformerBlock, b) for b in self.layers]

    def setup_caches(self, batch: int, max_seq_len: int) -> None:
        """Allocate a KV cache per layer; positions must then stay below ``max_seq_len``."""
        assert max_seq_len <= self.args.max_seq_len
        for layer in self.blocks:
            layer.attention.kv_cache = KVCache(
                batch, max_seq_len, self.args.n_kv_heads, self.args.head_dim
            )

    def forward(self, idx: Tensor, input_pos: Tensor | None = None) -> Tensor:
        """Logits [B, S, V] of tokens ``idx`` [B, S]; with ``input_pos`` [S], use the KV cache."""
        pos = torch.arange(idx.shape[1]) if input_pos is None else input_pos
        cos, sin = self.rope_cos[pos], self.rope_sin[pos]  # [S, D]
        x = self.tok_embeddings(idx)  # [B, S, dim]
        for layer in self.blocks:
            x = layer(x, cos, sin, input_pos)
        logits: Tensor = self.output(self.norm(x))  # [B, S, V]
        return logits


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, input_pos: Tensor | None) -> Tensor:
        h: Tensor = x + self.attention(self.attention_norm(x), cos, sin, input_pos)
        out: Tensor = h + self.feed_forward(self.ffn_norm(h))
        return out


class Attention(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.n_kv_heads, args.head_dim
        self.n_rep = args.n_rep
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, input_pos: Tensor | None) -> Tensor:
        bsz, seqlen, _ = x.shape
        q = self.wq(x).view(bsz, seqlen, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # q: [B, H, S, D]
        if input_pos is None:
            k, v = repeat_kv(k, self.n_rep), repeat_kv(v, self.n_rep)  # [B, H, S, D]
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            assert self.kv_cache is not None, "call setup_caches() before decoding with input_pos"
            k, v = self.kv_cache.update(input_pos, k, v)  # k: [B, H_kv, T, D], T = last pos + 1
            k, v = repeat_kv(k, self.n_rep), repeat_kv(v, self.n_rep)  # [B, H, T, D]
            mask = torch.arange(k.shape[2])[None, :] <= input_pos[:, None]  # [S, T]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(bsz, seqlen, self.n_heads * self.head_dim)
        out: Tensor = self.wo(y)
        return out


class FeedForward(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.w1 = nn.Linear(args.dim, args.hidden_dim, bias=False)  # gate_proj
        self.w3 = nn.Linear(args.dim, args.hidden_dim, bias=False)  # up_proj
        self.w2 = nn.Linear(args.hidden_dim, args.dim, bias=False)  # down_proj

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.w2(F.silu(self.w1(x)) * self.w3(x))
        return out


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        h = x.to(torch.promote_types(x.dtype, torch.float32))  # float32 (or wider), like Meta's
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return h.type_as(x) * self.weight


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """[B, H_kv, S, D] -> [B, H_kv * n_rep, S, D]; == torch.repeat_interleave(x, n_rep, dim=1)."""
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def precompute_rope(args: ModelArgs) -> tuple[Tensor, Tensor]:
    """cos/sin tables [max_seq_len, head_dim] in the rotate_half layout (freqs repeated twice).

    Frequencies follow HF ``_compute_llama3_parameters`` (== Meta ``apply_scaling``) in float32.
    """
    d = args.head_dim
    inv_freq = 1.0 / (args.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    if args.rope_scaling:
        factor, low, high = args.rope_factor, args.rope_low_freq_factor, args.rope_high_freq_factor
        old = args.rope_original_max_pos
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old / low, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        is_medium = ~(wavelen < old / high) * ~(wavelen > old / low)
        inv_freq = torch.where(is_medium, smoothed, scaled)
    t = torch.arange(args.max_seq_len, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)  # [S, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [S, D]
    return emb.cos(), emb.sin()


def rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    # x: [B, H, S, D], cos/sin: [S, D]
    return (x * cos + rotate_half(x) * sin).type_as(x)
