"""Lookup benchmark: cache hits, database misses, HTTP throughput under gunicorn, batches.

(a) cache-hit lookup latency in-process, p50/p99 over --hits calls;
(b) database-miss latency over 10,000 distinct slugs in a table of --services rows;
(c) GET /api/v1/lookups/{slug}/ throughput under gunicorn (2 workers), driven from a
    second process, against a bare Django JsonResponse view on the same server;
(d) a batch of 500 slugs, all cache misses (one query), through lookup_many;
(e) the lookup endpoint as in (c), on a server without a request span
    (OTEL_PYTHON_DJANGO_INSTRUMENT=False) next to (c)'s with it: the cost of a span
    and stored ids per request when nothing exports them; and in-process (Django's
    test client, no network): that span, no span, the official instrumentation that
    exporting uses, that span again.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import setup_bench_database, timed
from _http import drive, gunicorn


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    samples_ns.sort()
    return {
        "calls": len(samples_ns),
        "p50_us": round(samples_ns[len(samples_ns) // 2] / 1000, 3),
        "p99_us": round(samples_ns[int(len(samples_ns) * 0.99)] / 1000, 3),
        "mean_us": round(statistics.fmean(samples_ns) / 1000, 3),
    }


def load_services(count: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM lookups_microservice")
        if cursor.fetchone()[0] >= count:
            return
        cursor.execute("TRUNCATE lookups_microservice")
        cursor.execute(
            "INSERT INTO lookups_microservice (slug, uuid, name, active, created_at, updated_at) "
            "SELECT 'service-' || n, gen_random_uuid(), 'Service ' || n, true, now(), now() "
            "FROM generate_series(1, %s) n",
            [count],
        )
        cursor.execute("ANALYZE lookups_microservice")


def wait_listening(service: object) -> None:
    from controlplane.lib import notifications
    from lookups import resolver

    service.listen()
    deadline = time.monotonic() + 10
    while not notifications.listener.is_listening(resolver.CHANNEL):
        if time.monotonic() > deadline:
            raise RuntimeError("change listener did not start")
        time.sleep(0.01)


def http_throughput(seconds: float, threads: int, *, tracing: bool = True) -> dict:
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from controlplane.lib.permissions import sync_groups

    sync_groups()
    user, _ = User.objects.get_or_create(username="bench-client")
    user.groups.add(Group.objects.get(name="clients"))
    token, _ = Token.objects.get_or_create(user=user)

    env = {} if tracing else {"OTEL_PYTHON_DJANGO_INSTRUMENT": "False"}
    with gunicorn(**env) as base:
        import httpx

        # Warm both workers' caches and listeners.
        for _ in range(50):
            httpx.get(
                f"{base}/api/v1/lookups/service-1/", headers={"Authorization": f"Token {token.key}"}
            )
        time.sleep(1.0)
        bare = drive(f"{base}/bench/bare/service-1/", seconds, threads, "-")
        lookup = drive(f"{base}/api/v1/lookups/service-1/", seconds, threads, token.key)
    return {
        "seconds": seconds,
        "client_threads": threads,
        "bare_view": bare,
        "lookup_endpoint": lookup,
        "lookup_vs_bare": round(lookup["requests_per_second"] / bare["requests_per_second"], 3),
    }


def handler_latency(calls: int) -> dict:
    """p50/p99 of GET /api/v1/lookups/{slug}/ through Django's handler in this process:
    with the request span that makes the ids when nothing exports (the default here), with
    no span at all, with the official Django instrumentation (what exporting adds), and
    with the default again (drift shows as a difference between its two runs)."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client, override_settings
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from rest_framework.authtoken.models import Token

    from controlplane.lib.tracing import REQUEST_SPAN_MIDDLEWARE

    key = Token.objects.get(user=User.objects.get(username="bench-client")).key
    assert REQUEST_SPAN_MIDDLEWARE in settings.MIDDLEWARE, "nothing may export in this bench"
    without_span = [m for m in settings.MIDDLEWARE if m != REQUEST_SPAN_MIDDLEWARE]

    def measure() -> dict[str, float]:
        client = Client(HTTP_AUTHORIZATION=f"Token {key}")  # loads the middleware now listed
        for _ in range(200):
            assert client.get("/api/v1/lookups/service-1/").status_code == 200
        samples = []
        perf = time.perf_counter_ns
        for _ in range(calls):
            started = perf()
            client.get("/api/v1/lookups/service-1/")
            samples.append(perf() - started)
        return percentiles(samples)

    ids_only = measure()
    with override_settings(MIDDLEWARE=without_span):
        no_span = measure()
        instrumentor = DjangoInstrumentor()
        instrumentor.instrument(middleware_position=3)  # where setup() puts it when exporting
        official = measure()
        instrumentor.uninstrument()
    again = measure()
    return {
        "ids_only_span": ids_only,
        "no_span": no_span,
        "official_instrumentation": official,
        "ids_only_span_again": again,
        "ids_only_cost_p50_us": round(
            (ids_only["p50_us"] + again["p50_us"]) / 2 - no_span["p50_us"], 1
        ),
        "official_cost_p50_us": round(official["p50_us"] - no_span["p50_us"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hits", type=int, default=1_000_000)
    parser.add_argument("--services", type=int, default=100_000)
    parser.add_argument("--misses", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database", default="controlplane_bench_lookups")
    args = parser.parse_args()
    os.environ.setdefault("LOOKUP_CACHE_MAX_SIZE", "1000")
    setup_bench_database(args.database)
    import logging

    logging.getLogger("controlplane").setLevel(logging.WARNING)
    from django.test.utils import override_settings

    from lookups import resolver

    load_services(args.services)
    resolver.reset_lookups()
    service = resolver.get_lookups()
    wait_listening(service)

    # (a) cache hits
    service.lookup("service-1")
    samples = []
    perf = time.perf_counter_ns
    lookup = service.lookup
    for _ in range(args.hits):
        started = perf()
        lookup("service-1")
        samples.append(perf() - started)
    hits = percentiles(samples)

    # (b) database misses: distinct slugs, each looked up once, cache too small to help
    with override_settings(LOOKUP_CACHE_MAX_SIZE=1):
        resolver.reset_lookups()
        service = resolver.get_lookups()
        wait_listening(service)
        samples = []
        for n in range(1, args.misses + 1):
            started = perf()
            result = service.lookup(f"service-{n * 7 % args.services + 1}")
            samples.append(perf() - started)
            assert result.source == "db"
    misses = percentiles(samples)

    # (d) batch of 500, all misses
    slugs = [f"service-{n}" for n in range(20_000, 20_500)]

    def batch() -> None:
        service.cache.clear()
        results = service.lookup_many(slugs)
        assert all(r.source == "db" for r in results)

    batches = timed(batch, 50)

    with_tracing = http_throughput(args.seconds, args.threads)
    without = http_throughput(args.seconds, args.threads, tracing=False)
    result = {
        "a_cache_hit": hits,
        "b_db_miss": {**misses, "table_rows": args.services},
        "c_http": with_tracing,
        "d_batch_500": batches,
        "e_tracing": {
            "lookup_with_tracing": with_tracing["lookup_endpoint"],
            "lookup_without_tracing": without["lookup_endpoint"],
            "with_vs_without": round(
                with_tracing["lookup_endpoint"]["requests_per_second"]
                / without["lookup_endpoint"]["requests_per_second"],
                3,
            ),
            "in_process": handler_latency(5000),
        },
    }
    result["targets"] = {
        "a_p50_us<=2": hits["p50_us"] <= 2,
        "b_p50_ms<=1": misses["p50_us"] <= 1000,
        "c_lookup>=60%_of_bare": result["c_http"]["lookup_vs_bare"] >= 0.6,
        "d_p50_ms<=20": batches["p50_ms"] <= 20,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
