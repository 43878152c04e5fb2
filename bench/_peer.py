"""Run one peer job system through the jobs scenario; prints one JSON object.

    python bench/_peer.py {djangoq,procrastinate,tasks_db} --url URL [--jobs N] [--latency-jobs N]

bench/jobs.py runs each peer this way, in a process of its own (its own Django settings,
or none), against the bench database it set up.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SETTINGS = {"djangoq": "controlplane.settings", "tasks_db": "bench._tasks_db_settings"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("peer", choices=["djangoq", "procrastinate", "tasks_db"])
    parser.add_argument("--url", required=True, help="the bench database")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-jobs", type=int, default=50)
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.url
    os.environ.setdefault("ENVIRONMENT", "test")
    if args.peer in SETTINGS:
        os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS[args.peer]
        import django

        django.setup()
    peer = importlib.import_module(f"bench._peer_{args.peer}")
    print(json.dumps(peer.run(args.url, args.jobs, args.latency_jobs)))


if __name__ == "__main__":
    main()
