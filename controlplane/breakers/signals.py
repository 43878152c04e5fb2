from __future__ import annotations

from django.dispatch import Signal

# Sent once per transition, by the process that won it:
# sender=None, name, from_state, to_state, generation, reason, actor.
breaker_transition = Signal()
