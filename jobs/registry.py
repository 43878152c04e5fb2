"""Job kinds are registered handlers.

    @job_handler("demo.sleep")
    def sleep(ctx: JobContext, payload: dict) -> dict:
        ctx.progress(50, "half way")
        ctx.checkpoint()      # raises if cancelled, past the timeout, or the worker is stopping
        return {"done": True}

A handler returns the result (JSON), raises a retryable error to be retried
with backoff, or any other error to fail the job. A kind that calls upstreams
through breakers declares them (``breakers=``: payload -> breaker names, or a
``Breakers`` that also names them, e.g. "group llm"): while none of them permits, the
job waits in the queue without spending an attempt (``jobs.waiting``). The built-in
kinds are in ``jobs.kinds``; a new kind is a function like the one above in any module
that an AppConfig.ready() imports.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobs.context import JobContext


@dataclass(frozen=True)
class Breakers:
    """What a kind's ``breakers=`` hook returns when the breakers have a name of their own:
    ``label`` is what the job's ``waiting_for`` shows while it waits for them (e.g.
    "group llm"; by default "breaker a", or "breakers a, b")."""

    names: list[str] = field(default_factory=list)
    label: str = ""


Handler = Callable[[JobContext, dict[str, Any]], Any]
BreakersHook = Callable[[dict[str, Any]], list[str] | Breakers]
_handlers: dict[str, Handler] = {}
# kind -> the groups allowed to create it (None: anyone who may create jobs)
_groups: dict[str, tuple[str, ...] | None] = {}
# kind -> payload check run at creation; raises ValidationError
_validators: dict[str, Callable[[dict[str, Any]], None]] = {}
# kind -> the breakers a payload's run will call (checked before each attempt)
_breakers: dict[str, BreakersHook] = {}


# What a kind may look like (documented on the jobs list filter, checked at registration).
KIND_PATTERN = r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*$"


def job_handler(
    kind: str,
    *,
    groups: tuple[str, ...] | None = None,
    validate: Callable[[dict[str, Any]], None] | None = None,
    breakers: BreakersHook | None = None,
) -> Callable[[Handler], Handler]:
    if not re.fullmatch(KIND_PATTERN.strip("^$"), kind) or len(kind) > 100:
        raise ValueError(f"job kind {kind!r} must match {KIND_PATTERN} (at most 100 characters)")

    def register(fn: Handler) -> Handler:
        _handlers[kind] = fn
        _groups[kind] = groups
        if validate:
            _validators[kind] = validate
        if breakers:
            _breakers[kind] = breakers
        return fn

    return register


def allowed_groups(kind: str) -> tuple[str, ...] | None:
    return _groups.get(kind)


def validate_payload(kind: str, payload: dict[str, Any]) -> None:
    check = _validators.get(kind)
    if check:
        check(payload)


def breakers_for(kind: str, payload: dict[str, Any]) -> Breakers:
    """The breakers a run of this job will call, as its kind declares (none if it does not)."""
    hook = _breakers.get(kind)
    found = hook(payload) if hook else Breakers()
    if not isinstance(found, Breakers):
        found = Breakers(list(found))
    return Breakers(list(dict.fromkeys(found.names)), found.label)


def get_handler(kind: str) -> Handler | None:
    return _handlers.get(kind)


def kinds() -> list[str]:
    return sorted(_handlers)
