"""Faults the Connect sandbox injects into GraphQL calls: 429, 503, slow answers, dropped sockets.

A fault applies to the next `count` calls, to a `share` of calls, or to both (a share of calls
until `count` were hit). Shares are deterministic, not random: with `share=0.5` every second call
is hit, so a test can assert exact counts. Reference §7.1 (optional fault injection) and §8 #21.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    """What an injected fault does to a call."""

    RATE_LIMITED = "429"  # HTTP 429 with Retry-After
    UNAVAILABLE = "503"  # HTTP 503 with Retry-After
    SLOW = "slow"  # answered normally after `delay` seconds
    DROP = "drop"  # the socket is closed without any answer


class FaultSpecError(ValueError):
    """A fault description (from `faults=` or POST /_sandbox/faults) that cannot be used."""


@dataclass(frozen=True)
class Fault:
    """One injected fault: its kind and how many (`count`) or which share of calls it hits."""

    kind: FaultKind
    count: int | None = None
    share: float | None = None
    retry_after: int = 1
    delay: float = 0.5

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", FaultKind(self.kind))
        except ValueError:
            kinds = ", ".join(k.value for k in FaultKind)
            raise FaultSpecError(f"fault kind {self.kind!r} is not one of {kinds}") from None
        if self.count is not None and (not isinstance(self.count, int) or self.count < 0):
            raise FaultSpecError(f"fault count {self.count!r} must be an integer ≥ 0")
        if self.share is not None and not (
            isinstance(self.share, int | float) and 0 < self.share <= 1
        ):
            raise FaultSpecError(f"fault share {self.share!r} must be within 0 (excluded) and 1")
        if not isinstance(self.retry_after, int) or self.retry_after < 0:
            raise FaultSpecError(f"fault retry_after {self.retry_after!r} must be an integer ≥ 0")
        if not isinstance(self.delay, int | float) or self.delay < 0:
            raise FaultSpecError(f"fault delay {self.delay!r} must be a number of seconds ≥ 0")

    @classmethod
    def from_json(cls, body: Any) -> Fault:
        """Build a fault from the JSON object of POST /_sandbox/faults."""
        if not isinstance(body, Mapping):
            raise FaultSpecError(f"a fault is a JSON object with `kind`, not {body!r}")
        unknown = set(body) - {"kind", "count", "share", "retry_after", "delay"}
        if unknown:
            raise FaultSpecError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        if "kind" not in body:
            raise FaultSpecError("a fault needs `kind`")
        return cls(**body)


class _ActiveFault:
    """A fault with its own call counter, deciding call by call whether it fires."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.seen = 0
        self.fired = 0

    def exhausted(self) -> bool:
        return self.fault.count is not None and self.fired >= self.fault.count

    def fires(self) -> bool:
        """Count one call; whether the fault hits it."""
        if self.exhausted():
            return False
        self.seen += 1
        share = self.fault.share
        # Deterministic share: fire when floor(seen * share) steps up.
        if share is not None and math.floor(self.seen * share) == math.floor(
            (self.seen - 1) * share
        ):
            return False
        self.fired += 1
        return True


class FaultPlan:
    """The faults in force, shared by the server's request threads."""

    def __init__(self, faults: Sequence[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._active = [_ActiveFault(f) for f in faults]
        self._served: Counter[str] = Counter()

    def add(self, fault: Fault) -> None:
        """Put one more fault in force (after those already there)."""
        with self._lock:
            self._active.append(_ActiveFault(fault))

    def reset(self) -> None:
        """Remove every fault in force (the served counts stay)."""
        with self._lock:
            self._active.clear()

    def next_fault(self) -> Fault | None:
        """The fault hitting this call, if any: the first in force that fires."""
        with self._lock:
            for active in self._active:
                if active.fires():
                    self._served[active.fault.kind.value] += 1
                    return active.fault
            self._active = [a for a in self._active if not a.exhausted()]
            return None

    def snapshot(self) -> dict[str, Any]:
        """Faults served by kind, and the faults still in force with what they hit so far."""
        with self._lock:
            return {
                "served": sum(self._served.values()),
                "by_kind": dict(self._served),
                "active": [
                    {**asdict(a.fault), "kind": a.fault.kind.value, "fired": a.fired}
                    for a in self._active
                    if not a.exhausted()
                ],
            }
