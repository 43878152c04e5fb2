"""A process that uses one breaker as a web process would: python -m tests.health.alert_child
NAME FAIL_AT. At FAIL_AT (epoch seconds) it makes 20 failing calls (the breaker opens on
the way) and says "failed"; after a line on stdin it makes successful calls for a second
(one of them the probe that closes it). Its breaker_transition receivers are the real
ones (health's alerts)."""

from __future__ import annotations

import json
import sys
import time
from contextlib import suppress

import django

django.setup()

from controlplane.breakers.circuit import breaker  # noqa: E402
from controlplane.breakers.exceptions import CircuitOpenError  # noqa: E402
from controlplane.breakers.registry import registry  # noqa: E402


def wait_until(moment: float) -> None:
    while time.time() < moment:
        time.sleep(0.001)


def main(name: str, fail_at: float) -> dict:
    b = breaker(name)
    b.allows()  # load the snapshot before the start
    wait_until(fail_at)
    for _ in range(20):
        with suppress(ZeroDivisionError, CircuitOpenError):
            b.call(lambda: 1 / 0)
    print("failed", flush=True)
    sys.stdin.readline()  # the test ended the cooldown meanwhile
    registry.invalidate(name)
    ends = time.time() + 1.0
    while time.time() < ends:
        with suppress(CircuitOpenError):
            b.call(lambda: 1)
        time.sleep(0.01)
    return {"won": registry.counters.get(("transitions", name), 0)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], float(sys.argv[2]))), flush=True)
