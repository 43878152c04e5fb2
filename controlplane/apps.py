from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def sync_groups(using: str = "default", **kwargs: Any) -> None:
    """Create the API/admin groups and give them exactly their model permissions."""
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    from controlplane.permissions import GROUP_MODEL_PERMISSIONS

    # Permissions of apps migrated after this one may not exist yet on a fresh database.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    for name, wanted in GROUP_MODEL_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        permissions = []
        for dotted in wanted:
            app_label, codename = dotted.split(".", 1)
            permissions.append(
                Permission.objects.using(using).get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        group.permissions.set(permissions)


class ControlPlaneConfig(AppConfig):
    name = "controlplane"
    verbose_name = "Control plane"

    def ready(self) -> None:
        from controlplane import checks  # noqa: F401 -- registers the system checks

        post_migrate.connect(sync_groups, sender=self, dispatch_uid="controlplane.sync_groups")
