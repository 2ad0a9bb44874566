"""The ``chatcompat matrix`` command: several JSON reports as one compatibility matrix."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from conformance._matrix import Format, MatrixColumn, read_report, render_matrix
from conformance._shown import inline

__all__ = ["EXIT_OK", "EXIT_USAGE", "add_arguments", "run_command"]

EXIT_OK, EXIT_USAGE = 0, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``chatcompat matrix``."""
    parser.add_argument(
        "reports", nargs="+", type=Path, metavar="REPORT.json", help="JSON reports (v2)"
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=REPORT",
        help="the column head of REPORT (repeatable; default: model @ host)",
    )
    parser.add_argument("--markdown", type=Path, metavar="OUT.md", help="write the Markdown")
    parser.add_argument("--html", type=Path, metavar="OUT.html", help="write the HTML file")


def _labels(args: argparse.Namespace) -> dict[Path, str]:
    """--label NAME=REPORT as {report path: name}; raises ValueError for a malformed one or a
    REPORT not among the reports."""
    labels: dict[Path, str] = {}
    given = {path.resolve(): path for path in args.reports}
    for option in args.label:
        name, sep, report = option.partition("=")
        if not sep or not name or not report:
            raise ValueError(f"--label {inline(option)!r}: expected NAME=REPORT")
        path = given.get(Path(report).resolve())
        if path is None:
            raise ValueError(f"--label {inline(option)!r}: {inline(report)} is not a report given")
        labels[path] = name
    return labels


def _columns(args: argparse.Namespace) -> list[MatrixColumn]:
    """One column per report; a label that two columns would share gets the file stem
    after it. Raises ValueError (see :func:`read_report`, :func:`_labels`)."""
    labels = _labels(args)
    columns = [read_report(path, labels.get(path)) for path in args.reports]
    heads = [c.label for c in columns]
    return [
        column
        if heads.count(column.label) == 1
        else dataclasses.replace(column, label=f"{column.label} ({path.stem})")
        for column, path in zip(columns, args.reports, strict=True)
    ]


def run_command(args: argparse.Namespace) -> int:
    """Write the matrix (--markdown, --html; Markdown on stdout when neither) and return 0, or
    say on stderr what is wrong with an input or an output file and return 2."""
    try:
        columns = _columns(args)
        outputs: list[tuple[Path | None, Format]] = [
            (args.markdown, "markdown"),
            (args.html, "html"),
        ]
        if args.markdown is None and args.html is None:
            sys.stdout.write(render_matrix(columns, "markdown"))
        for path, fmt in outputs:
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(render_matrix(columns, fmt), encoding="utf-8")
                except OSError as exc:
                    raise ValueError(f"{inline(str(path))}: cannot write it ({exc})") from None
    except ValueError as exc:
        print(f"chatcompat matrix: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
