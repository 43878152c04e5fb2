from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("controlplane.errors")

# Sent after a record of this service's own (not a client's report) made a new error group
# (its first record, stored; a record replayed from the spool that was already stored bumps
# nothing and sends nothing): sender=None, group_id (stable for the group's life: a replayed
# older record moves first_seen, not the id), fingerprint, code, service, first_seen
# (datetime), support_id.
error_group_created = Signal()


def announce_group(**kwargs: Any) -> None:
    """Send ``error_group_created``; a receiver that raises is logged, never passed on to the
    code recording the error."""
    for receiver, result in error_group_created.send_robust(sender=None, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "error_group_created receiver %r failed: %r", receiver, result, exc_info=result
            )
