"""The ``chatcompat check`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatcompat import schemas
from chatcompat.cli import DeprecatedSpelling
from conformance import _config
from conformance._colour import wants_colour
from conformance._context import Budget
from conformance._http import Endpoint
from conformance._hypothesis_home import hypothesis_home_outside_cwd
from conformance._live import live_output
from conformance._preflight import CannotStart, Preflight, preflight, reachable
from conformance._probe import probe
from conformance._profiles import PROFILES, Profile, endpoint_claiming, load_profile
from conformance._redirects import distinct, watching
from conformance._registry import CAPABILITIES, CHECKS
from conformance._report import console_text, write_reports
from conformance._runner import RunResult, run, selected_ids
from conformance._shown import shown

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "add_arguments", "run_command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_EMBEDDED_MODEL = "meta-llama/llama-3.3-70b-instruct"
PROBE_SHARE = 1 / 3  # of --deadline: the most a --probe may take, so the checks keep the rest
PREFLIGHT_SHARE = 1 / 3  # of --deadline: the most the preflight may take (and --timeout)


_SAMPLINGS = ("vllm", "hf", "llamacpp", "llama-cpp-python")
# The options of `chatcompat check`, in --help order: (flags, add_argument keywords).
# --api-key's default ($CHATCOMPAT_API_KEY) is read when the parser is built.
_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (
        ("--base-url",),
        {"help": "API base URL, e.g. https://host/v1 (default: start the embedded mock)"},
    ),
    (("--api-key",), {"help": "bearer token (default: $CHATCOMPAT_API_KEY); never printed"}),
    (
        ("--model",),
        {"help": "model id to test (default: the first one GET /models lists)"},
    ),
    (("--report-json",), {"type": Path, "metavar": "PATH", "help": "write the JSON report"}),
    (("--junit",), {"type": Path, "metavar": "PATH", "help": "write JUnit XML"}),
    (
        ("--config",),
        {
            "type": Path,
            "metavar": "PATH",
            "help": "read options from this TOML file (default: chatcompat.toml or "
            "pyproject.toml's [tool.chatcompat], here or in a parent up to the repository root); "
            "the command line wins",
        },
    ),
    (
        ("--check",),
        {
            "action": "append",
            "dest": "checks",
            "metavar": "ID|GLOB",
            "help": "run only the checks this id or glob names (repeatable); see --list",
        },
    ),
    (
        ("--exclude",),
        {
            "action": "append",
            "default": [],
            "metavar": "ID|GLOB",
            "help": "do not run the checks this id or glob names (repeatable)",
        },
    ),
    (
        ("--fail-fast",),
        {
            "action": argparse.BooleanOptionalAction,
            "default": False,
            "help": "after the first check that fails the run, start no other (they are "
            "skipped; those running finish)",
        },
    ),
    (
        ("--fail-on",),
        {
            "choices": ("failure", "warning"),
            "default": "failure",
            "help": "exit 1 on a failed or crashed check (failure, the default) or on a "
            "warning too",
        },
    ),
    (
        ("--color",),
        {
            "choices": ("auto", "always", "never"),
            "default": "auto",
            "help": "colour the status words: auto (when stdout is a terminal and $NO_COLOR "
            "is unset or empty), always, never",
        },
    ),
    (("--list",), {"action": "store_true", "help": "print the checks and exit"}),
    (
        ("--profile",),
        {
            "metavar": "NAME|PATH",
            "help": f"what the endpoint claims: one of {', '.join(PROFILES)} or a TOML file "
            "(default: mock for the embedded mock, else core only)",
        },
    ),
    (
        ("--capability",),
        {
            "action": "append",
            "default": [],
            "metavar": "CAP",
            "choices": sorted(CAPABILITIES),
            "help": "claim a capability (repeatable): " + ", ".join(sorted(CAPABILITIES)),
        },
    ),
    (
        ("--without",),
        {
            "action": "append",
            "default": [],
            "metavar": "CAP",
            "choices": sorted(CAPABILITIES),
            "help": "withdraw a capability the profile claims (repeatable)",
        },
    ),
    (
        ("--context-length",),
        {
            "type": int,
            "metavar": "TOKENS",
            "help": "the model's context length (default: the profile's)",
        },
    ),
    (
        ("--probe",),
        {
            "action": argparse.BooleanOptionalAction,
            "default": False,
            "help": "find out the capabilities with a few requests, print them, and use them "
            "(within a third of --deadline)",
        },
    ),
    (
        ("--reference",),
        {
            "metavar": "DIR",
            "help": "the endpoint serves the model `chatcompat export-model --format hf DIR` "
            "wrote: claim capability reference and check exact distributions (needs the "
            "reference extra)",
        },
    ),
    (
        ("--sampling",),
        {
            "choices": _SAMPLINGS,
            "default": "vllm",
            "help": "the sampling semantics the endpoint claims, for --reference (default vllm)",
        },
    ),
    (
        ("--dialect",),
        {
            "action": DeprecatedSpelling,
            "new": "--sampling",
            "dest": "sampling",
            "choices": _SAMPLINGS,
            "help": "deprecated spelling of --sampling",
        },
    ),
    (
        ("--reference-samples",),
        {
            "type": int,
            "default": 300,
            "metavar": "N",
            "help": "samples per sampling case with --reference (default 300)",
        },
    ),
    (
        ("--report-md",),
        {"type": Path, "metavar": "PATH", "help": "write a Markdown summary (for CI comments)"},
    ),
    (
        ("--schema-level",),
        {
            "choices": schemas.LEVELS,
            "default": "compatible",
            "help": "validate answers against OpenAI's strict schemas or what clients accept "
            "(default: compatible)",
        },
    ),
    (
        ("--timeout",),
        {
            "type": float,
            "default": 60.0,
            "help": "seconds per request, stream included (default 60)",
        },
    ),
    (("--concurrency",), {"type": int, "default": 4, "help": "checks run at once (default 4)"}),
    (
        ("--deadline",),
        {
            "type": float,
            "default": 900.0,
            "metavar": "S",
            "help": "seconds for the whole run, the preflight and --probe included; checks "
            "still running then fail (900)",
        },
    ),
    (
        ("--max-requests",),
        {
            "type": int,
            "default": 300,
            "metavar": "N",
            "help": "request budget of the run; checks past it are skipped (300)",
        },
    ),
    (
        ("--max-tokens",),
        {
            "type": int,
            "default": 50_000,
            "metavar": "N",
            "help": "token budget (by the endpoint's usage) of the run (50000)",
        },
    ),
    (
        ("--max-examples",),
        {
            "type": int,
            "default": 20,
            "metavar": "N",
            "help": "hypothesis examples per property check and schemathesis operation (20)",
        },
    ),
    (
        ("--price-per-mtok",),
        {
            "type": float,
            "metavar": "USD",
            "help": "price per million tokens, for the cost estimate",
        },
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``chatcompat check`` (see :data:`_OPTIONS`), each noting when the command
    line gives it (it then wins over the config file: :func:`run_command`)."""
    for flags, options in _OPTIONS:
        _config.noted(parser.add_argument(*flags, **options))
    parser.set_defaults(api_key=os.environ.get("CHATCOMPAT_API_KEY"))


