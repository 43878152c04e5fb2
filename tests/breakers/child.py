"""Child process for the cross-process breaker tests.

python -m tests.breakers.child MODE NAME ...
"""

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


def wait_until(start_at: float) -> None:
    while time.time() < start_at:
        time.sleep(0.0005)


def hammer(name: str, start_at: float) -> dict:
    b = breaker(name)
    b.allows()  # load the snapshot before the start
    wait_until(start_at)
    for _ in range(20):
        with suppress(ZeroDivisionError, CircuitOpenError):
            b.call(lambda: 1 / 0)
    return {"won": registry.counters.get(("transitions", name), 0)}


def probe(name: str, start_at: float) -> dict:
    b = breaker(name)
    wait_until(start_at)
    try:
        b.runtime.acquire()
        return {"granted": 1}
    except CircuitOpenError:
        return {"granted": 0}


def probe_and_hang(name: str) -> dict:
    breaker(name).runtime.acquire()
    print(json.dumps({"granted": 1}), flush=True)
    time.sleep(600)  # a prober that dies without reporting
    return {}


def watch(name: str, until: str, seconds: float) -> dict:
    """Report the wall-clock time at which ``allows()`` becomes ``until`` (allowed/refused)."""
    from controlplane.breakers.sql import CHANNEL
    from controlplane.lib import notifications

    b = breaker(name)
    wanted = until == "allowed"
    assert b.allows() is not wanted
    deadline = time.time() + 10
    while CHANNEL not in notifications.listener.listening and time.time() < deadline:
        time.sleep(0.01)
    print(json.dumps({"ready": CHANNEL in notifications.listener.listening}), flush=True)
    deadline = time.time() + seconds
    while time.time() < deadline:
        if b.allows() is wanted:
            return {"changed_at": time.time()}
        time.sleep(0.001)
    return {"changed_at": None}


def claim(name: str, owner_id: int, count: int, start_at: float) -> dict:
    """Create breakers ``name-0`` .. as the client ``owner_id`` would, through the API's check."""
    from django.contrib.auth import get_user_model

    from controlplane.breakers.actions import claim_for_client
    from controlplane.errors.exceptions import UserFacingError

    client = get_user_model().objects.get(pk=owner_id)
    wait_until(start_at)
    created = 0
    for n in range(count):
        with suppress(UserFacingError):
            claim_for_client(name=f"{name}-{n}", client=client)
            created += 1
    return {"created": created}


if __name__ == "__main__":
    mode, name, *rest = sys.argv[1:]
    if mode == "claim":
        result = claim(name, int(rest[0]), int(rest[1]), float(rest[2]))
    elif mode == "hammer":
        result = hammer(name, float(rest[0]))
    elif mode == "probe":
        result = probe(name, float(rest[0]))
    elif mode == "probe_and_hang":
        result = probe_and_hang(name)
    else:
        result = watch(name, rest[0], float(rest[1]))
    print(json.dumps(result), flush=True)
