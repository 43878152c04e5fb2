"""UUIDs as people paste them into admin search boxes: with or without dashes, inside text."""

from __future__ import annotations

import re
import uuid

_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


def find_uuid(text: str) -> uuid.UUID | None:
    """The first UUID anywhere in ``text``, e.g. in "… (Reference: 6f1c…)"."""
    found = _UUID.search(text)
    return uuid.UUID(found.group(0).replace("-", "")) if found else None


def exact_uuid(text: str) -> uuid.UUID | None:
    """``text`` (stripped) as a UUID if it is nothing else."""
    found = _UUID.fullmatch(text.strip())
    return uuid.UUID(found.group(0).replace("-", "")) if found else None
