"""Reliability drills: the real service under bad input, faults and load.

Each drill is a function ``run(stack, **bounds) -> DrillResult``. `make drills`
(bench/drills.py) runs them all against a service of its own; the test suite
runs a bounded subset (tests/reliability/test_drills.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
