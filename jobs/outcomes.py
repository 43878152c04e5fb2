"""What a client reads when a job ends (or pauses) without a result.

A job's ``error_user_message`` is the user-safe message of the error that stopped it (the
one its ErrorRecord keeps); the job's own ways of ending have theirs here, used by the
runner and by the SQL of ``jobs.lifecycle`` alike, so the API and the record agree.
"""

from __future__ import annotations

from controlplane.errors.scrubbing import default_scrubber

TIMEOUT = "The job took longer than its time limit."
DEADLINE_EXCEEDED = "The job did not finish before its deadline."
DEADLINE_EXCEEDED_WAITING = (
    "The job did not finish before its deadline: a service it depends on stayed unavailable."
)
WORKER_LOST = "The worker running this job was lost."
WORKER_SHUTDOWN = "The job was interrupted by a worker shutdown."

# Job error codes (lower case, like the job's other codes: timeout, worker_lost, ...).
DEADLINE_CODE = "deadline_exceeded"
TIMEOUT_CODE = "timeout"

_MAX_USER_MESSAGE = 2000


def stored_user_message(text: str) -> str:
    """A user message as the job keeps it: user-safe by construction, but some quote the
    client's own input, so it is scrubbed and cut like the technical one."""
    return default_scrubber().text(text[:_MAX_USER_MESSAGE])


def deadline_params() -> dict[str, str]:
    """The messages the timeout and deadline statements choose from."""
    return {
        "timeout_message": TIMEOUT,
        "deadline_message": DEADLINE_EXCEEDED,
        "waiting_message": DEADLINE_EXCEEDED_WAITING,
    }
