"""The ``chatcompat`` command: ``check`` runs the suite, ``mock`` runs the mock server,
``record`` records cassettes for it, ``export-model`` writes the reference model for real
engines."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from chatcompat import __version__

__all__ = ["DeprecatedSpelling", "main", "parser"]


class DeprecatedSpelling(argparse.Action):
    """An option's old name (``--dialect``): stores like the option ``new`` it became, after
    ``PROG: --dialect is deprecated; use NEW`` on stderr (PROG: ``chatcompat mock``, ...)."""

    def __init__(self, *args: Any, new: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.new = new

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog}: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from conformance import cli as check_cli
    from mockserver import cli as mock_cli

    top = argparse.ArgumentParser(
        prog="chatcompat",
        description="Conformance suite and mock server for OpenAI-compatible chat completions.",
    )
    top.add_argument("--version", action="version", version=f"chatcompat {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="run the conformance suite against an endpoint")
    check_cli.add_arguments(check)
    check.set_defaults(run=check_cli.run_command)
    mock = commands.add_parser("mock", help="run the mock server in the foreground")
    mock_cli.add_arguments(mock)
    mock.set_defaults(run=mock_cli.run)
    record = commands.add_parser(
        "record", help="record an upstream API's answers as cassettes for the mock to replay"
    )
    mock_cli.add_record_arguments(record)
    record.set_defaults(run=mock_cli.run_record)
    export = commands.add_parser(
        "export-model", add_help=False, help="write the reference model for real engines"
    )
    export.set_defaults(run=None)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``chatcompat`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["export-model"]:
        from reference_model.cli import export_main

        exported: int = export_main(argv[1:])
        return exported
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code
