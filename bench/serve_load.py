"""Throughput of ``rag serve`` under load: 1 client asking in a row, then 16 concurrent clients (not a test).

Starts ``python -m rag.cli serve`` on a free loopback port (in ``--repo``, default this checkout, so an older
checkout can be measured with the same script), warms it, then sends the same question list (``eval/gold.jsonl``)
as POST /ask: first one request at a time, then from ``--clients`` threads at once (each on its own
keep-alive connection, plain ``http.client`` to keep the client's own CPU small: it shares the cores with
the server). Prints requests/s of each, their ratio, p50/p99 latency of each, errors, the server's RSS
(now and peak) and the sizes of the batches it formed (from its log, if it reports them).

    python bench/serve_load.py [--rounds 3] [--clients 16] [--env RAG_BATCH_MAX_QUESTIONS=1] [--repo DIR]

The VM is noisy: ``--rounds`` repeats both phases and prints each round and the median.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def rss_mb(pid: int) -> tuple[float, float]:
    """The process's resident set size now and its peak, in MB (Linux /proc)."""
    now = peak = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return now, peak


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def ask(self, question: str) -> tuple[int, float]:
        body = json.dumps({"question": question})
        t = time.perf_counter()
        self.conn.request("POST", "/ask", body=body, headers={"content-type": "application/json"})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - t


def phase(port: int, questions: list[str], clients: int) -> dict[str, float]:
    """Ask every question once, from ``clients`` threads sharing the list; requests/s and latencies."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    todo = iter(range(len(questions)))

    def work() -> None:
        c = Client(port)
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            status, took = c.ask(questions[i])
            with lock:
                lat.append(took)
                errors[0] += status != 200

    threads = [threading.Thread(target=work) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "rps": len(questions) / wall,
        "p50_ms": pct(lat, 50) * 1000,
        "p99_ms": pct(lat, 99) * 1000,
        "errors": errors[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=ROOT, help="checkout whose `rag serve` to run (default: this one)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2, help="times the question list is asked per phase")
    ap.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold.jsonl")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)")
    args = ap.parse_args()

    questions = [json.loads(x)["question"] for x in args.gold.read_text(encoding="utf-8").splitlines() if x.strip()]
    questions = questions * args.repeat
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_INDEX_POLL_S": "0", "RAG_MAX_QUEUED_REQUESTS": "64"}
    env.update(kv.split("=", 1) for kv in args.env)
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(cmd, cwd=args.repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"server: {' '.join(cmd[1:])} in {args.repo} {' '.join(args.env)}")
    print(f"questions: {len(questions)} per phase ({args.gold.name} x{args.repeat}), {args.clients} clients")
    try:
        deadline = time.time() + 180
        while True:
            try:
                if Client(port).ask("Who is the US Secretary of State?")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise SystemExit(f"the server did not start:\n{log.read()[-3000:]}")
            time.sleep(0.5)
        phase(port, questions[: len(questions) // args.repeat], 1)  # warm
        rows = []
        for r in range(args.rounds):
            one = phase(port, questions, 1)
            many = phase(port, questions, args.clients)
            rows.append((one, many))
            print(
                f"round {r + 1}: 1 client {one['rps']:.1f} req/s (p50 {one['p50_ms']:.0f} ms, p99 {one['p99_ms']:.0f}); "
                f"{args.clients} clients {many['rps']:.1f} req/s (p50 {many['p50_ms']:.0f} ms, p99 "
                f"{many['p99_ms']:.0f}); ratio {many['rps'] / one['rps']:.2f}x; errors {one['errors'] + many['errors']}"
            )
        now, peak = rss_mb(server.pid)

        def med(i: int, k: str) -> float:
            return statistics.median(row[i][k] for row in rows)

        print(
            f"median: 1 client {med(0, 'rps'):.1f} req/s, p50 {med(0, 'p50_ms'):.1f} ms, p99 {med(0, 'p99_ms'):.0f} ms | "
            f"{args.clients} clients {med(1, 'rps'):.1f} req/s, p50 {med(1, 'p50_ms'):.0f} ms, p99 {med(1, 'p99_ms'):.0f} ms | "
            f"ratio {statistics.median(m['rps'] / o['rps'] for o, m in rows):.2f}x | "
            f"errors {sum(o['errors'] + m['errors'] for o, m in rows)} | server RSS {now:.0f} MB (peak {peak:.0f})"
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
