"""Reliability drills: the real service under bad input, faults and load.

Each drill is a function ``run(stack, **bounds) -> DrillResult``. `make drills`
(bench/drills.py) runs them all against a service of its own; the test suite
runs a bounded subset (tests/reliability/test_drills.py).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

ENVELOPE_KEYS = {"code", "type", "message", "metadata", "support_id"}

# Keys a review found stored in clear; the scrubbing test and the abuse drill send each.
REVIEWED_SECRET_KEYS = (
    "key",
    "sig",
    "signature",
    "X-Amz-Signature",
    "pwd",
    "pass",
    "auth",
    "jwt",
    "access_token",
    "refresh_token",
    "client_secret",
)


def envelope_of(body: Any) -> dict[str, Any] | None:
    """The error envelope in a parsed JSON ``body``, or None: exactly its keys, a UUID
    support_id, and a message ending with its reference (as tests/errors/helpers.py)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(error) != ENVELOPE_KEYS:
        return None
    support_id = error["support_id"]
    try:
        uuid.UUID(str(support_id))
    except ValueError:
        return None
    message = error["message"]
    if not isinstance(message, str) or not message.endswith(f"(Reference: {support_id})"):
        return None
    return error


@dataclass
class DrillResult:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def check(self, ok: bool, failure: str) -> None:
        """Record ``failure`` (an invariant that did not hold) unless ``ok``."""
        if not ok:
            self.failures.append(failure)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}
