from __future__ import annotations

import random

import pytest

from reference_model import SPECIAL_TOKENS, encode_dialog, render_dialog


def test_vocab_layout(tokenizer):
    assert tokenizer.vocab_size == 512
    assert tokenizer.n_base == 496
    assert tokenizer.special_ids["<|begin_of_text|>"] == 496
    assert tokenizer.special_ids["<|eot_id|>"] == 496 + 9
    assert tokenizer.stop_ids == {tokenizer.eos_id, tokenizer.eom_id, tokenizer.eot_id}
    assert SPECIAL_TOKENS[6:8] == ("<|start_header_id|>", "<|end_header_id|>")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("Hello, world!", id="ascii"),
        pytest.param("héllo wörld 日本語 🎉👍🏽", id="multibyte"),
        pytest.param("  leading\n\n\ttabs  \r\n", id="whitespace"),
        pytest.param("it's 12345 I'LL", id="contractions-digits"),
        pytest.param("<|eot_id|> is text here", id="special-as-text"),
    ],
)
def test_round_trip(tokenizer, text):
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert all(i < tokenizer.n_base for i in ids)


def test_round_trip_random_unicode(tokenizer):
    rng = random.Random(0)
    for _ in range(200):
        text = "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x2FFFF)]))
                       for _ in range(rng.randrange(0, 30)))  # fmt: skip
        text = text.encode("utf-8", "replace").decode()  # drop lone surrogates
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_merges_shorten_common_text(tokenizer):
    text = "The answer is yes. Thank you for your question."
    assert len(tokenizer.encode(text)) < len(text.encode()) / 2


def test_allow_special(tokenizer):
    ids = tokenizer.encode("a<|eot_id|>b", allow_special=True)
    assert ids == [*tokenizer.encode("a"), tokenizer.eot_id, *tokenizer.encode("b")]


def test_chat_format_layout(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": " Hi \n"},
        {"role": "tool", "content": "42"},
    ]
    text = tokenizer.decode(encode_dialog(tokenizer, messages))
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>ipython<|end_header_id|>\n\n42<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert render_dialog(messages)[:2] == [None, "<|begin_of_text|>"]


def test_chat_format_does_not_parse_specials_in_content(tokenizer):
    ids = encode_dialog(tokenizer, [{"role": "user", "content": "<|eot_id|>"}])
    assert ids.count(tokenizer.eot_id) == 1
