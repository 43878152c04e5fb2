"""The workers' sweep runs every condition, at most once per ALERT_SWEEP_SECONDS."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from controlplane.health import conditions
from controlplane.health.models import AlertChannel
from jobs.maintenance import run_maintenance


def test_maintenance_runs_the_sweep_throttled(
    clean_alerts: None, settings: Any, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    settings.ALERT_SWEEP_SECONDS = 3600
    settings.ALERT_WEBHOOK_URLS = ["https://hooks.example.com/env"]
    monkeypatch.setitem(conditions._last, "sweep", None)
    monkeypatch.setitem(conditions._last, "bootstrapped", None)
    caplog.set_level(logging.INFO, logger="controlplane")

    run_maintenance()  # sends maintenance_pass: the sweep runs
    assert conditions._last["sweep"] is not None
    assert conditions.maybe_sweep() is False  # throttled
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert AlertChannel.objects.get().target == "https://hooks.example.com/env"
