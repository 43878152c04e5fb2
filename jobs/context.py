"""What a running handler sees: its JobContext (checkpoint, progress, heartbeat), the
interrupts a checkpoint raises, and the Heartbeat thread that renews the job's lease."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
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


class DatabaseAway(JobInterrupted):
    """The database has been unreachable for so long that the lease is about to lapse:
    stop before another worker may claim the job, so it never runs twice at once."""


def lease_margin() -> float:
    """How long before its lease lapses a worker that cannot renew it stops the handler."""
    return min(5.0, settings.JOB_LEASE_SECONDS / 4)


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
    # When the lease this worker last renewed runs out, by this process's monotonic clock:
    # the database set it to (its now() + lease) after the renewal was sent.
    lease_deadline: float = field(
        default_factory=lambda: time.monotonic() + settings.JOB_LEASE_SECONDS
    )
    database_away: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set when a NOTIFY says the job's cancel (or shutdown) was requested (jobs.wakeups).
    interrupted: threading.Event = field(default_factory=threading.Event)
    _flags: dict[str, bool] = field(default_factory=dict)
    _progress: tuple[int | None, str | None] = (None, None)

    def _beat(self) -> None:
        """Renew the lease and read the flags. While the database is away the handler goes
        on with the flags it last read, until its lease is about to lapse."""
        with self.lock:
            progress, message = self._progress
            sent = time.monotonic()
            try:
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
            except lifecycle.DATABASE_AWAY as exc:
                self.last_poll = time.monotonic()
                if not self.database_away:
                    logger.warning("job %s: cannot renew its lease: %s", self.job_id, exc)
                self.database_away = True
                return
            self.last_poll = time.monotonic()
            self.database_away = False
            if row:
                self.lease_deadline = sent + settings.JOB_LEASE_SECONDS
        self._flags = row or {"lost": True}

    def lease_lapsing(self, margin: float) -> bool:
        """True when the database has been away so long that the lease ends within ``margin``."""
        return self.database_away and time.monotonic() > self.lease_deadline - margin

    def heartbeat(self) -> None:
        """Renew the lease now (the worker also does it every JOB_HEARTBEAT_SECONDS)."""
        self._beat()

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress (0-100); written with the next heartbeat or checkpoint."""
        self._progress = (max(0, min(100, int(percent))), message[:500] if message else None)

    def interrupt(self) -> None:
        """Something was requested for this job: the next checkpoint asks the database now
        (the flags it reads there, not this hint, decide whether the handler stops)."""
        self.interrupted.set()

    def checkpoint(self) -> None:
        """Stop here if the job was cancelled, ran past its timeout, or the worker is stopping."""
        if (
            self.interrupted.is_set()
            or time.monotonic() - self.last_poll >= settings.JOB_CHECKPOINT_POLL_SECONDS
        ):
            # Cleared before asking: a request committed after this read interrupts again.
            self.interrupted.clear()
            self._beat()
        if self.lease_lapsing(lease_margin()):
            raise DatabaseAway("the database was unreachable until the lease nearly lapsed")
        flags = self._flags
        if flags.get("lost"):
            raise JobLost("this worker no longer holds the job")
        if flags.get("cancel"):
            raise JobCancelled("cancellation was requested")
        if flags.get("overdue"):
            raise JobTimedOut("the job ran past its timeout")
        if flags.get("shutdown"):
            raise WorkerShuttingDown("the worker is shutting down")

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; a cancel (or shutdown) request that arrives meanwhile checkpoints
        at once, which raises. Handlers that wait should wait here, not in time.sleep."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            if self.interrupted.wait(left):
                self.checkpoint()


class Heartbeat:
    """Renews the lease in the background while the handler runs (even if it never
    checkpoints). If the database stays away until the lease is about to lapse and the
    handler has not stopped at a checkpoint, ``on_lapse()`` runs (the worker process ends
    itself): another worker may claim the job once the lease lapses, and a job must never
    run twice at the same time."""

    def __init__(self, ctx: JobContext, on_lapse: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.on_lapse = on_lapse
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"heartbeat-{ctx.job_id}", daemon=True
        )

    def _run(self) -> None:
        tick = min(settings.JOB_HEARTBEAT_SECONDS, 0.5)
        last_beat = time.monotonic()
        try:
            while not self.stop.wait(tick):
                due = settings.JOB_HEARTBEAT_SECONDS if not self.ctx.database_away else 1.0
                if time.monotonic() - last_beat >= due:
                    last_beat = time.monotonic()
                    try:
                        self.ctx._beat()
                    except Exception:
                        logger.exception("heartbeat for job %s failed", self.ctx.job_id)
                # Half the checkpoint's margin: a handler that checkpoints stops first. A
                # beat that returned after its job ended must not end the next job's process.
                if (
                    self.on_lapse is not None
                    and not self.stop.is_set()
                    and self.ctx.lease_lapsing(lease_margin() / 2)
                ):
                    logger.critical(
                        "job %s: lease about to lapse with the database away; stopping",
                        self.ctx.job_id,
                    )
                    self.on_lapse()
                    return
        finally:
            connection.close()

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
