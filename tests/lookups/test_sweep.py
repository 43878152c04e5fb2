"""The expiry sweep runs every LOOKUP_SWEEP_SECONDS in each process that holds a cache."""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import pytest

from lookups import resolver
from lookups.cache import LookupCache
from lookups.models import MicroService
from lookups.upkeep import Upkeep
from tests.conftest import PYTHON, REPO, django_child_env


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_it_sweeps_when_due_and_not_before(settings: Any) -> None:
    settings.LOOKUP_SWEEP_SECONDS = 300
    settings.LOOKUP_STATS_FLUSH_SECONDS = 10
    clock = Clock()
    cache = LookupCache(max_size=10, ttl_seconds=60, clock=clock)
    flushes: list[float] = []
    upkeep = Upkeep(
        sweep=cache.cleanup_expired, flush=lambda: flushes.append(clock.now), clock=clock
    )
    cache.put("old", uuid.uuid4())
    clock.now += 61  # expired, but nobody reads it: only a sweep drops it
    assert upkeep.tick() == pytest.approx(10)  # a flush now, the next in 10 s
    assert len(cache) == 1
    clock.now += 238
    upkeep.tick()
    assert (len(cache), upkeep.swept) == (1, 0)  # 299 s: not yet
    cache.put("new", uuid.uuid4())
    clock.now += 1  # 300 s after the start
    upkeep.tick()
    assert (len(cache), upkeep.swept) == (1, 1)
    assert "new" in cache
    assert len(flushes) == 2  # every 10 s of ticks that saw it due, not once per tick


def test_the_running_process_sweeps_its_cache_by_itself(
    lookups: resolver.Lookups, settings: Any
) -> None:
    clock = Clock()
    lookups.cache.clock = clock
    for n in range(3):
        lookups.cache.put(f"service-{n}", uuid.uuid4())
    clock.now += settings.LOOKUP_CACHE_TTL + 1
    settings.LOOKUP_SWEEP_SECONDS = 0.2  # the thread reads it on its next wake-up
    deadline = time.monotonic() + 5
    while len(lookups.cache) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(lookups.cache) == 0
    assert lookups.upkeep.swept == 3


CHILD = """
import json, time
from lookups import resolver
from controlplane.lib import notifications
lookups = resolver.get_lookups()
lookups.listen()
deadline = time.time() + 10
while not notifications.listener.is_listening(resolver.CHANNEL) and time.time() < deadline:
    time.sleep(0.01)
print(json.dumps({"first": lookups.lookup("wall-painting").source}), flush=True)
held = len(lookups.cache)
time.sleep(3)  # no lookup meanwhile: nothing reads the expired entry
print(json.dumps({"held": held, "after": len(lookups.cache), "swept": lookups.upkeep.swept}))
"""


@pytest.mark.slow
def test_another_process_sweeps_its_own_cache(lookups: resolver.Lookups) -> None:
    MicroService.objects.create(slug="wall-painting")
    child = subprocess.run(
        [PYTHON, "-c", "import django; django.setup()\n" + CHILD],
        cwd=REPO,
        env=django_child_env(LOOKUP_CACHE_TTL="1", LOOKUP_SWEEP_SECONDS="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    last = child.stdout.strip().splitlines()[-1]
    assert last == '{"held": 1, "after": 0, "swept": 1}'
