from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from lookups import resolver, stats
from lookups.models import MicroService
from tests.lookups.conftest import settle


def test_warm_lookups_command(lookups: resolver.Lookups) -> None:
    MicroService.objects.bulk_create(MicroService(slug=f"svc-{n}") for n in range(3))
    settle(lookups)
    out = StringIO()
    call_command("warm_lookups", "--slugs", "svc-0", "svc-1", stdout=out)
    assert f"{stats.process_name()}: 2 entries" in out.getvalue()
    assert lookups.cache.get("svc-0") is not None
    assert lookups.cache.get("svc-2") is None
