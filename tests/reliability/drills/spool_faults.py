"""Spool faults: the error spool on a full disk, and a replay SIGKILLed midway.

While PostgreSQL is unreachable, error records wait in the local spool
(controlplane/errors/spool.py). This drill runs processes of the service
(``_spool_faults_child.py``) against spools of its own, the database of ``stack``:

1. Disk full (EFBIG): a process whose files may not grow past ``FULL_BYTES``
   (RLIMIT_FSIZE: a write stops part-way, as on a full disk) records errors while the
   database is down until the spool refuses them. Then a torn line is appended (what a
   process killed in the middle of a write leaves) and a process without the limit
   records more errors into the same spool.
2. Disk full (ENOSPC), if a small tmpfs can be mounted (root): it holds a second spool and
   a ballast file; errors are recorded until the tmpfs is full, the ballast is deleted (an
   operator frees space) and more errors are recorded.
3. Every support_id acknowledged as spooled is looked up in its spool (what the API and
   the admin do before the replay): found each time, never an exception.
4. A bigger backlog is spooled, then replayed into the live database by a process that is
   SIGKILLed ``kills`` times: at a random moment, or at once if a claimed spool file is
   seen shrinking (rewritten in place: the worst moment). Then a replay runs to the end.

Audit: every support_id acknowledged "spooled" is in the table (lost must be 0); each
one only "logged" is in its process's log; no claimed file was rewritten in place; a
killed replay resumed near where it stopped (rows written twice, a lower bound from the
replays' own counts, stay within ``REPLAYED_AGAIN_PER_KILL`` per kill); the torn line
(and what is left of failed writes) is kept aside, not replayed; both spools are empty
at the end.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability.drills import DrillResult
from tests.reliability.drills.stack import REPO, Stack

CHILD = [sys.executable, "-m", "tests.reliability.drills._spool_faults_child"]
DEAD_DATABASE_URL = "postgresql://nobody@/controlplane?host=/nonexistent-socket-dir"
FULL_BYTES = 256 * 1024  # RLIMIT_FSIZE of the "full disk" process
TMPFS_BYTES, BALLAST_BYTES = 512 * 1024, 400 * 1024
# A killed replay may write again the rows since it last recorded its progress (every 100
# rows or second), never the whole file: a bound on the rows written twice per kill.
REPLAYED_AGAIN_PER_KILL = 250


@dataclass
class Recorded:
    """What spooling processes answered: support_ids by outcome, and their logs."""

    spooled: list[str] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    def logged_missing_from_log(self) -> list[str]:
        return [sid for sid in self.logged if not any(sid in log for log in self.logs)]


def _env(stack: Stack, spool: Path, *, database: bool) -> dict[str, str]:
    env = {**stack.child_env(), "ERROR_SPOOL_PATH": str(spool)}
    if not database:
        env["DATABASE_URL"] = DEAD_DATABASE_URL
    return env


def record_errors(
    stack: Stack, spool: Path, recorded: Recorded, count: int, seed: int, file_limit: int = 0
) -> None:
    """``count`` errors recorded by one process while the database is down; with
    ``file_limit``, its files may not grow past that many bytes (RLIMIT_FSIZE)."""
    done = subprocess.run(
        [*CHILD, "spool", str(count), str(seed), str(file_limit)],
        cwd=REPO,
        env=_env(stack, spool, database=False),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"spooling process failed:\n{done.stderr[-3000:]}")
    for line in done.stdout.splitlines():
        answer = json.loads(line)
        {"spooled": recorded.spooled, "logged": recorded.logged}.get(
            answer["saved"], recorded.other
        ).append(answer["support_id"])
    recorded.logs.append(done.stderr)


def look_up(stack: Stack, spool: Path, support_ids: list[str]) -> dict:
    done = subprocess.run(
        [*CHILD, "find"],
        cwd=REPO,
        env=_env(stack, spool, database=False),
        input="\n".join(support_ids),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        return {"found": 0, "missing": 0, "raised": len(support_ids), "examples": [done.stderr]}
    return json.loads(done.stdout.splitlines()[-1])


def tear_a_line(spool: Path) -> None:
    """Append half a row and no newline: what a writer killed mid-write leaves."""
    row = json.dumps({"support_id": "00000000-0000-4000-8000-00000000dead", "code": "TORN"})
    with open(spool, "ab") as handle:
        handle.write(row[: len(row) // 2].encode())


def _claimed_sizes(spool: Path) -> dict[Path, int]:
    sizes = {}
    for claimed in spool.parent.glob(spool.name + ".*.replaying"):
        try:
            sizes[claimed] = claimed.stat().st_size
        except FileNotFoundError:
            continue
    return sizes


@dataclass
class Kills:
    attempted: int = 0
    mid_replay: int = 0
    at_rewrite: int = 0
    replayed_again: int = 0
    batches: list[dict] = field(default_factory=list)


def replay_with_kills(
    stack: Stack, spool: Path, kills: int, rng: random.Random, log: Path
) -> Kills:
    """Replay ``spool`` into the database, SIGKILLing the replaying process ``kills`` times,
    then replay to the end."""
    seen = Kills()
    env = _env(stack, spool, database=True)
    with open(log, "ab") as errors:
        for round_ in range(kills + 1):
            # Alternately in batches (as web workers replayed) and whole (the schedule).
            batch = "0" if round_ == kills or round_ % 2 else "200"
            child = subprocess.Popen(
                [*CHILD, "drain", batch],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
            assert child.stdout is not None
            if child.stdout.readline().strip() != "replaying":
                child.wait(timeout=60)
                raise RuntimeError(f"the replaying process did not start (see {log})")
            if round_ < kills:
                seen.attempted += 1
                _kill_during_replay(child, spool, rng.uniform(0.05, 0.5), seen)
            else:
                child.wait(timeout=600)
            for line in child.stdout.read().splitlines():
                batch_result = json.loads(line)
                seen.batches.append(batch_result)
                seen.replayed_again += batch_result.get("duplicates", 0)
    return seen


def _kill_during_replay(child: subprocess.Popen, spool: Path, seconds: float, seen: Kills) -> None:
    deadline = time.monotonic() + seconds
    sizes = _claimed_sizes(spool)
    while time.monotonic() < deadline and child.poll() is None:
        now = _claimed_sizes(spool)
        if any(size < sizes.get(path, 0) for path, size in now.items()):
            seen.at_rewrite += 1  # a claimed file shrank: it is being rewritten
            break
        sizes.update(now)
        time.sleep(0.002)
    if child.poll() is None:
        seen.mid_replay += 1
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)


def with_small_tmpfs(where: Path, work: Callable[[], None]) -> str:
    """Run ``work`` with a TMPFS_BYTES tmpfs mounted on ``where``; how it went."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        return f"skipped: {mounted.stderr.strip()[:200]}"
    try:
        work()
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
    return "ran"


