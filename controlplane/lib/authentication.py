"""Token authentication with a per-process cache that every process invalidates promptly.

Each API call otherwise costs two queries before any work (token -> user,
then the user's groups). Here a token's user and group names are cached for
AUTH_CACHE_TTL seconds, trusted only while this process is listening for
changes: triggers on the token, user and group-membership tables NOTIFY
``controlplane_auth`` with the user id, and the listener drops that user's
entries. A revoked token or deactivated user stops working everywhere within
the notification delay.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from controlplane.lib.notifications import CacheGuard

CHANNEL = "controlplane_auth"


class _TokenCache:
    def __init__(self) -> None:
        self.entries: dict[str, tuple[Any, Token, float]] = {}
        self.lock = threading.Lock()
        self.guard = CacheGuard(CHANNEL, on_change=self.drop_user, on_reset=self.clear)

    def drop_user(self, user_id: str) -> None:
        with self.lock:
            for key in [k for k, (user, _, _) in self.entries.items() if str(user.pk) == user_id]:
                del self.entries[key]

    def clear(self) -> None:
        with self.lock:
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
        user, token = super().authenticate_credentials(key)
        # Load the group names now, so permission checks need no query either.
        user._controlplane_groups = frozenset(user.groups.values_list("name", flat=True))
        if cache.guard.trusted():
            with cache.lock:
                if cache.guard.stamp() != seen:
                    return user, token
                if len(cache.entries) >= settings.AUTH_CACHE_MAX_SIZE:
                    cache.entries.clear()
                cache.entries[key] = (user, token, time.monotonic() + settings.AUTH_CACHE_TTL)
        return user, token
