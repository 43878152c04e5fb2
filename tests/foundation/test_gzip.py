"""JSON answers of GZIP_MIN_BYTES or more are gzipped for clients that accept gzip; small
ones, other content (HTML, /metrics) and clients that do not ask are answered as they were."""

from __future__ import annotations

import gzip
import json
from typing import Any

from lookups.models import MicroService


def test_a_large_json_list_is_gzipped(db: Any, client_user: Any, api_as: Any) -> None:
    MicroService.objects.bulk_create(MicroService(slug=f"service-{n:03d}") for n in range(200))
    api = api_as(client_user)
    plain = api.get("/api/v1/micro-services/", {"page_size": 200})
    assert plain.status_code == 200
    assert not plain.has_header("Content-Encoding")
    assert "Accept-Encoding" in plain["Vary"]  # caches must keep both forms apart
    zipped = api.get("/api/v1/micro-services/", {"page_size": 200}, HTTP_ACCEPT_ENCODING="gzip")
    assert zipped["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped["Vary"]
    assert int(zipped["Content-Length"]) == len(zipped.content) < len(plain.content) / 4
    assert json.loads(gzip.decompress(zipped.content)) == plain.json()


def test_an_error_envelope_list_is_gzipped_too(db: Any, client_user: Any, api_as: Any) -> None:
    slugs = [f"Not A Slug {n}" for n in range(60)]
    response = api_as(client_user).post(
        "/api/v1/lookups/batch/", {"slugs": slugs}, format="json", HTTP_ACCEPT_ENCODING="gzip"
    )
    assert response["Content-Encoding"] == "gzip"
    results = json.loads(gzip.decompress(response.content))["results"]
    assert [r["error"]["code"] for r in results] == ["INVALID_SLUG"] * 60


def test_a_small_answer_is_not_gzipped(db: Any, client_user: Any, api_as: Any) -> None:
    MicroService.objects.create(slug="wall-painting", name="Wall painting " * 14)
    response = api_as(client_user).get(
        "/api/v1/micro-services/wall-painting/", HTTP_ACCEPT_ENCODING="gzip, deflate"
    )
    assert response.status_code == 200
    assert 200 < len(response.content) < 1024  # Django's own floor is 200 bytes; ours 1 KiB
    assert not response.has_header("Content-Encoding")
    assert response.json()["slug"] == "wall-painting"


def test_html_and_metrics_are_not_gzipped(db: Any, ops_user: Any, client: Any) -> None:
    client.force_login(ops_user)
    page = client.get("/admin/", HTTP_ACCEPT_ENCODING="gzip")  # carries a CSRF token: BREACH
    assert page.status_code == 200 and len(page.content) > 1024
    assert not page.has_header("Content-Encoding")
    metrics = client.get("/metrics", HTTP_ACCEPT_ENCODING="gzip")
    assert metrics.status_code == 200 and len(metrics.content) > 1024
    assert not metrics.has_header("Content-Encoding")
    assert b"controlplane_" in metrics.content
