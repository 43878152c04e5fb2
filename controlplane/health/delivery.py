"""Delivering one alert to one channel: the rate limit, the request, the record of it.

Each attempt is recorded on the delivery row (attempts, every response code, the last
error), so the admin shows what happened. The first attempt decides the channel's rate
limit under the channel's row lock: over ``max_per_hour`` deliveries started in the last
hour, the delivery is held (``rate_limited``) and later folded into a digest
(``controlplane.health.conditions``), never dropped.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models.functions import Now

from controlplane.errors.exceptions import (
    InternalServerError,
    ServiceUnavailableError,
    ValidationError,
)
from controlplane.health.models import (
    AlertChannel,
    AlertDelivery,
    AlertEvent,
    AlertKind,
    DeliveryStatus,
)
from controlplane.health.signing import HEADER, sign
from controlplane.resilience.retry import RetryPolicy
from jobs.context import JobContext
from jobs.registry import job_handler

logger = logging.getLogger("controlplane.alerts")

DELIVER_KIND = "notifications.deliver"
RATE_WINDOW = timedelta(hours=1)
_OPEN = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
_RECORD = """
UPDATE health_alertdelivery SET
    attempts = attempts + 1,
    response_codes = CASE WHEN %(code)s::int IS NULL THEN response_codes
                          ELSE array_append(response_codes, %(code)s::smallint) END,
    last_response_code = %(code)s, last_error = %(error)s, status = %(status)s,
    sent_at = CASE WHEN %(status)s = 'sent' THEN now() ELSE sent_at END, updated_at = now()
