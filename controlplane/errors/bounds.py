"""How much an error record may hold, whatever a client sends.

- Each header and query value is cut to ERROR_MAX_VALUE_CHARS, at most
  ``MAX_FIELDS`` of each are kept, and the stored context (scrubbed JSON) to
  ERROR_MAX_CONTEXT_BYTES: the longest strings are shortened first, and a context
  still too large (thousands of keys) is kept as an excerpt of its JSON text.
- Each source gets full records only so many times a minute in each process: the
  address of a request without an authenticated user (no token, a bad one, a scanner)
  ERROR_FULL_RECORDS_PER_MINUTE times, an authenticated client (its requests' errors and
  the errors it reports) ERROR_CLIENT_FULL_RECORDS_PER_MINUTE times. Past that its
  records are *compact*: support_id, code, status, method, path, fingerprint, user,
  time, no request details nor context. Every support_id handed out still resolves, and the
  group still counts every occurrence. Records of requests without an authenticated
  user are purged after ERROR_ANONYMOUS_RETENTION_DAYS.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from django.conf import settings

TRUNCATED = "…[truncated]"
MAX_FIELDS = 64  # headers, query parameters: the first ones, in the order sent
_MAX_SOURCES = 10_000  # distinct sources tracked per minute; past it, every one is compact


def cap_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + TRUNCATED


def cap_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The first MAX_FIELDS entries, each value (or list of values) cut to its limit."""
    limit = settings.ERROR_MAX_VALUE_CHARS
    kept: dict[str, Any] = {}
    for key, value in list(fields.items())[:MAX_FIELDS]:
        if isinstance(value, list):
            kept[cap_text(str(key), 200)] = [cap_text(str(v), limit) for v in value[:MAX_FIELDS]]
        else:
            kept[cap_text(str(key), 200)] = cap_text(str(value), limit)
    if len(fields) > MAX_FIELDS:
        kept[TRUNCATED] = f"{len(fields) - MAX_FIELDS} more"
    return kept


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str).encode())


def _strings(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[int, tuple[Any, ...]]]:
    """(length, path) of every string leaf."""
    if isinstance(value, str):
        return [(len(value), path)]
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    found = []
    for key, item in items:
        found += _strings(item, (*path, key))
    return found


def fit_context(context: dict[str, Any]) -> dict[str, Any]:
    """``context`` (JSON) within ERROR_MAX_CONTEXT_BYTES."""
    limit = settings.ERROR_MAX_CONTEXT_BYTES
    size = _size(context)
    if size <= limit:
        return context
    fitted = json.loads(json.dumps(context, default=str))
    estimate = size
    for length, path in sorted(_strings(fitted), reverse=True):
        if length <= 256 or estimate <= limit:
            break
        parent = fitted
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = parent[path[-1]][:256] + TRUNCATED
        estimate -= length - 256  # characters, not bytes: measured exactly below
    size = _size(fitted)
    if size <= limit:
        return fitted
    text = json.dumps(fitted, ensure_ascii=False, default=str)
    return {TRUNCATED: f"context of {size} bytes", "excerpt": text[: limit // 2]}


class SourceRate:
    """Full records per source in the current minute, in this process."""

    def __init__(self) -> None:
        self.minute = -1
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def allow(self, source: str, per_minute: int) -> bool:
        minute = int(time.monotonic() // 60)
        with self.lock:
            if minute != self.minute:
                self.minute, self.counts = minute, {}
            if source not in self.counts and len(self.counts) >= _MAX_SOURCES:
                return False
            self.counts[source] = self.counts.get(source, 0) + 1
            return self.counts[source] <= per_minute


full_records = SourceRate()

# What a compact record keeps besides its identity, code, request line and times.
COMPACT_EMPTY = {
    "context": {},
    "technical_message": "",
    "traceback": "",
    "api_client": "",
    "exception_type": "",
}


def compact(row: dict[str, Any]) -> dict[str, Any]:
    """The row reduced to what finds it and counts it."""
    return {
        **row,
        **COMPACT_EMPTY,
        "user_message": cap_text(row["user_message"], 500),
        "request_path": cap_text(row["request_path"], 500),
        "compact": True,
    }
