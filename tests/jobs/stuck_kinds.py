"""Job kinds for the shutdown tests, imported by the test and by its runworker.

``test.stuck_in_c`` deadlocks in C: it locks a plain pthread mutex it already holds.
The thread never returns to the interpreter, so no checkpoint runs and no Python
signal handler (django-q2's SIGALRM timeout) ever fires; the GIL is released, so
the job's heartbeat thread goes on renewing the lease. Only SIGKILL ends it.
"""

from __future__ import annotations

import ctypes
from typing import Any

from jobs.context import JobContext
from jobs.registry import job_handler


@job_handler("test.stuck_in_c")
def stuck_in_c(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    libc = ctypes.CDLL(None)
    mutex = ctypes.create_string_buffer(64)  # zeroed: PTHREAD_MUTEX_INITIALIZER (glibc)
    libc.pthread_mutex_lock(mutex)
    libc.pthread_mutex_lock(mutex)  # a normal mutex, locked again by its owner: deadlock
    return {"unreachable": True}
