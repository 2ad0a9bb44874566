"""The engines tier's harness: each real engine installed from the package registry in its own
cached virtual environment, started on the exported reference model on a free loopback port,
and always stopped; the suite run against it as users run it (the ``chatcompat check``
process); its outcomes compared with the engine's checked-in expectations.

What to install and how to start each engine is data: ``engines.toml`` beside this file. The
expectations are ``expectations/ENGINE.toml``: every check not listed there must pass.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
STATUSES = ("passed", "failed", "warning", "skipped", "error")
# What one engine's suite run may take, the suite's own --deadline (900 s) included.
CHECK_TIMEOUT = 1200
# The reports the suite wrote in this session, by engine (for the matrix of test_matrix_doc).
RUN_REPORTS: dict[str, Path] = {}


@dataclass(frozen=True)
class EngineSpec:
    """One engine of ``engines.toml`` (see its header for the keys)."""

    name: str
    description: str
    requirements: tuple[str, ...]
    model: str  # "hf" or "gguf"
    command: tuple[str, ...]
    model_id: str
    profile: str | None
    sampling: str
    remove: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout: float = 600.0
    check_args: tuple[str, ...] = ()
    install_timeout: float = 1800.0
    neutral: Mapping[str, Any] = field(default_factory=dict)
    install_env: Mapping[str, str] = field(default_factory=dict)


def load_specs(path: Path = HERE / "engines.toml") -> dict[str, EngineSpec]:
    """The engines of ``path`` by name, in file order."""
    table = tomllib.loads(path.read_text())
    specs = {}
    for name, entry in table.items():
        specs[name] = EngineSpec(
            name=name,
            description=entry["description"],
            requirements=tuple(entry["requirements"]),
            model=entry["model"],
            command=tuple(entry["command"]),
            model_id=entry.get("model_id", "ref"),
            profile=entry.get("profile"),
            sampling=entry["sampling"],
            remove=tuple(entry.get("remove", ())),
            env=dict(entry.get("env", {})),
            start_timeout=float(entry.get("start_timeout", 600)),
            check_args=tuple(entry.get("check_args", ())),
            install_timeout=float(entry.get("install_timeout", 1800)),
            neutral=dict(entry.get("neutral", {})),
            install_env=dict(entry.get("install_env", {})),
        )
    return specs


def cache_root() -> Path:
    """Where the engines' environments live: $CHATCOMPAT_ENGINES_CACHE, else
    ~/.cache/chatcompat/engines (kept between runs on one machine)."""
    configured = os.environ.get("CHATCOMPAT_ENGINES_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "chatcompat" / "engines"


def venv_dir(spec: EngineSpec, root: Path) -> Path:
    """The environment of ``spec``: a new one whenever what it installs changes (requirements,
    removals, the install's environment, constraints, this Python's version)."""
    key = json.dumps(
        [
            spec.requirements,
            spec.remove,
            sorted(spec.install_env.items()),
            CONSTRAINTS.read_text(),
            sys.version_info[:2],
        ]
    )
    return root / f"{spec.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _run_logged(
    argv: Sequence[str], log: Path, timeout: float, env: Mapping[str, str] | None = None
) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
        )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {done.returncode}; see {log}:\n{tail(log)}")


def ensure_venv(spec: EngineSpec, root: Path | None = None) -> Path:
    """The Python of ``spec``'s environment, installed first if it is not complete (a file
    ``installed.json`` marks a complete one; a half-made one is made again). Locked, so two
    runs on one machine do not install into one environment at once. Raises RuntimeError with
    the install log's tail when pip fails."""
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    where = venv_dir(spec, root)
    python = where / "bin" / "python"
    with (root / f"{where.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (where / "installed.json").is_file():
            return python
        shutil.rmtree(where, ignore_errors=True)
        log = root / f"{where.name}.install.log"
        log.write_text("")
        started = time.monotonic()
        _run_logged([sys.executable, "-m", "venv", str(where)], log, 300)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
        _run_logged([*pip, "install", "--quiet", "--upgrade", "pip"], log, 300)
        _run_logged(
            [*pip, "install", "-c", str(CONSTRAINTS), *spec.requirements],
            log,
            spec.install_timeout,
            spec.install_env,
        )
        if spec.remove:
            _run_logged([*pip, "uninstall", "-y", *spec.remove], log, 300)
        record = {"requirements": spec.requirements, "seconds": time.monotonic() - started}
        (where / "installed.json").write_text(json.dumps(record))
    return python


def free_port() -> int:
    """A loopback port free now (the engine binds it itself, so another process may take it
    first: :func:`EngineServer.start` tries again on another port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' if there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url``: (status, body); (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, ValueError):
        return 0, b""


def http_send(
    method: str, url: str, body: bytes | None, timeout: float = 120.0
) -> tuple[int, bytes]:
    """One request with a JSON body: (status, body); raises OSError when nothing answers."""
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{key}`` of ``values`` replaced (other braces, as in a JSON
    argument, stay as they are)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


class EngineServer:
    """One engine's server: :meth:`start` on a free loopback port, :meth:`stop` (the whole
    process group: SIGTERM, then SIGKILL after ``grace`` seconds). A context manager."""

    def __init__(self, spec: EngineSpec, python: Path, model: Path, log: Path) -> None:
        self.spec, self.python, self.model, self.log = spec, python, model, log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_id(self) -> str:
        return _fill(self.spec.model_id, {"model": str(self.model)})

    def _argv(self) -> list[str]:
        values = {
            "python": str(self.python),
            "bin": str(self.python.parent),
            "model": str(self.model),
            "name": self.model_id,
            "port": str(self.port),
        }
        return [_fill(part, values) for part in self.spec.command]

    def start(self, attempts: int = 2) -> EngineServer:
        """Start the server and wait until GET /v1/models answers 200. Raises RuntimeError
        (with the log's tail) when it exits or does not answer within start_timeout."""
        for attempt in range(attempts):
            self.port = free_port()
            with self.log.open("a") as out:
                out.write(f"$ {' '.join(self._argv())}\n")
                out.flush()
                self.process = subprocess.Popen(
                    self._argv(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    cwd=self.log.parent,
                    env={**os.environ, **self.spec.env},
                )
            if self._wait_ready():
                return self
            self.stop()
            if "address already in use" not in tail(self.log).lower() or attempt == attempts - 1:
                break
        raise RuntimeError(f"{self.spec.name} did not start; the log's tail:\n{tail(self.log)}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.spec.start_timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if http_get(f"{self.base_url}/models", timeout=5)[0] == 200:
                return True
            time.sleep(1.0)
        return False

    def stop(self, grace: float = 30.0) -> None:
        """Stop the process group; safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # children that outlived the leader

    def __enter__(self) -> EngineServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def check_command(
    server: EngineServer, reference: Path, report: Path, extra: Sequence[str] = ()
) -> list[str]:
    """The ``chatcompat check`` command line the tier runs against ``server``."""
    argv = [
        sys.executable, "-m", "chatcompat", "check",
        "--base-url", server.base_url,
        "--model", server.model_id,
        "--reference", str(reference),
        "--sampling", server.spec.sampling,
        "--context-length", "2048",
        "--max-requests", "4000",
        "--max-tokens", "400000",
        "--deadline", "900",
        "--report-json", str(report),
        "--junit", str(report.with_suffix(".xml")),
        "--report-md", str(report.with_suffix(".md")),
    ]  # fmt: skip
    if server.spec.profile:
        argv += ["--profile", server.spec.profile]
    return [*argv, *server.spec.check_args, *extra]


def claimed_capabilities(spec: EngineSpec, profile: frozenset[str]) -> set[str]:
    """What the tier's run claims for ``spec``: the ``profile``'s capabilities, core and
    reference, with check_args' --capability added and --without taken away."""
    claimed = set(profile) | {"core", "reference"}
    args = list(spec.check_args)
    for flag, value in itertools.pairwise(args):
        if flag == "--capability":
            claimed.add(value)
        elif flag == "--without":
            claimed.discard(value)
    return claimed


@dataclass
class EngineRun:
    """A started engine and the suite's report on it (run once per engine)."""

    server: EngineServer
    hf_dir: Path
    report_path: Path
    returncode: int | None = None
    report: dict[str, Any] | None = None
    output: str = ""

    def suite_report(self) -> dict[str, Any]:
        """Run ``chatcompat check`` against the engine once; its JSON report."""
        if self.report is None:
            argv = check_command(self.server, self.hf_dir, self.report_path)
            self.report_path.unlink(missing_ok=True)  # never judge a previous run's report
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT, check=False
            )
            self.returncode, self.output = done.returncode, done.stdout + done.stderr
            self.report_path.with_suffix(".txt").write_text(self.output)
            assert self.report_path.is_file(), f"no report; the run said:\n{self.output[-4000:]}"
            self.report = json.loads(self.report_path.read_text())
            RUN_REPORTS[self.server.spec.name] = self.report_path
        return self.report


@dataclass(frozen=True)
class Expectation:
    """A check that does not pass on an engine: its ``status`` (or the statuses it may have,
    for a deviation that shows only sometimes, e.g. when a stream crosses a second: the reason
    says when), the ``reason`` and the smallest request that shows it (``method``, ``path``,
    ``request``) with what the engine answers to it (``seen``: ``status``, ``body_contains``)."""

    check: str
    status: str | tuple[str, ...]
    reason: str
    method: str = "POST"
    path: str = "/chat/completions"
    request: str | None = None
    seen: Mapping[str, Any] = field(default_factory=dict)


def load_expectations(engine: str, folder: Path = HERE / "expectations") -> dict[str, Expectation]:
    """``folder/ENGINE.toml`` by check id (empty if the file does not exist). Raises
    ValueError naming the entry when one lacks a reason or has an unknown status or key."""
    path = folder / f"{engine}.toml"
    if not path.is_file():
        return {}
    table = tomllib.loads(path.read_text())
    known = {"status", "reason", "method", "path", "request", "seen"}
    expectations = {}
    for check, entry in table.items():
        given = entry.get("status")
        statuses = (given,) if isinstance(given, str) else tuple(given or ())
        if isinstance(given, list):
            entry["status"] = statuses
        if (
            not statuses
            or not set(statuses) <= set(STATUSES[:-1])
            or statuses == ("passed",)
            or not entry.get("reason")
        ):
            raise ValueError(f"{path.name} [{check}]: status and reason are required")
        if set(entry) - known:
            raise ValueError(f"{path.name} [{check}]: unknown keys {sorted(set(entry) - known)}")
        needs_body = {"failed", "warning"} & set(statuses) and entry.get("method", "POST") == "POST"
        if needs_body and not entry.get("request"):
            raise ValueError(f"{path.name} [{check}]: a failure or warning needs its request")
        expectations[check] = Expectation(check=check, **entry)
    return expectations


def outcome_differences(
    report: Mapping[str, Any], expectations: Mapping[str, Expectation]
) -> list[str]:
    """Each check whose status differs from what is expected, with the report's message; and
    each expectation of a check the report does not have. Expected: the listed status; else
    skipped for a check of a capability the run did not claim (the profile says what the
    engine offers); else passed."""
    seen = {entry["id"]: entry for entry in report["checks"]}
    claimed = set(report["capabilities"])
    differences = []
    for check_id, entry in seen.items():
        wanted = expected_statuses(check_id, entry["capability"], claimed, expectations)
        if entry["status"] not in wanted:
            message = (entry.get("message") or "").replace("\n", " ")[:400]
            differences.append(
                f"{check_id}: expected {'|'.join(wanted)}, got {entry['status']}: {message}"
            )
    for check_id in sorted(set(expectations) - set(seen)):
        wanted = expected_statuses(check_id, "", claimed, expectations)
        differences.append(f"{check_id}: expected {'|'.join(wanted)}, not run")
    return differences


def expected_statuses(
    check_id: str,
    capability: str,
    claimed: set[str],
    expectations: Mapping[str, Expectation],
) -> tuple[str, ...]:
    """The statuses ``check_id`` (of ``capability``) may have on an engine: those its
    expectation lists; else skipped when the run did not claim the capability; else passed."""
    if check_id in expectations:
        status = expectations[check_id].status
        return (status,) if isinstance(status, str) else status
    return ("passed",) if capability in claimed else ("skipped",)


def replay(expectation: Expectation, base_url: str, model_id: str) -> tuple[int, str]:
    """Send ``expectation``'s request: (status, body as text)."""
    path = expectation.path.replace("{model}", model_id)
    body = None
    if expectation.request is not None:
        body = expectation.request.replace("{model}", model_id).encode()
    status, answer = http_send(expectation.method, base_url + path, body)
    return status, answer.decode("utf-8", errors="replace")


def seen_differences(expectation: Expectation, status: int, body: str) -> list[str]:
    """What of ``expectation.seen`` the answer (``status``, ``body``) does not show."""
    problems = []
    wanted_status = expectation.seen.get("status")
    if wanted_status is not None and status != wanted_status:
        problems.append(f"status {status}, expected {wanted_status}")
    fragment = expectation.seen.get("body_contains")
    if fragment is not None and fragment not in body:
        problems.append(f"body lacks {fragment!r}: {body[:300]!r}")
    return problems


@contextlib.contextmanager
def running(spec: EngineSpec, model: Path, log: Path) -> Iterator[EngineServer]:
    """Install (if needed), start and, whatever happens, stop ``spec``'s engine."""
    server = EngineServer(spec, ensure_venv(spec), model, log)
    try:
        yield server.start()
    finally:
        server.stop()


def main(argv: Sequence[str]) -> int:
    """``python tests/engines/engine_harness.py install [ENGINE ...]``: make the engines'
    environments now (all of engines.toml by default), so that CI can install them while other
    work runs. Exit 1 (with the log's tail on stderr) if an install fails."""
    if not argv or argv[0] != "install":
        print("usage: engine_harness.py install [ENGINE ...]", file=sys.stderr)
        return 2
    specs = load_specs()
    failed = 0
    for name in argv[1:] or list(specs):
        started = time.monotonic()
        try:
            python = ensure_venv(specs[name])
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(f"{name}: install failed: {error}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: {python.parent.parent} ready in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
