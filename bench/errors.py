"""Error-record benchmark: admin lookup by support UUID at scale, API read, write latency.

Loads --rows records (default 1,000,000) into a dedicated database with one
set-based INSERT, then measures, server-side through Django's test client:
  (a) our admin changelist search by a full support UUID (support user), and the
      same search followed to the record page;
  (b) a Django-admin-default ModelAdmin (icontains search on message/code/support_id,
      default paginator) on the same table, as the baseline;
  (c) GET /api/v1/errors/{support_id}/;
  (d) ErrorRecord write latency through the DRF exception handler;
  (e) an anonymous flood (--flood requests, each with 40 headers of 8 KB random text):
      how much the error tables grow per request, full and compact records, latency;
  (f) the bytes a spooled compact record takes;
  (g) error ingest: POST /api/v1/errors/ (one client, the same report each time, so one
      group takes every bump) under gunicorn (2 workers), driven from a second process,
      against a bare view on the same server that parses the JSON and answers 201; once
      with the default settings (a client's reports past 60 a minute are stored compact)
      and once with every report a full record; reports/s per core divides by the
      machine's cores, which the load driver shares;
  (h) the write path of one report, in-process: scrub (build_row: scrubbing, bounds,
      fingerprint), the record's INSERT alone, the real statement (INSERT and group
      bump in one), and the group bump as the difference of the two p50s.
Prints one JSON object. (a)-(e), (g) and (h) are load-sensitive: 2 cores, shared.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import setup_bench_database, timed
from _http import drive, gunicorn

LOAD_SQL = """
INSERT INTO errors_errorrecord (
    support_id, code, type, http_status, user_message, technical_message, context, service,
    request_method, request_path, username, api_client, breaker_name, breaker_state,
    exception_type, traceback, fingerprint, created_at)
SELECT gen_random_uuid(),
       (ARRAY['NOT_FOUND','INTERNAL_ERROR','LLAMAPARSE_TIMEOUT_ERROR','OCR_SERVER_ERROR',
              'AUTHENTICATION_FAILED','INVALID_REQUEST'])[1 + (n %% 6)],
       'internal_error', 500, 'Something went wrong on our side.',
       'failure number ' || n, '{"request": {"path": "/api/v1/jobs/"}}'::jsonb,
       (ARRAY['llamaparse','ocr','jobs',''])[1 + (n %% 4)], 'GET', '/api/v1/jobs/' || n,
       '', '', '', '', '', '', md5((n %% 500)::text),
       now() - make_interval(secs => (n %% 7776000))
