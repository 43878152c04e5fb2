"""A whole process whose PostgreSQL is unreachable still answers with a findable support_id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from controlplane.errors import store
from tests.conftest import run_with_dead_database
from tests.errors.helpers import assert_resolves

CLIENT = """
import json
from django.test import Client
client = Client()
api = client.get("/api/v1/errors/", HTTP_AUTHORIZATION="Token abc")
page = client.get("/no/such/page/")
print(json.dumps({"api": [api.status_code, api.json(), api.get("Retry-After")],
                  "page": [page.status_code, page.content.decode()]}))
"""


@pytest.mark.django_db
def test_requests_during_an_outage_get_503_envelopes_and_are_replayed(
    tmp_path: Path, support_user: Any, client: Any
) -> None:
    spool = tmp_path / "outage-spool.jsonl"
    answers, _ = run_with_dead_database(CLIENT, ERROR_SPOOL_PATH=str(spool), ENVIRONMENT="test")

    status, body, retry_after = answers["api"]
    assert status == 503
    assert body["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert retry_after == "5"
    api_support_id = body["error"]["support_id"]

    page_status, html = answers["page"]
    assert page_status == 404
    spooled = [json.loads(line) for line in spool.read_text().splitlines()]
    assert len(spooled) == 2
    assert spooled[0]["support_id"] == api_support_id
    page_support_id = spooled[1]["support_id"]
    assert page_support_id in html

    # The database comes back: replaying that spool makes both findable in the admin.
    settings.ERROR_SPOOL_PATH = spool
    replayed = store.replay_spool()
    assert (replayed.inserted, replayed.remaining) == (2, 0)
    assert_resolves(api_support_id, support_user, client)
    assert_resolves(page_support_id, support_user, client)
