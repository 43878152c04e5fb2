"""Ending a whole process tree, including the parts that left its process group.

Signalling a child's process group misses what matters most at shutdown: django-q2's
sentinel calls ``setpgrp`` (so its monitor, pusher and workers are in a group of their
own), and a process whose parent died is re-parented to init, out of anyone's tree.
So a supervisor makes itself a *child subreaper* (Linux: orphans of its descendants
are re-parented to it, not to init), keeps a snapshot of the tree, and at the end
kills the snapshot plus whatever it finds under itself at that moment. psutil checks
each pid against its start time, so a recycled pid is never hit.

And the other end of a process's life: :func:`at_exit` for work a clean exit must finish.
"""

from __future__ import annotations

import ctypes
import multiprocessing.util
import os
from collections.abc import Callable, Iterable
from contextlib import suppress

import psutil

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def become_subreaper() -> bool:
    """Keep orphaned descendants under this process (Linux); False where unsupported.

    Such an orphan becomes this process's child: :func:`kill_tree` reaps what it kills
    (``psutil.wait_procs``). The supervisors here stop as soon as a direct child dies, so
    nothing adopted lingers as a zombie for long.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def descendants(pid: int | None = None) -> list[psutil.Process]:
    """Every process under ``pid`` (default: this one), children first."""
    try:
        return psutil.Process(pid or os.getpid()).children(recursive=True)
    except psutil.Error:
        return []


def alive(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    """Those still running, each once (a zombie has ended: it only waits to be reaped)."""
    running: dict[int, psutil.Process] = {}
    for process in processes:
        with suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.setdefault(process.pid, process)
    return list(running.values())


def kill_tree(
    known: Iterable[psutil.Process] = (), *, root: int | None = None, wait_seconds: float = 3.0
) -> list[psutil.Process]:
    """SIGKILL ``known`` and every descendant of ``root`` (default: this process), again
    until no new one appears (a fork racing the kill); wait up to ``wait_seconds`` for them
    to go. Returns what was killed."""
    killed: dict[int, psutil.Process] = {}
    pending = [*known, *descendants(root)]
    for _round in range(5):
        fresh = [p for p in pending if p.pid not in killed and p.pid != os.getpid()]
        if not fresh:
            break
        for process in fresh:
            with suppress(psutil.Error):  # already gone, or a recycled pid
                process.kill()
            killed[process.pid] = process
        pending = descendants(root)
    psutil.wait_procs(list(killed.values()), timeout=wait_seconds)
    return list(killed.values())


def at_exit(callback: Callable[[], object]) -> None:
    """Run ``callback`` when this process exits cleanly, whatever kind of process it is.

    ``atexit`` alone misses django-q2's workers: multiprocessing ends a child with
    ``os._exit`` once its target returns (a worker that took STOP, or was recycled), after
    running only multiprocessing's own finalizers. A finalizer with an exit priority runs in
    both places: there, and from the ``atexit`` hook multiprocessing installs in every other
    process (gunicorn workers leave through ``sys.exit``, commands by returning). Register
    in the process that needs it: a forked child never runs what its parent registered.
    SIGKILL, of course, runs nothing."""
    multiprocessing.util.Finalize(None, callback, exitpriority=10)
