"""Retry benchmark: the success path (a call that succeeds the first time, no sleeping).

Per call in µs, best of 5 samples of --number calls each, in one run:
  bare call; our RetryPolicy.call (settings' defaults, no budget); the same with the
  upstream's retry budget, as ServiceClient calls it (counts the first attempt, syncs
  with the database every RETRY_BUDGET_SYNC_CALLS calls or seconds, amortised here);
  tenacity's @retry and stamina's @retry configured alike (3 attempts, exponential
  backoff with jitter from 0.1 s capped at 2 s, a 30 s deadline, our retryable test).
Overheads are the figure minus the bare call; ratios are ours against stamina's.
Prints one JSON object. CPU-bound: load from other processes on the machine shows.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import setup_bench_database


def noop() -> None:
    return None


def contenders() -> dict[str, Callable[[], Any]]:
    import stamina
    import tenacity

    from controlplane.resilience.budget import budget_for
    from controlplane.resilience.retry import RetryPolicy, is_retryable

    policy = RetryPolicy.from_settings()
    budget = budget_for("bench-retry")
    attempts, deadline = policy.max_attempts, policy.deadline or 30.0

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(deadline),
        wait=tenacity.wait_random_exponential(
            multiplier=policy.initial_delay, exp_base=policy.factor, max=policy.max_delay
        ),
        retry=tenacity.retry_if_exception(is_retryable),
        reraise=True,
    )
    def with_tenacity() -> None:
        return None

    # stamina's `on` takes a predicate since 23.1; its jitter and backoff match ours.
    @stamina.retry(
        on=is_retryable,
        attempts=attempts,
        timeout=deadline,
        wait_initial=policy.initial_delay,
        wait_max=policy.max_delay,
        wait_exp_base=policy.factor,
    )
    def with_stamina() -> None:
        return None

    return {
        "bare": noop,
        "ours": lambda: policy.call(noop),
        "ours_with_budget": lambda: policy.call(noop, budget=budget),
        "tenacity": with_tenacity,
        "stamina": with_stamina,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=100_000, help="calls per sample")
    parser.add_argument("--database", default="controlplane_bench_retry")
    args = parser.parse_args()
    setup_bench_database(args.database)  # the budget syncs with the database

    calls = contenders()
    for fn in calls.values():
        fn()  # first call: lazy set-up (the budget's first sync) outside the samples
    per_call = {
        name: round(min(timeit.repeat(fn, number=args.number, repeat=5)) / args.number * 1e6, 3)
        for name, fn in calls.items()
    }
    bare = per_call["bare"]
    overhead = {name: round(us - bare, 3) for name, us in per_call.items() if name != "bare"}
    result = {
        "calls_per_sample": args.number,
        "versions": {name: version(name) for name in ("tenacity", "stamina")},
        "per_call_us": per_call,
        "overhead_us": overhead,
        "ours_vs_stamina_overhead": round(overhead["ours"] / overhead["stamina"], 3),
        "ours_with_budget_vs_stamina_overhead": round(
            overhead["ours_with_budget"] / overhead["stamina"], 3
        ),
        "ours_vs_tenacity_overhead": round(overhead["ours"] / overhead["tenacity"], 3),
    }
    result["targets"] = {
        "success_path<=stamina": overhead["ours"] <= overhead["stamina"],
        "success_path_with_budget<=stamina": overhead["ours_with_budget"] <= overhead["stamina"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
