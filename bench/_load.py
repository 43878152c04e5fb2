"""Load driver: THREADS keep-alive connections for SECONDS against one URL; prints JSON.

    _load.py URL SECONDS THREADS TOKEN|- [BODY.json]

GETs the URL, or POSTs the JSON file's content when one is given; any 2xx counts as ok.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit


def main() -> None:
    url, seconds, threads, token = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    parts = urlsplit(url)
    headers = {"Authorization": f"Token {token}"} if token != "-" else {}  # noqa: S105
    body = Path(sys.argv[5]).read_bytes() if len(sys.argv) > 5 else None
    if body is not None:
        headers["Content-Type"] = "application/json"
    method = "GET" if body is None else "POST"
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
            conn.request(method, parts.path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if 200 <= response.status < 300:
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
