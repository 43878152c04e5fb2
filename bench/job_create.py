"""Job create cost in this process: what one POST /api/v1/jobs/ and one POST
/api/v1/jobs/batch/ spend, through Django's whole handler with a real token.

Prints one JSON object: SQL statements per create (by kind: the job's own rows, the
hand-off to django-q2 after commit, and the rest: auth, request log), and latency p50/p95
per single create, per idempotent replay, and per job in a batch. No worker runs: the
hand-off only writes django-q2's queue row, which is emptied between rounds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import setup_bench_database, timed


def _kind_of(sql: str) -> str:
    text = sql.lstrip().upper()
    if "DJANGO_Q_ORMQ" in text:
        return "dispatch"
    if "JOBS_JOB" in text:
        return "job_rows"
    return "other"


def queries_per_create(
    client: Any, path: str, body: dict[str, Any], **headers: str
) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.post(path, body, format="json", **headers)
    assert response.status_code in (200, 201), response.content
    kinds: dict[str, int] = {}
    for query in captured.captured_queries:
        kind = _kind_of(query["sql"])
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"total": len(captured.captured_queries), **kinds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=500)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    setup_bench_database("bench_job_create")

    from django.contrib.auth.models import Group, User
    from django.db import connection
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from controlplane.lib.permissions import CLIENTS

    user, _ = User.objects.get_or_create(username="bench-client")
    user.groups.add(Group.objects.get(name=CLIENTS))
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    def clean() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM jobs_jobevent; DELETE FROM jobs_job; DELETE FROM django_q_ormq"
            )

    clean()
    body = {"kind": "demo.sleep", "payload": {"seconds": 0}}
    counter = iter(range(10**9))
    result: dict[str, Any] = {"creates": args.creates, "batch_size": args.batch}
    for _ in range(5):  # warm: middleware, the token cache
        client.post("/api/v1/jobs/", body, format="json")
    result["queries_per_create"] = queries_per_create(client, "/api/v1/jobs/", body)
    result["queries_per_create_with_key"] = queries_per_create(
        client, "/api/v1/jobs/", body, HTTP_IDEMPOTENCY_KEY="counted"
    )
    result["queries_per_replay"] = queries_per_create(
        client, "/api/v1/jobs/", body, HTTP_IDEMPOTENCY_KEY="counted"
    )

    def create() -> None:
        client.post("/api/v1/jobs/", body, format="json")

    def create_keyed() -> None:
        key = f"k-{next(counter)}"
        client.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)

    client.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="replayed")

    def replay() -> None:
        client.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="replayed")

    result["create_ms"] = timed(create, args.creates)
    clean()
    result["create_with_key_ms"] = timed(create_keyed, args.creates)
    clean()
    client.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="replayed")
    result["replay_ms"] = timed(replay, args.creates)
    clean()
    started = time.perf_counter()
    for _ in range(args.creates):
        create()
    result["creates_per_second"] = round(args.creates / (time.perf_counter() - started), 1)
    clean()

    batch = {"jobs": [body] * args.batch}
    probe = client.post("/api/v1/jobs/batch/", batch, format="json")
    if probe.status_code == 201:
        result["queries_per_batch"] = queries_per_create(client, "/api/v1/jobs/batch/", batch)
        rounds = max(1, args.creates // args.batch)
        started = time.perf_counter()
        for _ in range(rounds):
            client.post("/api/v1/jobs/batch/", batch, format="json")
        elapsed = time.perf_counter() - started
        result["batch_creates_per_second"] = round(rounds * args.batch / elapsed, 1)
        result["batch_ms_per_job"] = round(elapsed * 1000 / (rounds * args.batch), 3)
    else:
        result["batch"] = f"not available ({probe.status_code})"
    clean()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
