"""Child process of the flapping drill: one "service" calling the upstream at a steady pace.

    python -m tests.reliability.drills._flapping_client PROVIDER LABEL PATH INTERVAL STOP_FILE

Runs with the stack's environment (same database, same PROVIDERS / RETRY_* settings) and
calls the provider exactly as project code does: ``client_for(provider).get(...)``, i.e. the
real ServiceClient with its shared PostgreSQL breaker and the settings' RetryPolicy. Prints
one JSON line first (``ready``, with the effective policy), then one per client call, until
STOP_FILE exists. Every attempt of call N carries ``X-Request-Id: LABEL-N`` so the upstream
can attribute its requests to calls.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import django

django.setup()

import httpx  # noqa: E402

from controlplane.breakers.sql import CHANNEL  # noqa: E402
from controlplane.errors.exceptions import UserFacingError  # noqa: E402
from controlplane.lib import notifications  # noqa: E402
from controlplane.resilience.budget import SLOTS  # noqa: E402
from controlplane.resilience.providers import client_for  # noqa: E402

MAX_LIFETIME = 600.0  # never outlive a drill that crashed without writing the stop file


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line, default=str), flush=True)


def main(provider: str, label: str, path: str, interval: float, stop_file: str) -> None:
    client = client_for(provider)
    retries: list[dict[str, Any]] = []

    def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
        status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
        header = exc.response.headers.get("Retry-After") if status else None
        retries.append(
            {
                "attempt": attempt,
                "exc": type(exc).__name__,
                "status": status,
                "retry_after": header,
                "delay": delay,
                "at": time.time(),
            }
        )

    client.on_retry = on_retry
    client.breaker.allows()  # reads the shared row and starts the LISTEN thread
    waited = time.monotonic() + 20
    while CHANNEL not in notifications.listener.listening and time.monotonic() < waited:
        time.sleep(0.02)
    policy = client.retry
    emit(
        {
            "ready": True,
            "label": label,
            "pid": os.getpid(),
            "listening": CHANNEL in notifications.listener.listening,
            "timeout": client._client.timeout.read,
            "retry": {
                "max_attempts": policy.max_attempts,
                "deadline": policy.deadline,
                "retry_after_cap": policy.retry_after_cap,
                "max_delay": policy.max_delay,
            },
            "budget": {
                "ratio": client.budget.ratio,
                "floor": client.budget.floor,
                "window_seconds": client.budget.window_seconds,
                "sync_seconds": client.budget.sync_seconds,
                "slots": SLOTS,
            },
        }
    )
    began = time.monotonic()
    next_start = began
    number = 0
    while not os.path.exists(stop_file) and time.monotonic() - began < MAX_LIFETIME:
        pause = next_start - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        next_start = max(next_start + interval, time.monotonic())
        number += 1
        call_id = f"{label}-{number}"
        retries.clear()
        line: dict[str, Any] = {"call": call_id, "start": time.time()}
        try:
            response = client.get(path, headers={"X-Request-Id": call_id})
            line.update(outcome="ok", status=response.status_code)
        except UserFacingError as exc:
            line.update(
                outcome="error",
                code=exc.code,
                status=exc.http_status,
                support_id=str(exc.support_id),
                retry_after=exc.retry_after,
            )
        except Exception as exc:  # not a UserFacingError: the client broke its contract
            line.update(outcome="crash", exc=f"{type(exc).__name__}: {exc}")
        line.update(end=time.time(), retries=list(retries), state=client.breaker.state)
        emit(line)
    emit({"done": True, "label": label, "calls": number})


if __name__ == "__main__":
    provider_arg, label_arg, path_arg, interval_arg, stop_arg = sys.argv[1:6]
    main(provider_arg, label_arg, path_arg, float(interval_arg), stop_arg)
