"""Every metric the Grafana dashboard and the alert rules query is one /metrics exposes (a
renamed or misspelt series would leave a panel empty and an alert silent)."""

from __future__ import annotations

import json
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.health.promql import metric_names
from tests.health.promtool import DASHBOARD, RULES
from tests.health.scrapes import exercise_every_family, scrape


def dashboard_queries() -> list[str]:
    def panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [p for item in items for p in [item, *panels(item.get("panels", []))]]

    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in panels(dashboard["panels"]) for t in p.get("targets", [])]


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def exposed(text: str) -> set[str]:
    """Every sample name: counters' _total, histograms' _bucket, _sum and _count."""
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_it_finds_the_metrics_a_query_reads() -> None:
    expr = (
        'sum by (code) (rate(controlplane_a_total{code="X"}[5m] offset 1h)) > 5 * '
        "(histogram_quantile(0.95, sum by (le) (rate(controlplane_b_bucket[$__rate_interval])))"
        " or on (code) controlplane_c) and ignoring (x) 1e-06 < controlplane_d:ratio"
    )
    assert metric_names(expr) == {
        "controlplane_a_total",
        "controlplane_b_bucket",
        "controlplane_c",
        "controlplane_d:ratio",
    }


def test_every_query_names_an_exposed_metric(
    transactional_db: Any, settings: Any, client_user: Any
) -> None:
    exercise_every_family(settings, client_user)
    names = exposed(scrape())
    queries = {"dashboard": dashboard_queries(), "alerts": rule_expressions()}
    assert len(queries["dashboard"]) > 20 and len(queries["alerts"]) > 10
    unknown = {
        (where, name): expr
        for where, exprs in queries.items()
        for expr in exprs
        for name in metric_names(expr)
        if name not in names
    }
    assert not unknown, unknown
