"""Breaker benchmark: per-call overhead, override propagation, contention.

(a) per-call cost of a closed breaker around a no-op, against a bare call,
    pybreaker's in-memory CircuitBreaker and the circuitbreaker decorator;
(b) time from an override in this process until a second process's
    ``allows()`` reflects it (p50/p99 over --trials), snapshot TTL set to 600 s
    in the watcher so only NOTIFY can explain a fast answer;
(c) 8 processes hammer one breaker with failures: failures/s written, and
    open transitions vs generations (must be exactly one per generation).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import REPO, setup_bench_database

CHILD = [sys.executable, str(REPO / "bench" / "_breaker_child.py")]


def per_call(number: int) -> dict:
    import circuitbreaker
    import pybreaker

    from controlplane.breakers.circuit import breaker

    def noop() -> None:
        return None

    ours = breaker("bench-overhead")
    ours.call(noop)  # create it and load the snapshot
    theirs = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    decorated = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)(noop)

    def best(stmt: object) -> float:
        return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e6

    bare = best(noop)
    results = {
        "calls_per_sample": number,
        "bare_us": round(bare, 3),
        "ours_us": round(best(lambda: ours.call(noop)), 3),
        "pybreaker_us": round(best(lambda: theirs.call(noop)), 3),
        "circuitbreaker_us": round(best(decorated), 3),
    }
    for key in ("ours", "pybreaker", "circuitbreaker"):
        results[f"{key}_overhead_us"] = round(results[f"{key}_us"] - bare, 3)
    results["ours_vs_pybreaker_total_ratio"] = round(
        results["ours_us"] / results["pybreaker_us"], 3
    )
    results["ours_vs_pybreaker_overhead_ratio"] = round(
        results["ours_overhead_us"] / results["pybreaker_overhead_us"], 3
    )
    return results


def propagation(trials: int) -> dict:
    from django.contrib.auth.models import User

    from controlplane.breakers.actions import override_breaker
    from controlplane.breakers.circuit import breaker

    name = "bench-propagation"
    breaker(name).allows()
    ops, _ = User.objects.get_or_create(username="bench-ops")
    override_breaker(name=name, action="reset", reason="bench start", actor=ops)
    env = {**os.environ, "BREAKER_SNAPSHOT_TTL": "600"}
    watcher = subprocess.Popen([*CHILD, "watch", name], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(watcher.stdout.readline())["ready"]
        latencies = []
        for trial in range(trials):
            action = "force_open" if trial % 2 == 0 else "reset"
            started = time.time()
            override_breaker(name=name, action=action, reason=f"bench trial {trial}", actor=ops)
            seen = json.loads(watcher.stdout.readline())
            assert seen["allowed"] is (action == "reset"), seen
            latencies.append((seen["at"] - started) * 1000)
    finally:
        watcher.kill()
        watcher.wait()
    latencies.sort()
    return {
        "trials": trials,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 2),
        "max_ms": round(latencies[-1], 2),
    }


def contention(processes: int, rounds: int, seconds: float) -> dict:
    from django.contrib.auth.models import User
    from django.db import connection

    from controlplane.breakers.actions import override_breaker
    from controlplane.breakers.circuit import breaker
    from controlplane.breakers.models import Breaker, BreakerEvent

    ops, _ = User.objects.get_or_create(username="bench-ops")

    # Throughput: a threshold that is never reached, so every call writes a failure.
    name = "bench-contention-throughput"
    breaker(name, failure_threshold=10**9).allows()
    Breaker.objects.filter(name=name).update(failure_threshold=10**9)
    override_breaker(name=name, action="reset", reason="bench", actor=ops)
    before = Breaker.objects.get(name=name).total_failures
    start_at = time.time() + 2
    children = [
        subprocess.Popen(
            [*CHILD, "hammer", name, str(start_at), str(seconds)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    for child in children:
        child.communicate(timeout=120)
    written = Breaker.objects.get(name=name).total_failures - before

    # Transitions: threshold 5; reopened by a reset every round while 8 processes hammer.
    name = "bench-contention-trips"
    breaker(name, failure_threshold=5, cooldown_seconds=3600).allows()
    BreakerEvent.objects.filter(breaker__name=name).delete()
    override_breaker(name=name, action="reset", reason="bench", actor=ops)
    start_at = time.time() + 2
    duration = rounds * 0.25 + 1
    children = [
        subprocess.Popen(
            [*CHILD, "hammer", name, str(start_at), str(duration)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    time.sleep(max(0.0, start_at - time.time()) + 0.2)
    for round_number in range(rounds - 1):
        override_breaker(name=name, action="reset", reason=f"round {round_number}", actor=ops)
        time.sleep(0.25)
    won = sum(json.loads(child.communicate(timeout=120)[0])["won"] for child in children)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT e.generation) FROM breakers_breakerevent e "
            "JOIN breakers_breaker b ON b.id = e.breaker_id "
            "WHERE b.name = %s AND e.to_state = 'open' AND e.kind = 'transition'",
            [name],
        )
        opens, generations = cursor.fetchone()
    return {
        "processes": processes,
        "failures_written": written,
        "failures_per_second": round(written / seconds, 1),
        "rounds": rounds,
        "open_transitions": opens,
        "distinct_generations_opened": generations,
        "winners_reported_by_processes": won,
        "exactly_one_per_generation": opens == generations == won,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--database", default="controlplane_bench_breakers")
    args = parser.parse_args()
    setup_bench_database(args.database)
    import logging

    logging.getLogger("controlplane.breakers").setLevel(logging.ERROR)
    overhead = per_call(args.calls)
    result = {
        "a_per_call": overhead,
        "b_propagation": propagation(args.trials),
        "c_contention": contention(args.processes, args.rounds, args.seconds),
    }
    result["targets"] = {
        "a_overhead_not_above_pybreaker": overhead["ours_overhead_us"]
        <= overhead["pybreaker_overhead_us"],
        "b_p99_ms<=1000": result["b_propagation"]["p99_ms"] <= 1000,
        "c_exactly_one_transition_per_generation": result["c_contention"][
            "exactly_one_per_generation"
        ],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
