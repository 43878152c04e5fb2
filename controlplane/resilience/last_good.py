"""The last good answer per provider group and request, for the ``last_good`` fallback.

A request is its method, path (query string included) and a hash of its body. A group
that declares a ``last_good`` fallback keeps each 2xx answer in PostgreSQL
(LastGoodResponse), so every process can answer from it once no provider does.

Bounded: a body above LAST_GOOD_MAX_BODY_BYTES is not kept (a cut JSON body would be a
wrong answer), and each group keeps at most LAST_GOOD_MAX_ROWS requests, the oldest
evicted by the same statement that stores a new one.

Off the success path: the caller only hands the answer to this process's writer thread,
which upserts on its own autocommit connection. A slow or unreachable database must not
delay an answer a provider already gave; a write lost that way costs one fallback's
freshness, nothing more. At most MAX_PENDING answers wait (the newest per request). A
process that exits cleanly (a django-q2 worker told to stop or recycled, a gunicorn
worker, a command) first stores what is pending, for up to EXIT_FLUSH_SECONDS.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.db import DatabaseError

from controlplane.lib import processes, sidedb
from controlplane.resilience.models import LastGoodResponse

logger = logging.getLogger("controlplane.resilience.last_good")

MAX_PENDING = 200
IDLE_CLOSE_SECONDS = 10.0  # the writer's connection is closed after this long without work
# How long a clean exit waits for pending answers: a connect and a few statements (the side
# connection gives up on each within 2 s). runworker's drain bounds a worker's exit anyway.
EXIT_FLUSH_SECONDS = 5.0


def request_key(method: str, url: str, kwargs: dict[str, Any]) -> tuple[str, str]:
    """(key, path) of a request: the key hashes the method, the path with its query string
    and the body (JSON canonically: key order does not make another request)."""
    path = str(httpx.URL(url, params=kwargs.get("params")))
    if kwargs.get("json") is not None:
        body = json.dumps(kwargs["json"], sort_keys=True, separators=(",", ":")).encode()
    elif kwargs.get("content") is not None:
        content = kwargs["content"]
        body = content.encode() if isinstance(content, str) else bytes(content)
    elif kwargs.get("data") is not None:
        body = json.dumps(kwargs["data"], sort_keys=True, default=str).encode()
    else:
        body = b""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), hashlib.sha256(body).digest()):
        digest.update(part + b"\0")
    return digest.hexdigest(), path


@dataclass(frozen=True)
class Answer:
    group: str
    key: str
    method: str
    path: str
    status: int
    content_type: str
    body: bytes
    provider: str


UPSERT = """
WITH evicted AS (
    DELETE FROM resilience_lastgoodresponse
    WHERE id IN (
        SELECT id FROM resilience_lastgoodresponse
        WHERE group_name = %(group)s AND request_key <> %(key)s
        ORDER BY stored_at DESC
        OFFSET %(keep_others)s
    )
)
INSERT INTO resilience_lastgoodresponse
    (group_name, request_key, method, path, status, content_type, body, provider, stored_at)
VALUES (%(group)s, %(key)s, %(method)s, %(path)s, %(status)s, %(content_type)s, %(body)s,
        %(provider)s, now())
ON CONFLICT (group_name, request_key) DO UPDATE SET
    method = EXCLUDED.method, path = EXCLUDED.path, status = EXCLUDED.status,
    content_type = EXCLUDED.content_type, body = EXCLUDED.body,
    provider = EXCLUDED.provider, stored_at = now()
