"""The ``chatcompat`` command: ``check`` runs the suite, ``mock`` runs the mock server,
``record`` records cassettes for it, ``matrix`` renders JSON reports as one compatibility matrix,
``compare`` lists what passes in one JSON report and not in another, ``repro`` prints the curl
command(s) of a failed check from a JSON report, ``export-model`` writes the reference model for
real engines."""

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
    from conformance import compare_cli, matrix_cli, repro_cli
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
    matrix = commands.add_parser(
        "matrix",
        help="render JSON reports as one compatibility matrix (Markdown, HTML)",
        description="Checks by endpoint: one column per JSON report (v2), a cell per check "
        "(passed, failed, warning, skipped, error; — not run), the reasons as footnotes.",
    )
    matrix_cli.add_arguments(matrix)
    matrix.set_defaults(run=matrix_cli.run_command)
    compare = commands.add_parser(
        "compare",
        help="what passes in one JSON report and not in another (exit 1: OTHER regresses)",
        description="Lists what passes on BASE and not on OTHER (regressed: failed or error; "
        "now warns; no longer run) and the reverse (fixed, newly run), by check group, and "
        "what differs in the runs (endpoint, model, capabilities, suite version, checks). "
        "Exit 1 when a check that passed on BASE fails or crashes on OTHER, 2 for an input "
        "that is not a JSON report v2, else 0.",
    )
    compare_cli.add_arguments(compare)
    compare.set_defaults(run=compare_cli.run_command)
    repro = commands.add_parser("repro", help=repro_cli.HELP, description=repro_cli.DESCRIPTION)
    repro_cli.add_arguments(repro)
    repro.set_defaults(run=repro_cli.run_command)
    export = commands.add_parser(
        "export-model",
        help="write the reference model for real engines",
        description="Export the seeded reference model (Llama 3 architecture, small) as a HF "
        "directory or a GGUF file (needs the reference extra: torch).",
    )
    export.add_argument("--format", choices=("hf", "gguf"), required=True)
    export.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    export.add_argument("path", help="output directory (hf) or file (gguf)")
    export.set_defaults(run=_export_model)
    return top


def _export_model(args: argparse.Namespace) -> int:
    """``chatcompat export-model``: write the model (0), or say why it cannot (2)."""
    try:
        from reference_model import export_model
    except ImportError as exc:
        print(
            f"chatcompat export-model: the reference model could not be imported ({exc}); "
            "install the optional extra with pinned torch: "
            "pip install -c constraints.txt 'chatcompat[reference]'",
            file=sys.stderr,
        )
        return 2
    out = export_model(args.format, args.path, seed=args.seed)
    print(f"wrote {args.format} export of seed {args.seed} to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``chatcompat`` console script."""
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    code: int = args.run(args)
    return code
