"""`manage.py runworker`: the django-q2 cluster, job maintenance, and a shutdown that always ends.

- The cluster runs in its own process group, so a terminal's Ctrl-C or a
  supervisor's group SIGTERM reaches only this process, which drains in order.
- A maintenance thread times out overdue jobs, recovers jobs of lost workers
  and dispatches due retries every JOB_MAINTENANCE_SECONDS; after a database
  outage, it also re-sends the jobs whose hand-off the outage may have cost.
- On SIGTERM/SIGINT: stop taking jobs (a shared flag the workers check before
  claiming), stop the cluster and ask this worker's running jobs to stop (their
  next checkpoint raises), give them JOB_DRAIN_SECONDS, then SIGKILL every
  process left under runworker and re-queue or fail their jobs with
  ``worker_shutdown``. Exits within drain + a few seconds, always:
  - every database step of the drain is bounded and may fail (the database may
    be what is down, or hung); the drain goes on without it, and jobs it could
    not hand back keep their lease, so any worker recovers them when it runs
    out (``worker_lost``);
  - the kill reaches the whole tree, not a process group: runworker is a child
    subreaper, so a worker orphaned by a dead sentinel is still its descendant;
  - a watchdog ends runworker if the shutdown overruns anyway.
  A worker process that ends cleanly (STOP from the cluster's stop, or recycled) first
  stores what its background writers still hold (``controlplane.lib.processes.at_exit``:
  the last good answers), within the drain.

Workers stuck in C code. The workers block SIGTERM (a supervisor signalling every
process must not kill handlers mid-job: runworker drains them), and a handler stuck
in C code never returns to the interpreter, so neither a checkpoint nor django-q2's
SIGALRM timeout can stop it. Both places that must end such a worker use SIGKILL:
the drain (above), and the sentinel's guard when a worker passes its task's time
limit (job timeout + JOB_TIMEOUT_GRACE_SECONDS), where django-q2 would send the
SIGTERM the worker blocks and leave it running.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection
from django_q.brokers import get_broker
from django_q.cluster import Cluster, Sentinel

from controlplane.lib import processes
from controlplane.lib.notifications import listener
from jobs import lifecycle, runner, wakeups
from jobs.maintenance import run_maintenance

logger = logging.getLogger("controlplane.jobs")
T = TypeVar("T")

# After the drain: re-queueing what was killed (one bounded database step).
FINISH_SECONDS = 2.0
# The watchdog's margin past the drain time (kill + re-queue + exit take ~3 s at most).
OVERRUN_SECONDS = 10.0
# After failed maintenance passes (the database away), the first pass that works re-sends
# the jobs marked dispatched since this long before the last pass that had worked: a job
# committed in a transaction that began before that pass may have lost its hand-off too.
RESEND_MARGIN_SECONDS = 5.0


class _Sentinel(Sentinel):
    def reincarnate(self, process: Any) -> None:
        """django-q2 replaces a worker past its time limit with SIGTERM, which our workers
        block; SIGKILL ends it even when its handler is stuck in C code."""
        if process in self.pool and process.timer.value == 0 and process.is_alive():
            process.join(1.0)  # one that raised its own timeout is on its way out
            if process.is_alive():
                logger.warning(
                    "worker process %s is past its time limit and does not return to Python "
                    "(stuck in C code?); killing it",
                    process.pid,
                )
                process.kill()
                process.join(1.0)
        super().reincarnate(process)


def _sentinel_in_own_group(stop_event: Any, *args: Any) -> None:
    """The cluster's sentinel, shielded from signals meant for runworker.

    Its own process group keeps a terminal's Ctrl-C away; SIGTERM is blocked (the
    worker processes it forks inherit the mask) so a supervisor signalling every
    process (systemd's default) cannot kill handlers mid-job: runworker drains them.
    If runworker itself disappears, the sentinel stops the cluster gracefully.
    """
    os.setpgrp()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    parent = os.getppid()

    def watch_parent() -> None:
        while not stop_event.is_set():
            if os.getppid() != parent:
                stop_event.set()
                return
            time.sleep(1.0)

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    _Sentinel(stop_event, *args)


class _Cluster(Cluster):
    def start(self) -> int:
        from django_q import cluster as q_cluster

        original = q_cluster.Sentinel
        q_cluster.Sentinel = _sentinel_in_own_group  # type: ignore[assignment,misc]
        try:
            return super().start()
        finally:
            q_cluster.Sentinel = original  # type: ignore[misc]


def _bounded(what: str, work: Callable[[], T], deadline: float) -> T | None:
    """Run one database step of the shutdown in a thread, waiting for it until ``deadline``.

    The database may be down (the step fails at once) or hung (it never answers); either
    way the shutdown goes on without it. None when the step did not complete."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except Exception as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=f"drain: {what}", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        logger.warning("%s: no answer from the database in time; going on without it", what)
        return None
    if "error" in outcome:
        logger.warning("%s failed (%s); going on without it", what, outcome["error"])
        return None
    return outcome.get("value")


class Worker:
    def __init__(self) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.stop_requested = threading.Event()
        self.maintenance_stop = threading.Event()

    def _maintenance_loop(self) -> None:
        """Maintenance every JOB_MAINTENANCE_SECONDS. A job handed to django-q2 just before
        the database went away (by a web process, or by a pass here) may have lost its
        hand-off with it and still carry its dispatch mark (clearing it failed too): left to
        the usual rule it would wait JOB_REDISPATCH_SECONDS after the database is back. So
        the first pass that works after failed ones also re-sends every job marked since
        shortly before the last pass that had worked; one sent twice is claimed once."""
        last_worked: float | None = None  # when the last pass that worked began
        trouble_since: float | None = None  # that moment, once passes started failing
        try:
            while not self.maintenance_stop.wait(settings.JOB_MAINTENANCE_SECONDS):
                began = time.monotonic()
                resend = None
                if trouble_since is not None:
                    # Older marks are due anyway (JOB_REDISPATCH_SECONDS).
                    resend = min(
                        began - trouble_since + RESEND_MARGIN_SECONDS,
                        settings.JOB_REDISPATCH_SECONDS,
                    )
                try:
                    report = run_maintenance(resend_marked_within=resend)
                except Exception:
                    logger.exception("job maintenance failed; retrying")
                    connection.close()
                    if trouble_since is None:
                        trouble_since = began if last_worked is None else last_worked
                    continue
                if resend is not None:
                    logger.info(
                        "job maintenance works again: re-sent the jobs marked dispatched in "
                        "the last %.1f s (%d handed over)",
                        resend,
                        report.dispatched,
                    )
                last_worked, trouble_since = began, None
        finally:
            connection.close()

    def run(self) -> int:
        os.environ[runner.WORKER_ENV] = self.worker_id
        runner.draining = multiprocessing.get_context("fork").Event()
        processes.become_subreaper()  # orphans of a dead sentinel stay ours to end
        wakeups.share_dispatch_wakeup()  # before the cluster forks its pusher
        cluster = _Cluster(get_broker())
        # Cluster.__init__ installed handlers that call stop() and join; ours drain instead.
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        cluster.start()
        # New jobs wake the pusher; subscribed after the fork, so only this process listens.
        wakeups.wake_pusher_on_enqueue()
        # What tells this process the database went away (maintenance fails fast then).
        listener.ensure_running()
        logger.info("worker %s running (drain %ss)", self.worker_id, settings.JOB_DRAIN_SECONDS)
        maintenance = threading.Thread(
            target=self._maintenance_loop, name="job-maintenance", daemon=True
        )
        maintenance.start()
        while not self.stop_requested.wait(0.5):
            if not cluster.sentinel.is_alive():
                logger.error("the django-q2 cluster died; stopping the worker")
                break
        return self._drain(cluster, maintenance)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stop_requested.is_set():
            return
        logger.info("worker %s: signal %s, draining", self.worker_id, signal.Signals(signum).name)
        self.stop_requested.set()

    def _drain(self, cluster: _Cluster, maintenance: threading.Thread) -> int:
        started = time.monotonic()
        deadline = started + settings.JOB_DRAIN_SECONDS
        self._start_watchdog(deadline + OVERRUN_SECONDS)
        tree = processes.descendants()  # now, before a dying sentinel can orphan anything
        runner.draining.set()  # no new claims in this cluster
        self.maintenance_stop.set()  # other workers' housekeeping does not wait for us
        stopper = threading.Thread(
            target=self._stop_cluster, args=(cluster,), name="cluster-stop", daemon=True
        )
        stopper.start()
        prefix = f"{self.worker_id}/%"
        asked = _bounded(
            "asking running jobs to stop",
            lambda: lifecycle.execute(lifecycle.REQUEST_SHUTDOWN, {"prefix": prefix}),
            deadline,
        )
        if asked is not None:
            logger.info("asked %d running job(s) to stop at their next checkpoint", len(asked))
        stopper.join(max(0.0, deadline - time.monotonic()))
        leftovers = processes.alive([*tree, *processes.descendants()])
        if leftovers:
            logger.warning(
                "%s; killing %d cluster process(es)",
                "drain time over" if stopper.is_alive() else "the cluster stopped",
                len(leftovers),
            )
            processes.kill_tree(leftovers)
        maintenance.join(timeout=0.5)  # one stuck on a hung database is left behind
        _bounded(
            "re-queueing the jobs of killed handlers (if this fails, their leases run out "
            "and any worker re-queues them as worker_lost)",
            lambda: self._finish_abandoned(prefix),
            time.monotonic() + FINISH_SECONDS,
        )
        logger.info("worker %s stopped after %.1f s", self.worker_id, time.monotonic() - started)
        return 0

    def _start_watchdog(self, at: float) -> None:
        """The last resort: whatever hangs (a bug, a C call), the process ends at ``at``."""

        def watch() -> None:
            time.sleep(max(0.0, at - time.monotonic()))
            logger.error(
                "worker %s: shutdown overran its bound; killing and exiting", self.worker_id
            )
            processes.kill_tree(wait_seconds=1.0)
            os._exit(1)

        threading.Thread(target=watch, name="shutdown-watchdog", daemon=True).start()

    def _stop_cluster(self, cluster: _Cluster) -> None:
        try:
            cluster.stop()
        except Exception:
            logger.exception("stopping the django-q2 cluster failed")

    def _finish_abandoned(self, prefix: str) -> int:
        """Jobs this worker still holds (killed mid-drain): re-queue or fail them now."""
        rows = lifecycle.execute(lifecycle.MINE_STILL_RUNNING, {"prefix": prefix})
        for row in rows:
            runner.finish_interrupted(row["id"], row["claim_id"], row["kind"])
        return len(rows)
