"""The ops dashboard shows what is broken however many breakers clients created."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection

from controlplane.breakers import sql
from controlplane.breakers.circuit import breaker
from tests.breakers.conftest import fail, fresh_name  # noqa: F401


def crowd(owner_id: int, count: int) -> None:
    """Clients' breakers named to sort before every real one, half of them open."""
    names = [f"0-crowd-{n:05d}" for n in range(count)]
    rows = [{**settings.BREAKER_DEFAULTS, "name": name, "owner_id": owner_id} for name in names]
    with connection.cursor() as cursor:
        cursor.executemany(sql.ENSURE, rows)
        cursor.execute(
            "UPDATE breakers_breaker SET state = 'open', open_until = now() + interval '1 hour'"
            " WHERE name = ANY(%s)",
            [names[0::2]],
        )


def test_an_open_upstream_is_shown_first_among_a_thousand_client_breakers(
    fresh_name: str,  # noqa: F811 -- empty breaker tables, transactional
    client_user: Any,
    ops_user: Any,
    client: Any,
) -> None:
    fail(breaker("llamaparse", failure_threshold=1), 1)  # this service's own upstream
    crowd(client_user.pk, 1000)
    client.force_login(ops_user)
    page = client.get("/admin/dashboard/").content.decode()
    box = page.split("Broken right now", 1)[1].split("</ul>", 1)[0]
    assert box.index("breaker llamaparse is open") < box.index("0-crowd-")
    assert box.count("(client alice-client)") == 500  # every open one, however many
    listed = client.get("/admin/breakers/openbreaker/").content.decode()
    assert listed.index(">llamaparse<") < listed.index("0-crowd-")
