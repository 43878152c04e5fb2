"""UUIDs as people paste them into admin search boxes: with or without dashes, inside text."""

from __future__ import annotations

import re
import uuid

UUID_PATTERN = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
# Not inside a longer run of hex digits (a 33-digit string holds no UUID).
_UUID = re.compile(rf"(?<![0-9a-fA-F-]){UUID_PATTERN}(?![0-9a-fA-F])")


def _parse(text: str) -> uuid.UUID:
    return uuid.UUID(text.replace("-", ""))


def find_uuids(text: str) -> list[uuid.UUID]:
    """Every UUID in ``text``, in order, each once."""
    return list(dict.fromkeys(_parse(found.group(0)) for found in _UUID.finditer(text)))


def find_uuid(text: str) -> uuid.UUID | None:
    """The first UUID anywhere in ``text``."""
    found = _UUID.search(text)
    return _parse(found.group(0)) if found else None


def exact_uuid(text: str) -> uuid.UUID | None:
    """``text`` (stripped) as a UUID if it is nothing else."""
    found = re.fullmatch(UUID_PATTERN, text.strip())
    return _parse(found.group(0)) if found else None
