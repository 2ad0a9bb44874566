"""The ``chatcompat check`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from chatcompat import schemas
from conformance._context import Budget
from conformance._http import Endpoint
from conformance._probe import probe
from conformance._profiles import PROFILES, Profile, load_profile
from conformance._registry import CAPABILITIES, CHECKS
from conformance._report import console_text, write_reports
from conformance._runner import Result, run

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "add_arguments", "run_command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_EMBEDDED_MODEL = "meta-llama/llama-3.3-70b-instruct"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``chatcompat check``."""
    parser.add_argument(
        "--base-url",
        help="API base URL, e.g. https://host/v1 (default: start the embedded mock)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CHATCOMPAT_API_KEY"),
        help="bearer token (default: $CHATCOMPAT_API_KEY); never printed",
    )
    parser.add_argument("--model", help="model id to test (default: the first listed one)")
    parser.add_argument("--report-json", type=Path, metavar="PATH", help="write the JSON report")
    parser.add_argument("--junit", type=Path, metavar="PATH", help="write JUnit XML")
    parser.add_argument(
        "--check",
        action="append",
        dest="checks",
        metavar="ID",
        help="run only this check (repeatable); see --list",
    )
    parser.add_argument("--list", action="store_true", help="print the checks and exit")
    parser.add_argument(
        "--profile",
        metavar="NAME|PATH",
        help=f"what the endpoint claims: one of {', '.join(PROFILES)} or a TOML file "
        "(default: mock for the embedded mock, else core only)",
    )
    parser.add_argument(
        "--capability",
        action="append",
        default=[],
        metavar="CAP",
        choices=sorted(CAPABILITIES),
        help="claim a capability (repeatable): " + ", ".join(sorted(CAPABILITIES)),
    )
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="CAP",
        choices=sorted(CAPABILITIES),
        help="withdraw a capability the profile claims (repeatable)",
    )
    parser.add_argument(
        "--context-length",
        type=int,
        metavar="TOKENS",
        help="the model's context length (default: the profile's)",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="find out the capabilities with a few requests, print them, and use them",
    )
    parser.add_argument(
        "--reference",
        metavar="DIR",
        help="the endpoint serves the model `chatcompat export-model --format hf DIR` wrote: "
        "claim capability reference and check exact distributions (needs the reference extra)",
    )
    parser.add_argument(
        "--dialect",
        choices=("vllm", "hf", "llamacpp"),
        default="vllm",
        help="the sampling semantics the endpoint claims, for --reference (default vllm)",
    )
    parser.add_argument(
        "--reference-samples",
        type=int,
        default=300,
        metavar="N",
        help="samples per sampling case with --reference (default 300)",
    )
    parser.add_argument(
        "--report-md", type=Path, metavar="PATH", help="write a Markdown summary (for CI comments)"
    )
    parser.add_argument(
        "--schema-level",
        choices=schemas.LEVELS,
        default="compatible",
        help="validate answers against OpenAI's strict schemas or what clients accept "
        "(default: compatible)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds per request, stream included (default 60)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="checks run at once (default 4)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=900.0,
        metavar="S",
        help="seconds for the whole run; checks still running then fail (900)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=300,
        metavar="N",
        help="request budget of the run; checks past it are skipped (300)",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=50_000,
        metavar="N",
        help="token budget (by the endpoint's usage) of the run (50000)",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=20,
        metavar="N",
        help="hypothesis examples per property check and schemathesis operation (20)",
    )
    parser.add_argument(
        "--price-per-mtok",
        type=float,
        metavar="USD",
        help="price per million tokens, for the cost estimate",
    )


def _progress_bar(result: Result, finished: int, total: int) -> None:
    """A one-line progress bar on stderr (a terminal only)."""
    width = 30
    filled = width * finished // max(total, 1)
    bar = "=" * filled + " " * (width - filled)
    end = "\n" if finished == total else ""
    print(
        f"\r[{bar}] {finished}/{total} {result.check.id:<32}", end=end, file=sys.stderr, flush=True
    )


def _list_checks() -> str:
    width = max(map(len, CHECKS))
    return "\n".join(
        f"{c.id:<{width}}  {c.group:<8} {c.severity:<6} {c.capability:<6} {c.doc}"
        for c in CHECKS.values()
    )