def _configured(args: argparse.Namespace) -> _config.ConfigFile | None:
    """Complete ``args`` from the config file (--config, else the one found from the current
    directory; every option but --config, --list, --dialect and --api-key) where the command
    line did not give them; the file read, if any. Raises ConfigError (see
    :mod:`conformance._config`)."""
    options = _config.options_from(_OPTIONS, skip={"config", "list", "dialect"}, names=PROFILES)
    return _config.completed(args, args.config or _config.find_config(Path.cwd()), options)


def _list_checks() -> str:
    width = max(map(len, CHECKS))
    return "\n".join(
        f"{c.id:<{width}}  {c.group:<8} {c.severity:<6} {c.capability:<6} {c.doc}"
        for c in CHECKS.values()
    )


@contextlib.contextmanager
def _embedded_mock(api_key: str | None, model: str) -> Iterator[str]:
    """The mock server on a free loopback port for the length of the run; yields its URL."""
    from mockserver import MockConfig, MockServer

    with MockServer(MockConfig(api_key=api_key, models=(model,))) as server:
        yield server.base_url


def _profile(args: argparse.Namespace) -> Profile:
    """The claimed capabilities: the profile (mock for the embedded mock, else core only), then
    --capability and --without. Raises ValueError for an unknown profile or capability."""
    profile = load_profile(args.profile or ("mock" if args.base_url is None else None))
    add = tuple(args.capability)
    if args.base_url is None and args.api_key:
        add += ("auth",)  # the embedded mock then requires the key
    if args.reference:
        add += ("reference",)
    return profile.with_changes(add=add, remove=tuple(args.without))


