"""Tables shared by every process that makes outgoing calls."""

from __future__ import annotations
