"""Configuration of one mock server."""

from __future__ import annotations

import sys
import warnings
from dataclasses import InitVar, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mockserver._faults import Fault
    from mockserver._timing import Timing

__all__ = [
    "ACCEPT_BURST",
    "DEFAULT_MODEL",
    "FD_RESERVE",
    "LISTEN_QUEUE",
    "ConnectionLimits",
    "MockConfig",
]

DEFAULT_MODEL = "meta-llama/llama-3.3-70b-instruct"
LISTEN_QUEUE = 1024  # connections the kernel queues for accept (net.core.somaxconn caps it)
ACCEPT_BURST = 32  # connections asyncio accepts in one turn of the loop
# File descriptors kept free of connections: the connections accepted in the last two turns
# of the loop and those shed past the cap (a shed one frees its descriptor a turn later), plus
# 64 for logs, cassettes, threads and the model's files.
FD_RESERVE = 3 * ACCEPT_BURST + 64


@dataclass(frozen=True)
class ConnectionLimits:
    """How long the server waits for a client, and how many connections it keeps open
    (:mod:`mockserver._protocol` applies them). Seconds; every timeout must be > 0."""

    # a request's first byte (a connection's first request: the connection's start) to the end
    # of its headers; then 408 (a connection that sent nothing is closed without an answer)
    header_timeout: float = 10.0
    body_timeout: float = 60.0  # the end of the headers to the end of the body; then 408
    idle_timeout: float = 30.0  # an idle keep-alive connection is closed after this
    # a write that makes no progress for this long (the client reads nothing of the answer):
    # the connection is closed and the answer stopped
    write_timeout: float = 30.0
    max_connections: int | None = None  # None: the open-file limit minus FD_RESERVE

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "idle_timeout", "write_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {self.max_connections!r}")

    def connection_cap(self) -> int:
        """``max_connections``, else the soft RLIMIT_NOFILE minus FD_RESERVE (at least half
        the limit); no cap (sys.maxsize) where the limit is unknown or infinite."""
        if self.max_connections is not None:
            return self.max_connections
        try:
            import resource
        except ImportError:  # not on Unix
            return sys.maxsize
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY or soft <= 0:
            return sys.maxsize
        return max(soft - FD_RESERVE, soft // 2)


@dataclass(frozen=True)
class MockConfig:
    api_key: str | None = None  # when set, every /v1 route wants "Authorization: Bearer <key>"
    models: tuple[str, ...] = ()  # served models; empty = any name is served, DEFAULT_MODEL listed
    defects: tuple[str, ...] = ()  # names from mockserver.DEFECTS, each breaking one behaviour
    prefix: str = "/v1"  # path prefix of the API routes
    context_length: int = 131072  # tokens of prompt + completion per model
    vision: bool = False  # image_url parts answered (the image unread); False: refused with 400
    max_body_bytes: int = 8 * 1024 * 1024  # larger request bodies get 413
    faults: tuple[str, ...] = ()  # fault specs (mockserver._faults); the first in scope applies
    ttft: float | str = 0.0  # pause before a stream's first event: 0.2, uniform:A,B, lognormal:M,S
    itl: float | str = 0.0  # pause before every later event, same forms
    itl_jitter: float = 0.0  # a fixed itl x becomes uniform:x-J,x+J
    timing_seed: int = 0  # seed of the timing draws
    flavour: str = "openai"  # how answers are shaped: a name from mockserver.FLAVOURS
    owned_by: str = "chatcompat"
    created: int = 1731542400  # "created" of every listed model
    mode: str = "replay"  # replay: cassettes, else on_miss; generate: the reference model answers
    on_miss: str = "template"  # replay without a matching cassette: template | generate | error
    cassettes: tuple[str, ...] = ()  # cassette directories, searched before the built-in ones
    builtin_cassettes: bool = True  # also replay the seed provider's documented exchanges
    match: str = "exact"  # exact: body minus volatile keys; loose: model + messages + stream
    speed: float = 0.0  # replay timing: 0 = at once, 1 = as recorded, 2 = twice as fast
    sampling: str | None = None  # generate: vllm | hf | llamacpp; None = the flavour's own
    limits: ConnectionLimits = ConnectionLimits()  # timeouts and the connection cap
    # which chat requests are answered (mockserver._lenient): strict (OpenAI's 400 rules),
    # schema (whatever OpenAI's published schema accepts), off (any JSON object)
    validation: str = "strict"
    # issue 14: control routes, record modes (mockserver._control, mockserver._upstream)
    control: bool = False  # serve the control routes under /_chatcompat
    # a repeated chat completion answered from the answer cache by the connection layer
    # (mockserver._quick); off: every request goes through aiohttp's request machinery
    quick_path: bool = True
    record_mode: str | None = None  # none | once | new_episodes | all, in cassettes[0]
    upstream: str | None = None  # the API base recorded from (record modes but none)
    upstream_key: str | None = field(default=None, repr=False)  # sent upstream as the key
    dialect: InitVar[str | None] = None  # the old name of flavour (a DeprecationWarning)

    def __post_init__(self, dialect: str | None) -> None:
        from mockserver._defects import DEFECTS
        from mockserver._flavours import FLAVOURS

        if dialect is not None:
            warnings.warn(
                "MockConfig(dialect=...) is deprecated: the response shape is now "
                "MockConfig(flavour=...)",
                DeprecationWarning,
                stacklevel=3,
            )
            if self.flavour not in ("openai", dialect):
                raise ValueError(f"flavour={self.flavour!r} and dialect={dialect!r} disagree")
            object.__setattr__(self, "flavour", dialect)
        _ = self.fault_rules, self.timing  # parsed now: a bad spec is a ValueError here
        if self.flavour not in FLAVOURS:
            raise ValueError(f"unknown flavour {self.flavour!r}; known: {sorted(FLAVOURS)}")
        unknown = [name for name in self.defects if name not in DEFECTS]
        if unknown:
            raise ValueError(f"unknown defect(s) {unknown}; known: {sorted(DEFECTS)}")
        if self.prefix and (not self.prefix.startswith("/") or self.prefix.endswith("/")):
            raise ValueError(f"prefix must start with '/' and not end with it, got {self.prefix!r}")
        for name, value, known in (
            ("mode", self.mode, ("replay", "generate")),
            ("on_miss", self.on_miss, ("template", "generate", "error")),
            ("match", self.match, ("exact", "loose")),
            ("sampling", self.sampling, (None, "vllm", "hf", "llamacpp", "llama-cpp-python")),
            ("validation", self.validation, ("strict", "schema", "off")),
        ):
            if value not in known:
                raise ValueError(f"unknown {name} {value!r}; known: {list(known)}")
        if not self.speed >= 0:
            raise ValueError(f"speed must be >= 0, got {self.speed!r}")
        self._check_record_mode()

    def _check_record_mode(self) -> None:
        """ValueError for a record mode that cannot work (mockserver._upstream)."""
        if self.upstream is not None and not self.upstream.startswith(("http://", "https://")):
            raise ValueError(f"upstream must be an http(s) URL, got {self.upstream!r}")
        if self.record_mode is None:
            if self.upstream is not None:
                raise ValueError("an upstream needs a record_mode (none, once, new_episodes, all)")
            return
        if self.record_mode not in ("none", "once", "new_episodes", "all"):
            raise ValueError(
                f"unknown record_mode {self.record_mode!r}; known: "
                "['none', 'once', 'new_episodes', 'all']"
            )
        if not self.cassettes:
            raise ValueError("a record mode needs a cassette folder (cassettes)")
        if self.record_mode != "none" and self.upstream is None:
            raise ValueError(f"record_mode {self.record_mode!r} needs an upstream to record from")

    @property
    def generates(self) -> bool:
        """Whether the reference model may answer (generate mode, or on_miss generate)."""
        return self.mode == "generate" or self.on_miss == "generate"

    @cached_property
    def fault_rules(self) -> tuple[Fault, ...]:
        """The parsed fault rules."""
        from mockserver._faults import parse_fault

        return tuple(map(parse_fault, self.faults))

    @cached_property
    def timing(self) -> Timing:
        """The parsed timing of answers."""
        from mockserver._timing import Timing

        return Timing.from_specs(self.ttft, self.itl, self.itl_jitter, self.timing_seed)

    @property
    def listed_models(self) -> tuple[str, ...]:
        """The ids GET /models lists."""
        return self.models or (DEFAULT_MODEL,)

    def serves(self, model: str) -> bool:
        """Whether a chat completion for ``model`` is answered (else 404 model_not_found)."""
        return not self.models or model in self.models
