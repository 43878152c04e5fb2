"""The alert rules shipped in deploy/prometheus: valid for Prometheus, unit-tested with
series in and alerts out, with thresholds that are the seeds' own and runbooks that open a
real page of this service."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from django.urls import Resolver404, resolve

from lookups.metrics import ALERTS
from tests.health.promtool import RULE_TESTS, RULES, promtool


def rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_promtool_check_rules_accepts_them() -> None:
    checked = promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_promtool_test_rules_passes() -> None:
    tested = promtool("test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases: dict[str, list[bool]] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test["alert_rule_test"]:
            cases.setdefault(case["alertname"], []).append(bool(case["exp_alerts"]))
    assert {name: sorted(set(fired)) for name, fired in cases.items()} == {
        name: [False, True] for name in rules()
    }


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests do look at the thresholds: a hit-rate alert at 30 % fails them."""
    for source in (RULES, RULE_TESTS):
        shutil.copy(source, tmp_path / source.name)
    broken = tmp_path / RULES.name
    text = broken.read_text()
    assert text.count("< 0.5\n") == 1
    broken.write_text(text.replace("< 0.5\n", "< 0.3\n"))
    tested = promtool("test", "rules", tmp_path / RULE_TESTS.name)
    assert tested.returncode != 0
    assert "ControlplaneLookupHitRateLow" in tested.stdout + tested.stderr


def test_the_lookup_alerts_use_the_seeds_thresholds() -> None:
    hit_rate, fallback = (
        rules()["ControlplaneLookupHitRateLow"],
        rules()["ControlplaneLookupFallbackRatioHigh"],
    )
    assert ALERTS["hit_rate"] == ("<", 0.5) and f"< {ALERTS['hit_rate'][1]}\n" in hit_rate["expr"]
    assert ALERTS["fallback_rate"] == (">", 0.2)
    assert f"> {ALERTS['fallback_rate'][1]}\n" in fallback["expr"]


def test_every_alert_says_what_and_where_to_fix_it(ops_user: Any, client: Any) -> None:
    """Each runbook is a page ops can open (the filters in its query included: the admin
    answers an unknown filter with a redirect to ``?e=1``)."""
    client.force_login(ops_user)
    for name, rule in rules().items():
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        assert rule["labels"]["severity"] in ("page", "warn"), name
        runbook = re.sub(r"\{\{ \$labels\.\w+ \}\}", "example", annotations["runbook"])
        path = urlsplit(runbook).path
        try:
            match = resolve(path)
        except Resolver404:
            match = None
        assert match is not None and match.url_name, f"{name}: {path} is no page of this service"
        if path.startswith("/admin/"):
            response = client.get(runbook)
            assert response.status_code == 200, (name, runbook, response.status_code)
