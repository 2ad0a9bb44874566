"""Record modes: the mock in front of an upstream API, replaying the cassettes it has and
recording those it lacks, as vcrpy's record modes say (vcrpy.readthedocs.io, "Record Modes"):

- ``none``: replay only; a request no cassette matches is an error (404 ``cassette_not_found``).
- ``once``: when the cassette folder holds no cassette at start, record every request; else
  replay only, as ``none``.
- ``new_episodes``: replay the requests a cassette matches, record the others.
- ``all``: record every request, never replay.

Every API request (those under the prefix) is answered this way, before validation, scripted
replies and templates: the mock is a recording proxy then, with ``chatcompat record``'s
redaction (:func:`mockserver._record.record_exchange`). Cassettes are written to, and read from,
the first of ``MockConfig.cassettes`` (created when missing); what a session records is not
replayed in that session. A replayed cassette gets the request's faults as any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from mockserver._config import MockConfig
from mockserver._errors import ApiError
from mockserver._record import RecordConfig, record_exchange

if TYPE_CHECKING:
    from mockserver._state import Call, MockState

__all__ = ["RECORD_MODES", "Recorder", "prepare_cassette_folder"]

RECORD_MODES = ("none", "once", "new_episodes", "all")


def prepare_cassette_folder(config: MockConfig) -> bool:
    """Create the cassette folder of ``config``'s record mode when missing (but in mode
    ``none``, which records nothing); whether it holds no cassette (``once`` records then)."""
    folder = Path(config.cassettes[0])
    if config.record_mode != "none":
        folder.mkdir(parents=True, exist_ok=True)
    return not folder.is_dir() or not any(folder.rglob("*.json"))


class Recorder:
    """How a mock with a record mode answers API requests (see the module's doc)."""

    def __init__(self, config: MockConfig) -> None:
        assert config.record_mode in RECORD_MODES and config.cassettes
        empty = prepare_cassette_folder(config)
        self.mode = config.record_mode
        self.records = self.mode in ("all", "new_episodes") or (self.mode == "once" and empty)
        self.replays = self.mode != "all" and not (self.mode == "once" and empty)
        self.folder = config.cassettes[0]
        self.folders = (self.folder,) if Path(self.folder).is_dir() else ()  # replayed from
        self.key = config.upstream_key
        self.config = None
        if config.upstream is not None:
            secrets = (config.upstream_key,) if config.upstream_key else ()
            self.config = RecordConfig(
                config.upstream, self.folder, prefix=config.prefix, secrets=secrets
            )
        self.session: aiohttp.ClientSession | None = None

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """The upstream session, open while the app runs."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=True) as session:
            self.session = session
            yield
            self.session = None

    async def answer(self, state: MockState, call: Call) -> web.StreamResponse:
        """The answer to the API request ``call``: its cassette replayed, else recorded from
        the upstream, else (replay only) the 404 of a miss."""
        from mockserver._delivery import send_cassette  # the delivery stage imports the state

        if self.replays:
            method, path = call.request.method, call.request.path[len(state.config.prefix) :]
            found = state.cassettes.match(method, path, call.raw)
            if found is not None:
                return await send_cassette(state, call, *found)
        if not self.records or self.config is None or self.session is None:
            raise self._miss(call)
        return await record_exchange(
            call.request, call.raw, self.config, self.session, key=self.key
        )

    def _miss(self, call: Call) -> ApiError:
        request = call.request
        how = "new_episodes" if self.config else "once or new_episodes, with an upstream"
        return ApiError(
            404,
            f"No cassette in {self.folder} matches {request.method} {request.path} (record "
            f"mode {self.mode}: replay only). Record it in the record mode {how}.",
            code="cassette_not_found",
        )
