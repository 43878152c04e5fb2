"""The local spool: error rows kept on this machine while PostgreSQL cannot take them.

The files, next to ``ERROR_SPOOL_PATH`` (``<spool>`` below):

- ``<spool>``, the live file: one JSON row per line. A row is appended with a single
  ``write`` on an O_APPEND descriptor under ``<spool>.lock`` and fsynced before it counts
  as spooled. A write that fails or stops short (a full disk: ENOSPC, EFBIG) is cut back
  off and reported, so the row is not acknowledged and leaves nothing behind. Should a
  line still end without its newline (a process killed mid-write), the next row starts on
  a line of its own instead of merging with it.
- ``<spool>.<ns>.replaying``, claimed files: a replay renames the live file aside under the
  same lock (writers go on in a fresh file) and writes its rows to the table. A claimed file
  is never written again. Progress is the byte offset of its first row not yet written,
  kept in ``<claimed>.offset`` (written aside, fsynced, renamed over), so a replay killed
  midway resumes there; a fully replayed file is deleted.
- ``<spool>.corrupt``: lines that are not rows (what a torn write left), kept for a human;
  ``<spool>.rejected``: rows the database refused for good.

Every reader skips a line that does not parse. Health's figure (:meth:`Spool.backlog`)
comes from ``stat`` and the offsets alone, never from reading rows.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)


def line(row: dict[str, Any]) -> bytes:
    """The row as the spool stores it: one line of JSON."""
    return (json.dumps(row, default=str, ensure_ascii=False) + "\n").encode()


def parse(raw: bytes) -> dict[str, Any] | None:
    """The row on a spool line, or None if the line is not one (torn, or not ours)."""
    try:
        row = json.loads(raw)
    except (ValueError, RecursionError):  # includes UnicodeDecodeError
        return None
    if not isinstance(row, dict) or not isinstance(row.get("support_id"), str):
        return None
    return row


def append_line(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Append ``data`` (one or more whole lines) to ``path`` with one write, or not at all.

    Raises OSError when the write fails or stops short, after cutting the file back to
    its size before the write. The caller keeps other writers out (a lock, or being the
    only replay).
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        before = os.fstat(fd).st_size
        if before and os.pread(fd, 1, before - 1) != b"\n":
            data = b"\n" + data  # the last line was torn: keep it apart from this one
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"short write: {written} of {len(data)} bytes")
            if sync:
                os.fsync(fd)
        except OSError:
            with suppress(OSError):
                os.ftruncate(fd, before)
            raise
    finally:
        os.close(fd)


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


@dataclass(frozen=True)
class Backlog:
    """What waits in a spool, from ``stat`` and the offsets (cheap enough for health)."""

    bytes: int  # of rows not replayed yet
    files: int  # live and claimed files still holding such rows
    disk_bytes: int  # every live and claimed file as a whole (what the cap counts)


@dataclass(frozen=True)
class Claimed:
    """A claimed spool file: read from its recorded offset, never written."""

    path: Path

    @property
    def offset_path(self) -> Path:
        return self.path.with_name(self.path.name + ".offset")

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def offset(self) -> int:
        """Where the first row not yet written starts (0 when unknown: replays are idempotent)."""
        try:
            return max(0, int(self.offset_path.read_text().strip() or 0))
        except (OSError, ValueError):
            return 0

    def rows(self, start: int) -> Iterator[tuple[bytes, int]]:
        """(line, offset just past it) for each line from ``start``."""
        with open(self.path, "rb") as handle:
            handle.seek(start)
            position = start
            for raw in handle:
                position += len(raw)
                yield raw, position

    def pending_rows(self) -> int:
        try:
            return _count_lines(self.path, self.offset())
        except FileNotFoundError:
            return 0

    def record(self, offset: int) -> None:
        """Keep ``offset`` as this file's progress: written aside, fsynced, renamed over. A
        failure (disk full) only means replaying a few rows again; it is logged."""
        temporary = self.offset_path.with_name(self.offset_path.name + ".tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
            try:
                os.write(fd, f"{offset}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.offset_path)
        except OSError:
            logger.warning("error spool: progress of %s not recorded", self.path, exc_info=True)

    def finish(self) -> None:
        """Every row is in the table: delete the file, then its progress."""
        self.path.unlink(missing_ok=True)
        self.offset_path.unlink(missing_ok=True)


def _count_lines(path: Path, start: int) -> int:
    """Lines from ``start`` (a last one without its newline counts too), read in chunks."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        handle.seek(start)
        while chunk := handle.read(1 << 20):
            count, last = count + chunk.count(b"\n"), chunk[-1:]
    return count + (last != b"\n")


