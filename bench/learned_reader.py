"""The learned reader's speed and memory targets (issue 10), with the heuristic reader beside it.

    python bench/learned_reader.py [--index-dir index] [--runs 5] [--rounds 3]

Prints, for RAG_READER=learned (the default) and RAG_READER=heuristic: cold `rag ask` wall time (fresh
process, index present; median of --runs), warm POST /ask p50/p95 against a real `rag serve` on loopback
over the 104 gold questions (--rounds rounds, one keep-alive connection) and the server's resident
memory afterwards. Targets (learned): warm p50 <= 60 ms, cold ask <= 1.0 s, rag serve RSS <= 500 MB.
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fast_path import QUESTION, http_latency, wall  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index-dir", type=Path, default=ROOT / "index")
    ap.add_argument("--runs", type=int, default=5, help="fresh-process runs of the cold `rag ask`")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of POST /ask over the gold questions")
    args = ap.parse_args()

    from rag.config import Settings
    from rag.embedding import load_embedder
    from rag.generations import resolve
    from rag.store import build_index

    s = Settings(index_dir=args.index_dir)
    if resolve(args.index_dir) is None:
        build_index([s.corpus_dir], s, args.index_dir, lambda: load_embedder(s))
    load_embedder(s, "onnx")  # the ONNX export is cached before the cold runs
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "rag", "api"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )
    rows = {}
    for reader in ("learned", "heuristic"):
        env = {"RAG_READER": reader}
        cmd = [sys.executable, "-m", "rag.cli", "ask", QUESTION, "--index-dir", str(args.index_dir)]
        cold = wall(cmd, args.runs, env)
        p50, p95, rps, rss = http_latency(args.index_dir, args.rounds, lambda: None, env)
        rows[reader] = (cold, p50, p95, rps, rss)
    print(f"\n{'reader':10} {'cold ask s':>10} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7} {'RSS MB':>8}")
    for reader, (cold, p50, p95, rps, rss) in rows.items():
        print(f"{reader:10} {cold:10.2f} {p50:8.1f} {p95:8.1f} {rps:7.0f} {rss:8.0f}")
    cold, p50, _, _, rss = rows["learned"]
    print(
        f"\ntargets (learned): p50 {p50:.1f} <= 60 ms: {p50 <= 60}; cold {cold:.2f} <= 1.0 s: {cold <= 1.0}; "
        f"RSS {rss:.0f} <= 500 MB: {rss <= 500}"
    )


if __name__ == "__main__":
    main()
