"""Capability profiles: what an endpoint claims, from a built-in or a user's TOML file; and the
Endpoint that claims one (what ``chatcompat check`` and the pytest plugin both build)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from conformance._http import Endpoint
from conformance._registry import CAPABILITIES

__all__ = ["PROFILES", "Profile", "endpoint_claiming", "load_profile"]

PROFILES = ("llama-cpp-python", "llamacpp", "mock", "novita", "openai", "transformers", "vllm")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    capabilities: frozenset[str]  # always includes "core"
    context_length: int | None = None

    @classmethod
    def core(cls) -> Profile:
        """The profile claiming only ``core`` (what every endpoint is assumed to support)."""
        return cls("core", "core only", frozenset({"core"}))

    def with_changes(self, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> Profile:
        """This profile with capabilities added and removed (``core`` stays)."""
        unknown = sorted((set(add) | set(remove)) - set(CAPABILITIES))
        if unknown:
            raise ValueError(f"unknown capability {unknown}; known: {sorted(CAPABILITIES)}")
        capabilities = (self.capabilities | set(add)) - (set(remove) - {"core"})
        return Profile(self.name, self.description, frozenset(capabilities), self.context_length)


def _parse(name: str, text: str) -> Profile:
    data = tomllib.loads(text)
    capabilities = data.get("capabilities", [])
    unknown = sorted(set(capabilities) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"profile {name}: unknown capability {unknown}")
    context = data.get("context_length")
    if context is not None and (not isinstance(context, int) or context < 1):
        raise ValueError(f"profile {name}: context_length must be a positive integer")
    return Profile(
        name, str(data.get("description", "")), frozenset({"core", *capabilities}), context
    )


def load_profile(name_or_path: str | None) -> Profile:
    """A built-in profile by name, a TOML file by path, or :meth:`Profile.core` for None.
    Raises ValueError for an unknown name, a missing file or an invalid one."""
    if name_or_path is None:
        return Profile.core()
    if name_or_path in PROFILES:
        text = (resources.files("conformance") / "profiles" / f"{name_or_path}.toml").read_text(
            encoding="utf-8"
        )
        return _parse(name_or_path, text)
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"no profile {name_or_path!r}: not one of {PROFILES} and not a file")
    return _parse(path.stem, path.read_text(encoding="utf-8"))


def endpoint_claiming(
    profile: Profile,
    base_url: str,
    model: str,
    api_key: str | None,
    *,
    timeout: float = 60.0,
    context_length: int | None = None,
    reference: str | None = None,
    sampling: str = "vllm",
    reference_samples: int = 300,
) -> Endpoint:
    """The endpoint at ``base_url`` (trailing '/' dropped) serving ``model``, claiming
    ``profile``'s capabilities and context length (``context_length``, when given, wins);
    ``timeout`` in seconds per request, a stream stalled after min(30, timeout) s."""
    return Endpoint(
        base_url.rstrip("/"),
        model,
        api_key,
        timeout=timeout,
        read_timeout=min(30.0, timeout),
        capabilities=profile.capabilities,
        context_length=context_length or profile.context_length,
        reference=reference,
        sampling=sampling,
        reference_samples=reference_samples,
    )
