"""NOTIFY wake-ups: no poll tick between a change in the database and the process that acts on it.

- Dispatch. A trigger on django-q2's queue table (jobs migration 0008) sends NOTIFY
  ``jobs_enqueued`` after every INSERT there (a create, a retry, maintenance's re-dispatch);
  PostgreSQL delivers it when that transaction commits. runworker's listener sets an Event
  its cluster's pusher shares (forked with it), and the pusher's ``dequeue``
  (``jobs.broker``) waits on that Event instead of sleeping the poll interval. Every
  runworker is woken; django-q2's conditional UPDATE of the row's lock still decides which
  pusher takes the task.
- Interrupts. A trigger on jobs_job sends NOTIFY ``jobs_interrupt`` with the job's id when
  a running job's cancel (or its worker's shutdown) is requested. Each django-q2 worker
  process listens (subscribed at spawn) and tells the JobContext it is running for that job:
  its next ``checkpoint()`` asks the database at once, and ``ctx.sleep()`` wakes to do so.

Both are hints, never the truth: the claim-fenced heartbeat still reads the flags, and the
pusher still reads the queue. A lost NOTIFY (the listener reconnecting, a database restart,
a trigger missing) costs what it cost before: the pusher still polls every Q_POLL seconds,
a checkpoint still asks every JOB_CHECKPOINT_POLL_SECONDS, the heartbeat every
JOB_HEARTBEAT_SECONDS; a reconnected listener wakes everything once, since it may have
missed something. Each process uses its one listener connection
(``controlplane.lib.notifications``): none is opened for this, except in the pusher of a
plain ``qcluster`` (no runworker to listen for it).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from controlplane.lib.notifications import listener
from jobs.context import JobContext

logger = logging.getLogger("controlplane.jobs")

ENQUEUED_CHANNEL = "jobs_enqueued"
INTERRUPT_CHANNEL = "jobs_interrupt"

# Set by runworker before its cluster forks, so the pusher waits on the Event runworker's
# listener sets (a multiprocessing Event: shared across the fork).
shared_dispatch_wakeup: Any = None
# A pusher without runworker (plain qcluster) listens itself: (its pid, its Event).
_own_dispatch_wakeup: tuple[int, threading.Event] | None = None


def share_dispatch_wakeup() -> None:
    """runworker, before its cluster forks: the Event the pusher will wait on."""
    global shared_dispatch_wakeup
    shared_dispatch_wakeup = multiprocessing.get_context("fork").Event()


def wake_pusher_on_enqueue() -> None:
    """runworker, after its cluster forked (its children must not listen as well): set the
    shared Event on every NOTIFY, and on every (re)connection of the listener, which may
    have missed some."""
    event = shared_dispatch_wakeup
    if event is None:
        return
    # The callback first: subscribing may start the listener, which could connect before
    # a callback registered afterwards, and the line would never be written.
    listener.on_connected(_log_dispatch_wakeups)
    listener.subscribe(ENQUEUED_CHANNEL, lambda _payload: event.set(), event.set)


def _log_dispatch_wakeups() -> None:
    logger.info("listening for new jobs: the pusher starts them without a poll tick")


def dispatch_wakeup() -> Any:
    """What the pusher waits on between polls: runworker's shared Event, or (plain
    ``qcluster``) one this process's listener sets."""
    global _own_dispatch_wakeup
    if shared_dispatch_wakeup is not None:
        return shared_dispatch_wakeup
    own = _own_dispatch_wakeup
    if own is None or own[0] != os.getpid():
        event = threading.Event()
        listener.subscribe(ENQUEUED_CHANNEL, lambda _payload: event.set(), event.set)
        own = _own_dispatch_wakeup = (os.getpid(), event)
    listener.ensure_running()  # after a fork too
    return own[1]


# The jobs this process is running (a django-q2 worker process runs one at a time; the
# in-process runner in tests may run more).
_running: dict[str, JobContext] = {}
_interrupts_pid = 0


def listen_for_interrupts(**kwargs: Any) -> None:
    """django-q2's ``post_spawn`` (in each new worker process): listen for interrupts
    before the first job, so a cancel reaches even that one without a poll."""
    global _interrupts_pid
    if _interrupts_pid != os.getpid():
        _interrupts_pid = os.getpid()
        listener.on_connected(_log_interrupts)  # before subscribe starts the listener
        listener.subscribe(INTERRUPT_CHANNEL, _interrupt, _recheck_all)
    listener.ensure_running()


def _log_interrupts() -> None:
    logger.info("listening for cancel requests: running jobs see them without a poll tick")


@contextmanager
def interruptible(ctx: JobContext) -> Iterator[None]:
    """While the handler runs, an interrupt NOTIFY for its job reaches ``ctx``."""
    _running[ctx.job_id] = ctx
    try:
        yield
    finally:
        if _running.get(ctx.job_id) is ctx:
            del _running[ctx.job_id]


def _interrupt(job_id: str) -> None:
    ctx = _running.get(job_id)
    if ctx is not None:
        ctx.interrupt()


def _recheck_all() -> None:
    """A fresh LISTEN, or a lost connection: an interrupt may have been missed."""
    for ctx in list(_running.values()):
        ctx.interrupt()
