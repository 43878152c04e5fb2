"""Webhook signatures, Stripe/Slack style: ``X-Controlplane-Signature: t=<unix>,v1=<hex>``
where ``<hex>`` is HMAC-SHA256(secret, "<t>." + raw body). A receiver recomputes it over the
raw bytes it got and refuses a timestamp older than its replay window (REPLAY_WINDOW_SECONDS
by default): a captured request cannot be replayed later, nor its body altered."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Controlplane-Signature"
REPLAY_WINDOW_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body`` sent at ``timestamp`` (now by default)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: float = REPLAY_WINDOW_SECONDS,
    now: float | None = None,
) -> bool:
    """Does ``header`` sign ``body`` with ``secret``, within ``tolerance`` seconds of now?"""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
