"""Demo data for development: users in each group with API tokens.

Idempotent: running it again keeps existing users and tokens, and resets the
demo passwords so the printed logins always work.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from controlplane.lib.permissions import CLIENTS, OPS, SUPPORT, sync_groups
from jobs.actions import create_job
from lookups.models import MicroService

DEMO_PASSWORD = "demo"  # noqa: S105 -- development-only demo logins


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    group: str
    token: str


_DEMO_USERS = (
    ("demo-client", CLIENTS, False),
    ("demo-support", SUPPORT, True),
    ("demo-ops", OPS, True),
)


class DemoDataRefused(Exception):
    pass


@transaction.atomic
def load_demo_data() -> list[DemoLogin]:
    if settings.ENVIRONMENT == "production":
        raise DemoDataRefused("demo users with known passwords are never created in production")
    sync_groups()
    User = get_user_model()
    logins = []
    for username, group_name, is_staff in _DEMO_USERS:
        user, _ = User.objects.get_or_create(username=username)
        user.is_staff = is_staff
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["is_staff", "password"])
        user.groups.set([Group.objects.get(name=group_name)])
        token, _ = Token.objects.get_or_create(user=user)
        logins.append(DemoLogin(username, DEMO_PASSWORD, group_name, token.key))

    admin, created = User.objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True}
    )
    if created or not admin.has_usable_password():
        admin.set_password("admin")
        admin.save(update_fields=["password"])
    admin_token, _ = Token.objects.get_or_create(user=admin)
    logins.append(DemoLogin("admin", "admin", "superuser", admin_token.key))
    _demo_services_and_jobs(User.objects.get(username="demo-client"))
    return logins


DEMO_SERVICES = ("wall-painting", "roof-repair", "floor-tiling", "plumbing", "electrical-work")
DEMO_JOBS = (
    # (idempotency key, kind, payload, micro_id, max_attempts)
    ("demo-quick", "demo.sleep", {"seconds": 2}, "wall-painting", 3),
    ("demo-flaky", "demo.sleep", {"seconds": 1, "fail_times": 1}, "roof-repair", 3),
    ("demo-doomed", "demo.sleep", {"seconds": 0, "fail_times": 9}, "plumbing", 2),
    ("demo-long", "demo.sleep", {"seconds": 300}, "floor-tiling", 1),
    ("demo-unknown-service", "demo.sleep", {"seconds": 1}, "no-such-service", 1),
)


def _demo_services_and_jobs(client: object) -> None:
    """A few mappings and jobs to look at; fixed slugs and Idempotency-Keys keep it idempotent."""
    for slug in DEMO_SERVICES:
        MicroService.objects.get_or_create(
            slug=slug,
            defaults={
                "uuid": uuid.uuid5(uuid.NAMESPACE_URL, f"controlplane-demo/{slug}"),
                "name": slug.replace("-", " ").title(),
            },
        )
    for key, kind, payload, micro_id, max_attempts in DEMO_JOBS:
        create_job(
            kind=kind,
            payload=payload,
            micro_id=micro_id,
            max_attempts=max_attempts,
            idempotency_key=key,
            created_by=client,
        )