def _kept_lines(spool: Path, *, corrupt: bool) -> int:
    """Lines set aside from ``spool``: corrupt ones (not JSON), or rows the database refused."""
    lines = []
    for suffix in (".corrupt", ".rejected"):
        kept = spool.with_name(spool.name + suffix)
        lines += kept.read_bytes().splitlines() if kept.exists() else []
    return sum(1 for line in lines if line.strip() and _is_json(line) != corrupt)


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _leftover_bytes(spool: Path) -> int:
    files = [spool, *spool.parent.glob(spool.name + ".*.replaying")]
    return sum(f.stat().st_size for f in files if f.exists())


def run(stack: Stack, kills: int = 8, rows: int = 3000, seed: int | None = None) -> DrillResult:
    result = DrillResult("spool_faults")
    seed = seed if seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed)
    folder = stack.workdir / "spool_faults"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    spool, tmpfs_spool = folder / "error-spool.jsonl", folder / "tmpfs" / "error-spool.jsonl"
    recorded, lookups = Recorded(), {"found": 0, "missing": 0, "raised": 0, "examples": []}

    def count_lookups(spool: Path, support_ids: list[str]) -> None:
        answer = look_up(stack, spool, support_ids)
        for key in ("found", "missing", "raised"):
            lookups[key] += answer[key]
        lookups["examples"] += answer["examples"]

    # 1. EFBIG: the limited process fills its spool, a torn line, then an unlimited one.
    full_disk = Recorded()
    record_errors(stack, spool, full_disk, 120, seed, file_limit=FULL_BYTES)
    tear_a_line(spool)
    record_errors(stack, spool, full_disk, 40, seed + 1)
    count_lookups(spool, full_disk.spooled)

    # 2. ENOSPC on a small tmpfs: full, space freed, more records.
    enospc = Recorded()

    def fill_the_tmpfs() -> None:
        ballast = tmpfs_spool.parent / "ballast"
        ballast.write_bytes(b"\0" * BALLAST_BYTES)
        record_errors(stack, tmpfs_spool, enospc, 40, seed + 2)
        ballast.unlink()
        record_errors(stack, tmpfs_spool, enospc, 20, seed + 3)
        count_lookups(tmpfs_spool, enospc.spooled)
        replay_with_kills(stack, tmpfs_spool, 0, rng, folder / "replay.log")
        result.figures["tmpfs_corrupt_lines_kept"] = _kept_lines(tmpfs_spool, corrupt=True)
        result.figures["tmpfs_spool_left_bytes"] = _leftover_bytes(tmpfs_spool)

    result.figures["enospc_phase"] = with_small_tmpfs(tmpfs_spool.parent, fill_the_tmpfs)

    # 4. A bigger backlog, replayed by a process SIGKILLed again and again.
    backlog = Recorded()
    record_errors(stack, spool, backlog, rows, seed + 4)
    started = time.monotonic()
    killed = replay_with_kills(stack, spool, kills, rng, folder / "replay.log")
    replay_seconds = time.monotonic() - started

    for part in (full_disk, enospc, backlog):
        recorded.spooled += part.spooled
        recorded.logged += part.logged
        recorded.other += part.other
        recorded.logs += part.logs
    found = stack.stored_support_ids(recorded.spooled)
    lost = [sid for sid in recorded.spooled if sid not in found]
    not_in_log = recorded.logged_missing_from_log()
    corrupt = _kept_lines(spool, corrupt=True) + result.figures.get("tmpfs_corrupt_lines_kept", 0)
    left = _leftover_bytes(spool) + result.figures.get("tmpfs_spool_left_bytes", 0)
    result.figures.update(
        {
            "seed": seed,
            "efbig_limit_bytes": FULL_BYTES,
            "efbig_spooled": len(full_disk.spooled),
            "efbig_logged": len(full_disk.logged),
            "enospc_spooled": len(enospc.spooled),
            "enospc_logged": len(enospc.logged),
            "rows_acknowledged": len(recorded.spooled),
            "rows_logged_only": len(recorded.logged),
            "logged_not_in_log": len(not_in_log),
            "lookups_found": lookups["found"],
            "lookups_missing": lookups["missing"],
            "lookups_raised": lookups["raised"],
            "torn_lines_injected": 1,
            "corrupt_lines_kept": corrupt,
            "rejected_rows": _kept_lines(spool, corrupt=False),
            "kills": killed.attempted,
            "kills_mid_replay": killed.mid_replay,
            "kills_while_rewriting": killed.at_rewrite,
            "rows_replayed_again": killed.replayed_again,
            "replay_seconds_with_kills": round(replay_seconds, 1),
            "rows_in_table": len(found),
            "lost": len(lost),
            "spool_left_bytes": left,
        }
    )
    result.check(not lost, f"{len(lost)} support_ids acknowledged as spooled are not in the table")
    result.check(
        full_disk.logged and full_disk.spooled, "the EFBIG phase did not fill the spool: no fault"
    )
    result.check(not recorded.other, f"{len(recorded.other)} records neither spooled nor logged")
    result.check(not not_in_log, f"{len(not_in_log)} records only logged are not in the log")
    result.check(
        not lookups["raised"] and not lookups["missing"],
        f"spool lookups: {lookups['missing']} missing, {lookups['raised']} raised, e.g. "
        + "; ".join(lookups["examples"][:3]),
    )
    result.check(
        not killed.at_rewrite, f"a claimed spool file was rewritten in place {killed.at_rewrite}x"
    )
    result.check(killed.mid_replay > 0, "no replay was killed midway: the drill proved nothing")
    result.check(
        killed.replayed_again <= REPLAYED_AGAIN_PER_KILL * killed.mid_replay,
        f"{killed.replayed_again} rows replayed again after {killed.mid_replay} kills: "
        "a killed replay does not resume where it stopped",
    )
    result.check(corrupt >= 1, "the torn line was not kept aside")
    result.check(not left, f"{left} bytes are still in the spool after the last replay")
    return result