WHERE id = %(id)s
"""


class AlertDeliveryFailed(ServiceUnavailableError):
    code = "ALERT_DELIVERY_FAILED"


class AlertDeliveryRefused(InternalServerError):
    code = "ALERT_DELIVERY_REFUSED"


@dataclass(frozen=True)
class Outcome:
    result: str  # sent | retry | refused | skipped (not open) | rate_limited
    code: int | None = None
    error: str = ""


def _begin(delivery_id: int) -> AlertDelivery | str:
    """The delivery to attempt now, or why not: it is not open any more, or the channel's
    rate limit holds it. Decided under the delivery's and the channel's row locks, so
    concurrent first attempts on one channel count each other."""
    with transaction.atomic():
        delivery = (
            AlertDelivery.objects.select_for_update()
            .filter(pk=delivery_id, status__in=_OPEN)
            .first()
        )
        if delivery is None:
            return "skipped"
        if delivery.started_at is None:
            channel = AlertChannel.objects.select_for_update().get(pk=delivery.channel_id)
            event_kind = AlertEvent.objects.values_list("kind", flat=True).get(pk=delivery.event_id)
            used = AlertDelivery.objects.filter(
                channel=channel, started_at__gte=Now() - RATE_WINDOW
            ).count()
            # A digest is how held deliveries get out: it is never held itself.
            if event_kind != AlertKind.DIGEST and used >= channel.max_per_hour:
                AlertDelivery.objects.filter(pk=delivery_id).update(
                    status=DeliveryStatus.RATE_LIMITED,
                    last_error=f"over the channel's {channel.max_per_hour} per hour; "
                    "held for a digest",
                    updated_at=Now(),
                )
                return "rate_limited"
            AlertDelivery.objects.filter(pk=delivery_id).update(started_at=Now(), updated_at=Now())
    return AlertDelivery.objects.select_related("event", "channel").get(pk=delivery_id)


def attempt(delivery_id: int, *, final: bool) -> Outcome:
    """One attempt at one delivery, recorded. ``final``: no attempt follows this one (a
    retryable failure then leaves the delivery failed)."""
    delivery = _begin(delivery_id)
    if isinstance(delivery, str):
        return Outcome(delivery)
    outcome = send(delivery.channel, delivery.event)
    if outcome.result == "sent":
        status = DeliveryStatus.SENT
    elif outcome.result == "retry" and not final:
        status = DeliveryStatus.RETRYING
    else:
        status = DeliveryStatus.FAILED
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD,
            {"id": delivery_id, "code": outcome.code, "error": outcome.error, "status": status},
        )
    return outcome


def message(event: AlertEvent) -> dict[str, Any]:
    """The JSON a webhook receives."""
    return {
        "id": event.pk,
        "kind": event.kind,
        "subject": event.subject,
        "status": event.status,
        "summary": event.summary,
        "details": event.details,
        "created_at": event.created_at.isoformat(),
        "environment": settings.ENVIRONMENT,
    }


def headline(event: AlertEvent) -> str:
    state = {"firing": "FIRING", "resolved": "resolved", "notice": "notice"}[event.status]
    return f"[controlplane {settings.ENVIRONMENT}] {state}: {event.summary}"


def send(channel: AlertChannel, event: AlertEvent) -> Outcome:
    """Send ``event`` to ``channel`` once; what came back."""
    if channel.kind == AlertChannel.EMAIL:
        return _send_email(channel, event)
    if channel.kind == AlertChannel.SLACK:
        body = json.dumps({"text": headline(event)}).encode()
    else:
        body = json.dumps(message(event), default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "controlplane-alerts"}
    if channel.kind == AlertChannel.WEBHOOK and not channel.secret and settings.IS_PRODUCTION:
        # Slack-style URLs carry their own token; a generic webhook is trusted by its signature.
        return Outcome("refused", None, "unsigned webhooks are refused in production")
    if channel.secret:
        headers[HEADER] = sign(channel.secret, body)
    try:
        response = httpx.post(
            channel.target,
            content=body,
            headers=headers,
            timeout=settings.ALERT_HTTP_TIMEOUT,
            follow_redirects=False,
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        # The target itself is wrong: no retry will make it right.
        return Outcome("refused", None, f"{type(exc).__name__}: {exc}"[:1000])
    except httpx.HTTPError as exc:
        return Outcome("retry", None, f"{type(exc).__name__}: {exc}"[:1000])
    except Exception as exc:  # the request could not even be built (a malformed target)
        return Outcome("refused", None, f"{type(exc).__name__}: {exc}"[:1000])
    code = response.status_code
    if 200 <= code < 300:
        return Outcome("sent", code)
    error = f"HTTP {code}: {response.text[:200]}"
    return Outcome("retry" if code == 429 or code >= 500 else "refused", code, error)


def _send_email(channel: AlertChannel, event: AlertEvent) -> Outcome:
    recipients = [a.strip() for a in channel.target.split(",") if a.strip()]
    body = f"{event.summary}\n\n{json.dumps(message(event), indent=2, default=str)}\n"
    try:
        send_mail(headline(event)[:200], body, None, recipients)
    except smtplib.SMTPRecipientsRefused as exc:  # every address refused: the target is wrong
        return Outcome("refused", None, f"{type(exc).__name__}: {exc}"[:1000])
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome("retry", None, f"{type(exc).__name__}: {exc}"[:1000])
    except Exception as exc:  # a message that cannot be built (a bad header)
        return Outcome("refused", None, f"{type(exc).__name__}: {exc}"[:1000])
    return Outcome("sent")


def _validate(payload: dict[str, Any]) -> None:
    if not isinstance(payload.get("delivery_id"), int):
        raise ValidationError("payload.delivery_id must be an alert delivery id.")


@job_handler(DELIVER_KIND, groups=("ops",), validate=_validate)
def deliver_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """One attempt per job attempt: a timeout, connection error, 429 or 5xx raises a
    retryable error, so the job system retries with its backoff (JOB_RETRY_* settings) up
    to ALERT_MAX_ATTEMPTS; any other refusal fails the job at once."""
    delivery_id = payload["delivery_id"]
    outcome = attempt(delivery_id, final=ctx.attempt >= ctx.max_attempts)
    detail = f"delivery {delivery_id}: {outcome.error}"
    if outcome.result == "retry":
        raise AlertDeliveryFailed(technical_message=detail)
    if outcome.result == "refused":
        raise AlertDeliveryRefused(technical_message=detail)
    return {"delivery_id": delivery_id, "result": outcome.result, "response_code": outcome.code}


def deliver_with_retries(deliveries: list[int]) -> None:
    """Deliver without the job system (no worker may be running): every attempt in this
    thread, with the jobs' backoff between them."""
    policy = RetryPolicy(
        max_attempts=settings.ALERT_MAX_ATTEMPTS,
        initial_delay=settings.JOB_RETRY_INITIAL_DELAY,
        max_delay=settings.JOB_RETRY_MAX_DELAY,
        jitter="full",
    )
    try:
        for delivery_id in deliveries:
            # One delivery that breaks (its channel, the database) does not stop the others;
            # one left open is the sweep's to re-drive (alert_repairs).
            try:
                for number in range(1, policy.max_attempts + 1):
                    outcome = attempt(delivery_id, final=number == policy.max_attempts)
                    if outcome.result != "retry":
                        break
                    time.sleep(policy.backoff(number))
            except Exception:
                logger.exception("direct alert delivery %s failed", delivery_id)
                connection.close()  # a broken connection is not handed to the next one
    finally:
        connection.close()
