from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from controlplane.lib.permissions import sync_groups


class ControlPlaneConfig(AppConfig):
    """The project itself: its migrations (auth NOTIFY triggers, the cluster cache table)
    and the API groups, synced after every migrate."""

    name = "controlplane"
    verbose_name = "Control plane"

    def ready(self) -> None:
        post_migrate.connect(sync_groups, sender=self, dispatch_uid="controlplane.sync_groups")
