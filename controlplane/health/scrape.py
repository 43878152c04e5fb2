"""GET /metrics: Prometheus metrics, aggregated across every web and worker process.

Counters and histograms are defined in ``controlplane.lib.metrics`` and written by
each process to PROMETHEUS_MULTIPROC_DIR; this scrape sums them (the lookup figures
too: ``lookups.prometheus_export``). Gauges that describe shared state (breakers,
providers, jobs, workers) are read from PostgreSQL at most once per
METRICS_CACHE_SECONDS per process, so most scrapes cost no query; the error spool's
from its files (``controlplane.health.gauges``).

Access: with METRICS_TOKEN, a bearer token (compared in constant time); without
it, the client's address must be in METRICS_ALLOWED_NETWORKS, where the address
is the last X-Forwarded-For hop that is not one of METRICS_TRUSTED_PROXIES.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from controlplane.health.gauges import DatabaseCollector, SpoolCollector


def _in(address: str, networks: list[str]) -> bool:
    try:
        client = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(net) for net in networks)


def client_address(request: HttpRequest) -> str:
    """The scraper's address: REMOTE_ADDR, or behind trusted proxies the last hop of
    X-Forwarded-For that is not one of them (earlier hops are whatever the client wrote)."""
    address = request.META.get("REMOTE_ADDR", "")
    trusted = settings.METRICS_TRUSTED_PROXIES
    if not trusted or not _in(address, trusted):
        return address
    for hop in reversed(request.headers.get("X-Forwarded-For", "").split(",")):
        if not _in(hop, trusted):
            return hop.strip()
    return address


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    return _in(client_address(request), settings.METRICS_ALLOWED_NETWORKS)


_registry = CollectorRegistry()
MultiProcessCollector(_registry)
_registry.register(DatabaseCollector())
_registry.register(SpoolCollector())


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse(
            "metrics are not available to this client\n", status=403, content_type="text/plain"
        )
    return HttpResponse(generate_latest(_registry), content_type="text/plain; version=0.0.4")
