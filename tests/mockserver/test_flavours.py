"""Flavours, the response shapes of real servers: chosen with --flavour / MockConfig(flavour=),
their old name "dialect" still accepted with a deprecation warning."""

from __future__ import annotations

import argparse

import pytest

from mockserver import FLAVOURS, MockConfig
from mockserver.cli import add_arguments


def parsed(*argv):
    parser = argparse.ArgumentParser(prog="chatcompat mock")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flavour_option_names_a_flavour(capsys):
    assert parsed().flavour == "openai"
    assert parsed("--flavour", "vllm").flavour == "vllm"
    assert capsys.readouterr().err == ""


def test_dialect_option_is_the_old_name_of_flavour(capsys):
    assert parsed("--dialect", "novita").flavour == "novita"
    assert capsys.readouterr().err == "chatcompat mock: --dialect is deprecated; use --flavour\n"


def test_dialect_option_takes_only_flavours(capsys):
    with pytest.raises(SystemExit):
        parsed("--dialect", "hf")  # a sampling semantics, not a response shape
    assert "invalid choice: 'hf'" in capsys.readouterr().err


def test_config_dialect_keyword_is_deprecated():
    with pytest.warns(DeprecationWarning, match=r"MockConfig\(flavour=...\)"):
        config = MockConfig(dialect="azure")
    assert config.flavour == "azure"
    with pytest.raises(ValueError, match="disagree"), pytest.warns(DeprecationWarning):
        MockConfig(flavour="vllm", dialect="azure")


def test_unknown_flavour_is_refused():
    with pytest.raises(ValueError, match=r"unknown flavour 'hf'; known: \['azure',"):
        MockConfig(flavour="hf")
    assert sorted(FLAVOURS) == ["azure", "llamacpp", "novita", "openai", "vllm"]
