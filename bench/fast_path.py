"""The fast-path benchmark (issue 5): every figure in one run, with the targets beside them.

It measures the fastest path, the heuristic reader (RAG_READER=heuristic); bench/learned_reader.py
measures the default learned reader against its own targets.

    python bench/fast_path.py [--index-dir index] [--squad ../shared/data/squad2-dev-half.json]

Prints: cold `rag ask` wall time (fresh process, index present), the bare
`python -c "import sentence_transformers"` time and their ratio (target ≤ 0.12); warm POST /ask p50/p95
against a real `rag serve` on loopback and one ONNX Runtime query embedding (target p50 ≤ 2×); bulk
embedding texts/s for both backends on the seed chunks (and on SQuAD paragraphs if given). Timings are
medians of repeated runs; run it on an otherwise idle machine.
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
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUESTION = "Who opposed the price floor?"


def wall(cmd: list[str], runs: int, env_extra: dict[str, str] | None = None) -> float:
    times = []
    env = {**os.environ, **(env_extra or {})}
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def questions() -> list[str]:
    gold = ROOT / "eval" / "gold.jsonl"
    return [json.loads(line)["question"] for line in gold.read_text(encoding="utf-8").splitlines() if line.strip()]


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_until_up(port: int, server: subprocess.Popen, timeout: float = 300) -> None:
    """Return once ``GET /health`` on ``port`` answers 200; exit if ``server`` dies or ``timeout`` passes."""
    deadline = time.time() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/health")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return
        except OSError:
            pass
        if time.time() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.2)


def http_latency(
    index_dir: Path, rounds: int, between: Callable[[], None], env_extra: dict[str, str] | None = None
) -> tuple[float, float, float, float]:
    """p50, p95 (ms), requests/s of sequential POST /ask over the gold questions against `rag serve`, and
    the server's resident memory (MB) after the last round.

    ``between`` runs after each round, with the server idle: the embedding floor is timed there, so both
    figures see the same drift of a shared machine's speed.
    """
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    server = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--index-dir", str(index_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(port, server, timeout=120)  # the port opens once the pipeline is loaded and warm
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        # http.client on one keep-alive connection: the leanest client in the standard library, so the
        # figures are the service's latency rather than a client library's (httpx adds ~0.5 ms a request)
        lat = []
        total = 0.0
        for _ in range(rounds):
            t_round = time.perf_counter()
            for q in questions():
                body = json.dumps({"question": q}).encode()
                t0 = time.perf_counter()
                conn.request("POST", "/ask", body=body, headers={"content-type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                lat.append((time.perf_counter() - t0) * 1000)
                assert resp.status == 200, data[:300]
            total += time.perf_counter() - t_round
            between()
        conn.close()
        rss = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat.sort()
    return statistics.median(lat), lat[int(0.95 * (len(lat) - 1))], len(lat) / total, rss


def bulk_rate(embedder, texts: list[str]) -> float:  # noqa: ANN001
    embedder.encode(texts[:8])
    t0 = time.perf_counter()
    embedder.encode(texts, batch_size=32)
    return len(texts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index-dir", type=Path, default=ROOT / "index")
    ap.add_argument("--squad", type=Path, default=ROOT.parent / "shared" / "data" / "squad2-dev-half.json")
    ap.add_argument("--runs", type=int, default=5, help="fresh-process runs of the cold `rag ask`")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of POST /ask over the gold questions")
    args = ap.parse_args()

    from rag.config import Settings
    from rag.embedding import load_embedder
    from rag.generations import resolve
    from rag.store import build_index, load_index

    s = Settings(index_dir=args.index_dir)
    if resolve(args.index_dir) is None:
        print(f"building {args.index_dir} from seeds/ ...", flush=True)
        build_index([s.corpus_dir], s, args.index_dir, lambda: load_embedder(s))
    onnx = load_embedder(s, "onnx")  # also makes sure the ONNX export is cached before the cold runs

    # byte-compile the project as an installed package is (pip compiles on install; a source checkout
    # compiles on first import unless PYTHONDONTWRITEBYTECODE is set, as on some CI machines)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "rag", "api"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )
    cold = wall(
        [sys.executable, "-m", "rag.cli", "ask", QUESTION, "--index-dir", str(args.index_dir)],
        args.runs,
        {"RAG_READER": "heuristic"},
    )
    imp = wall([sys.executable, "-c", "import sentence_transformers"], max(3, args.runs // 2))
    emb_times: list[float] = []

    def time_embeddings() -> None:  # one bare query embedding per gold question
        for text in questions():
            t0 = time.perf_counter()
            onnx.encode([text])
            emb_times.append((time.perf_counter() - t0) * 1000)

    time_embeddings()  # warm
    emb_times.clear()
    p50, p95, rps, _rss = http_latency(
        args.index_dir, rounds=args.rounds, between=time_embeddings, env_extra={"RAG_READER": "heuristic"}
    )
    one_embed = statistics.median(emb_times)

    chunks = [c.text for c in load_index(args.index_dir, s).chunks]
    rates = {"onnx": {"seeds": bulk_rate(onnx, chunks)}}
    squad_texts: list[str] = []
    if args.squad.is_file():
        data = json.loads(args.squad.read_text(encoding="utf-8"))
        squad_texts = [p["context"] for a in data["data"] for p in a["paragraphs"]]
        rates["onnx"]["squad"] = bulk_rate(onnx, squad_texts)
    torch_emb = load_embedder(s, "torch")
    rates["torch"] = {"seeds": bulk_rate(torch_emb, chunks)}
    if squad_texts:
        rates["torch"]["squad"] = bulk_rate(torch_emb, squad_texts)

    print(f"\nfast path, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    print(f"cold `rag ask` (fresh process, index present)   {cold:7.2f} s   (median of {args.runs})")
    print(f"bare `import sentence_transformers`            {imp:7.2f} s")
    print(f"  ratio cold ask / import                      {cold / imp:7.3f}     target <= 0.12")
    print(
        f"warm POST /ask p50 / p95                       {p50:7.1f} / {p95:.1f} ms   ({args.rounds * len(questions())} requests, {rps:.0f}/s sequential)"
    )
    print(f"one ONNX Runtime query embedding               {one_embed:7.2f} ms   (median of {len(emb_times)})")
    print(f"  ratio p50 / embedding                        {p50 / one_embed:7.2f}     target <= 2")
    for backend, r in rates.items():
        extra = f", SQuAD half {len(squad_texts)} paragraphs {r['squad']:.0f} texts/s" if "squad" in r else ""
        print(f"bulk {backend:5}: seeds {len(chunks)} chunks {r['seeds']:.0f} texts/s{extra}")


if __name__ == "__main__":
    main()
