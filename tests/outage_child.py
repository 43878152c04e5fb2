"""The service in a process of its own, for tests that stop its database (tests/outage.py).

python -m tests.outage_child: one JSON command per line on stdin, one JSON answer per
line on stdout. Requests go through the whole Django stack (middleware, DRF token
authentication, permissions, the error envelope), as under gunicorn.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import django

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from controlplane.lib import authentication, dbgate  # noqa: E402
from controlplane.lib.notifications import listener  # noqa: E402
from lookups import resolver  # noqa: E402
from lookups.models import MicroService  # noqa: E402

CHANNELS = (resolver.CHANNEL, authentication.CHANNEL)


def wait_for(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.01)


def listening() -> bool:
    return all(listener.is_listening(channel) for channel in CHANNELS)


def setup(users: dict[str, str | None], services: list[str], staff: bool = False) -> dict[str, Any]:
    """Users (name -> group or None) with a token each, and active micro-services."""
    tokens = {}
    auth_guard, lookups_guard = authentication.cache.guard, resolver.get_lookups().guard
    auth_changes = auth_guard.changes + sum(1 for group in users.values() if group)
    for name, group in users.items():
        user = User.objects.create_user(username=name, password="pw", is_staff=staff)
        if group:
            user.groups.add(Group.objects.get(name=group))
        tokens[name] = Token.objects.create(user=user).key
    uuids = {slug: str(MicroService.objects.create(slug=slug).uuid) for slug in services}
    # Our own writes' notifications arrive like anyone's (a value read before its
    # notification arrives is, rightly, not cached): wait for them.
    wait_for(lambda: auth_guard.changes >= auth_changes, "group notifications")
    wait_for(lambda: all(lookups_guard.versions.get(s) for s in services), "service notifications")
    return {"tokens": tokens, "uuids": uuids}


def request(
    method: str, path: str, token: str | None = None, body: Any = None, session: str = ""
) -> dict[str, Any]:
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    client = Client(raise_request_exception=False)  # answered as in production
    if session:
        client.cookies["sessionid"] = session
    data = json.dumps(body) if body is not None else None
    # What the WSGI handler does around every request (the test client leaves it out): a
    # connection broken by the outage is dropped, not reused.
    close_old_connections()
    response = client.generic(
        method, path, data=data or "", content_type="application/json", **headers
    )
    close_old_connections()
    try:
        parsed = response.json()
    except ValueError:
        parsed = response.content.decode(errors="replace")[:500]
    return {"status": response.status_code, "body": parsed, "at": time.monotonic()}


def handle(command: dict[str, Any]) -> dict[str, Any]:
    op = command.pop("op")
    if op == "setup":
        return setup(**command)
    if op == "request":
        return request(**command)
    if op == "login":  # a staff user's admin session; returns its cookie
        client = Client()
        client.force_login(User.objects.get(username=command["username"]))
        return {"session": client.cookies["sessionid"].value}
    if op == "wait_lost":  # the listener lost the database and its reconnection failed
        wait_for(dbgate.is_unreachable, "the gate never closed")
        return {"lost": True}
    if op == "wait_back":  # listening again on every channel: caches trusted
        wait_for(listening, "the listener never came back")
        return {"back": True}
    if op == "counters":
        return resolver.get_lookups().metrics.raw()["counters"]
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    resolver.get_lookups().listen()
    authentication.cache.guard.listen()
    wait_for(listening, "the listener never connected")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            answer = handle(json.loads(line))
        except Exception:
            answer = {"failed": traceback.format_exc()}
        print(json.dumps(answer, default=str), flush=True)


if __name__ == "__main__":
    main()
