from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from controlplane.health.models import AlertChannel, AlertDelivery
from controlplane.health.signing import HEADER, verify
from tests.breakers.conftest import fresh_name, make_breaker  # noqa: F401 -- shared fixtures
from tests.jobs.conftest import clean_jobs, start_worker  # noqa: F401 -- shared fixtures
from tests.resilience.flaky_server import Script, Seen, flaky_server

SECRET = "test-alert-secret"
# Workers that sweep alert conditions often and retry deliveries within a second or two.
ALERT_WORKER = {"ALERT_SWEEP_SECONDS": "0.2"}


@pytest.fixture
def clean_alerts(transactional_db: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM health_alertdelivery; DELETE FROM health_alertevent; "
            "DELETE FROM health_alertchannel"
        )


@pytest.fixture
def receiver() -> Iterator[Callable[..., tuple[str, Script]]]:
    """Real HTTP receivers on 127.0.0.1: receiver(status, ...) answers those in order."""
    opened = []

    def start(*statuses: int) -> tuple[str, Script]:
        script = Script([(status, {}) for status in statuses or (200,)])
        server = flaky_server(script)
        url = server.__enter__()
        opened.append(server)
        return url + "/hooks/alerts", script

    yield start
    for server in opened:
        server.__exit__(None, None, None)


def webhook(url: str, **fields: Any) -> AlertChannel:
    return AlertChannel.objects.create(
        name=fields.pop("name", f"hook {url}"), kind="webhook", target=url, secret=SECRET, **fields
    )


def signed(seen: Seen) -> bool:
    return verify(SECRET, seen.headers[HEADER.lower()], seen.body)


def deliveries() -> list[AlertDelivery]:
    return list(AlertDelivery.objects.select_related("event").order_by("id"))
