"""ALERT_WEBHOOK_URLS makes signed webhook channels, idempotently; production refuses the
list without ALERT_WEBHOOK_SECRET."""

from __future__ import annotations

from typing import Any

from controlplane.health.conditions import bootstrap_env_channels, on_post_migrate
from controlplane.health.models import AlertChannel
from tests.foundation.test_production_checks import check

A, B = "https://hooks.example.com/a", "https://hooks.example.com/b"


def test_it_makes_one_signed_webhook_channel_per_url_and_again_changes_nothing(
    db: Any, settings: Any
) -> None:
    settings.ALERT_WEBHOOK_URLS = [A, B]
    settings.ALERT_WEBHOOK_SECRET = "from-env"
    bootstrap_env_channels()
    bootstrap_env_channels()

    rows = AlertChannel.objects.filter(target__in=[A, B]).order_by("target")
    assert [(c.kind, c.target, c.secret, c.enabled, c.source) for c in rows] == [
        ("webhook", A, "from-env", True, "env"),
        ("webhook", B, "from-env", True, "env"),
    ]


def test_it_disables_an_env_channel_no_longer_listed_and_leaves_admin_ones(
    db: Any, settings: Any
) -> None:
    AlertChannel.objects.create(
        name="made in the admin", kind="slack", target="https://x.example/y"
    )
    settings.ALERT_WEBHOOK_URLS = [A, B]
    bootstrap_env_channels()
    settings.ALERT_WEBHOOK_URLS = [A]
    bootstrap_env_channels()

    mine = AlertChannel.objects.filter(target__in=[A, B, "https://x.example/y"])
    assert dict(mine.values_list("target", "enabled")) == {
        A: True,
        B: False,
        "https://x.example/y": True,
    }


def test_a_migrate_without_the_list_turns_no_notification_off(db: Any, settings: Any) -> None:
    settings.ALERT_WEBHOOK_URLS = [A, B]
    bootstrap_env_channels()
    settings.ALERT_WEBHOOK_URLS = []  # `migrate` run from a shell without the variable
    on_post_migrate()
    settings.ALERT_WEBHOOK_URLS = [A, "https://hooks.example.com/c"]
    on_post_migrate()  # listed ones are still made and enabled

    listed = AlertChannel.objects.filter(target__in=[A, B, "https://hooks.example.com/c"])
    enabled = dict(listed.values_list("target", "enabled"))
    assert enabled == {A: True, B: True, "https://hooks.example.com/c": True}


def test_production_refuses_alert_webhooks_without_a_secret() -> None:
    result = check(ALERT_WEBHOOK_URLS=A)
    assert result.returncode != 0
    assert "controlplane.E013" in result.stdout + result.stderr
    assert check(ALERT_WEBHOOK_URLS=A, ALERT_WEBHOOK_SECRET="s" * 32).returncode == 0
