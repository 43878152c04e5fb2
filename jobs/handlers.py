"""Job kinds are registered handlers.

    @job_handler("demo.sleep")
    def sleep(ctx: JobContext, payload: dict) -> dict:
        ctx.progress(50, "half way")
        ctx.checkpoint()      # raises if cancelled, past the timeout, or the worker is stopping
        return {"done": True}

A handler returns the result (JSON), raises a retryable error to be retried
with backoff, or any other error to fail the job.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection

from controlplane.errors.exceptions import ServiceUnavailableError
from jobs import lifecycle

logger = logging.getLogger("controlplane.jobs")

Handler = Callable[["JobContext", dict[str, Any]], Any]
_handlers: dict[str, Handler] = {}
# kind -> the groups allowed to create it (None: anyone who may create jobs)
_groups: dict[str, tuple[str, ...] | None] = {}
# kind -> payload check run at creation; raises ValidationError
_validators: dict[str, Callable[[dict[str, Any]], None]] = {}


# What a kind may look like (documented on the jobs list filter, checked at registration).
KIND_PATTERN = r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*$"


def job_handler(
    kind: str,
    *,
    groups: tuple[str, ...] | None = None,
    validate: Callable[[dict[str, Any]], None] | None = None,
) -> Callable[[Handler], Handler]:
    if not re.match(KIND_PATTERN, kind) or len(kind) > 100:
        raise ValueError(f"job kind {kind!r} must match {KIND_PATTERN} (at most 100 characters)")

    def register(fn: Handler) -> Handler:
        _handlers[kind] = fn
        _groups[kind] = groups
        if validate:
            _validators[kind] = validate
        return fn

    return register


def allowed_groups(kind: str) -> tuple[str, ...] | None:
    return _groups.get(kind)


def validate_payload(kind: str, payload: dict[str, Any]) -> None:
    check = _validators.get(kind)
    if check:
        check(payload)


def get_handler(kind: str) -> Handler | None:
    return _handlers.get(kind)


def kinds() -> list[str]:
    return sorted(_handlers)


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
            row = lifecycle.one(
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


# --- built-in kinds ---------------------------------------------------------------------


class DemoFailure(ServiceUnavailableError):
    code = "DEMO_TRANSIENT_FAILURE"


@job_handler("demo.sleep")
def demo_sleep(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Sleep ``seconds`` in 100 ms steps with a checkpoint and progress at each; fail
    retryably on the first ``fail_times`` attempts."""
    seconds = float(payload.get("seconds", 1.0))
    fail_times = int(payload.get("fail_times", 0))
    if ctx.attempt <= fail_times:
        raise DemoFailure(f"demo failure on attempt {ctx.attempt} of {fail_times} planned")
    steps = max(1, round(seconds / 0.1)) if seconds > 0 else 0
    started = time.monotonic()
    for step in range(steps):
        ctx.checkpoint()
        ctx.progress(100 * step / steps, f"step {step + 1} of {steps}")
        time.sleep(0.1)
    ctx.checkpoint()
    return {"slept": round(time.monotonic() - started, 3), "attempt": ctx.attempt}


def _validate_http_request(payload: dict[str, Any]) -> None:
    """Only configured providers, only paths on them: a job must not make the worker fetch
    arbitrary URLs (cloud metadata, loopback services) and hand the answer back."""
    from controlplane.errors.exceptions import ValidationError

    provider = payload.get("provider")
    if provider not in settings.PROVIDERS:
        raise ValidationError(
            "payload.provider must name a configured provider.",
            code="UNKNOWN_PROVIDER",
            metadata={"providers": sorted(settings.PROVIDERS)},
        )
    path = payload.get("path", "/")
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or "://" in path
        or path.startswith("//")
    ):
        raise ValidationError("payload.path must be a path such as /v1/parse.", code="INVALID_PATH")
    if str(payload.get("method", "GET")).upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        raise ValidationError("payload.method is not an HTTP method.", code="INVALID_METHOD")


@job_handler("http.request", validate=_validate_http_request)
def http_request(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """A call to a configured provider through its ServiceClient (breaker + retries):
    payload ``{"provider", "method", "path", "json"?}``."""
    from controlplane.resilience.providers import client_for

    _validate_http_request(payload)
    client = client_for(str(payload["provider"]))
    ctx.checkpoint()
    response = client.request(
        str(payload.get("method", "GET")).upper(),
        payload.get("path", "/"),
        json=payload.get("json"),
    )
    ctx.progress(100, "done")
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:10_000]
    return {"status": response.status_code, "body": body}


@job_handler("lookups.warm", groups=("ops",))
def lookups_warm(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    from lookups.warming import warm_everywhere

    result = warm_everywhere(slugs=payload.get("slugs") or None)
    return {
        "reports": [{"process": r["process"], "warmed": r["warmed"]} for r in result["reports"]]
    }


@job_handler("lookups.backfill", groups=("ops",))
def lookups_backfill(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    from jobs.backfill import backfill_micro_uuids

    def progress(done: int, total: int) -> None:
        ctx.progress(100 * done / total if total else 100, f"{done} of {total} jobs")
        ctx.checkpoint()

    report = backfill_micro_uuids(batch_size=int(payload.get("batch_size", 500)), progress=progress)
    return report
