from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from controlplane.lib import tracing
from controlplane.lib.permissions import sync_groups


class ControlPlaneConfig(AppConfig):
    """The project itself: its migrations (auth NOTIFY triggers, the cluster cache table)
    and the API groups, synced after every migrate."""

    name = "controlplane"
    verbose_name = "Control plane"

    def ready(self) -> None:
        # Before any middleware is loaded: the request span goes inside the middleware that
        # must answer whatever happens (request id, error envelope).
        tracing.setup(after_middleware="controlplane.errors.middleware.ApiEnvelopeMiddleware")
        post_migrate.connect(sync_groups, sender=self, dispatch_uid="controlplane.sync_groups")
