"""Groups and API permissions.

Three groups carry every permission (DESIGN.md): ``clients`` (jobs, lookups,
error reports), ``support`` (read errors) and ``ops`` (breaker overrides, job
cancel, cache warm). Superusers pass every check.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from rest_framework.permissions import BasePermission

CLIENTS = "clients"
SUPPORT = "support"
OPS = "ops"
GROUPS = (CLIENTS, SUPPORT, OPS)

# Django model permissions each group gets in the admin, as "app_label.codename".
# Applied after every `migrate` (sync_groups), so production has the groups too.
GROUP_MODEL_PERMISSIONS: dict[str, list[str]] = {
    CLIENTS: [],
    SUPPORT: [
        "jobs.view_job",
        "jobs.view_failedjob",
        "jobs.view_runningjob",
        "jobs.view_waitingjob",
        "jobs.view_jobevent",
        "lookups.view_microservice",
        "lookups.view_slugstats",
        "lookups.view_cacheclear",
        "errors.view_errorrecord",
        "errors.view_errorgroup",
        "breakers.view_breaker",
        "breakers.view_openbreaker",
        "breakers.view_breakerevent",
        "health.view_alertevent",
        "health.view_alertdelivery",
    ],
    OPS: [
        "jobs.view_job",
        "jobs.change_job",
        "jobs.view_failedjob",
        "jobs.change_failedjob",
        "jobs.view_runningjob",
        "jobs.change_runningjob",
        "jobs.view_waitingjob",
        "jobs.change_waitingjob",
        "jobs.view_jobevent",
        "lookups.view_microservice",
        "lookups.add_microservice",
        "lookups.change_microservice",
        "lookups.delete_microservice",
        "lookups.view_slugstats",
        "lookups.view_cacheclear",
        "breakers.view_breaker",
        "breakers.change_breaker",
        "breakers.view_openbreaker",
        "breakers.change_openbreaker",
        "breakers.view_breakerevent",
        "errors.view_errorrecord",
        "errors.view_errorgroup",
        "health.view_alertchannel",
        "health.add_alertchannel",
        "health.change_alertchannel",
        "health.delete_alertchannel",
        "health.view_alertevent",
        "health.view_alertdelivery",
        "django_q.view_schedule",
        "django_q.view_success",
        "django_q.view_failure",
        "django_q.view_ormq",
    ],
}


def sync_groups(using: str = "default", **kwargs: Any) -> None:
    """Create the groups and give them exactly their model permissions (post_migrate)."""
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

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


def group_names(user: Any) -> frozenset[str]:
    """The user's group names, cached on the user object for the request."""
    if not user or not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_controlplane_groups", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._controlplane_groups = cached
    return cached


def in_groups(user: Any, *groups: str) -> bool:
    if not user or not user.is_authenticated:
        return False
    return bool(user.is_superuser or group_names(user) & set(groups))


class _GroupPermission(BasePermission):
    groups: tuple[str, ...] = ()

    def has_permission(self, request: Any, view: Any) -> bool:
        return in_groups(request.user, *self.groups)


class IsClient(_GroupPermission):
    message = "This action needs the 'clients' group."
    groups = (CLIENTS, OPS)


class IsSupport(_GroupPermission):
    message = "This action needs the 'support' or 'ops' group."
    groups = (SUPPORT, OPS)


class IsOps(_GroupPermission):
    message = "This action needs the 'ops' group."
    groups = (OPS,)


class IsAnyGroup(_GroupPermission):
    message = "This action needs the 'clients', 'support' or 'ops' group."
    groups = GROUPS
