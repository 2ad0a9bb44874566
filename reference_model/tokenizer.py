"""A byte-level BPE tokenizer with the Llama 3 special tokens, learned from a seed-free corpus.

Ids 0..255 are the 256 bytes (id == byte value), then the learned merges in order, then the
special tokens. Text is first split by the Llama 3 (tiktoken ``cl100k``-style) pre-tokenizer
regex, then each piece is BPE-merged by merge rank (GPT-2 algorithm), so any UTF-8 string
round-trips exactly and a HF ``tokenizers`` BPE with the same merges encodes identically.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence

import regex

from ._corpus import REPLIES

__all__ = [
    "LLAMA3_PATTERN",
    "SPECIAL_TOKENS",
    "Tokenizer",
    "bytes_to_unicode",
    "default_tokenizer",
    "learn_merges",
]

# The Llama 3 pre-tokenizer (meta-llama/llama-models models/llama3/tokenizer.py pat_str).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Llama 3's first special tokens in their order (128000 + i there; n_base + i here).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
    "<|reserved_special_token_2|>",
    "<|reserved_special_token_3|>",
    "<|reserved_special_token_4|>",
    "<|reserved_special_token_5|>",
)

DEFAULT_N_MERGES = 240  # 256 bytes + 240 merges + 16 specials = a 512-token vocabulary

_SPLIT = regex.compile(LLAMA3_PATTERN)


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte (the HF ByteLevel alphabet)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    bs += range(ord("®"), ord("ÿ") + 1)
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def learn_merges(texts: Iterable[str], n_merges: int) -> list[tuple[bytes, bytes]]:
    """Learn up to ``n_merges`` BPE merges; ties go to the pair whose bytes sort first."""
    words = Counter(tuple(bytes([b]) for b in p.encode()) for t in texts for p in _SPLIT.findall(t))
    merges: list[tuple[bytes, bytes]] = []
    while len(merges) < n_merges:
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for word, freq in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += freq
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        words = Counter({_merge_word(w, best): f for w, f in words.items()})
    return merges


def _merge_word(word: tuple[bytes, ...], pair: tuple[bytes, bytes]) -> tuple[bytes, ...]:
    out: list[bytes] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


class Tokenizer:
    """Byte-level BPE over the Llama 3 pre-tokenizer, with the Llama 3 special tokens."""

    def __init__(self, merges: Sequence[tuple[bytes, bytes]]) -> None:
        self.merges = list(merges)
        self.id_to_bytes: list[bytes] = [bytes([b]) for b in range(256)]
        self.bytes_to_id: dict[bytes, int] = {b: i for i, b in enumerate(self.id_to_bytes)}
        for a, b in self.merges:
            if a + b not in self.bytes_to_id:  # two merge paths may build the same bytes
                self.bytes_to_id[a + b] = len(self.id_to_bytes)
                self.id_to_bytes.append(a + b)
        self.ranks = {pair: r for r, pair in enumerate(self.merges)}
        self.n_base = len(self.id_to_bytes)
        self.special_ids = {s: self.n_base + i for i, s in enumerate(SPECIAL_TOKENS)}
        self.vocab_size = self.n_base + len(SPECIAL_TOKENS)
        self.bos_id = self.special_ids["<|begin_of_text|>"]
        self.eos_id = self.special_ids["<|end_of_text|>"]
        self.eot_id = self.special_ids["<|eot_id|>"]
        self.eom_id = self.special_ids["<|eom_id|>"]
        self.stop_ids = frozenset((self.eos_id, self.eom_id, self.eot_id))
        self._special_re = regex.compile("|".join(regex.escape(s) for s in SPECIAL_TOKENS))

    def _bpe(self, piece: bytes) -> list[int]:
        word = tuple(bytes([b]) for b in piece)
        while len(word) > 1:
            pairs = itertools.pairwise(word)
            best = min(pairs, key=lambda p: self.ranks.get(p, len(self.ranks)))
            if best not in self.ranks:
                break
            word = _merge_word(word, best)
        return [self.bytes_to_id[w] for w in word]

    def encode(self, text: str, *, allow_special: bool = False) -> list[int]:
        """Token ids of ``text``; special-token strings are parsed only if ``allow_special``."""
        if allow_special:
            ids: list[int] = []
            pos = 0
            for m in self._special_re.finditer(text):
                ids += self.encode(text[pos : m.start()])
                ids.append(self.special_ids[m.group()])
                pos = m.end()
            return ids + self.encode(text[pos:])
        return [i for p in _SPLIT.findall(text) for i in self._encode_piece(p)]

    @functools.lru_cache(maxsize=65536)  # noqa: B019 -- tokenizers live as long as the process
    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        return tuple(self._bpe(piece.encode()))

    def token_bytes(self, token: int) -> bytes:
        """The bytes of one token; a special token's bytes are its UTF-8 name."""
        if token < self.n_base:
            return self.id_to_bytes[token]
        return SPECIAL_TOKENS[token - self.n_base].encode()

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Concatenated bytes of ``ids`` (may end inside a UTF-8 character)."""
        return b"".join(self.token_bytes(i) for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; invalid UTF-8 becomes U+FFFD, as in HF and tiktoken."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def vocab(self) -> dict[str, int]:
        """The HF ByteLevel vocabulary (byte-to-unicode strings) plus the special tokens."""
        b2u = bytes_to_unicode()
        v = {"".join(b2u[c] for c in b): i for i, b in enumerate(self.id_to_bytes)}
        return v | self.special_ids


@functools.cache
def default_tokenizer() -> Tokenizer:
    """The tokenizer of record: ``DEFAULT_N_MERGES`` merges learned from the embedded corpus."""
    return Tokenizer(learn_merges(REPLIES, DEFAULT_N_MERGES))
