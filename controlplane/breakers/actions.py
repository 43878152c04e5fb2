"""Operator actions on breakers: reset, force open, disable. Each one is audited twice:
a BreakerEvent (who, why, in the same statement as the change) and Django's admin log."""

from __future__ import annotations

from typing import Any, Literal

from django.contrib.admin.models import CHANGE, LogEntry

from controlplane.breakers import sql
from controlplane.breakers.circuit import NAME
from controlplane.breakers.models import Breaker
from controlplane.breakers.registry import registry
from controlplane.breakers.snapshot import HALF_OPEN, Permit
from controlplane.errors.exceptions import NotFoundError, ValidationError

OverrideAction = Literal["reset", "force_open", "disable"]
_STATEMENTS = {"reset": sql.RESET, "force_open": sql.FORCE_OPEN, "disable": sql.DISABLE}
MAX_EXPIRY_SECONDS = 7 * 24 * 3600


def override_breaker(
    *,
    name: str,
    action: OverrideAction,
    reason: str,
    actor: Any,
    expires_in: float | None = None,
) -> Breaker:
    """Apply an operator override; every process obeys it within a second (NOTIFY)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("A reason is required.", code="REASON_REQUIRED")
    if expires_in is not None:
        if action == "reset":
            raise ValidationError(
                "expires_in applies to force-open and disable, not reset.", code="INVALID_EXPIRY"
            )
        if not 0 < expires_in <= MAX_EXPIRY_SECONDS:
            raise ValidationError(
                f"expires_in must be between 0 and {MAX_EXPIRY_SECONDS} seconds.",
                code="INVALID_EXPIRY",
            )
    username = actor.get_username() if actor is not None else ""
    params = {
        "name": name,
        "reason": reason,
        "expires_in": expires_in,
        **sql.event_params("override", "", username, {"action": action}),
    }
    row = registry.side.run(lambda c: sql.run(c, _STATEMENTS[action], params))
    if row is None:
        raise NotFoundError(f"No breaker named {name!r}.", code="BREAKER_NOT_FOUND")
    registry.invalidate(name)
    breaker = Breaker.objects.get(pk=row["id"])
    if actor is not None and actor.pk is not None:
        LogEntry.objects.log_actions(
            user_id=actor.pk,
            queryset=[breaker],
            action_flag=CHANGE,
            change_message=f"{action.replace('_', ' ')}: {reason}"
            + (f" (expires in {expires_in:g} s)" if expires_in else ""),
            single_object=True,
        )
    return breaker


def report_outcome(*, name: str, outcome: Literal["success", "failure"]) -> Breaker:
    """A remote service reports one call's outcome (creates the breaker on first use)."""
    if not NAME.match(name):
        raise ValidationError(f"Invalid breaker name {name!r}.", code="INVALID_BREAKER_NAME")
    runtime = registry.get(name)
    snap = runtime.reload()
    if snap is not None:
        # A remote report in half-open is a probe result (its lease, if any, expires).
        permit = Permit(snap.generation, probe=snap.state == HALF_OPEN)
        if outcome == "failure":
            runtime.failure(permit)
        else:
            runtime.success(permit)
    return Breaker.objects.get(name=name)
