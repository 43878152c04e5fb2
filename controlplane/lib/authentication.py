"""Token authentication with a per-process cache that every process invalidates promptly.

Each API call otherwise costs two queries before any work (token -> user,
then the user's groups). Here a token's user and group names are cached for
AUTH_CACHE_TTL seconds, trusted only while this process is listening for
changes: triggers on the token, user and group-membership tables NOTIFY
``controlplane_auth`` with the user id, and the listener drops that user's
entries. A revoked token or deactivated user stops working everywhere within
the notification delay.

While the database is unreachable, a token this process held when its listener lost
the database keeps working (with the group names cached with it) for up to
AUTH_STALE_IF_ERROR_SECONDS after the last moment its entry was known correct
(``controlplane.lib.stale``): so cached lookups reach their clients during an outage. A
token revoked, a user deactivated or a group removed before the outage began had its
entry dropped by the NOTIFY, and nothing dropped comes back; any other token needs the
database (503).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.db import OperationalError
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from controlplane.lib.notifications import CacheGuard
from controlplane.lib.stale import Kept

CHANNEL = "controlplane_auth"


class _TokenCache:
    def __init__(self) -> None:
        self.entries: dict[str, tuple[Any, Token, float]] = {}
        self.kept: Kept[str, tuple[Any, Token, float]] = Kept()
        self.lock = threading.Lock()
        self.guard = CacheGuard(
            CHANNEL, on_change=self.drop_user, on_reset=self.clear, on_lost=self.keep
        )

    def drop_user(self, user_id: str) -> None:
        with self.lock:
            for key in [k for k, (user, _, _) in self.entries.items() if str(user.pk) == user_id]:
                del self.entries[key]
            self.kept.drop_where(lambda entry: str(entry[0].pk) == user_id)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.kept.clear()

    def keep(self, as_of: float) -> None:
        """The listener lost the database: the entries answer only while it is unreachable
        (TTL aside: the notifications, not the TTL, kept them correct)."""
        with self.lock:
            if self.kept.keep(self.entries, as_of):
                self.entries = {}
            else:
                self.entries.clear()


cache = _TokenCache()


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        if cache.guard.trusted():
            entry = cache.entries.get(key)
            if entry is not None and time.monotonic() < entry[2]:
                return entry[0], entry[1]
        cache.guard.listen()
        seen = cache.guard.stamp()  # the user is known only after the read: any change counts
        try:
            user, token = super().authenticate_credentials(key)
            # Load the group names now, so permission checks need no query either.
            user._controlplane_groups = frozenset(user.groups.values_list("name", flat=True))
        except OperationalError:
            kept = cache.kept.get(key, settings.AUTH_STALE_IF_ERROR_SECONDS)
            if kept is None:
                raise  # a 503 envelope: this token was not held when the database went away
            user, token, _ = kept[0]
            return user, token
        if cache.guard.trusted():
            with cache.lock:
                if cache.guard.stamp() != seen:
                    return user, token
                if len(cache.entries) >= settings.AUTH_CACHE_MAX_SIZE:
                    cache.entries.clear()
                cache.entries[key] = (user, token, time.monotonic() + settings.AUTH_CACHE_TTL)
        return user, token
