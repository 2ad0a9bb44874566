"""The ``chatcompat mock`` command."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatcompat.cli import DeprecatedSpelling
from mockserver._cassettes import CassetteError, CassetteStore
from mockserver._config import FD_RESERVE, ConnectionLimits, MockConfig
from mockserver._defects import DEFECTS
from mockserver._faults import parse_fault
from mockserver._flavours import FLAVOURS
from mockserver._generate import ModelUnavailable, require_reference_model
from mockserver._record import RecordConfig, serve_recorder
from mockserver._server import serve_forever
from mockserver._timing import parse_delay
from mockserver._upstream import RECORD_MODES
from mockserver._workers import LOG_FORMAT, serve_workers

__all__ = ["API_KEY_VARIABLE", "add_arguments", "add_record_arguments", "run", "run_record"]

API_KEY_VARIABLE = "CHATCOMPAT_MOCK_API_KEY"  # the key the mock wants when --api-key is absent
LOG_LEVELS = ("debug", "info", "warning", "error")


def _spec(parse: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse type: the text itself, once ``parse`` accepts it (else argparse reports
    what ``parse`` said)."""

    def checked(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return checked


_fault_spec, _delay_spec = _spec(parse_fault), _spec(parse_delay)


Option = tuple[tuple[str, ...], dict[str, Any]]  # add_argument's flags and keywords

# The options of `chatcompat mock`, in --help order.
_MOCK_OPTIONS: tuple[Option, ...] = (
    (("--host",), {"default": "127.0.0.1", "help": "address to bind (default 127.0.0.1)"}),
    (("--port",), {"type": int, "default": 8000, "help": "port to bind (0 = any free port)"}),
    (
        ("--api-key",),
        {
            "help": "require Authorization: Bearer API_KEY (default: $CHATCOMPAT_MOCK_API_KEY, "
            "which keeps the key out of the process's command line)"
        },
    ),
    (
        ("--model",),
        {
            "action": "append",
            "default": [],
            "help": "serve only this model (repeatable); default: any name is served",
        },
    ),
    (
        ("--defect",),
        {
            "action": "append",
            "default": [],
            "choices": sorted(DEFECTS),
            "metavar": "NAME",
            "help": "break one behaviour (repeatable); see --list-defects",
        },
    ),
    (("--prefix",), {"default": "/v1", "help": "path prefix of the API (default /v1)"}),
    (
        ("--vision",),
        {
            "action": "store_true",
            "help": "answer image_url parts as a vision model (the image is not read); "
            "default: refuse them with 400, as a text-only model",
        },
    ),
    (
        ("--flavour",),
        {
            "default": "openai",
            "choices": sorted(FLAVOURS),
            "help": "shape answers like this server (default openai)",
        },
    ),
    (
        ("--dialect",),
        {
            "dest": "flavour",
            "choices": sorted(FLAVOURS),
            "action": DeprecatedSpelling,
            "new": "--flavour",
            "help": "deprecated spelling of --flavour",
        },
    ),
    (
        ("--workers",),
        {
            "type": int,
            "default": 1,
            "metavar": "N",
            "help": "serve with N processes sharing the port (SO_REUSEPORT); with --port 0 a "
            "free port is picked first (default 1)",
        },
    ),
    (
        ("--fault",),
        {
            "action": "append",
            "default": [],
            "type": _fault_spec,
            "metavar": "SPEC",
            "help": "inject a fault (repeatable; the first in scope applies), e.g. "
            "'status=429;retry-after=2', 'fail-first=3;status=503', "
            "'disconnect-after=5;model=m'; see README",
        },
    ),
    (
        ("--ttft",),
        {
            "default": "0",
            "type": _delay_spec,
            "metavar": "DELAY",
            "help": "pause before a stream's first event: seconds, uniform:LOW,HIGH or "
            "lognormal:MEDIAN,SIGMA (default 0)",
        },
    ),
    (
        ("--itl",),
        {
            "default": "0",
            "type": _delay_spec,
            "metavar": "DELAY",
            "help": "pause before every later event, same forms (default 0)",
        },
    ),
    (
        ("--itl-jitter",),
        {
            "type": float,
            "default": 0.0,
            "metavar": "S",
            "help": "a fixed --itl X becomes uniform:X-S,X+S (default 0)",
        },
    ),
    (
        ("--timing-seed",),
        {"type": int, "default": 0, "help": "seed of the timing draws (default 0)"},
    ),
    # where answers come from: cassettes, templates or the reference model
    (
        ("--mode",),
        {
            "default": "replay",
            "choices": ("replay", "generate"),
            "help": "replay: cassettes, else --on-miss; generate: the reference model answers "
            "(needs torch) (default replay)",
        },
    ),
    (
        ("--on-miss",),
        {
            "default": "template",
            "choices": ("template", "generate", "error"),
            "help": "replay without a matching cassette: template answers, the reference model, "
            "or 404 cassette_not_found (default template)",
        },
    ),
    (
        ("--cassettes",),
        {
            "action": "append",
            "default": [],
            "metavar": "DIR",
            "help": "replay the cassettes in DIR (repeatable; searched in order, before the "
            "built-in seed cassettes)",
        },
    ),
    # issue 14: record modes and control routes (mockserver._upstream, mockserver._control)
    (
        ("--upstream",),
        {
            "metavar": "URL",
            "help": "the API base to record from with --record-mode (e.g. "
            "https://api.openai.com/v1); the client's key goes upstream unless --upstream-key-env",
        },
    ),
    (
        ("--record-mode",),
        {
            "choices": RECORD_MODES,
            "help": "vcrpy's record modes, in the first --cassettes DIR: none = replay only, a "
            "miss is 404; once = record if DIR has no cassette, else replay only; new_episodes "
            "= replay known, record new; all = always record (default with --upstream: once)",
        },
    ),
    (
        ("--upstream-key-env",),
        {
            "metavar": "VAR",
            "help": "send the key in environment variable VAR upstream instead of the client's",
        },
    ),
    (
        ("--control",),
        {
            "action": "store_true",
            "help": "serve the control routes under /_chatcompat (scripted replies, the "
            "request log, reset); they want --api-key too when one is set",
        },
    ),
    (
        ("--no-builtin-cassettes",),
        {"action": "store_true", "help": "do not replay the seed provider's documented exchanges"},
    ),
    (
        ("--match",),
        {
            "default": "exact",
            "choices": ("exact", "loose"),
            "help": "exact: method, path and body without volatile keys; loose: model, messages "
            "and stream only (default exact)",
        },
    ),
    (
        ("--speed",),
        {
            "type": float,
            "default": 0.0,
            "metavar": "S",
            "help": "replay timing: 0 = at once, 1 = as recorded, 2 = twice as fast (default 0)",
        },
    ),
    (
        ("--sampling",),
        {
            "choices": ("vllm", "hf", "llamacpp", "llama-cpp-python"),
            "help": "generate mode: the reference sampler's semantics (default: the flavour's)",
        },
    ),
    (
        ("--validation",),
        {
            "default": "strict",
            "choices": ("strict", "schema", "off"),
            "help": "which chat requests are answered: strict refuses what OpenAI refuses (400); "
            "schema answers whatever OpenAI's published request schema accepts (SDK tests with "
            "placeholder values); off answers any JSON object (default strict)",
        },
    ),
    # how long a client is waited for, and how many connections stay open
    (
        ("--header-timeout",),
        {
            "type": float,
            "default": ConnectionLimits.header_timeout,
            "metavar": "S",
            "help": "seconds from a request's first byte (a connection's first request: from "
            "the connection's start) to the end of its headers, then 408 and close; a "
            "connection that sent nothing is closed (default %(default)g)",
        },
    ),
    (
        ("--body-timeout",),
        {
            "type": float,
            "default": ConnectionLimits.body_timeout,
            "metavar": "S",
            "help": "seconds from the end of the headers to the end of the body, then 408 "
            "(default %(default)g)",
        },
    ),
    (
        ("--idle-timeout",),
        {
            "type": float,
            "default": ConnectionLimits.idle_timeout,
            "metavar": "S",
            "help": "seconds an idle keep-alive connection stays open (default %(default)g)",
        },
    ),
    (
        ("--write-timeout",),
        {
            "type": float,
            "default": ConnectionLimits.write_timeout,
            "metavar": "S",
            "help": "seconds a client may read nothing of its answer; then the connection "
            "closes and the answer stops (default %(default)g)",
        },
    ),
    (
        ("--max-connections",),
        {
            "type": int,
            "metavar": "N",
            "help": "connections open at once (per worker); past it the oldest stalled one "
            "(idle, its request still arriving, or its client not reading) is closed, else "
            f"the oldest being answered (default: the open-file limit "
            f"minus {FD_RESERVE})",
        },
    ),
    (
        ("--log-level",),
        {
            "default": "info",
            "choices": LOG_LEVELS,
            "help": "info: a line per request (buffered, written every 0.1 s), the model's "
            "build and readiness; warning: only what goes wrong (default info)",
        },
    ),
    (
        ("--no-quick-path",),
        {
            "dest": "quick_path",
            "action": "store_false",
            "help": "answer a repeated chat completion through aiohttp's request machinery too, "
            "not from the answer cache in the connection layer (same bytes, more CPU)",
        },
    ),
    (("--list-defects",), {"action": "store_true", "help": "print the defect modes and exit"}),
)

# The options of `chatcompat record`, in --help order.
_RECORD_OPTIONS: tuple[Option, ...] = (
    (
        ("--upstream",),
        {"required": True, "metavar": "URL", "help": "the API base to record, e.g. .../v1"},
    ),
    (
        ("--cassettes",),
        {"required": True, "metavar": "DIR", "help": "write one cassette per exchange here"},
    ),
    (("--host",), {"default": "127.0.0.1", "help": "address to bind (default 127.0.0.1)"}),
    (("--port",), {"type": int, "default": 8001, "help": "port to bind (default 8001)"}),
    (
        ("--prefix",),
        {
            "default": "/v1",
            "help": "the recorder's API base path; the rest of each path is appended to "
            "--upstream (default /v1)",
        },
    ),
    (
        ("--redact",),
        {
            "action": "append",
            "default": [],
            "metavar": "SECRET",
            "help": "also replace SECRET with [REDACTED] in stored requests and answers "
            "(repeatable); API keys in Authorization / api-key headers always are",
        },
    ),
)


def _add(parser: argparse.ArgumentParser, options: tuple[Option, ...]) -> None:
    for flags, keywords in options:
        parser.add_argument(*flags, **keywords)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``chatcompat mock``; --api-key's default is read from
    ``$CHATCOMPAT_MOCK_API_KEY`` when the parser is built (empty = no key)."""
    _add(parser, _MOCK_OPTIONS)
    parser.set_defaults(api_key=os.environ.get(API_KEY_VARIABLE) or None)


def run(args: argparse.Namespace) -> int:
    """Run the mock in the foreground until interrupted."""
    if args.list_defects:
        width = max(map(len, DEFECTS))
        for defect in DEFECTS.values():
            print(f"{defect.name:<{width}}  {defect.doc}")
        return 0
    try:
        limits = ConnectionLimits(
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            idle_timeout=args.idle_timeout,
            write_timeout=args.write_timeout,
            max_connections=args.max_connections,
        )
    except ValueError as exc:
        print(f"chatcompat mock: {exc}", file=sys.stderr)
        return 2
    config = MockConfig(
        api_key=args.api_key,
        limits=limits,
        models=tuple(args.model),
        defects=tuple(args.defect),
        prefix=args.prefix,
        vision=args.vision,
        flavour=args.flavour,
        faults=tuple(args.fault),
        ttft=args.ttft,
        itl=args.itl,
        itl_jitter=args.itl_jitter,
        timing_seed=args.timing_seed,
        mode=args.mode,
        on_miss=args.on_miss,
        cassettes=tuple(args.cassettes),
        builtin_cassettes=not args.no_builtin_cassettes,
        match=args.match,
        speed=args.speed,
        sampling=args.sampling,
        validation=args.validation,
        quick_path=args.quick_path,
        **_record_options(args),
    )
    try:
        if config.generates:
            require_reference_model()
        CassetteStore.from_directories(config.cassettes, builtin=config.builtin_cassettes)
    except (ModelUnavailable, CassetteError) as exc:
        print(f"chatcompat mock: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("chatcompat mock: --workers must be >= 1", file=sys.stderr)
        return 2
    _raise_open_file_limit()
    level = getattr(logging, args.log_level.upper())
    if args.workers > 1:
        logging.basicConfig(level=level, format=LOG_FORMAT)
        return serve_workers(config, args.host, args.port, args.workers, log_level=level)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(message)s")
    serve_forever(config, args.host, args.port)
    return 0


def _record_options(args: argparse.Namespace) -> dict[str, Any]:
    """MockConfig's control and record-mode fields from the options; the cassette folder of a
    record mode made when missing. SystemExit(2) for a record mode without its folder or
    upstream."""
    mode = args.record_mode or ("once" if args.upstream else None)
    if mode is not None and not args.cassettes:
        print("chatcompat mock: --record-mode needs --cassettes DIR", file=sys.stderr)
        raise SystemExit(2)
    if mode not in (None, "none") and not args.upstream:
        print(f"chatcompat mock: --record-mode {mode} needs --upstream URL", file=sys.stderr)
        raise SystemExit(2)
    if args.upstream and not args.upstream.startswith(("http://", "https://")):
        print("chatcompat mock: --upstream must be an http(s) URL", file=sys.stderr)
        raise SystemExit(2)
    if mode not in (None, "none"):
        Path(args.cassettes[0]).mkdir(parents=True, exist_ok=True)
    key = os.environ.get(args.upstream_key_env) if args.upstream_key_env else None
    return {
        "control": args.control,
        "record_mode": mode,
        "upstream": args.upstream,
        "upstream_key": key,
    }


def _raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one, as Go programs do at start (the
    connection cap follows the soft limit); where that fails, the limit stays as it was."""
    try:
        import resource
    except ImportError:  # not on Unix
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``chatcompat record``."""
    _add(parser, _RECORD_OPTIONS)


def run_record(args: argparse.Namespace) -> int:
    """Run the recording proxy in the foreground until interrupted."""
    try:
        config = RecordConfig(
            upstream=args.upstream,
            directory=args.cassettes,
            prefix=args.prefix,
            secrets=tuple(args.redact),
        )
    except ValueError as exc:
        print(f"chatcompat record: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve_recorder(config, args.host, args.port)
    return 0
