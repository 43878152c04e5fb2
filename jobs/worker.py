"""`manage.py runworker`: the django-q2 cluster, job maintenance, and a shutdown that never hangs.

- The cluster runs in its own process group, so a terminal's Ctrl-C or a
  supervisor's group SIGTERM reaches only this process, which drains in order.
- A maintenance thread times out overdue jobs, recovers jobs of lost workers
  and dispatches due retries every JOB_MAINTENANCE_SECONDS.
- On SIGTERM/SIGINT: stop taking jobs (a shared flag the workers check before
  claiming), ask this worker's running jobs to stop (their next checkpoint
  raises), give the cluster JOB_DRAIN_SECONDS to finish, then kill whatever is
  left and re-queue or fail its jobs with ``worker_shutdown``. Exits within
  drain + a few seconds, always.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from contextlib import suppress
from typing import Any

import psutil
from django.conf import settings
from django.db import connection
from django_q.brokers import get_broker
from django_q.cluster import Cluster, Sentinel

from jobs import lifecycle, runner
from jobs.maintenance import run_maintenance

logger = logging.getLogger("controlplane.jobs")


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
    Sentinel(stop_event, *args)


class _Cluster(Cluster):
    def start(self) -> int:
        from django_q import cluster as q_cluster

        original = q_cluster.Sentinel
        q_cluster.Sentinel = _sentinel_in_own_group  # type: ignore[assignment,misc]
        try:
            return super().start()
        finally:
            q_cluster.Sentinel = original  # type: ignore[misc]


class Worker:
    def __init__(self) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.stop_requested = threading.Event()
        self.maintenance_stop = threading.Event()

    def _descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(os.getpid()).children(recursive=True)
        except psutil.Error:
            return []

    def _maintenance_loop(self) -> None:
        try:
            while not self.maintenance_stop.wait(settings.JOB_MAINTENANCE_SECONDS):
                try:
                    run_maintenance()
                except Exception:
                    logger.exception("job maintenance failed; retrying")
                    connection.close()
        finally:
            connection.close()

    def run(self) -> int:
        os.environ[runner.WORKER_ENV] = self.worker_id
        runner.draining = multiprocessing.get_context("fork").Event()
        cluster = _Cluster(get_broker())
        # Cluster.__init__ installed handlers that call stop() and join; ours drain instead.
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        cluster.start()
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
        runner.draining.set()  # no new claims in this cluster
        prefix = f"{self.worker_id}/%"
        asked = lifecycle.execute(lifecycle.REQUEST_SHUTDOWN, {"prefix": prefix})
        logger.info("asked %d running job(s) to stop at their next checkpoint", len(asked))
        stopper = threading.Thread(target=self._stop_cluster, args=(cluster,), daemon=True)
        stopper.start()
        stopper.join(max(0.0, deadline - time.monotonic()))
        if stopper.is_alive():
            leftovers = self._descendants()
            logger.warning("drain time over; killing %d cluster process(es)", len(leftovers))
            for process in leftovers:
                with suppress(psutil.Error):  # already gone
                    process.kill()
            psutil.wait_procs(leftovers, timeout=3)
        self.maintenance_stop.set()
        maintenance.join(timeout=3)
        self._finish_abandoned(prefix)
        logger.info("worker %s stopped after %.1f s", self.worker_id, time.monotonic() - started)
        return 0

    def _stop_cluster(self, cluster: _Cluster) -> None:
        try:
            cluster.stop()
        except Exception:
            logger.exception("stopping the django-q2 cluster failed")

    def _finish_abandoned(self, prefix: str) -> None:
        """Jobs this worker still holds (killed mid-drain): re-queue or fail them now."""
        for row in lifecycle.execute(lifecycle.MINE_STILL_RUNNING, {"prefix": prefix}):
            runner.finish_interrupted(row["id"], row["claim_id"], row["kind"])
        connection.close()
