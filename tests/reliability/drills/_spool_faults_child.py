"""The processes of the spool_faults drill: ``python -m`` this module with one mode.

- ``spool COUNT SEED FILE_LIMIT``: record COUNT errors (the database is unreachable:
  its DATABASE_URL is dead) with contexts of varied size; one JSON line per record: its
  support_id and what became of it ("spooled" or "logged"). FILE_LIMIT > 0: no file
  this process writes may grow past that many bytes (RLIMIT_FSIZE), as on a full disk;
  Python ignores SIGXFSZ, so such a write stops short or fails with EFBIG.
- ``find``: read support_ids (one per line) on stdin and look each up in this
  machine's spool; one JSON line: how many were found, missing, or raised.
- ``drain BATCH``: replay the spool into the (live) database, BATCH rows at a time
  (0: whole replays, as the scheduled task does) until nothing is left; one JSON line
  per batch. Prints ``replaying`` first, so the drill knows when to kill it.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import time


def spool_records(count: int, seed: int, file_limit: int) -> None:
    if file_limit:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
    from controlplane.errors.exceptions import InternalServerError
    from controlplane.errors.recording import record_error

    rng = random.Random(seed)
    for n in range(count):
        context = {"blob": "x" * rng.randrange(1_000, 12_000), "n": n, "seed": seed}
        error = InternalServerError(technical_message=f"spool drill {seed}/{n}", context=context)
        recorded = record_error(error, service="spool-drill")
        print(json.dumps({"support_id": recorded.support_id, "saved": recorded.saved}), flush=True)


def find_records() -> None:
    from controlplane.errors import spool

    found = missing = raised = 0
    examples: list[str] = []
    for line in sys.stdin:
        support_id = line.strip()
        if not support_id:
            continue
        try:
            row = spool.find(support_id)
        except Exception as exc:  # what the API view would have answered 500 with
            raised += 1
            examples.append(f"{support_id}: {type(exc).__name__}: {exc}"[:200])
            continue
        if row is not None and row.get("support_id") == support_id:
            found += 1
        else:
            missing += 1
    print(json.dumps({"found": found, "missing": missing, "raised": raised, "examples": examples}))


def drain(batch: int) -> None:
    from controlplane.errors.store import replay_spool

    print("replaying", flush=True)
    while True:
        result = replay_spool(max_rows=batch or None)
        print(json.dumps(result.__dict__, default=str), flush=True)
        if result.busy:  # another replay of this spool runs (e.g. a background drain)
            time.sleep(0.05)
            continue
        if not result.remaining:
            return


def main() -> None:
    import django

    django.setup()
    mode, args = sys.argv[1], [int(arg) for arg in sys.argv[2:]]
    if mode == "spool":
        spool_records(*args)
    elif mode == "find":
        find_records()
    elif mode == "drain":
        drain(*args)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
