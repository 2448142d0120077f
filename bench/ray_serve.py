"""Serving throughput: `rag serve` vs `rag serve --ray` with 1 and 2 replicas (issue 14).

    python bench/ray_serve.py [--reader heuristic] [--seconds 30] [--concurrency 8] [--index-dir index]

Each configuration is started as the user starts it (`python -m rag.cli serve ...`), waited for until
GET /health answers 200, warmed with one pass over the gold questions, then loaded for --seconds by
--concurrency client threads, each on its own keep-alive connection, asking the gold questions in turn.
Prints requests/s, p50/p99 latency and the status counts per configuration.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fast_path import free_port, questions, wait_until_up  # noqa: E402

CONFIGS = {
    "rag serve": [],
    "ray serve, 1 replica": ["--ray", "--replicas", "1"],
    "ray serve, 2 replicas": ["--ray", "--replicas", "2"],
}


def load(port: int, seconds: float, concurrency: int) -> tuple[int, list[float], Counter]:
    qs = questions()
    stop = time.perf_counter() + seconds
    lat: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = offset
        while time.perf_counter() < stop:
            body = json.dumps({"question": qs[i % len(qs)]}).encode()
            t0 = time.perf_counter()
            conn.request("POST", "/ask", body=body, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            with lock:
                lat.append((time.perf_counter() - t0) * 1000)
                statuses[resp.status] += 1
            i += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(k * 7,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(lat), lat, statuses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reader", default="heuristic")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--index-dir", type=Path, default=ROOT / "index")
    args = ap.parse_args()

    rows = []
    for name, extra in CONFIGS.items():
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_READER": args.reader, "RAG_INDEX_POLL_S": "0"}
        cmd = [sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--index-dir", str(args.index_dir)]
        server = subprocess.Popen(cmd + extra, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            t0 = time.perf_counter()
            wait_until_up(port, server, timeout=300)
            started = time.perf_counter() - t0
            load(port, 3, args.concurrency)  # warm-up
            n, lat, statuses = load(port, args.seconds, args.concurrency)
        finally:
            server.terminate()
            server.wait(timeout=60)
        lat.sort()
        rows.append(
            {
                "config": name,
                "requests_per_s": round(n / args.seconds, 1),
                "p50_ms": round(statistics.median(lat), 1),
                "p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 1),
                "statuses": dict(statuses),
                "start_s": round(started, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        time.sleep(3)

    base = rows[0]["requests_per_s"]
    print(
        f"\nreader {args.reader}, {args.concurrency} concurrent clients, {args.seconds:g} s each, {os.cpu_count()} CPUs"
    )
    print("| server | requests/s | vs rag serve | p50 ms | p99 ms | start-up s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['config']} | {r['requests_per_s']} | {r['requests_per_s'] / base:.2f}x | {r['p50_ms']} | "
            f"{r['p99_ms']} | {r['start_s']} |"
        )


if __name__ == "__main__":
    main()
