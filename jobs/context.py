"""What a running handler sees: its JobContext (checkpoint, progress, heartbeat), the
interrupts a checkpoint raises, and the Heartbeat thread that renews the job's lease."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection

from jobs import lifecycle

logger = logging.getLogger("controlplane.jobs")


class JobInterrupted(Exception):
    """Raised by ``checkpoint()``: the handler must stop now."""


class JobCancelled(JobInterrupted):
    pass


class JobTimedOut(JobInterrupted):
    pass


class WorkerShuttingDown(JobInterrupted):
    pass


class JobLost(JobInterrupted):
    """This worker no longer holds the job (reaped, timed out by a reader, re-claimed)."""


@dataclass
class JobContext:
    job_id: str
    claim_id: Any
    attempt: int
    max_attempts: int
    payload: dict[str, Any]
    micro_id: str = ""
    micro_uuid: Any = None
    last_poll: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _flags: dict[str, bool] = field(default_factory=dict)
    _progress: tuple[int | None, str | None] = (None, None)

    def _beat(self) -> None:
        with self.lock:
            progress, message = self._progress
            row = lifecycle.execute_one(
                lifecycle.HEARTBEAT,
                {
                    "id": self.job_id,
                    "claim": self.claim_id,
                    "lease": settings.JOB_LEASE_SECONDS,
                    "progress": progress,
                    "progress_message": message,
                },
            )
            self.last_poll = time.monotonic()
        self._flags = row or {"lost": True}

    def heartbeat(self) -> None:
        """Renew the lease now (the worker also does it every JOB_HEARTBEAT_SECONDS)."""
        self._beat()

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress (0-100); written with the next heartbeat or checkpoint."""
        self._progress = (max(0, min(100, int(percent))), message[:500] if message else None)

    def checkpoint(self) -> None:
        """Stop here if the job was cancelled, ran past its timeout, or the worker is stopping."""
        if time.monotonic() - self.last_poll >= settings.JOB_CHECKPOINT_POLL_SECONDS:
            self._beat()
        flags = self._flags
        if flags.get("lost"):
            raise JobLost("this worker no longer holds the job")
        if flags.get("cancel"):
            raise JobCancelled("cancellation was requested")
        if flags.get("overdue"):
            raise JobTimedOut("the job ran past its timeout")
        if flags.get("shutdown"):
            raise WorkerShuttingDown("the worker is shutting down")


class Heartbeat:
    """Renews the lease in the background while the handler runs (even if it never checkpoints)."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"heartbeat-{ctx.job_id}", daemon=True
        )

    def _run(self) -> None:
        try:
            while not self.stop.wait(settings.JOB_HEARTBEAT_SECONDS):
                try:
                    self.ctx._beat()
                except Exception:
                    logger.exception("heartbeat for job %s failed", self.ctx.job_id)
        finally:
            connection.close()

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
