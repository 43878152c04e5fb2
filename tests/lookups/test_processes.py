"""Two real processes: a change in one is seen by the other within a second; warming reaches it."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any

import pytest

from lookups import resolver, stats
from lookups.models import MicroService
from tests.conftest import PYTHON, REPO, django_child_env
from tests.lookups.conftest import settle

pytestmark = pytest.mark.slow


def spawn(slug: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "tests.lookups.child", slug, str(seconds)],
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
