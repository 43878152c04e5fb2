"""Child process for bench/breakers.py (runs against the bench database)."""

from __future__ import annotations

import json
import sys
import time
from contextlib import suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django

django.setup()

from controlplane.breakers.circuit import breaker  # noqa: E402
from controlplane.breakers.exceptions import CircuitOpenError  # noqa: E402
from controlplane.breakers.registry import registry  # noqa: E402
from controlplane.breakers.sql import CHANNEL  # noqa: E402
from controlplane.lib import notifications  # noqa: E402


def boom() -> None:
    raise RuntimeError("down")


def watch(name: str) -> None:
    """Print each change of allows(), with the wall-clock time it was seen."""
    b = breaker(name)
    state = b.allows()
    while CHANNEL not in notifications.listener.listening:
        time.sleep(0.01)
    print(json.dumps({"ready": True, "allowed": state}), flush=True)
    while True:
        now_allowed = b.allows()
        if now_allowed != state:
            state = now_allowed
            print(json.dumps({"allowed": state, "at": time.time()}), flush=True)


def hammer(name: str, start_at: float, seconds: float) -> None:
    b = breaker(name)
    b.allows()
    while time.time() < start_at:
        time.sleep(0.0005)
    calls = 0
    end = start_at + seconds
    while time.time() < end:
        with suppress(RuntimeError, CircuitOpenError):
            b.call(boom)
        calls += 1
    print(json.dumps({"won": registry.counters.get(("transitions", name), 0), "calls": calls}))


if __name__ == "__main__":
    mode, name, *rest = sys.argv[1:]
    if mode == "watch":
        watch(name)
    else:
        hammer(name, float(rest[0]), float(rest[1]))