"""


class Writer:
    """One background thread per process that stores answers handed to :meth:`offer`."""

    def __init__(self) -> None:
        self.side = sidedb.SideConnection(
            lambda: sidedb.default_conninfo(
                application_name="controlplane-last-good",
                connect_timeout=2,
                statement_timeout_ms=2000,
            )
        )
        self.flushes_at_exit: int | None = None  # the pid whose exit stores what is pending
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.pending: dict[tuple[str, str], Answer] = {}
        self.thread: threading.Thread | None = None
        self.stopping = False
        self.written = 0

    def offer(self, answer: Answer) -> bool:
        """Queue ``answer`` for storing; False when it is not kept (too big, queue full)."""
        if len(answer.body) > settings.LAST_GOOD_MAX_BODY_BYTES:
            logger.debug(
                "last good answer of %s not kept: %d bytes", answer.group, len(answer.body)
            )
            return False
        if self.pid != os.getpid():
            self._reset()  # forked: the parent's thread and queue are not ours
        with self.lock:
            slot = (answer.group, answer.key)
            if slot not in self.pending and len(self.pending) >= MAX_PENDING:
                return False
            self.pending[slot] = answer
            self.idle.clear()
            if self.thread is None:
                self.stopping = False
                self.thread = threading.Thread(
                    target=self._run, name="controlplane-last-good", daemon=True
                )
                self.thread.start()
                if self.flushes_at_exit != self.pid:
                    # The thread is a daemon: without this, an exit drops what it holds.
                    processes.at_exit(self._at_exit)
                    self.flushes_at_exit = self.pid
        self.wake.set()
        return True

    def _at_exit(self) -> None:
        if not self.idle.is_set():
            logger.info(
                "exiting: storing pending last good answers first (at most %g s)",
                EXIT_FLUSH_SECONDS,
            )
        self.stop(EXIT_FLUSH_SECONDS)
        if not self.idle.is_set():
            logger.warning("last good answers still pending at exit were not stored")

    def _run(self) -> None:
        try:
            while True:
                woken = self.wake.wait(IDLE_CLOSE_SECONDS)
                self.wake.clear()
                with self.lock:
                    batch, self.pending = list(self.pending.values()), {}
                for answer in batch:
                    self._store(answer)
                with self.lock:
                    if not self.pending:
                        self.idle.set()
                        if self.stopping:
                            return
                if not woken:
                    self.side.close()  # idle: give the connection back
        finally:
            self.side.close()
            with self.lock:
                self.thread = None
                if not self.pending:
                    self.idle.set()

    def _store(self, answer: Answer) -> None:
        params = {
            "group": answer.group,
            "key": answer.key,
            "method": answer.method,
            "path": answer.path[:2000],
            "status": answer.status,
            "content_type": answer.content_type[:200],
            "body": answer.body,
            "provider": answer.provider[:100],
            "keep_others": max(0, settings.LAST_GOOD_MAX_ROWS - 1),
        }
        try:
            self.side.run(lambda cursor: cursor.execute(UPSERT, params))
            self.written += 1
        except Exception:  # a cache write: never let it end the thread
            logger.warning("last good answer of %s not stored", answer.group, exc_info=True)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every answer offered so far is stored (tests); True if it was."""
        return self.idle.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Store what is pending, then end the thread and close its connection."""
        thread = self.thread
        if thread is None or self.pid != os.getpid():
            return
        with self.lock:
            self.stopping = True
        self.wake.set()
        thread.join(timeout)


writer = Writer()


def remember(
    *, group: str, key: str, path: str, method: str, provider: str, response: httpx.Response
) -> None:
    """Keep ``response`` (a 2xx) as the group's last good answer to this request."""
    writer.offer(
        Answer(
            group=group,
            key=key,
            method=method.upper(),
            path=path,
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            body=response.content,
            provider=provider,
        )
    )


@dataclass(frozen=True)
class Remembered:
    response: httpx.Response
    provider: str
    age_seconds: float


def recall(
    *, group: str, key: str, method: str, url: str, max_age_seconds: float
) -> Remembered | None:
    """The group's last good answer to this request, if younger than ``max_age_seconds``;
    None if there is none or the database cannot be read."""
    try:
        row = LastGoodResponse.objects.young(group, key, max_age_seconds)
    except DatabaseError:
        logger.warning("last good answers of %s unreadable", group, exc_info=True)
        return None
    if row is None:
        return None
    headers = {"content-type": row.content_type} if row.content_type else {}
    response = httpx.Response(
        row.status, content=bytes(row.body), headers=headers, request=httpx.Request(method, url)
    )
    return Remembered(response, row.provider, round(row.age.total_seconds(), 3))
