"""The lookup figures on /metrics are counters Prometheus can rate() over any window: a
process's counts stay in the sums after it exits (no false counter reset), and what a
process counted since its last flush is added at its exit."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta

from django.test import Client
from django.utils import timezone

from lookups.models import MicroService, ProcessStats
from lookups.resolver import Lookups
from tests.conftest import PYTHON, REPO, django_child_env
from tests.lookups.conftest import settle

CHILD = """
import time
import django
django.setup()
from controlplane.lib import notifications
from lookups.exceptions import MicroServiceNotFoundError
from lookups.resolver import CHANNEL, get_lookups
lookups = get_lookups()
lookups.listen()
deadline = time.monotonic() + 10
while not notifications.listener.is_listening(CHANNEL):
    assert time.monotonic() < deadline, "the change listener did not start"
    time.sleep(0.01)
lookups.lookup("counted-service")  # a miss: the first flush, and this process's exit hook
for _ in range(3):
    assert lookups.lookup("counted-service").source == "cache"
try:
    lookups.lookup("no-such-service")
except MicroServiceNotFoundError:
    pass
"""


def value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


SERIES = (
    "controlplane_lookups_total",
    'controlplane_lookup_cache_total{result="hit"}',
    'controlplane_lookup_cache_total{result="miss"}',
    'controlplane_lookup_outcomes_total{outcome="found"}',
    'controlplane_lookup_outcomes_total{outcome="not_found"}',
    'controlplane_lookup_latency_seconds_count{path="cache"}',
    'controlplane_lookup_latency_seconds_count{path="db"}',
)


def figures() -> dict[str, float]:
    text = Client().get("/metrics").content.decode()
    return {series: value(text, series) for series in SERIES}


def test_it_keeps_an_exited_processs_lookups_in_the_counters(lookups: Lookups) -> None:
    MicroService.objects.create(slug="counted-service")
    before = figures()
    child = subprocess.run(
        [PYTHON, "-c", CHILD],
        cwd=REPO,
        env=django_child_env(LOOKUP_STATS_FLUSH_SECONDS="3600"),  # only the first and the exit
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    after = figures()
    grown = {series: after[series] - before[series] for series in SERIES}
    assert grown == {
        "controlplane_lookups_total": 5,
        'controlplane_lookup_cache_total{result="hit"}': 3,  # counted after the first flush
        'controlplane_lookup_cache_total{result="miss"}': 2,
        'controlplane_lookup_outcomes_total{outcome="found"}': 1,
        'controlplane_lookup_outcomes_total{outcome="not_found"}': 1,
        'controlplane_lookup_latency_seconds_count{path="cache"}': 3,
        'controlplane_lookup_latency_seconds_count{path="db"}': 2,
    }
    # The stats page forgets a process five minutes after its last flush; the counters don't.
    ProcessStats.objects.update(updated_at=timezone.now() - timedelta(hours=2))
    assert figures() == after


def test_it_adds_only_what_was_counted_since_the_last_push(lookups: Lookups) -> None:
    MicroService.objects.create(slug="pushed-service")
    settle(lookups)
    lookups.lookup("pushed-service")  # a miss (which may push: it flushes the stats when due)
    lookups.export.push()
    before = figures()
    for _ in range(2):
        assert lookups.lookup("pushed-service").source == "cache"
    assert figures() == before  # a hit counts in memory only: the hot path writes no file
    lookups.export.push()
    lookups.export.push()  # nothing new: adds nothing
    after = figures()
    grown = {series: after[series] - before[series] for series in SERIES}
    assert {series: n for series, n in grown.items() if n} == {
        "controlplane_lookups_total": 2,
        'controlplane_lookup_cache_total{result="hit"}': 2,
        'controlplane_lookup_latency_seconds_count{path="cache"}': 2,
    }
