"""A process that uses one of this service's breakers, as a web process does:
``python -m tests.reliability.drills._alerting_child NAME FAIL_AT``. At FAIL_AT (epoch
seconds) it calls through breaker NAME with a failing function until the breaker refuses,
then prints ``{"failures": n}``. Its breaker_transition receivers are the real ones (the
health app's alerts), so the process that wins the opening announces it."""

from __future__ import annotations

import json
import sys
import time

import django

django.setup()

from controlplane.breakers.circuit import breaker  # noqa: E402
from controlplane.breakers.exceptions import CircuitOpenError  # noqa: E402

THRESHOLD = 5


def main(name: str, fail_at: float) -> dict[str, int]:
    guarded = breaker(name, failure_threshold=THRESHOLD, cooldown_seconds=600)
    guarded.allows()  # created and loaded before the start, so both children start together
    while time.time() < fail_at:
        time.sleep(0.001)
    failures = 0
    for _ in range(THRESHOLD * 4):
        try:
            guarded.call(lambda: 1 / 0)
        except ZeroDivisionError:
            failures += 1
        except CircuitOpenError:
            break
    return {"failures": failures}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], float(sys.argv[2]))), flush=True)
