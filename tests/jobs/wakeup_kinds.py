"""A job kind for the cancel-delivery tests, imported by the test and by its runworker."""

from __future__ import annotations

import time
from typing import Any

from jobs.context import JobContext
from jobs.registry import job_handler


@job_handler("test.checkpoint_loop")
def checkpoint_loop(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Checkpoints every 20 ms between plain sleeps (no ``ctx.sleep``), for ``seconds``."""
    until = time.monotonic() + float(payload.get("seconds", 30))
    while time.monotonic() < until:
        ctx.checkpoint()
        time.sleep(0.02)
    return {"finished": True}
