"""The ``chatcompat_conformance`` pytest plugin: the conformance suite as pytest items.

With ``--chat-base-url`` (and ``--chat-model``), collection adds a virtual module ``chatcompat``
holding one item per check, named by its id (``chatcompat::sse_done``), so that ``-k sse_done``
selects it, ``-k stream`` selects a group and ``pytest -n 2`` (pytest-xdist) distributes them.
Each item runs its check through the runner (in the item's setup): a failed check fails the
item with the suite's own :class:`~conformance.CheckFailed` (message, expected, received, the
exchange), a check that crashed (status ``error``) is an error of the item, a check for a
capability the endpoint does not claim is skipped, and a ``should`` check that is not met is
skipped with the reason ``warning: ...``. Without ``--chat-base-url`` the plugin only adds its
options.

    pytest --chat-base-url http://127.0.0.1:8000/v1 --chat-model m --chat-profile vllm -n 4
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conformance._http import Endpoint
    from conformance._registry import Check
    from conformance._runner import Result

__all__ = ["CheckItem", "ChecksModule", "endpoint_from_options"]

_MODULE = "chatcompat"  # the virtual module's name, the first part of every node id


def pytest_addoption(parser: pytest.Parser) -> None:
    """The --chat-* options."""
    group = parser.getgroup("chatcompat", "chatcompat conformance suite")
    group.addoption(
        "--chat-base-url",
        metavar="URL",
        help="run the conformance checks as tests against this API base (e.g. http://host/v1)",
    )
    group.addoption("--chat-model", metavar="ID", help="the model under test")
    group.addoption(
        "--chat-api-key",
        metavar="KEY",
        default=os.environ.get("CHATCOMPAT_API_KEY"),
        help="bearer token (default: $CHATCOMPAT_API_KEY); never printed",
    )
    group.addoption(
        "--chat-profile", metavar="NAME|PATH", help="capability profile (default: core only)"
    )
    group.addoption(
        "--chat-capability",
        action="append",
        default=[],
        metavar="CAP",
        help="claim a capability (repeatable)",
    )
    group.addoption(
        "--chat-timeout", type=float, default=60.0, metavar="S", help="seconds per request (60)"
    )
    group.addoption(
        "--chat-max-examples",
        type=int,
        default=20,
        metavar="N",
        help="hypothesis examples per property check and schemathesis operation (20)",
    )


def endpoint_from_options(config: pytest.Config) -> Endpoint:
    """The endpoint the --chat-* options describe (a UsageError when they do not fit)."""
    from conformance._profiles import endpoint_claiming, load_profile

    base_url: str = config.getoption("chat_base_url")
    model: str | None = config.getoption("chat_model")
    if not model:
        raise pytest.UsageError("--chat-model is required with --chat-base-url")
    try:
        profile = load_profile(config.getoption("chat_profile")).with_changes(
            add=tuple(config.getoption("chat_capability"))
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    timeout: float = config.getoption("chat_timeout")
    return endpoint_claiming(
        profile, base_url, model, config.getoption("chat_api_key"), timeout=timeout
    )


class CheckItem(pytest.Item):
    """One conformance check as a test."""

    def __init__(self, *, check: Check, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.endpoint = endpoint
        self.extra_keyword_matches.update({check.group, check.severity, check.capability})
        self.result: Result | None = None

    def setup(self) -> None:
        """Run the check through the runner; a crash of the check (status ``error``) is an
        error of the item, raised here, in its setup."""
        from conformance._context import Budget
        from conformance._outcome import Status
        from conformance._runner import run
        from conformance._shown import shown

        if self.check.capability not in self.endpoint.capabilities:
            pytest.skip(
                f"the endpoint does not claim capability {self.check.capability!r} "
                f"(--chat-capability {self.check.capability} or a profile that has it)"
            )
        max_examples: int = self.config.getoption("chat_max_examples")
        budget = Budget(max_examples=max_examples)
        self.result = run(self.endpoint, [self.check.id], budget=budget).results[0]
        if self.result.status is Status.ERROR:
            text = shown(f"{self._title()}: {self.result.outcome.text}", self.endpoint.api_key)
            pytest.fail(text, pytrace=False)

    def runtest(self) -> None:
        """Fail, skip or warn as the check's outcome says (failed: its CheckFailed)."""
        from conformance._outcome import CheckFailed, Status
        from conformance._shown import shown

        assert self.result is not None  # setup ran the check (its outcome redacted)
        outcome = self.result.outcome
        if outcome.status is Status.FAILED:
            raise CheckFailed(  # its text: control characters escaped (conformance._shown)
                outcome.message,
                expected=outcome.expected,
                received=outcome.received,
                exchange=outcome.exchange,
            )
        if outcome.status is Status.SKIPPED:
            pytest.skip(shown(outcome.message, self.endpoint.api_key, inline=True))
        if outcome.status is Status.WARNING:
            pytest.skip(shown(f"warning: {outcome.text}", self.endpoint.api_key))

    def _title(self) -> str:
        return f"{self.check.id} ({self.check.group}, {self.check.severity})"

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        """The check's outcome, without a traceback of the plugin."""
        from conformance._outcome import CheckFailed

        if isinstance(excinfo.value, CheckFailed):
            from conformance._shown import shown

            return shown(f"{self._title()}: {excinfo.value}", self.endpoint.api_key)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where the check is defined, and its id."""
        code = self.check.func.__code__
        return Path(code.co_filename), code.co_firstlineno - 1, f"{_MODULE}::{self.check.id}"


class ChecksModule(pytest.Collector):
    """The virtual module holding one item per registered check."""

    def __init__(self, *, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint

    def collect(self) -> list[pytest.Item]:
        """One CheckItem per check, in registry order."""
        from conformance._registry import CHECKS

        return [
            CheckItem.from_parent(self, name=c.id, check=c, endpoint=self.endpoint)
            for c in CHECKS.values()
        ]


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect items
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """With --chat-base-url, add the checks' items to the collected ones."""
    if not config.getoption("chat_base_url"):
        return
    module = ChecksModule.from_parent(
        session, name=_MODULE, nodeid=_MODULE, endpoint=endpoint_from_options(config)
    )
    checks = module.collect()
    # Reported like any collected module, so that "collected N items" counts the checks.
    report = pytest.CollectReport(module.nodeid, "passed", None, list(checks))
    session.ihook.pytest_collectreport(report=report)
    items.extend(checks)


def pytest_report_header(config: pytest.Config) -> str | None:
    """The endpoint under test, in the session header (never the key)."""
    url = config.getoption("chat_base_url")
    if not url:
        return None
    return f"chatcompat: {url} model {config.getoption('chat_model')}"