def _reachable(base_url: str, timeout: float = 5.0) -> str | None:
    """None when a TCP connection to ``base_url``'s host opens, else why not."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"--base-url must be an http(s) URL, got {base_url!r}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot connect to {parts.hostname}:{port}: {exc}"


@contextlib.contextmanager
def _embedded_mock(api_key: str | None, model: str) -> Iterator[str]:
    """The mock server on a free loopback port for the length of the run; yields its URL."""
    from mockserver import MockConfig, MockServer

    with MockServer(MockConfig(api_key=api_key, models=(model,))) as server:
        yield server.base_url


def _profile(args: argparse.Namespace) -> Profile:
    """The claimed capabilities: the profile, then --capability and --without."""
    name = args.profile or ("mock" if args.base_url is None else None)
    base = load_profile(name) if name else Profile("core", "core only", frozenset({"core"}))
    add = tuple(args.capability)
    if args.base_url is None and args.api_key:
        add += ("auth",)  # the embedded mock then requires the key
    if args.reference:
        add += ("reference",)
    return base.with_changes(add=add, remove=tuple(args.without))


def _probed(endpoint: Endpoint, args: argparse.Namespace) -> Endpoint:
    """``endpoint`` with the capabilities a probe found (then --capability / --without),
    after printing what it found."""
    findings, context = asyncio.run(probe(endpoint))
    print("probe:")
    for finding in findings:
        print(
            f"  {finding.capability:<9} {'yes' if finding.found else 'no ':<4} {finding.evidence}"
        )
    print(f"  context  {context if context else 'unknown (not in the model card)'}\n")
    found = {f.capability for f in findings if f.found}
    capabilities = (endpoint.capabilities | found | set(args.capability)) - set(args.without)
    return dataclasses.replace(
        endpoint,
        capabilities=frozenset(capabilities | {"core"}),
        context_length=endpoint.context_length or context,
    )


def run_command(args: argparse.Namespace) -> int:
    """Run the suite; the exit status says whether it passed (0), failed (1) or could not
    start (2)."""
    if args.list:
        print(_list_checks())
        return EXIT_OK
    unknown = sorted(set(args.checks or ()) - set(CHECKS))
    if unknown:
        print(f"chatcompat check: unknown check id(s): {', '.join(unknown)}", file=sys.stderr)
        return EXIT_USAGE
    if (
        min(args.timeout, args.deadline) <= 0
        or min(args.concurrency, args.max_requests, args.max_examples) < 1
    ):
        print(
            "chatcompat check: --timeout and --deadline must be > 0, --concurrency, "
            "--max-requests and --max-examples >= 1",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        profile = _profile(args)
    except ValueError as exc:
        print(f"chatcompat check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        model = args.model
        if base_url is None:
            model = model or DEFAULT_EMBEDDED_MODEL
            base_url = stack.enter_context(_embedded_mock(args.api_key, model))
        problem = _reachable(base_url)
        if problem:
            print(f"chatcompat check: {problem}", file=sys.stderr)
            return EXIT_USAGE
        if model is None:
            print("chatcompat check: --model is required with --base-url", file=sys.stderr)
            return EXIT_USAGE
        endpoint = Endpoint(
            base_url.rstrip("/"),
            model,
            args.api_key,
            timeout=args.timeout,
            read_timeout=min(30.0, args.timeout),
            capabilities=profile.capabilities,
            context_length=args.context_length or profile.context_length,
            reference=args.reference,
            dialect=args.dialect,
            reference_samples=args.reference_samples,
        )
        if args.probe:
            endpoint = _probed(endpoint, args)
        result = run(
            endpoint,
            args.checks,
            schema_level=args.schema_level,
            concurrency=args.concurrency,
            deadline=args.deadline,
            budget=Budget(
                max_requests=args.max_requests,
                max_tokens=args.max_tokens,
                max_examples=args.max_examples,
            ),
            progress=_progress_bar if sys.stderr.isatty() else None,
        )
    print(console_text(result, price_per_mtok=args.price_per_mtok))
    write_reports(
        result,
        json_path=args.report_json,
        junit_path=args.junit,
        markdown_path=args.report_md,
        price_per_mtok=args.price_per_mtok,
    )
    return EXIT_OK if result.ok else EXIT_FAILED
