"""What lower layers announce, turned into alerts: breaker changes (``breaker_transition``),
new error groups (``error_group_created``) and provider probe results. Connected in
HealthConfig.ready(). The periodic sweep (``controlplane.health.conditions``) replays the
breakers' and error groups' recent history through the same functions, so an
announcement lost with a process (or with a request's rolled-back transaction) is still
made, once: the dedup keys below are the same on both paths."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from controlplane.breakers.models import Breaker
from controlplane.health.alerts import Alert, raise_alert
from controlplane.health.models import AlertKind

logger = logging.getLogger("controlplane.alerts")

_BREAKER_FIRING = [AlertKind.BREAKER_OPENED, AlertKind.BREAKER_FORCED]
# Failed deliveries end as job error records: announcing their group would notify about
# notifications failing, through the channel that fails.
QUIET_SERVICE_PREFIX = "job:notifications."


def breaker_alert(
    *,
    name: str,
    from_state: str,
    to_state: str,
    generation: int,
    kind: str = "transition",
    action: str = "",
    actor: str = "",
    reason: str = "",
) -> None:
    """Opened (fires until closed), closed or reset, forced open or disabled (fires until
    reset or expiry), override expired. Half-open is not news: it closes or reopens.

    Only this service's own breakers: a client's breaker is the client's upstream (and
    any client can create some), as in the health check."""
    row = Breaker.objects.filter(name=name).values_list("id", "owner_id").first()
    if row is None or row[1] is not None:
        return
    breaker_id = row[0]
    details = {
        "breaker": name,
        "breaker_id": breaker_id,
        "generation": generation,
        "from_state": from_state,
        "to_state": to_state,
        "change": action or kind,
        "actor": actor,
        "reason": reason,
    }
    by = f" by {actor}" if actor else ""
    why = f": {reason}" if reason else ""
    # The id, not the name: a breaker deleted and made again starts its generations anew.
    key = f"breaker:{breaker_id}:g{generation}"
    if kind == "override" and action in ("force_open", "disable"):
        verb = "forced open" if action == "force_open" else "disabled (always permits)"
        alert = Alert(AlertKind.BREAKER_FORCED, name, f"Breaker {name} {verb}{by}{why}", details)
        # A new override replaces the one in force: its episode ends, this one begins.
        raise_alert(_keyed(alert, key), resolves=_BREAKER_FIRING, generation=generation)
    elif kind == "override":  # reset
        alert = Alert(AlertKind.BREAKER_CLOSED, name, f"Breaker {name} reset{by}{why}", details)
        raise_alert(_keyed(alert, key), resolves=_BREAKER_FIRING, generation=generation)
    elif kind == "override_expired":
        alert = Alert(
            AlertKind.BREAKER_OVERRIDE_EXPIRED,
            name,
            f"Breaker {name}: override expired, now {to_state}",
            details,
        )
        raise_alert(_keyed(alert, key), resolves=[AlertKind.BREAKER_FORCED], generation=generation)
    elif to_state == "open":
        # From closed, or again from half-open: one firing event per episode (the partial
        # unique index keeps a reopen from firing a second one).
        alert = Alert(
            AlertKind.BREAKER_OPENED,
            name,
            f"Breaker {name} opened ({from_state} -> open)",
            details,
        )
        raise_alert(_keyed(alert, key), generation=generation)
    elif to_state == "closed":
        alert = Alert(AlertKind.BREAKER_CLOSED, name, f"Breaker {name} closed", details)
        raise_alert(_keyed(alert, key), resolves=_BREAKER_FIRING, generation=generation)


def _keyed(alert: Alert, key: str) -> Alert:
    return Alert(alert.kind, alert.subject, alert.summary, alert.details, key)


def on_breaker_transition(sender: Any, **kwargs: Any) -> None:
    """breaker_transition receiver."""
    kwargs.pop("signal", None)
    breaker_alert(**kwargs)


def group_alert(
    *,
    group_id: int,
    fingerprint: str,
    code: str,
    service: str,
    first_seen: datetime,
    support_id: Any,
) -> None:
    """A new group of this service's own errors. Keyed on the group's id: first_seen moves
    when an older spooled record is replayed (and reads differently on the store's side
    connection and the ORM), the id does not; a group purged and seen again is news again."""
    if service.startswith(QUIET_SERVICE_PREFIX):
        return
    raise_alert(
        Alert(
            AlertKind.ERROR_NEW_GROUP,
            fingerprint,
            f"New error: {code}" + (f" in {service}" if service else ""),
            {
                "group_id": group_id,
                "fingerprint": fingerprint,
                "code": code,
                "service": service,
                "first_seen": first_seen.isoformat(),
                "support_id": str(support_id),
            },
            group_key(group_id),
        )
    )


def group_key(group_id: int) -> str:
    return f"error.new_group:{group_id}"


def on_error_group_created(sender: Any, **kwargs: Any) -> None:
    """error_group_created receiver."""
    kwargs.pop("signal", None)
    group_alert(**kwargs)


def provider_alerts(statuses: dict[str, str], details: dict[str, str]) -> None:
    """After a probe round: unhealthy fires (once per episode); anything better resolves it
    and says so."""
    for provider, status in statuses.items():
        if status == "unhealthy":
            raise_alert(
                Alert(
                    AlertKind.PROVIDER_UNHEALTHY,
                    provider,
                    f"Provider {provider} is unhealthy ({details.get(provider, '')})",
                    {"provider": provider, "detail": details.get(provider, "")},
                )
            )
        else:
            raise_alert(
                Alert(
                    AlertKind.PROVIDER_RECOVERED,
                    provider,
                    f"Provider {provider} recovered ({status})",
                    {"provider": provider, "status": status},
                ),
                resolves=[AlertKind.PROVIDER_UNHEALTHY],
                only_if_resolved=True,
            )
