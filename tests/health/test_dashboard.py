"""The ops dashboard shows what is broken however many breakers clients created."""

from __future__ import annotations

from typing import Any

from django.db import connection

from controlplane.breakers.circuit import breaker
from tests.breakers.conftest import fail, fresh_name  # noqa: F401


def crowd(owner_id: int, count: int) -> None:
    """Clients' breakers named to sort before every real one, half of them open."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO breakers_breaker (name, owner_id, state, generation, policy,"
            " failure_threshold, window_seconds, minimum_calls, cooldown_seconds,"
            " cooldown_growth, max_cooldown_seconds, half_open_max_probes, half_open_successes,"
            " probe_lease_seconds, fail_open, consecutive_failures, failure_times, rate_calls,"
            " rate_failures, total_failures, reopen_count, probe_leases, probe_successes,"
            " override, override_by, override_reason, open_until, created_at, updated_at)"
            " SELECT '0-crowd-' || lpad(n::text, 5, '0'), %s,"
            " CASE WHEN n %% 2 = 0 THEN 'open' ELSE 'closed' END, 1, 'consecutive', 5, 300, 20,"
            " 60, 1, 600, 1, 1, 30, true, 0, '{}', 0, 0, 0, 0, '{}', 0, '', '', '',"
            " CASE WHEN n %% 2 = 0 THEN now() + interval '1 hour' END, now(), now()"
            " FROM generate_series(1, %s) n",
            [owner_id, count],
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
