"""The config file of ``chatcompat check``: ``chatcompat.toml`` (top-level keys) or the
``[tool.chatcompat]`` table of ``pyproject.toml``, each key an option spelt as its long flag
without ``--`` (``base-url``, ``max-requests``, ``check = ["sse_*"]``, ``fail-fast = true``).

Found in the current directory, then its parents up to the filesystem root or the first
directory holding ``.git`` (that one searched too); in one directory ``chatcompat.toml`` wins
over ``pyproject.toml``, and a ``pyproject.toml`` without the table is passed over. Paths in the
file are relative to the file's directory. The file is read with :mod:`tomllib` (TOML 1.0)."""

from __future__ import annotations

import argparse
import difflib
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ConfigError",
    "ConfigFile",
    "Option",
    "completed",
    "find_config",
    "noted",
    "options_from",
    "read_config",
]

CONFIG_NAME = "chatcompat.toml"
PYPROJECT = "pyproject.toml"
SECRET_KEYS = {"api-key": "CHATCOMPAT_API_KEY"}  # key -> the environment variable to use instead

Kind = Literal["str", "int", "float", "bool", "list", "path"]
_EXPECTED = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean (true or false)",
    "list": "a list of strings",
    "path": "a string (a path)",
}


class ConfigError(Exception):
    """The config file cannot be used; the message names the file (and the key)."""


@dataclass(frozen=True)
class Option:
    """One option a config file may set: its ``key`` (the long flag without ``--``), the
    ``dest`` it sets, the ``kind`` of value, the ``choices`` allowed (each item's, for a list)
    and, for a ``path`` kind, the ``names`` kept as they are (a built-in profile's name) and
    whether the option holds the path as a ``str`` (else a :class:`~pathlib.Path`)."""

    key: str
    dest: str
    kind: Kind = "str"
    choices: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    as_str: bool = False


@dataclass(frozen=True)
class ConfigFile:
    """A config file read: where it is, which table (``""`` for the whole file) and its values
    by option ``dest`` (paths made absolute)."""

    path: Path
    table: str
    values: dict[str, Any]

    def describe(self) -> str:
        """``PATH`` or ``PATH [tool.chatcompat]``, as the run prints it."""
        return f"{self.path} [{self.table}]" if self.table else str(self.path)


def find_config(start: Path) -> Path | None:
    """The config file that applies in ``start`` (a directory): see the module's docstring."""
    for directory in (start, *start.parents):
        if (directory / CONFIG_NAME).is_file():
            return directory / CONFIG_NAME
        pyproject = directory / PYPROJECT
        if pyproject.is_file() and _has_table(pyproject):
            return pyproject
        if (directory / ".git").exists():
            return None
    return None


def _has_table(pyproject: Path) -> bool:
    """Whether ``pyproject`` has a ``[tool.chatcompat]`` table (False when it is not TOML)."""
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return isinstance(data.get("tool"), dict) and "chatcompat" in data["tool"]


