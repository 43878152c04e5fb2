"""The last_good fallback: the group's last 2xx answer to the same request, kept in
PostgreSQL by a background writer, served with its age, refused past max_age, bounded."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from controlplane.errors.exceptions import UserFacingError
from controlplane.resilience import last_good
from controlplane.resilience.failover import client_for_group
from controlplane.resilience.models import LastGoodResponse
from tests.resilience.flaky_server import Script
from tests.resilience.groups import GROUP

LAST_GOOD = {"type": "last_good", "max_age_seconds": 3600}


@pytest.fixture
def empty_store(transactional_db: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM resilience_lastgoodresponse")


def stored() -> None:
    assert last_good.writer.flush(10), "the last good answer was never written"


def age_rows(seconds: int) -> None:
    """Inject time: every stored answer is ``seconds`` old (database clock)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE resilience_lastgoodresponse SET stored_at = now() - make_interval(secs => %s)",
            [seconds],
        )


def test_the_last_good_answer_is_served_with_its_age(
    empty_store: None, upstream_group: Any
) -> None:
    up = upstream_group(Script([(200, {}), (500, {})]), Script([(500, {})]), fallback=LAST_GOOD)
    fresh = client_for_group(GROUP).post("/v1/chat", json={"q": "hi", "n": 1})
    assert (fresh.provider, fresh.fallback_used) == (up.names[0], False)
    stored()
    row = LastGoodResponse.objects.get()
    assert (row.group_name, row.method, row.path, row.provider) == (
        GROUP,
        "POST",
        "/v1/chat",
        up.names[0],
    )
    age_rows(120)

    # Same request (key order aside): both providers fail now; the stored answer answers.
    again = client_for_group(GROUP).post("/v1/chat", json={"n": 1, "q": "hi"})
    assert up.requests() == [2, 1]
    assert again.fallback_used and again.provider is None
    assert again.response.json() == fresh.response.json()
    assert again.response.headers["content-type"] == "application/json"
    summary = again.summary()
    assert (summary["fallback"], summary["fallback_reason"]) == ("last_good", "providers_failed")
    assert 120 <= summary["fallback_age_seconds"] < 130


def test_an_answer_older_than_max_age_is_refused(empty_store: None, upstream_group: Any) -> None:
    upstream_group(Script([(200, {}), (503, {})]), Script([(503, {})]), fallback=LAST_GOOD)
    client_for_group(GROUP).get("/v1/models")
    stored()
    assert LastGoodResponse.objects.count() == 1
    age_rows(3601)
    with pytest.raises(UserFacingError) as raised:
        client_for_group(GROUP).get("/v1/models")
    assert raised.value.code == "PROVIDER_GROUP_UNAVAILABLE"
    assert raised.value.metadata["fallback"] == "last_good: none younger than 3600 s"


def test_another_request_has_no_last_good_answer(empty_store: None, upstream_group: Any) -> None:
    upstream_group(Script([(200, {}), (503, {})]), Script([(503, {})]), fallback=LAST_GOOD)
    client_for_group(GROUP).post("/v1/chat", json={"q": "hi"})
    stored()
    assert LastGoodResponse.objects.count() == 1
    with pytest.raises(UserFacingError) as raised:
        client_for_group(GROUP).post("/v1/chat", json={"q": "another question"})
    assert raised.value.code == "PROVIDER_GROUP_UNAVAILABLE"


def test_the_store_is_bounded_in_rows_and_body_bytes(
    empty_store: None, upstream_group: Any, settings: Any
) -> None:
    upstream_group(Script([(200, {})]), Script([(200, {})]), fallback=LAST_GOOD)
    settings.LAST_GOOD_MAX_ROWS = 2
    for number in range(3):
        client_for_group(GROUP).get(f"/v1/models/{number}")
        stored()
    assert sorted(LastGoodResponse.objects.values_list("path", flat=True)) == [
        "/v1/models/1",
        "/v1/models/2",
    ]  # the oldest went

    settings.LAST_GOOD_MAX_BODY_BYTES = 10  # the server's body is longer
    client_for_group(GROUP).get("/v1/models/big")
    stored()
    assert not LastGoodResponse.objects.filter(path="/v1/models/big").exists()


def test_groups_without_a_last_good_fallback_store_nothing(
    empty_store: None, upstream_group: Any
) -> None:
    upstream_group(Script([(200, {})]), Script([(200, {})]))
    client_for_group(GROUP).get("/v1/models")
    stored()
    assert not LastGoodResponse.objects.exists()
