"""The local spool: error rows kept on this machine while PostgreSQL cannot take them.

One JSON object per line in ``ERROR_SPOOL_PATH``, appended under a file lock and
fsynced. A replay first renames the live file to a *claimed* file
(``<spool>.<ns>.replaying``) under the same lock, so writers keep appending to a
fresh file while the claimed rows are written to the table (``store.replay_spool``).
Rows the database refuses for good go to ``<spool>.rejected``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings


def spool_path() -> Path:
    return Path(settings.ERROR_SPOOL_PATH)


@contextmanager
def _locked(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _append_lock(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def line(row: dict[str, Any]) -> bytes:
    """The row as the spool stores it: one line of JSON."""
    return (json.dumps(row, default=str, ensure_ascii=False) + "\n").encode()


def append(row: dict[str, Any]) -> None:
    """Append one row durably (fsync)."""
    path = spool_path()
    with _locked(_append_lock(path)), open(path, "ab") as spool:
        spool.write(line(row))
        spool.flush()
        os.fsync(spool.fileno())


@contextmanager
def replaying() -> Iterator[bool]:
    """One replay at a time per spool: yields False (at once) if another one runs."""
    path = spool_path()
    with _locked(path.with_name(path.name + ".replay.lock"), blocking=False) as acquired:
        yield acquired


def claim() -> list[Path]:
    """Move the live spool aside (appends go on in a fresh file); every claimed file, oldest
    first. Call inside :func:`replaying`."""
    path = spool_path()
    with _locked(_append_lock(path)):
        if path.exists() and path.stat().st_size:
            path.rename(path.with_name(f"{path.name}.{time.time_ns()}.replaying"))
    return _claimed_files(path)


def _claimed_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".*.replaying"))


def _all_files() -> list[Path]:
    path = spool_path()
    return [path, *_claimed_files(path)] if path.parent.exists() else []


def size() -> int:
    """Bytes on disk in this machine's spool, claimed files included."""
    total = 0
    for file in _all_files():
        try:
            total += file.stat().st_size
        except OSError:  # gone meanwhile, or the spool's folder is unusable (then it is 0)
            continue
    return total


def pending_count() -> int:
    """Rows waiting in this machine's spool (for health and the admin)."""
    total = 0
    for file in _all_files():
        try:
            with open(file, "rb") as handle:
                total += sum(1 for line in handle if line.strip())
        except FileNotFoundError:
            continue
    return total


def find(support_id: str) -> dict[str, Any] | None:
    """A record still waiting in this machine's spool, if any."""
    for file in _all_files():
        try:
            with open(file, encoding="utf-8") as handle:
                for line in handle:
                    if support_id in line:
                        row = json.loads(line)
                        if row.get("support_id") == support_id:
                            return row
        except FileNotFoundError:
            continue
    return None


def reject(line: str) -> None:
    """Keep a row the database refused for good out of the way of the others."""
    rejected = spool_path().with_name(spool_path().name + ".rejected")
    with open(rejected, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
