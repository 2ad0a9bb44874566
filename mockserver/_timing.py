"""Timing of generated and template answers: time to first token and inter-token latency.

A delay is a spec: seconds (``0.02``), ``uniform:LOW,HIGH`` or ``lognormal:MEDIAN,SIGMA``.
With timing on, a stream is written one event per write, each after its pause (the first after
the TTFT, every later one after an ITL draw); a non-stream answer waits as long as its stream
would. Draws come from one generator per app seeded with ``timing_seed``, so the same sequence
of requests gets the same pauses.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Delay", "Timing", "parse_delay"]

MAX_DELAY = 600.0  # seconds; no single pause is longer


@dataclass(frozen=True)
class Delay:
    """A pause in seconds: ``fixed`` a, ``uniform`` in [a, b], or ``lognormal`` with median a
    and log-space sigma b; draws are clipped to [0, MAX_DELAY]."""

    kind: str
    a: float
    b: float = 0.0

    def __post_init__(self) -> None:
        assert self.kind in ("fixed", "uniform", "lognormal"), self.kind
        assert 0 <= self.a <= MAX_DELAY and self.b >= 0, (self.a, self.b)
        assert self.kind != "uniform" or self.a <= self.b <= MAX_DELAY, (self.a, self.b)

    @property
    def zero(self) -> bool:
        """Whether every draw is 0."""
        return self.a == 0 and (self.kind != "uniform" or self.b == 0)

    @property
    def mean(self) -> float:
        """The mean of a draw (before clipping)."""
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        if self.kind == "lognormal":
            return self.a * math.exp(self.b**2 / 2)
        return self.a

    def sample(self, rng: random.Random) -> float:
        """One draw."""
        if self.kind == "uniform":
            value = rng.uniform(self.a, self.b)
        elif self.kind == "lognormal":
            value = rng.lognormvariate(math.log(self.a), self.b) if self.a > 0 else 0.0
        else:
            value = self.a
        return min(max(value, 0.0), MAX_DELAY)


def parse_delay(spec: str | float) -> Delay:
    """The delay ``spec`` (``0.2``, ``uniform:0.01,0.03``, ``lognormal:0.02,0.5``) stands for,
    or a ValueError saying what is wrong with it."""
    if isinstance(spec, int | float):
        spec = repr(float(spec))
    kind, colon, rest = spec.strip().partition(":")
    if not colon:
        kind, rest = "fixed", spec
    parts = rest.split(",")
    want = 1 if kind == "fixed" else 2
    if kind not in ("fixed", "uniform", "lognormal") or len(parts) != want:
        raise ValueError(
            f"bad delay {spec!r}: expected SECONDS, uniform:LOW,HIGH or lognormal:MEDIAN,SIGMA"
        )
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"bad delay {spec!r}: not a number") from None
    if not all(math.isfinite(n) and 0 <= n <= MAX_DELAY for n in numbers):
        raise ValueError(f"bad delay {spec!r}: values must be in [0, {MAX_DELAY:g}]")
    if kind == "uniform" and numbers[0] > numbers[1]:
        raise ValueError(f"bad delay {spec!r}: LOW > HIGH")
    return Delay(kind, *numbers)


@dataclass(frozen=True)
class Timing:
    """Time to first token and inter-token latency of the answers of one server."""

    ttft: Delay = Delay("fixed", 0.0)
    itl: Delay = Delay("fixed", 0.0)
    seed: int = 0

    @classmethod
    def from_specs(
        cls, ttft: str | float, itl: str | float, itl_jitter: float = 0.0, seed: int = 0
    ) -> Timing:
        """Timing from the config's specs; ``itl_jitter`` J turns a fixed ITL x into
        uniform:max(0, x - J),x + J."""
        itl_delay = parse_delay(itl)
        if itl_jitter < 0 or not math.isfinite(itl_jitter):
            raise ValueError(f"itl_jitter must be >= 0, got {itl_jitter!r}")
        if itl_jitter > 0:
            if itl_delay.kind != "fixed":
                raise ValueError("itl_jitter applies to a fixed ITL only")
            x = itl_delay.a
            itl_delay = Delay("uniform", max(0.0, x - itl_jitter), min(MAX_DELAY, x + itl_jitter))
        return cls(parse_delay(ttft), itl_delay, seed)

    @property
    def enabled(self) -> bool:
        """Whether any pause can be non-zero."""
        return not (self.ttft.zero and self.itl.zero)

    def stream_delays(self, events: int, rng: random.Random) -> list[float]:
        """The pause before each of ``events`` events: the TTFT, then ITL draws."""
        return [self.ttft.sample(rng)] + [self.itl.sample(rng) for _ in range(events - 1)]

    def answer_delay(self, tokens: int, rng: random.Random) -> float:
        """How long a non-stream answer of ``tokens`` completion tokens waits."""
        return self.ttft.sample(rng) + sum(self.itl.sample(rng) for _ in range(tokens))
