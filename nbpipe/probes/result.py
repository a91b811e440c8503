"""A probe's outcome. SKIPPED always carries the reason; it is never counted as passed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ProbeResult:
    name: str
    status: Status
    message: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        return d


class ProbeFailure(Exception):
    """Raised by a check: the message is what the user reads."""


class ProbeSkip(Exception):
    """Raised by a check that does not apply here: the message says why."""
