"""A mock OpenAI-compatible chat-completions server (aiohttp)."""

from __future__ import annotations

from mockserver._app import create_app
from mockserver._cassettes import (
    Cassette,
    CassetteError,
    CassetteStore,
    Write,
    builtin_cassettes,
    dump_cassette,
    load_cassette,
    load_directory,
    save_cassette,
)
from mockserver._config import DEFAULT_MODEL, ConnectionLimits, MockConfig
from mockserver._control import CONTROL_PREFIX
from mockserver._defects import DEFECTS, QUIRKS, Defect
from mockserver._faults import FAULT_HEADER, FAULT_KEY_HEADER, Fault, parse_fault
from mockserver._flavours import FLAVOURS, Flavour
from mockserver._generate import ModelUnavailable, ModelWorker
from mockserver._record import RecordConfig, create_record_app
from mockserver._replies import Reply, reply_from_json
from mockserver._request_log import LoggedRequest
from mockserver._server import MockServer, serve_forever, start_site
from mockserver._timing import Delay, Timing, parse_delay
from mockserver._upstream import RECORD_MODES
from mockserver._workers import WORKER_HEADER, serve_workers

__all__ = [
    "CONTROL_PREFIX",
    "DEFAULT_MODEL",
    "DEFECTS",
    "FAULT_HEADER",
    "FAULT_KEY_HEADER",
    "FLAVOURS",
    "QUIRKS",
    "RECORD_MODES",
    "WORKER_HEADER",
    "Cassette",
    "CassetteError",
    "CassetteStore",
    "ConnectionLimits",
    "Defect",
    "Delay",
    "Fault",
    "Flavour",
    "LoggedRequest",
    "MockConfig",
    "MockServer",
    "ModelUnavailable",
    "ModelWorker",
    "RecordConfig",
    "Reply",
    "Timing",
    "Write",
    "builtin_cassettes",
    "create_app",
    "create_record_app",
    "dump_cassette",
    "load_cassette",
    "load_directory",
    "parse_delay",
    "parse_fault",
    "reply_from_json",
    "save_cassette",
    "serve_forever",
    "serve_workers",
    "start_site",
]
