"""Soak benchmark of `rag serve` (issue 12): many POST /ask at a fixed concurrency against a real server on
loopback, counting every outcome, and watching the server's memory.

    python bench/soak.py [--requests 10000] [--concurrency 16] [--reader heuristic] [--index-dir index]

Starts `python -m rag.cli serve` over --index-dir (built from seeds/ first if missing) with RAG_READER set
to --reader, then sends --requests POST /ask (the gold questions, in turn) from --concurrency threads, each
on its own keep-alive connection (http.client: the leanest client). Prints the status counts (503s from
backpressure apart from other 5xx), connection errors, p50/p99 latency, requests/s, and the server's
resident memory after the first 1,000 requests and at the end, with their ratio. Passes (exit 0) when
there is no 5xx other than 503, no connection error, and the final memory is within 10% of the early one.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fast_path import free_port, questions, rss_mb, wait_until_up  # noqa: E402

EARLY = 1000  # requests after which the baseline memory is read


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--reader", choices=["learned", "heuristic"], default="heuristic")
    ap.add_argument("--index-dir", type=Path, default=ROOT / "index")
    args = ap.parse_args()

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_READER": args.reader}
    server = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--index-dir", str(args.index_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    qs = questions()
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    done = 0
    early_rss: list[float] = []
    next_job = iter(range(args.requests))

    def worker() -> None:
        nonlocal done
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(next_job, None)
            if i is None:
                break
            body = json.dumps({"question": qs[i % len(qs)]}).encode()
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/ask", body=body, headers={"content-type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                with lock:
                    errors[exc.__class__.__name__] += 1
                continue
            with lock:
                statuses[status] += 1
                latencies.append((time.perf_counter() - t0) * 1000)
                done += 1
                if done == EARLY:
                    early_rss.append(rss_mb(server.pid))
        conn.close()

    try:
        wait_until_up(port, server)
        start_rss = rss_mb(server.pid)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            for f in [pool.submit(worker) for _ in range(args.concurrency)]:
                f.result()
        elapsed = time.perf_counter() - t0
        end_rss = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    latencies.sort()
    other_5xx = sum(n for s, n in statuses.items() if s >= 500 and s != 503)
    early = early_rss[0] if early_rss else start_rss
    ratio = end_rss / early
    print(f"reader {args.reader}, {args.requests} requests, {args.concurrency} concurrent connections, {elapsed:.0f} s")
    print(f"statuses: {dict(sorted(statuses.items()))}; 503 (backpressure): {statuses[503]}; other 5xx: {other_5xx}")
    print(f"connection errors: {sum(errors.values())} {dict(errors) if errors else ''}")
    if latencies:
        p50, p99 = statistics.median(latencies), latencies[int(0.99 * (len(latencies) - 1))]
        print(f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; {len(latencies) / elapsed:.0f} requests/s")
    print(
        f"server RSS: start {start_rss:.0f} MB, after {EARLY} requests {early:.0f} MB, end {end_rss:.0f} MB ({ratio:.3f}x)"
    )
    ok = other_5xx == 0 and not errors and ratio <= 1.10
    print("PASS" if ok else "FAIL", "(no 5xx but 503, no connection error, memory within 10%)")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
