from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token


def _snapshot() -> dict[str, tuple[str, tuple[str, ...], bool, bool]]:
    return {
        user.username: (
            Token.objects.get(user=user).key,
            tuple(user.groups.values_list("name", flat=True)),
            user.is_staff,
            user.check_password("demo") or user.check_password("admin"),
        )
        for user in User.objects.order_by("username")
    }


@pytest.mark.django_db
def test_it_loads_demo_users_idempotently() -> None:
    call_command("load_demo")
    first = _snapshot()
    call_command("load_demo")
    assert _snapshot() == first
    assert first["demo-client"][1:] == (("clients",), False, True)
    assert first["demo-support"][1:] == (("support",), True, True)
    assert first["demo-ops"][1:] == (("ops",), True, True)
    assert User.objects.get(username="admin").is_superuser


@pytest.mark.django_db
def test_it_refuses_demo_data_in_production(settings) -> None:
    settings.ENVIRONMENT = "production"
    with pytest.raises(CommandError, match="never created in production"):
        call_command("load_demo")
    assert not User.objects.filter(username="demo-ops").exists()
