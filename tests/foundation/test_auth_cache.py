"""Cached token authentication still obeys revocation, deactivation and group changes at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from controlplane.lib import authentication, notifications
from tests.conftest import token_client


@pytest.fixture
def listening(transactional_db: Any) -> None:
    authentication.cache.clear()
    authentication.cache.guard.listen()
    deadline = time.monotonic() + 10
    while not notifications.listener.is_listening(authentication.CHANNEL):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def eventually(check: Callable[[], bool], seconds: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_a_cached_token_costs_no_query(listening: None, client_user: Any) -> None:
    api = token_client(client_user)
    assert api.get("/api/v1/").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert api.get("/api/v1/").status_code == 200
    assert len(queries) == 0


def test_a_deleted_token_stops_working(listening: None, client_user: Any) -> None:
    api = token_client(client_user)
    assert api.get("/api/v1/").status_code == 200
    Token.objects.filter(user=client_user).delete()
    assert eventually(lambda: api.get("/api/v1/").status_code == 401)


def test_a_deactivated_user_stops_working(listening: None, client_user: Any) -> None:
    api = token_client(client_user)
    assert api.get("/api/v1/").status_code == 200
    client_user.is_active = False
    client_user.save(update_fields=["is_active"])
    assert eventually(lambda: api.get("/api/v1/").status_code == 401)


def test_losing_a_group_takes_effect(listening: None, support_user: Any) -> None:
    api = token_client(support_user)
    assert api.get("/api/v1/errors/").status_code == 200
    support_user.groups.remove(Group.objects.get(name="support"))
    assert eventually(lambda: api.get("/api/v1/errors/").status_code == 403)
