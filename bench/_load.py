"""Load driver: THREADS keep-alive connections for SECONDS against one URL; prints JSON."""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit


def main() -> None:
    url, seconds, threads, token = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    parts = urlsplit(url)
    headers = {"Authorization": f"Token {token}"} if token != "-" else {}  # noqa: S105
    counts = {"ok": 0, "bad": 0}
    latencies: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        ok = bad = 0
        mine = []
        while time.monotonic() < end:
            started = time.perf_counter()
            conn.request("GET", parts.path, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status == 200:
                ok += 1
            else:
                bad += 1
        with lock:
            counts["ok"] += ok
            counts["bad"] += bad
            latencies.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    latencies.sort()
    print(
        json.dumps(
            {
                "requests_per_second": round(counts["ok"] / seconds, 1),
                "non_200": counts["bad"],
                "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
                "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2)
                if latencies
                else None,
            }
        )
    )


if __name__ == "__main__":
    main()
