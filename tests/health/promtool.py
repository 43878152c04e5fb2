"""Prometheus's own checker, Debian's promtool (`make test` installs the package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "controlplane.json"


def promtool(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool; fails the test (never skips it) when promtool is not installed."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is needed for the metrics and alert-rule tests: apt-get install "
            "prometheus (`make test` installs it when run as root)."
        )
    return subprocess.run(
        [path, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=120
    )
