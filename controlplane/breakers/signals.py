from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("controlplane.breakers")

# Sent once per change, by the process that won it, after the change is committed:
# sender=None, name, from_state, to_state, generation, and
# kind: "transition" (opened, half-open, closed), "override" (reset, force_open or disable,
# in ``action``, with ``actor`` and ``reason``) or "override_expired".
breaker_transition = Signal()


def announce(**kwargs: Any) -> None:
    """Send ``breaker_transition``. The change is made whatever a receiver does: one that
    raises is logged, never passed on to the call that moved the breaker."""
    for receiver, result in breaker_transition.send_robust(sender=None, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "breaker_transition receiver %r failed: %r", receiver, result, exc_info=result
            )
