"""Two real processes: a change in one is seen by the other within a second; warming reaches it."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from lookups import flow
from lookups.models import MicroService
from lookups.warming import warm_everywhere
from tests.conftest import PYTHON, REPO, django_child_env

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


def test_a_change_is_seen_by_another_process_within_a_second(lookups: flow.Lookups) -> None:
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


def test_a_warm_request_reaches_the_other_process(lookups: flow.Lookups) -> None:
    MicroService.objects.bulk_create(MicroService(slug=f"service-{n}") for n in range(5))
    child = spawn("service-0", 5)
    try:
        process = json.loads(child.stdout.readline())["process"]
        result = warm_everywhere(wait_seconds=3)
    finally:
        child.kill()
        child.communicate()
    reports = {r["process"]: r["warmed"] for r in result["reports"]}
    assert reports[flow.process_name()] == 5
    assert reports[process] == 5