def read_config(path: Path, options: Mapping[str, Option]) -> ConfigFile:
    """The values ``path`` sets (a ``pyproject.toml`` by its ``[tool.chatcompat]`` table, any
    other file by its top level), checked against ``options`` (by key). Raises ConfigError for a
    missing or unreadable file, TOML that does not parse, an unknown key (naming the near
    spelling, if any), a secret (``api-key``), or a value of the wrong type or not a choice."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    table = ""
    if path.name == PYPROJECT:
        table = "tool.chatcompat"
        tool = data.get("tool", {})
        data = tool.get("chatcompat", {}) if isinstance(tool, dict) else {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: [tool.chatcompat] must be a table")
    where = f"{path} [{table}]" if table else str(path)
    values = {}
    for key, value in data.items():
        option = _option(key, options, where)
        values[option.dest] = _value(option, value, where, path.parent)
    return ConfigFile(path.resolve(), table, values)


def _option(key: str, options: Mapping[str, Option], where: str) -> Option:
    """The option ``key`` names; ConfigError for a secret or an unknown key."""
    if key in SECRET_KEYS:
        raise ConfigError(
            f"{where}: {key} is not read from a config file (a secret does not belong in a "
            f"repository); set ${SECRET_KEYS[key]} instead"
        )
    if key not in options:
        near = difflib.get_close_matches(key, list(options), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"{where}: unknown key {key!r}{hint}; the keys are check's long options")
    return options[key]


def _value(option: Option, value: Any, where: str, base: Path) -> Any:
    """``value`` as ``option`` takes it (a path made absolute against ``base``); ConfigError
    naming the key, the expected type and the value when it is not one."""
    kind = option.kind
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "list":
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(
            f"{where}: {option.key} must be {_EXPECTED[kind]}, got {value!r} "
            f"({type(value).__name__})"
        )
    items = value if kind == "list" else [value]
    wrong = [item for item in items if option.choices and item not in option.choices]
    if wrong:
        raise ConfigError(
            f"{where}: {option.key} must be one of {', '.join(option.choices)}, got {wrong[0]!r}"
        )
    if kind == "float":
        return float(value)
    if kind == "path" and value not in option.names:
        path = base.resolve() / value
        return str(path) if option.as_str else path
    return value


_PATHS = ("profile", "reference")  # options of type str that take a path (a profile: or a name)


def options_from(
    table: Iterable[tuple[tuple[str, ...], dict[str, Any]]],
    *,
    skip: Collection[str] = (),
    names: tuple[str, ...] = (),
) -> dict[str, Option]:
    """The options a config file may set, by key, from an option ``table`` (argparse's
    ``(flags, add_argument keywords)``, the first flag the long one): all but those in ``skip``
    and the secrets. ``names``: what ``--profile`` takes as a name, not a path."""
    kinds: dict[Any, Kind] = {int: "int", float: "float", Path: "path"}
    options: dict[str, Option] = {}
    for flags, spec in table:
        key = flags[0].removeprefix("--")
        if key in skip or key in SECRET_KEYS:
            continue
        kind: Kind = kinds.get(spec.get("type"), "str")
        if spec.get("action") == "append":
            kind = "list"
        elif spec.get("action") in ("store_true", argparse.BooleanOptionalAction):
            kind = "bool"
        elif key in _PATHS:
            kind = "path"
        options[key] = Option(
            key,
            spec.get("dest", key.replace("-", "_")),
            kind,
            tuple(spec.get("choices", ())),
            names if key == "profile" else (),
            as_str=key in _PATHS,
        )
    return options


_GIVEN = "given_on_command_line"  # the namespace attribute: the dests the command line set


class _NotesGiven(argparse.Action):
    """Mixed into an option's own action: it acts as before, then notes its ``dest`` as given
    on the command line (the config file does not override it)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        super().__call__(parser, namespace, values, option_string)
        given = getattr(namespace, _GIVEN, None)
        if given is None:  # one set per parse (a parser's defaults are shared by its parses)
            given = set()
            setattr(namespace, _GIVEN, given)
        given.add(self.dest)


_NOTING: dict[type[argparse.Action], type[argparse.Action]] = {}  # action class -> noting one


def noted(action: argparse.Action) -> argparse.Action:
    """``action`` (as ``parser.add_argument`` returned it), made to note its ``dest`` when the
    command line gives the option, for :func:`completed`; it parses as before."""
    cls = type(action)
    if cls not in _NOTING:
        _NOTING[cls] = type(f"Noting{cls.__name__}", (_NotesGiven, cls), {})
    action.__class__ = _NOTING[cls]
    return action


def completed(
    args: argparse.Namespace, path: Path | None, options: Mapping[str, Option]
) -> ConfigFile | None:
    """Complete ``args`` (parsed by options made :func:`noted`): each option the config file
    at ``path`` sets takes its value there, unless the command line gave it (a list given on
    the command line replaces the file's). The file read, or None without one; raises
    ConfigError (see :func:`read_config`)."""
    if path is None:
        return None
    config = read_config(path, options)
    given = getattr(args, _GIVEN, None) or set()
    for dest, value in config.values.items():
        if dest not in given:
            setattr(args, dest, list(value) if isinstance(value, list) else value)
    return config
