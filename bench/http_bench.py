"""HTTP benchmark of POST /ask, next to the cost of one bare query embedding (not a test).

Runs the real app in this process (uvicorn on a free loopback port, in a thread) over the index in
``--index-dir`` (built from seeds/ if missing), sends POST /ask for a list of questions (``eval/gold.jsonl``
if present, else a built-in list about the seeds) at each concurrency level, and prints requests/s and
p50/p95 latency, with the median time of ``pipeline.embedder.encode([q])`` measured in the same process
and the ratio p50 / embedding. The embedding and ``pipeline.ask`` are timed on the server's inference
thread, where POST /ask runs them.

    PYTHONPATH=. python bench/http_bench.py [--index-dir index] [--requests 200] [--concurrency 1,8]

The client runs in the same process (it shares the GIL with the server), so the figures are a slight
upper bound on server-side latency; at concurrency 1 the client is idle while the server works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUILTIN_QUESTIONS = [
    "Who is the US Secretary of State?",
    "How big is Australia's strategic reserve of critical minerals?",
    "Which minerals will Australia's reserve include?",
    "Who is the spokesperson of the Chinese Foreign Ministry?",
    "Where will the ministers meet?",
    "Which countries will send ministers to Washington?",
    "Who opposed the price floor?",
    "What did Washington rule out?",
    "Who is He Weiwen?",
    "Which newspaper first reported the meeting?",
    "How many countries will attend the summit?",
    "Which countries are G7 members?",
    "What did China restrict last April?",
    "When did Rare Earth Exchanges launch?",
    "What is a national-security liability?",
    "Who is urged to guarantee a minimum price for critical minerals?",
    "What happened to shares in Australian mining companies?",
    "Which territory has the US shown interest in taking over?",
    "What does China say countries need to follow?",
    "When was the Global Times article published?",
]


def load_questions(gold: Path) -> tuple[list[str], str]:
    if gold.is_file():
        qs = []
        for line in gold.read_text(encoding="utf-8").splitlines():
            if line.strip():
                q = json.loads(line).get("question")
                if isinstance(q, str) and q.strip():
                    qs.append(q.strip())
        if qs:
            return qs, str(gold)
    return BUILTIN_QUESTIONS, "built-in list"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index-dir", type=Path, default=None, help="index to serve (default: Settings.index_dir)")
    ap.add_argument("--requests", type=int, default=200, help="POST /ask requests per concurrency level")
    ap.add_argument("--concurrency", default="1,8", help="comma-separated concurrency levels")
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold.jsonl")
    args = ap.parse_args()

    import httpx
    import uvicorn

    from api.main import create_app
    from rag.config import Settings
    from rag.pipeline import Pipeline

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings()
    if args.index_dir is not None:
        settings = settings.model_copy(update={"index_dir": args.index_dir})
    questions, source = load_questions(args.gold)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]

    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    t0 = time.perf_counter()
    pipeline = Pipeline.from_settings(settings)
    load_s = time.perf_counter() - t0
    emb = pipeline.embedder
    assert emb is not None
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}; embedder {emb.model_name} ({emb.backend}); index {settings.index_dir} "
        f"({len(pipeline.index.documents)} documents, {len(pipeline.index.chunks)} chunks); load {load_s:.1f} s"
    )
    print(f"questions: {len(questions)} from {source}")

    def median_ms(fn, n: int = 50) -> float:
        times = []
        for i in range(n):
            q = questions[i % len(questions)]
            t = time.perf_counter()
            fn(q)
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times)

    port = free_port()
    app = create_app(settings, pipeline=pipeline)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the server did not start")
        time.sleep(0.05)

    rows = []
    limits = httpx.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as client:

        def one(q: str) -> float:
            t = time.perf_counter()
            r = client.post("/ask", json={"question": q, "top_k": args.top_k})
            ms = (time.perf_counter() - t) * 1000
            if r.status_code != 200:
                raise SystemExit(f"POST /ask answered {r.status_code}: {r.text}")
            return ms

        for q in questions:  # warm the connection(s) and every code path once
            one(q)
        # the bare query embedding and the whole pipeline without HTTP, timed on the server's own inference
        # thread (where POST /ask runs them) while it is idle, right before the HTTP runs
        inference = app.state.service.executor
        embed_p50 = inference.submit(median_ms, lambda q: emb.encode([q])).result()
        ask_p50 = inference.submit(median_ms, lambda q: pipeline.ask(q, top_k=args.top_k)).result()
        for c in levels:
            jobs = [questions[i % len(questions)] for i in range(args.requests)]
            t = time.perf_counter()
            with ThreadPoolExecutor(max_workers=c) as pool:
                lat = list(pool.map(one, jobs))
            wall = time.perf_counter() - t
            rows.append((c, len(jobs), len(jobs) / wall, pct(lat, 50), pct(lat, 95)))

        embed_after = inference.submit(median_ms, lambda q: emb.encode([q])).result()
    server.should_exit = True
    thread.join(timeout=10)

    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} (other work on the machine skews the figures)")
    print()
    print(
        f"bare query embedding  encode([q]) median of 50: {embed_p50:6.2f} ms  (after the runs: {embed_after:.2f} ms)"
    )
    print(f"pipeline.ask (no HTTP) median of 50:           {ask_p50:6.2f} ms")
    if max(embed_p50, embed_after) > 1.25 * min(embed_p50, embed_after):
        print("warning: the embedding time changed during the run (a busy machine); rerun for steady figures")
    print()
    print("concurrency  requests  req/s    p50 ms   p95 ms   p50/embedding")
    for c, n, rps, p50, p95 in rows:
        print(f"{c:>11}  {n:>8}  {rps:6.1f}  {p50:7.2f}  {p95:7.2f}  {p50 / embed_p50:8.2f}x")


if __name__ == "__main__":
    main()