FROM generate_series(%s, %s) AS n
"""


def load(rows: int) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM errors_errorrecord")
        existing = cursor.fetchone()[0]
        started = time.perf_counter()
        batch = 1_000_000
        for low in range(existing, rows, batch):
            cursor.execute(LOAD_SQL, [low, min(rows, low + batch) - 1])
            print(f"  loaded {min(rows, low + batch):,} rows", file=sys.stderr)
        cursor.execute("ANALYZE errors_errorrecord")
    return time.perf_counter() - started


def flood(requests: int) -> dict:
    """(e): what the bounds of controlplane.errors.bounds cost and save."""
    import secrets

    from django.db import connection
    from django.test import Client

    from controlplane.errors.models import ErrorRecord

    def table_bytes() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_total_relation_size('errors_errorrecord')"
                " + pg_total_relation_size('errors_errorgroup')"
            )
            return cursor.fetchone()[0]

    headers = {f"HTTP_X_FLOOD_{n:02d}": secrets.token_urlsafe(6000)[:8000] for n in range(40)}
    anonymous = Client()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM errors_errorrecord")
    first = ErrorRecord.objects.order_by("-id").values_list("id", flat=True).first() or 0
    before = table_bytes()
    durations = []
    for _ in range(requests):
        started = time.perf_counter()
        assert anonymous.get("/api/v1/jobs/", **headers).status_code == 401
        durations.append((time.perf_counter() - started) * 1000)
    grown = table_bytes() - before
    made = ErrorRecord.objects.filter(id__gt=first)
    durations.sort()
    return {
        "requests": requests,
        "request_headers_bytes": sum(len(v) for v in headers.values()),
        "full_records": made.filter(compact=False).count(),
        "compact_records": made.filter(compact=True).count(),
        "table_growth_bytes": grown,
        "bytes_per_request": round(grown / requests),
        "p50_ms": round(durations[len(durations) // 2], 2),
    }


def spooled_compact_bytes() -> int:
    """(f): one compact row as the spool stores it."""
    from controlplane.errors import bounds, spool
    from controlplane.errors.exceptions import NotFoundError
    from controlplane.errors.recording import build_row

    return len(spool.line(bounds.compact(build_row(NotFoundError()))))


REPORT = {
    "code": "PARSER_TIMEOUT",
    "message": "parser did not answer within 30 s (token=abc123 must be scrubbed)",
    "user_message": "The document could not be parsed in time.",
    "service": "bench-ingest",
    "context": {"document": "invoice-17.pdf", "attempt": 2, "api_key": "sk-not-stored"},
}


def ingest_http(seconds: float, threads: int) -> dict:
    """(g): POST /api/v1/errors/ against the bare view, same gunicorn server."""
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from controlplane.errors.models import ErrorRecord
    from controlplane.lib.permissions import sync_groups

    sync_groups()
    user, _ = User.objects.get_or_create(username="bench-reporter")
    user.groups.add(Group.objects.get(name="clients"))
    token, _ = Token.objects.get_or_create(user=user)
    body = Path(tempfile.mkdtemp()) / "report.json"
    body.write_text(json.dumps(REPORT))
    cores = os.cpu_count() or 1

    def run(**env: str) -> dict:
        with gunicorn(**env) as base:
            bare = drive(f"{base}/bench/bare-report/", seconds, threads, "-", body)
            first = ErrorRecord.objects.order_by("-id").values_list("id", flat=True).first()
            ingest = drive(f"{base}/api/v1/errors/", seconds, threads, token.key, body)
            made = ErrorRecord.objects.filter(id__gt=first or 0, service=REPORT["service"])
            full, compact = made.filter(compact=False).count(), made.filter(compact=True).count()
        return {
            "bare_view": bare,
            "ingest_endpoint": ingest,
            "reports_per_second_per_core": round(ingest["requests_per_second"] / cores, 1),
            "ingest_vs_bare": round(ingest["requests_per_second"] / bare["requests_per_second"], 3),
            "records_made": {"full": full, "compact": compact},
        }

    return {
        "seconds": seconds,
        "client_threads": threads,
        "cores": cores,
        # As configured: past ERROR_CLIENT_FULL_RECORDS_PER_MINUTE (per worker process) a
        # client's reports are stored compact (controlplane.errors.bounds).
        "default_settings": run(),
        # Every report a full record: the write path without that bound's help.
        "all_full_records": run(ERROR_CLIENT_FULL_RECORDS_PER_MINUTE="100000000"),
    }


def write_split(runs: int) -> dict:
    """(h): where one report's write time goes."""
    from django.contrib.auth.models import User
    from psycopg.types.json import Jsonb

    from controlplane.errors import store
    from controlplane.errors.exceptions import UserFacingError
    from controlplane.errors.recording import build_row

    reporter = User.objects.get(username="bench-reporter")

    def error() -> UserFacingError:
        made = UserFacingError(
            REPORT["user_message"],
            code=REPORT["code"],
            technical_message=REPORT["message"],
            context=REPORT["context"],
            http_status=500,
        )
        made.error_type = "reported_error"
        return made

    def row() -> dict:
        # Not as the client: build_row would count it against the client's full records.
        made = build_row(error(), service=REPORT["service"], api_client="bench-reporter")
        return {**made, "reported": True, "user_id": reporter.pk}

    insert_only = (
        f"INSERT INTO errors_errorrecord ({', '.join(store.COLUMNS)}, created_at) "  # noqa: S608
        f"VALUES ({', '.join(f'%({c})s' for c in store.COLUMNS)}, now()) "
        "ON CONFLICT (support_id) DO NOTHING"
    )
    writer = store.get_store()
    rows = iter([row() for _ in range(2 * (runs + 5))])

    def fresh() -> dict:
        return {**next(rows), "support_id": str(uuid.uuid4())}

    def insert() -> None:
        params = fresh()
        params["context"] = Jsonb(params["context"] or {})
        writer.side.run(lambda cursor: cursor.execute(insert_only, params))

    split = {
        "scrub_build_row": timed(row, runs),
        "insert_record_only": timed(insert, runs),
        "insert_and_group_statement": timed(lambda: writer.write(fresh()), runs),
    }
    split["group_bump_p50_ms"] = round(
        split["insert_and_group_statement"]["p50_ms"] - split["insert_record_only"]["p50_ms"], 3
    )
    return split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--baseline-runs",
        type=int,
        default=20,
        help="the baseline scans the table; fewer runs keep the bench short",
    )
    parser.add_argument("--flood", type=int, default=200, help="anonymous flood requests")
    parser.add_argument("--seconds", type=float, default=10.0, help="(g): load per endpoint")
    parser.add_argument("--threads", type=int, default=8, help="(g): client connections")
    parser.add_argument("--database", default="controlplane_bench_errors")
    args = parser.parse_args()

    setup_bench_database(args.database)
    logging.getLogger("controlplane.errors.records").setLevel(logging.WARNING)

    from django.conf import settings
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.client import RequestFactory
    from django.test.utils import override_settings
    from django.urls import include, path
    from rest_framework.exceptions import NotFound
    from rest_framework.test import APIClient

    from controlplane.errors.drf import api_exception_handler
    from controlplane.errors.models import ErrorRecord
    from controlplane.lib.permissions import sync_groups

    load_seconds = load(args.rows)

    baseline_site = admin.AdminSite(name="baseline")

    class DefaultErrorRecordAdmin(admin.ModelAdmin):
        list_display = ("support_id", "code", "http_status", "service", "created_at")
        search_fields = ("user_message", "code", "support_id")

    baseline_site.register(ErrorRecord, DefaultErrorRecordAdmin)
    module = sys.modules[__name__]
    module.urlpatterns = [
        path("baseline-admin/", baseline_site.urls),
        path("", include("controlplane.urls")),
    ]

    sync_groups()
    support, _ = User.objects.get_or_create(username="bench-support", defaults={"is_staff": True})
    support.is_superuser = True  # the baseline site checks model perms; keep both equal
    support.save()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    with connection.cursor() as cursor:
        cursor.execute("SELECT support_id FROM errors_errorrecord TABLESAMPLE SYSTEM (1) LIMIT 50")
        sample = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE relname = 'errors_errorrecord'"
        )
        table_rows = cursor.fetchone()[0]
    pick = lambda: str(random.choice(sample))  # noqa: E731

    with override_settings(ROOT_URLCONF=__name__, DEBUG=False, ALLOWED_HOSTS=["testserver"]):
        browser = Client()
        browser.force_login(support)

        def ours() -> None:
            response = browser.get("/admin/errors/errorrecord/", {"q": pick()})
            assert response.status_code == 302, response.status_code

        def ours_followed() -> None:
            response = browser.get("/admin/errors/errorrecord/", {"q": pick()}, follow=True)
            assert response.status_code == 200

        def baseline() -> None:
            response = browser.get("/baseline-admin/errors/errorrecord/", {"q": pick()})
            assert response.status_code == 200

        api = APIClient()
        api.force_authenticate(support)

        def api_detail() -> None:
            assert api.get(f"/api/v1/errors/{pick()}/").status_code == 200

        request = RequestFactory().get("/api/v1/jobs/does-not-exist/")
        request.user = support

        def write_through_handler() -> None:
            api_exception_handler(NotFound(), {"request": request})

        results = {
            "rows_estimated": table_rows,
            "load_seconds": round(load_seconds, 1),
            "a_admin_search_full_uuid": timed(ours, args.runs),
            "a_admin_search_then_record_page": timed(ours_followed, args.runs),
            "b_baseline_default_admin_search": timed(baseline, args.baseline_runs, warmup=1),
            "c_api_get_by_support_id": timed(api_detail, args.runs),
            "d_record_write_through_handler": timed(write_through_handler, args.runs),
            "e_anonymous_flood": flood(args.flood),
            "f_spooled_compact_record_bytes": spooled_compact_bytes(),
        }
    results["g_ingest_http"] = ingest_http(args.seconds, args.threads)
    results["h_write_split"] = write_split(args.runs)
    results["a_vs_b_speedup"] = round(
        results["b_baseline_default_admin_search"]["p50_ms"]
        / results["a_admin_search_full_uuid"]["p50_ms"],
        1,
    )
    results["targets"] = {
        "a_p50_ms<=50": results["a_admin_search_full_uuid"]["p50_ms"] <= 50,
        "a_at_least_10x_faster_than_b": results["a_vs_b_speedup"] >= 10,
        "c_p50_ms<=5": results["c_api_get_by_support_id"]["p50_ms"] <= 5,
        "d_p50_ms<=3": results["d_record_write_through_handler"]["p50_ms"] <= 3,
        "e_flood_under_2MB_per_200_requests": results["e_anonymous_flood"]["table_growth_bytes"]
        <= 2 * 1024 * 1024 * max(1, args.flood / 200),
    }
    ingest = results["g_ingest_http"]["all_full_records"]
    results["targets_issue17"] = {
        "g_full_records_per_second_per_core>=300": ingest["reports_per_second_per_core"] >= 300,
        "g_full_records>=60%_of_bare": ingest["ingest_vs_bare"] >= 0.6,
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
