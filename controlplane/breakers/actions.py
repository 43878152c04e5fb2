"""Operator actions on breakers: reset, force open, disable. Each one is audited twice:
a BreakerEvent (who, why, in the same statement as the change) and Django's admin log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry

from controlplane.breakers import sql
from controlplane.breakers.circuit import NAME, is_reserved
from controlplane.breakers.models import Breaker
from controlplane.breakers.registry import registry
from controlplane.breakers.signals import announce
from controlplane.breakers.snapshot import HALF_OPEN, Permit
from controlplane.errors.exceptions import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    ValidationError,
)

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
    announce(
        name=name,
        from_state=row["from_state"],
        to_state=row["state"],
        generation=row["generation"],
        kind="override",
        action=action,
        actor=username,
        reason=reason,
    )
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


def check_name(name: str) -> str:
    """``name`` as a breaker name, whole (a trailing newline does not pass), or 400."""
    if not NAME.fullmatch(name):
        raise InvalidRequestError(
            "Breaker names are 1-100 lowercase letters, digits, '.', '_' or '-'.",
            code="INVALID_BREAKER_NAME",
        )
    return name


def claim_for_client(*, name: str, client: Any) -> None:
    """Let ``client`` report on or probe breaker ``name``, or refuse (an envelope).

    A name nobody uses yet becomes the client's breaker (at most BREAKER_MAX_PER_CLIENT of
    them); a client's breaker is its own; this service's breakers (no owner, or reserved
    by code or configuration) are nobody's.
    """
    check_name(name)
    if is_reserved(name):
        raise _reserved(name)
    row = Breaker.objects.filter(name=name).values("owner_id").first()
    if row is None:
        limit = settings.BREAKER_MAX_PER_CLIENT
        params = {**settings.BREAKER_DEFAULTS, "name": name, "owner_id": client.pk, "cap": limit}

        def create(cursor: Any) -> None:
            with cursor.connection.transaction():
                cursor.execute(sql.LOCK_OWNER, params)
                cursor.execute(sql.CREATE_OWNED, params)

        registry.side.run(create)
        row = Breaker.objects.filter(name=name).values("owner_id").first()
        if row is None:
            raise ForbiddenError(
                f"You have {limit} breakers, the most a client may create; ask ops to remove "
                "the ones you no longer use.",
                code="BREAKER_LIMIT_REACHED",
                metadata={"limit": limit},
            )
    if row["owner_id"] is None:
        raise _reserved(name)
    if row["owner_id"] != client.pk:
        raise ForbiddenError(
            f"Breaker {name!r} belongs to another client.", code="BREAKER_NOT_OWNED"
        )


def _reserved(name: str) -> ForbiddenError:
    return ForbiddenError(
        f"Breaker {name!r} belongs to this service; remote outcomes and permits are refused.",
        code="BREAKER_RESERVED",
    )


def report_outcome(
    *, name: str, outcome: Literal["success", "failure"], probe: datetime | None = None
) -> Breaker:
    """A remote client reports one call's outcome on its breaker (``claim_for_client`` first).

    In half-open only the caller holding a probe (``probe``: the lease /permit/ gave it) may
    report, and its report decides; anything else is refused (409 PROBE_REQUIRED).
    """
    runtime = registry.get(name)
    snap = runtime.reload()
    if snap is not None and snap.state == HALF_OPEN:
        permit = Permit(snap.generation, probe=True, probe_lease=probe)
        if probe is None or not runtime.report_probe(permit, ok=outcome == "success"):
            raise ConflictError(
                "The breaker is half-open: only a caller holding a probe from "
                "GET .../permit/ may report, with that probe.",
                code="PROBE_REQUIRED",
            )
    elif snap is not None:
        permit = Permit(snap.generation)
        if outcome == "failure":
            runtime.failure(permit)
        else:
            runtime.success(permit)
    return Breaker.objects.get(name=name)