class Spool:
    """One machine's spool, at ``path`` (see the module docstring for its files)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _sibling(self, suffix: str) -> Path:
        return self.path.with_name(self.path.name + suffix)

    # --- Writing ---------------------------------------------------------------------

    def append(self, row: dict[str, Any]) -> None:
        """Append one row durably (fsync); raises OSError if it is not in the spool."""
        with _locked(self._sibling(".lock")):
            append_line(self.path, line(row))

    def keep_corrupt(self, raw: bytes) -> None:
        self._keep(".corrupt", raw, "corrupt line")

    def keep_rejected(self, raw: bytes) -> None:
        self._keep(".rejected", raw, "rejected row")

    def _keep(self, suffix: str, raw: bytes, what: str) -> None:
        data = raw if raw.endswith(b"\n") else raw + b"\n"
        try:
            append_line(self._sibling(suffix), data)
        except OSError:  # the disk is full: the log is the last place left
            logger.exception(
                "error spool: %s not kept in %s: %s", what, suffix, data.decode(errors="replace")
            )

    # --- Replaying -------------------------------------------------------------------

    @contextmanager
    def replaying(self) -> Iterator[bool]:
        """One replay at a time per spool: yields False (at once) if another one runs."""
        with _locked(self._sibling(".replay.lock"), blocking=False) as acquired:
            yield acquired

    def claim(self) -> list[Claimed]:
        """Move the live file aside (appends go on in a fresh file); every claimed file,
        oldest first. Call inside :meth:`replaying`."""
        with _locked(self._sibling(".lock")):
            if self.path.exists() and self.path.stat().st_size:
                self.path.rename(self._sibling(f".{time.time_ns()}.replaying"))
        claimed = self.claimed()
        names = {file.path.name for file in claimed}
        for progress in self.path.parent.glob(self.path.name + ".*.replaying.offset*"):
            if progress.name.partition(".replaying")[0] + ".replaying" not in names:
                progress.unlink(missing_ok=True)  # its file was deleted, then the replay died
        return claimed

    def claimed(self) -> list[Claimed]:
        if not self.path.parent.exists():
            return []
        return [Claimed(p) for p in sorted(self.path.parent.glob(self.path.name + ".*.replaying"))]

    # --- Reading ---------------------------------------------------------------------

    def backlog(self) -> Backlog:
        try:
            live = self.path.stat().st_size
        except OSError:  # none yet, or the spool's folder is unusable
            live = 0
        waiting, files, disk = live, int(live > 0), live
        for claimed in self.claimed():
            size = claimed.size()
            left = max(0, size - claimed.offset())
            waiting, files, disk = waiting + left, files + (left > 0), disk + size
        return Backlog(bytes=waiting, files=files, disk_bytes=disk)

    def disk_bytes(self) -> int:
        """Bytes of the live and claimed files (what the cap counts): ``stat`` only."""
        total = 0
        for file in [self.path, *(claimed.path for claimed in self.claimed())]:
            try:
                total += file.stat().st_size
            except OSError:  # gone meanwhile, or the spool's folder is unusable (then it is 0)
                continue
        return total

    def pending_count(self) -> int:
        """Rows not replayed yet. Reads them all: for tests and the command line, not health."""
        total = 0
        with suppress(FileNotFoundError):
            total += _count_lines(self.path, 0)
        return total + sum(claimed.pending_rows() for claimed in self.claimed())

    def find(self, support_id: str) -> dict[str, Any] | None:
        """The row holding ``support_id`` still in this spool, if any. A line that does not
        parse is skipped: a lookup never fails on a torn write."""
        needle = support_id.encode()
        for file in [self.path, *(claimed.path for claimed in self.claimed())]:
            # Read, never mapped: a write that fails is cut back with ftruncate, and a mapped
            # page past the new end would kill this process with SIGBUS.
            try:
                with open(file, "rb") as handle:
                    for line in handle:
                        if needle in line:
                            row = parse(line.rstrip(b"\n"))
                            if row is not None and row["support_id"] == support_id:
                                return row
            except OSError:  # gone meanwhile
                continue
        return None


# --- This machine's spool (ERROR_SPOOL_PATH) --------------------------------------------


def spool_path() -> Path:
    return Path(settings.ERROR_SPOOL_PATH)


def current() -> Spool:
    return Spool(spool_path())


def append(row: dict[str, Any]) -> None:
    current().append(row)


def size() -> int:
    """Bytes on disk in this machine's spool, claimed files included (what the cap counts)."""
    return current().disk_bytes()


def backlog() -> Backlog:
    return current().backlog()


def pending_count() -> int:
    return current().pending_count()


def find(support_id: str) -> dict[str, Any] | None:
    return current().find(support_id)
