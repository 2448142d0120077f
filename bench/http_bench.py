"""HTTP benchmark of POST /ask, next to the cost of one bare query embedding (not a test).

Starts ``python -m rag.cli serve`` on a free loopback port over ``--index-dir`` (the server builds the index
from seeds/ if there is none), sends POST /ask for a list of questions (``eval/gold.jsonl`` if present, else
a built-in list about the seeds) at each concurrency level, and prints requests/s and p50/p95 latency next
to the median time of one bare query embedding, ``pipeline.embedder.encode([q])`` (50 runs, in this
process, with the server idle), the whole pipeline without HTTP, and the ratio p50 / embedding.

    PYTHONPATH=. python bench/http_bench.py [--index-dir index] [--requests 200] [--concurrency 1,8]

``--in-process`` serves the app from a thread of this process instead (the client then shares the GIL with
the server, which adds a few ms), and times the embedding on the server's inference thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
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
    ap.add_argument("--in-process", action="store_true", help="serve from a thread of this process")
    args = ap.parse_args()

    import httpx

    from rag.config import Settings
    from rag.pipeline import Pipeline

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings()
    if args.index_dir is not None:
        settings = settings.model_copy(update={"index_dir": args.index_dir})
    questions, source = load_questions(args.gold)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
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
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    if args.in_process:
        import uvicorn

        from api.main import create_app

        pipeline = Pipeline.from_settings(settings)
        app = create_app(settings, pipeline=pipeline)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise SystemExit("the server did not start")
            time.sleep(0.05)
        inference = app.state.service.executor  # where POST /ask runs the pipeline

        def timed(fn) -> float:  # noqa: ANN001
            return inference.submit(median_ms, fn).result()

        def stop() -> None:
            server.should_exit = True
            thread.join(timeout=10)

        how = "in-process uvicorn"
    else:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        if args.index_dir is not None:
            cmd += ["--index-dir", str(args.index_dir)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while True:  # the server builds a missing index before it listens
            if proc.poll() is not None:
                raise SystemExit(f"the server exited ({proc.returncode}):\n{proc.stderr.read()}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        pipeline = Pipeline.from_settings(settings)  # this process's own copy, for the bare timings

        def timed(fn) -> float:  # noqa: ANN001
            return median_ms(fn)

        def stop() -> None:
            proc.terminate()
            proc.wait(timeout=10)

        how = "subprocess `rag serve`"
    ready_s = time.perf_counter() - t0
    emb = pipeline.embedder
    assert emb is not None and pipeline.index is not None
    threads = f", torch threads {sys.modules['torch'].get_num_threads()}" if "torch" in sys.modules else ""
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs{threads}; embedder {emb.model_name} ({emb.backend}); "
        f"index {settings.index_dir} ({len(pipeline.index.documents)} documents, {len(pipeline.index.chunks)} "
        f"chunks); server: {how}, ready in {ready_s:.1f} s"
    )

    rows = []
    limits = httpx.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    try:
        with httpx.Client(base_url=base, timeout=60, limits=limits) as client:

            def one(q: str) -> float:
                t = time.perf_counter()
                r = client.post("/ask", json={"question": q, "top_k": args.top_k})
                ms = (time.perf_counter() - t) * 1000
                if r.status_code != 200:
                    raise SystemExit(f"POST /ask answered {r.status_code}: {r.text}")
                return ms

            for q in questions:  # warm the connection(s) and every code path once
                one(q)
            for q in questions[:5]:
                emb.encode([q])
            embed_p50 = timed(lambda q: emb.encode([q]))  # right before the HTTP runs: this machine drifts
            ask_p50 = timed(lambda q: pipeline.ask(q, top_k=args.top_k))
            for c in levels:
                jobs = [questions[i % len(questions)] for i in range(args.requests)]
                t = time.perf_counter()
                with ThreadPoolExecutor(max_workers=c) as pool:
                    lat = list(pool.map(one, jobs))
                wall = time.perf_counter() - t
                rows.append((c, len(jobs), len(jobs) / wall, pct(lat, 50), pct(lat, 95)))
            embed_after = timed(lambda q: emb.encode([q]))
    finally:
        stop()

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
