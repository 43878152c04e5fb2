from __future__ import annotations

import uuid
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from lookups import resolver, stats
from lookups.metrics import ALERTS
from lookups.models import MicroService
from tests.errors.helpers import assert_envelope
from tests.lookups.conftest import settle


def test_resolve_a_slug(lookups: resolver.Lookups, client_user: Any, api_as: Any) -> None:
    service = MicroService.objects.create(slug="wall-painting")
    settle(lookups)
    api = api_as(client_user)
    assert api.get("/api/v1/lookups/wall-painting/").json() == {
        "slug": "wall-painting",
        "uuid": str(service.uuid),
        "source": "db",
        "fallback_used": False,
        "stale": False,
        "stale_age_seconds": None,
        "reason": None,
    }
    assert api.get("/api/v1/lookups/wall-painting/").json()["source"] == "cache"


def test_unknown_and_invalid_slugs(
    lookups: resolver.Lookups, client_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    missing = api.get("/api/v1/lookups/no-such-service/")
    assert_envelope(missing, 404, "MICRO_SERVICE_NOT_FOUND")
    assert missing.json()["error"]["metadata"]["recovery"] == "fallback"
    invalid = api.get("/api/v1/lookups/Not_A_Slug/")
    assert_envelope(invalid, 400, "INVALID_SLUG")
    assert invalid.json()["error"]["metadata"]["recovery"] == "abort"


def test_batch_uses_one_query_for_all_misses(
    lookups: resolver.Lookups, client_user: Any, api_as: Any
) -> None:
    services = MicroService.objects.bulk_create(MicroService(slug=f"svc-{n}") for n in range(300))
    settle(lookups)
    lookups.lookup("svc-0")  # one cached
    slugs = [s.slug for s in services] + ["missing-one", "Bad Slug"]
    with CaptureQueriesContext(connection) as queries:
        response = api_as(client_user).post(
            "/api/v1/lookups/batch/", {"slugs": slugs}, format="json"
        )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["source"] for r in results[:2]] == ["cache", "db"]
    assert results[1]["uuid"] == str(services[1].uuid)
    assert results[300]["error"]["code"] == "MICRO_SERVICE_NOT_FOUND"
    assert results[301]["error"]["code"] == "INVALID_SLUG"
    registry_queries = [q for q in queries if "lookups_microservice" in q["sql"]]
    assert len(registry_queries) == 1


def test_batch_limit(lookups: resolver.Lookups, client_user: Any, api_as: Any) -> None:
    response = api_as(client_user).post(
        "/api/v1/lookups/batch/", {"slugs": [f"s-{n}" for n in range(501)]}, format="json"
    )
    assert_envelope(response, 400, "INVALID_REQUEST")


def test_stats_for_support(
    lookups: resolver.Lookups, support_user: Any, client_user: Any, api_as: Any
) -> None:
    MicroService.objects.create(slug="wall-painting")
    settle(lookups)
    for _ in range(3):
        api_as(client_user).get("/api/v1/lookups/wall-painting/")
    body = api_as(support_user).get("/api/v1/lookups/stats/").json()
    mine = body["process"]
    assert (mine["lookups"], mine["hits"], mine["misses"]) == (3, 2, 1)
    assert mine["hit_rate"] == round(2 / 3, 4)
    assert body["aggregate"]["processes"] >= 1
    assert set(mine["alerts"]) == set(ALERTS)
    assert_envelope(api_as(client_user).get("/api/v1/lookups/stats/"), 403, "PERMISSION_DENIED")


def test_warm_is_for_ops(
    lookups: resolver.Lookups, ops_user: Any, client_user: Any, api_as: Any
) -> None:
    MicroService.objects.create(slug="wall-painting")
    settle(lookups)
    body = api_as(ops_user).post("/api/v1/lookups/warm/", {}, format="json").json()
    assert [r["warmed"] for r in body["reports"] if r["process"] == stats.process_name()] == [1]
    assert_envelope(
        api_as(client_user).post("/api/v1/lookups/warm/", {}, format="json"),
        403,
        "PERMISSION_DENIED",
    )


def test_registry_crud(
    lookups: resolver.Lookups, ops_user: Any, client_user: Any, api_as: Any
) -> None:
    ops, client = api_as(ops_user), api_as(client_user)
    created = ops.post(
        "/api/v1/micro-services/", {"slug": "roof-repair", "name": "Roof"}, format="json"
    )
    assert created.status_code == 201
    assert uuid.UUID(created.json()["uuid"])
    assert_envelope(
        ops.post("/api/v1/micro-services/", {"slug": "roof-repair"}, format="json"),
        409,
        "MICRO_SERVICE_EXISTS",
    )
    # A taken uuid is the same conflict (fuzz drill: it was a 400 from a validator).
    taken = {"slug": "other-roof", "uuid": created.json()["uuid"]}
    assert_envelope(
        ops.post("/api/v1/micro-services/", taken, format="json"), 409, "MICRO_SERVICE_EXISTS"
    )
    assert_envelope(
        ops.post("/api/v1/micro-services/", {"slug": "Roof Repair"}, format="json"),
        400,
        "INVALID_REQUEST",
    )
    assert client.get("/api/v1/micro-services/").json()["results"][0]["slug"] == "roof-repair"
    assert (
        ops.patch("/api/v1/micro-services/roof-repair/", {"active": False}, format="json").json()[
            "active"
        ]
        is False
    )
    assert_envelope(client.delete("/api/v1/micro-services/roof-repair/"), 403, "PERMISSION_DENIED")
    assert ops.delete("/api/v1/micro-services/roof-repair/").status_code == 204
    assert not MicroService.objects.exists()
