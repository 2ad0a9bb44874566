"""The ``chatcompat compare`` command: two JSON reports, what passes on one and not on the
other (see :mod:`conformance._compare`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance._compare import compare_files
from conformance._compare_render import render_comparison
from conformance._shown import inline

__all__ = ["EXIT_OK", "EXIT_REGRESSED", "EXIT_USAGE", "add_arguments", "run_command"]

EXIT_OK, EXIT_REGRESSED, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``chatcompat compare``."""
    parser.add_argument("base", type=Path, metavar="BASE.json", help="the reference report (v2)")
    parser.add_argument("other", type=Path, metavar="OTHER.json", help="the report to judge (v2)")
    parser.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="the output's format (default text)",
    )
    parser.add_argument(
        "--output", type=Path, metavar="PATH", help="write it to PATH (default: stdout)"
    )


def run_command(args: argparse.Namespace) -> int:
    """Write the comparison and return 1 when OTHER regresses (a check that passed on BASE
    failed or crashed on OTHER), else 0; or say on stderr what is wrong with an input or the
    output file and return 2."""
    try:
        comparison = compare_files(args.base, args.other)
        text = render_comparison(comparison, args.format)
        if args.output is None:
            sys.stdout.write(text)
        else:
            try:
                args.output.parent.mkdir(parents=True, exist_ok=True)
                args.output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"{inline(str(args.output))}: cannot write it ({exc})") from None
    except ValueError as exc:
        print(f"chatcompat compare: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_REGRESSED if comparison.regressed else EXIT_OK
