"""With the database stopped, a mapping held before the stop is answered stale (flagged,
with its age), a slug not held gets the slug-only fallback, single and batch alike; a
mapping changed just before the stop is never served with its old UUID; once the
database is back, answers are fresh again.

A real PostgreSQL of the test's own is stopped (``pg_ctl stop -m fast``) under a child
process that answers through the whole Django stack (tests/outage.py).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests.lookups.conftest import fallback
from tests.outage import Child, OwnServer, child_of, own_server  # noqa: F401

pytestmark = pytest.mark.slow

LOOKUP = "/api/v1/lookups/{}/"
BATCH = "/api/v1/lookups/batch/"


def test_a_held_mapping_is_served_stale_until_the_database_is_back(
    own_server: OwnServer,  # noqa: F811
    child_of: Any,  # noqa: F811
) -> None:
    child: Child = child_of()
    made = child.do("setup", users={"stale-client": "clients"}, services=["held-service"])
    token, held = made["tokens"]["stale-client"], made["uuids"]["held-service"]
    assert child.get(LOOKUP.format("held-service"), token)["body"]["source"] == "db"
    assert child.get(LOOKUP.format("held-service"), token)["body"]["source"] == "cache"
    time.sleep(2)  # cached 2 s before the stop: its age must not count from then

    stop_began, stop_ended = own_server.stop()
    child.do("wait_lost")
    single = child.get(LOOKUP.format("held-service"), token)
    batch = child.post(BATCH, token, {"slugs": ["held-service", "never-seen"]})
    unseen = child.get(LOOKUP.format("never-seen"), token)

    assert single["status"] == 200, single
    body = single["body"]
    assert (body["uuid"], body["source"], body["stale"], body["fallback_used"]) == (
        held,
        "cache",
        True,
        False,
    )
    assert body["reason"] == fallback("held-service")["reason"]
    # Its age counts from the listener's last round trip (pings every 0.5 s here): no
    # later than the moment the server was down, not long before the stop began, and
    # not from when it was cached (2 s before that).
    age = body["stale_age_seconds"]
    assert single["at"] - stop_ended <= age <= single["at"] - stop_began + 1.5, (age, single)
    # The batch item is the same answer (only its age moved on).
    assert batch["status"] == 200, batch
    held_item, unseen_item = batch["body"]["results"]
    assert held_item["stale_age_seconds"] >= body["stale_age_seconds"]
    assert {**held_item, "stale_age_seconds": None} == {**body, "stale_age_seconds": None}
    # A slug never seen: the slug-only fallback, exactly as its batch item.
    assert unseen["status"] == 200, unseen
    assert unseen["body"] == unseen_item == fallback("never-seen")
    counters = child.do("counters")
    assert (counters["stale"], counters["fallbacks"]) == (2, 2)

    own_server.start()
    child.do("wait_back")
    fresh = child.get(LOOKUP.format("held-service"), token)
    assert fresh["status"] == 200, fresh
    assert (fresh["body"]["uuid"], fresh["body"]["source"], fresh["body"]["stale"]) == (
        held,
        "db",  # the reconnection's reset cleared what was kept
        False,
    )
    assert fresh["body"]["reason"] is None


def test_a_mapping_changed_just_before_the_stop_is_not_served_with_its_old_uuid(
    own_server: OwnServer,  # noqa: F811
    child_of: Any,  # noqa: F811
) -> None:
    child: Child = child_of()
    made = child.do(
        "setup", users={"change-client": "clients"}, services=["changing-service", "steady"]
    )
    token, old = made["tokens"]["change-client"], made["uuids"]["changing-service"]
    for slug in ("changing-service", "steady"):
        child.get(LOOKUP.format(slug), token)
        assert child.get(LOOKUP.format(slug), token)["body"]["source"] == "cache"

    # Another process commits the change, and the database stops at once.
    new = str(uuid.uuid4())
    changed = own_server.execute(
        "UPDATE lookups_microservice SET uuid = %s WHERE slug = %s", [new, "changing-service"]
    )
    assert changed == 1
    own_server.stop()
    child.do("wait_lost")

    answers = [child.get(LOOKUP.format("changing-service"), token) for _ in range(3)]
    batch = child.post(BATCH, token, {"slugs": ["changing-service", "steady"]})
    steady = child.get(LOOKUP.format("steady"), token)

    for answer in [*answers, {"status": batch["status"], "body": batch["body"]["results"][0]}]:
        assert answer["status"] == 200, answer
        assert answer["body"]["uuid"] != old, "the old mapping was served after its change"
        assert answer["body"] == fallback("changing-service")
    # What was held and not changed is still served: the change was dropped, not everything.
    assert steady["body"]["stale"] is True
    assert steady["body"]["uuid"] == made["uuids"]["steady"]

    own_server.start()
    child.do("wait_back")
    assert child.get(LOOKUP.format("changing-service"), token)["body"]["uuid"] == new
