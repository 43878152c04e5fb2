"""Ops clear the lookup cache of every process, from the API or the stats page; each clear is
audited (CacheClear: who, how, when; and the admin log) in the transaction that sends it.
(The other process's side: test_processes.py.)"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import ADDITION, LogEntry

from lookups import resolver, stats
from lookups.models import CacheClear, MicroService
from tests.errors.helpers import assert_envelope
from tests.lookups.conftest import settle


def warmed(lookups: resolver.Lookups, count: int = 3) -> None:
    MicroService.objects.bulk_create(MicroService(slug=f"service-{n}") for n in range(count))
    settle(lookups)
    assert lookups.warm() == count


def test_ops_clear_through_the_api(lookups: resolver.Lookups, ops_user: Any, api_as: Any) -> None:
    warmed(lookups)
    response = api_as(ops_user).post("/api/v1/lookups/clear/", {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["requested_by"], body["via"]) == ("olga-ops", "api")
    assert [(r["process"], r["cleared"]) for r in body["reports"]] == [(stats.process_name(), 3)]
    assert len(lookups.cache) == 0
    assert lookups.lookup("service-0").source == "db"
    audit = CacheClear.objects.get()
    assert (str(audit.request_id), audit.requested_by, audit.via) == (
        body["request_id"],
        ops_user,
        "api",
    )
    logged = LogEntry.objects.get()
    assert (logged.user, logged.action_flag, logged.object_id) == (
        ops_user,
        ADDITION,
        str(audit.pk),
    )
    assert "Cleared the lookup cache in every process" in logged.change_message


def test_only_ops_may_clear(
    lookups: resolver.Lookups, client_user: Any, support_user: Any, api_as: Any
) -> None:
    warmed(lookups)
    for user in (client_user, support_user):
        refused = api_as(user).post("/api/v1/lookups/clear/", {}, format="json")
        assert_envelope(refused, 403, "PERMISSION_DENIED")
    assert len(lookups.cache) == 3
    assert not CacheClear.objects.exists()


def test_unknown_fields_are_refused(lookups: resolver.Lookups, ops_user: Any, api_as: Any) -> None:
    response = api_as(ops_user).post("/api/v1/lookups/clear/", {"slugs": ["a"]}, format="json")
    assert_envelope(response, 400, "INVALID_REQUEST")
    assert not CacheClear.objects.exists()


def test_ops_clear_from_the_stats_page(
    lookups: resolver.Lookups, ops_user: Any, support_user: Any, client: Any
) -> None:
    warmed(lookups)
    client.force_login(support_user)
    page = client.get("/admin/lookups/microservice/stats/").content.decode()
    assert "Clear lookup cache in every process" not in page
    refused = client.post(
        "/admin/lookups/microservice/stats/", {"operation": "clear"}, follow=True
    ).content.decode()
    assert "Clearing the cache needs the ops group." in refused
    assert len(lookups.cache) == 3

    client.force_login(ops_user)
    page = client.get("/admin/lookups/microservice/stats/").content.decode()
    assert "Clear lookup cache in every process" in page
    done = client.post(
        "/admin/lookups/microservice/stats/", {"operation": "clear"}, follow=True
    ).content.decode()
    assert f"Cleared the lookup cache of 1 process(es) — {stats.process_name()}: 3" in done
    assert len(lookups.cache) == 0
    audit = CacheClear.objects.get()
    assert (audit.requested_by, audit.via) == (ops_user, "admin")
    assert LogEntry.objects.get().get_edited_object() == audit
    listed = client.get("/admin/lookups/cacheclear/").content.decode()
    assert "olga-ops" in listed


def test_a_read_in_flight_during_a_clear_is_not_cached(lookups: resolver.Lookups) -> None:
    MicroService.objects.create(slug="wall-painting")
    settle(lookups)
    seen = lookups.guard.stamp("wall-painting")  # a reader's stamp, taken before its query
    lookups.clear()
    assert lookups.guard.stamp("wall-painting") != seen  # so its put_if stores nothing