def _left(args: argparse.Namespace, started: float) -> float:
    """Seconds left of --deadline for a run that started at ``started`` (time.monotonic())."""
    deadline: float = args.deadline
    return max(0.0, started + deadline - time.monotonic())


def _say(text: str, args: argparse.Namespace) -> None:
    """Print ``text`` as every output is shown: the key redacted, control characters escaped
    (its lines are the suite's: what the server sent in it is already on one line)."""
    print(shown(text, args.api_key))


def _one_line(text: str, args: argparse.Namespace) -> str:
    """``text`` the server controls, as a console line holds it: the key redacted, on one line,
    control characters escaped (:func:`~conformance._shown.inline`)."""
    return shown(text, args.api_key, inline=True)


def _probed(endpoint: Endpoint, args: argparse.Namespace, started: float) -> Endpoint:
    """``endpoint`` with the capabilities a probe found (then --capability / --without),
    after printing what it found; the probe takes at most a third of --deadline (and never
    more than is left of it)."""
    within = min(_left(args, started), args.deadline * PROBE_SHARE)
    with watching() as seen:  # the command's collector: the run's reports list these too
        before = len(seen)
        findings, context = asyncio.run(probe(endpoint, within=within))
        probed = distinct(seen[before:])
    lines = ["probe:"] + [
        f"  {f.capability:<9} {'yes' if f.found else 'no ':<4} {_one_line(f.evidence, args)}"
        for f in findings
    ]
    lines.append(f"  context  {context if context else 'unknown (not in the model card)'}")
    if any(f.evidence.startswith("not found out") for f in findings):
        lines.append(
            f"  the probe stopped after {within:.1f} s (a third of --deadline {args.deadline:g} "
            "s at most): what it did not find out counts as not supported"
        )
    lines += [f"  warning: redirected: {r.describe()}" for r in probed]
    _say("\n".join(lines) + "\n", args)
    found = {f.capability for f in findings if f.found}
    capabilities = (endpoint.capabilities | found | set(args.capability)) - set(args.without)
    return dataclasses.replace(
        endpoint,
        capabilities=frozenset(capabilities | {"core"}),
        context_length=endpoint.context_length or context,
    )


def _colour(args: argparse.Namespace) -> bool:
    """Whether to colour stdout (--color; auto: a terminal and no $NO_COLOR)."""
    return wants_colour(args.color, sys.stdout, os.environ)


