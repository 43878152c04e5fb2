"""Two real processes: a change in one is seen by the other within a second; warming and
clearing reach it."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any

import pytest

from lookups import resolver, stats
from lookups.models import CacheClear, ClearReport, MicroService
from tests.conftest import PYTHON, REPO, django_child_env
from tests.lookups.conftest import settle

pytestmark = pytest.mark.slow


def spawn(slug: str, seconds: float, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "tests.lookups.child", slug, str(seconds), *flags],
        cwd=REPO,
        env=django_child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_change_is_seen_by_another_process_within_a_second(lookups: resolver.Lookups) -> None:
    service = MicroService.objects.create(slug="wall-painting")
    child = spawn("wall-painting", 6)
    try:
        first = json.loads(child.stdout.readline())
        assert first["uuid"] == str(service.uuid)
        time.sleep(0.2)  # the child now answers from its cache
        new = uuid.uuid4()
        changed_at = time.time()
        service.uuid = new
        service.save(update_fields=["uuid"])
        seen = json.loads(child.stdout.readline())
        assert seen["uuid"] == str(new)
        assert seen["at"] - changed_at < 1.0
        done = json.loads(child.stdout.readline())
        assert done["hits"] > 10  # it really was serving from its cache
    finally:
        child.kill()
        child.communicate()


def test_an_admin_warm_reaches_the_other_process(
    lookups: resolver.Lookups, ops_user: Any, client: Any, settings: Any
) -> None:
    settings.LOOKUP_WARM_WAIT_SECONDS = 3
    MicroService.objects.bulk_create(MicroService(slug=f"service-{n}") for n in range(5))
    settle(lookups)
    child = spawn("service-0", 5)
    try:
        process = json.loads(child.stdout.readline())["process"]
        client.force_login(ops_user)
        page = client.post("/admin/lookups/microservice/stats/", follow=True).content.decode()
    finally:
        child.kill()
        child.communicate()
    assert f"{stats.process_name()}: 5" in page  # the process that handled the click
    assert f"{process}: 5" in page  # and the other one, through the broadcast


def test_a_warm_request_of_many_long_slugs_reaches_the_other_process(
    lookups: resolver.Lookups, ops_user: Any, api_as: Any, settings: Any
) -> None:
    # The slugs would not fit in a NOTIFY payload (8,000 bytes): the other process reads
    # them from the asking process's report.
    settings.LOOKUP_WARM_WAIT_SECONDS = 3
    slugs = [f"s{n:03d}-" + "x" * 90 for n in range(100)]
    MicroService.objects.bulk_create(MicroService(slug=slug) for slug in slugs[:7])
    settle(lookups)
    child = spawn(slugs[0], 5)
    try:
        process = json.loads(child.stdout.readline())["process"]
        response = api_as(ops_user).post("/api/v1/lookups/warm/", {"slugs": slugs}, format="json")
    finally:
        child.kill()
        child.communicate()
    assert response.status_code == 200, response.content
    warmed = {r["process"]: r["warmed"] for r in response.json()["reports"]}
    assert warmed == {stats.process_name(): 7, process: 7}


def test_a_clear_empties_the_other_process_cache_and_says_so(
    lookups: resolver.Lookups, ops_user: Any, api_as: Any, settings: Any
) -> None:
    settings.LOOKUP_WARM_WAIT_SECONDS = 3
    service = MicroService.objects.create(slug="wall-painting")
    settle(lookups)
    lookups.lookup("wall-painting")
    child = spawn("wall-painting", 8, "sources")
    try:
        first = json.loads(child.stdout.readline())
        assert (first["uuid"], first["source"]) == (str(service.uuid), "db")
        assert json.loads(child.stdout.readline())["source"] == "cache"  # it holds it now
        response = api_as(ops_user).post("/api/v1/lookups/clear/", {}, format="json")
        assert response.status_code == 200, response.content
        # Its next answer comes from the database again: its cache was emptied.
        assert json.loads(child.stdout.readline())["source"] == "db"
    finally:
        child.kill()
        child.communicate()
    body = response.json()
    assert {r["process"]: r["cleared"] for r in body["reports"]} == {
        stats.process_name(): 1,
        first["process"]: 1,
    }
    audit = CacheClear.objects.get()
    assert (str(audit.request_id), audit.requested_by, audit.via) == (
        body["request_id"],
        ops_user,
        "api",
    )
    assert ClearReport.objects.filter(clear=audit).count() == 2
    assert len(lookups.cache) == 0
