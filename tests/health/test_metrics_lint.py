"""/metrics passes Prometheus's own linter: `promtool check metrics` finds nothing to say
(names, units, `_total` on counters, help texts) once every family holds samples."""

from __future__ import annotations

from typing import Any

from tests.health.promtool import promtool
from tests.health.scrapes import exercise_every_family, scrape


def test_it_passes_promtool_check_metrics_with_no_findings(
    transactional_db: Any, settings: Any, client_user: Any
) -> None:
    exercise_every_family(settings, client_user)
    text = scrape()
    for family in (  # the exercise reached every part of the service
        "controlplane_breaker_state",
        "controlplane_breaker_transitions_total",
        "controlplane_breaker_rejections_total",
        "controlplane_job_outcomes_total",
        "controlplane_job_duration_seconds_bucket",
        "controlplane_lookup_cache_total",
        "controlplane_lookup_latency_seconds_bucket",
        "controlplane_error_records_total",
        "controlplane_retry_attempts_total",
        "controlplane_provider_health",
        "controlplane_error_spool_backlog_bytes",
    ):
        assert f"\n{family}{{" in text or f"\n{family} " in text, family
    checked = promtool("check", "metrics", stdin=text)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_it_would_report_a_counter_without_total(transactional_db: Any) -> None:
    """The check above can fail: promtool does speak up about a badly named counter."""
    bad = "# HELP lookups Lookups.\n# TYPE lookups counter\nlookups 1\n"
    checked = promtool("check", "metrics", stdin=bad)
    assert "_total" in checked.stdout + checked.stderr