def _argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments argparse let through, or None."""
    try:
        selected_ids(args.checks, args.exclude)
    except ValueError as exc:
        return str(exc)
    if (
        min(args.timeout, args.deadline) <= 0
        or min(args.concurrency, args.max_requests, args.max_examples) < 1
    ):
        return (
            "--timeout and --deadline must be > 0, --concurrency, "
            "--max-requests and --max-examples >= 1"
        )
    return None


def _endpoint(
    args: argparse.Namespace, stack: contextlib.ExitStack, started: float
) -> tuple[Endpoint, Preflight]:
    """The endpoint under test: --base-url (else the embedded mock, started on ``stack``), the
    model (--model, else the first listed), the claimed profile; and its preflight
    (:func:`~conformance._preflight.preflight`, within --timeout, a third of --deadline and
    what is left of it). Raises CannotStart."""
    try:
        profile = _profile(args)
    except ValueError as exc:
        raise CannotStart(str(exc)) from None
    base_url, model = args.base_url, args.model
    if base_url is None:
        model = model or DEFAULT_EMBEDDED_MODEL
        base_url = stack.enter_context(_embedded_mock(args.api_key, model))
    problem = reachable(base_url, timeout=min(5.0, max(1.0, _left(args, started))))
    if problem:
        raise CannotStart(problem)
    endpoint = endpoint_claiming(
        profile,
        base_url,
        model or "",
        args.api_key,
        timeout=args.timeout,
        context_length=args.context_length,
        reference=args.reference,
        sampling=args.sampling,
        reference_samples=args.reference_samples,
    )
    within = max(0.1, min(args.timeout, args.deadline * PREFLIGHT_SHARE, _left(args, started)))
    checked = asyncio.run(preflight(endpoint, within=within, model_given=bool(model)))
    if not model:
        _say(f"model: {_one_line(checked.model, args)} (the first listed by GET /models)", args)
    if checked.warning:
        _say(f"warning: {_one_line(checked.warning, args)}", args)
    return dataclasses.replace(endpoint, model=checked.model), checked


def _run(
    endpoint: Endpoint, checked: Preflight, args: argparse.Namespace, started: float
) -> RunResult:
    """The run the arguments ask for (after the probe, with --probe), within --deadline of
    ``started``; what it shows as it goes: :func:`~conformance._live.live_output`; its request
    and token counts include the preflight's (``checked``), which --max-requests and
    --max-tokens do not count."""
    if args.probe:
        endpoint = _probed(endpoint, args, started)
    result = run(
        endpoint,
        selected_ids(args.checks, args.exclude),
        schema_level=args.schema_level,
        concurrency=args.concurrency,
        deadline=args.deadline,
        started=started,
        budget=Budget(
            max_requests=args.max_requests,
            max_tokens=args.max_tokens,
            max_examples=args.max_examples,
        ),
        progress=live_output(sys.stdout, sys.stderr, args.api_key, colour=_colour(args)),
        fail_fast=args.fail_fast,
        fail_on=args.fail_on,
    )
    return dataclasses.replace(
        result,
        requests=result.requests + checked.requests,
        tokens=result.tokens + checked.tokens,
        preflight_requests=checked.requests,
    )


def run_command(args: argparse.Namespace) -> int:
    """Run the suite with ``args`` completed by the config file (:func:`_configured`); the
    exit status says whether it passed (0), failed (1: a check failed or crashed, or warned
    with --fail-on warning) or could not start (2: the config file or the arguments are
    wrong, or the endpoint cannot be used). The redirects of every request it sends (the
    preflight's, the probe's, the checks') go to one collector: the run's reports list them all."""
    if args.list:
        print(_list_checks())
        return EXIT_OK
    started = time.monotonic()  # --deadline counts from here
    with watching() as seen, hypothesis_home_outside_cwd():
        try:
            config = _configured(args)
            if config is not None:
                _say(f"config: {config.describe()}", args)
            problem = _argument_problem(args)
            if problem:
                raise CannotStart(problem)
            with contextlib.ExitStack() as stack:
                result = _run(*_endpoint(args, stack, started), args, started)
        except (CannotStart, _config.ConfigError) as exc:
            lines = [f"chatcompat check: {exc}"]
            lines += [f"warning: redirected: {r.describe()}" for r in distinct(seen)]
            print(shown("\n".join(lines), args.api_key), file=sys.stderr)
            return EXIT_USAGE
    print(console_text(result, price_per_mtok=args.price_per_mtok, color=_colour(args)))
    write_reports(
        result,
        json_path=args.report_json,
        junit_path=args.junit,
        markdown_path=args.report_md,
        price_per_mtok=args.price_per_mtok,
    )
    return EXIT_OK if result.ok else EXIT_FAILED
