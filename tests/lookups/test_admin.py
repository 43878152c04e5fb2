from __future__ import annotations

from contextlib import suppress
from typing import Any

from lookups import exceptions, resolver, stats
from lookups.models import MicroService
from tests.lookups.conftest import settle


def test_search_by_uuid_and_slug(lookups: resolver.Lookups, support_user: Any, client: Any) -> None:
    service = MicroService.objects.create(slug="wall-painting")
    MicroService.objects.create(slug="roof-repair")
    client.force_login(support_user)
    by_uuid = client.get("/admin/lookups/microservice/", {"q": str(service.uuid)}).content.decode()
    assert "wall-painting" in by_uuid and "roof-repair" not in by_uuid
    by_slug = client.get("/admin/lookups/microservice/", {"q": "roof"}).content.decode()
    assert "roof-repair" in by_slug and "wall-painting" not in by_slug


def test_warm_action_reports_each_process(
    lookups: resolver.Lookups, ops_user: Any, client: Any
) -> None:
    service = MicroService.objects.create(slug="wall-painting")
    settle(lookups)
    client.force_login(ops_user)
    response = client.post(
        "/admin/lookups/microservice/",
        {"action": "warm_cache", "_selected_action": [service.pk]},
        follow=True,
    )
    assert f"{stats.process_name()}: 1" in response.content.decode()
    assert lookups.cache.get("wall-painting").uuid == service.uuid


def test_stats_page_highlights_alerts(
    lookups: resolver.Lookups, ops_user: Any, support_user: Any, client: Any
) -> None:
    for _ in range(3):
        with suppress(exceptions.MicroServiceNotFoundError):
            lookups.lookup("missing-service")
    client.force_login(support_user)
    page = client.get("/admin/lookups/microservice/stats/").content.decode()
    assert "Lookup cache statistics" in page
    assert 'class="alert-cell"' in page  # hit rate 0 and success rate 0 are below thresholds
    assert "Warm lookup cache in every process" not in page  # support cannot warm
    client.force_login(ops_user)
    page = client.get("/admin/lookups/microservice/stats/").content.decode()
    assert "Warm lookup cache in every process" in page
    warmed = client.post("/admin/lookups/microservice/stats/", follow=True).content.decode()
    assert "Warmed" in warmed
