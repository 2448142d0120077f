"""RSS of `rag serve` across hot swaps (issue 25): re-index N times while it serves, read its RSS after each.

    python bench/swap_rss.py [--swaps 12] [--reader learned]

Indexes a copy of seeds/ into a temporary folder, serves it, then N times: edits one document, re-indexes
(in this process, the embedder loaded once), waits until `/health` shows the new build and one question
was answered on it, and reads the server's VmRSS. Target: RSS after 12 swaps <= 1.1x after the first,
and <= 500 MB on the seeds. Loopback only; bounded by --swaps and a 60 s wait per swap.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swaps", type=int, default=12)
    ap.add_argument("--reader", default="learned")
    args = ap.parse_args()
    from rag.config import Settings
    from rag.embedding import load_embedder
    from rag.store import build_index

    tmp = Path(tempfile.mkdtemp())
    corpus, idx = tmp / "docs", tmp / "index"
    shutil.copytree(ROOT / "seeds", corpus)
    settings = Settings(_env_file=None, index_dir=idx, corpus_dir=corpus, reader=args.reader)
    embedder = load_embedder(settings)
    build_index([corpus], settings, idx, embedder)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RAG_INDEX_POLL_S": "0.5", "RAG_READER": args.reader}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", str(ROOT))
    cmd = [
        sys.executable,
        "-m",
        "rag.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--index-dir",
        str(idx),
    ]
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed at the end
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                sys.exit((tmp / "serve.log").read_text(errors="replace")[-2000:])
            time.sleep(0.3)
        question = {"question": "How big is Australia's strategic reserve?"}
        httpx.post(f"{base}/ask", json=question, timeout=30)
        rows = [("start", rss_mb(proc.pid))]
        target = sorted(corpus.glob("*.txt"))[0]
        for i in range(args.swaps):
            built = httpx.get(f"{base}/health", timeout=5).json()["index_built_at"]
            with target.open("a", encoding="utf-8") as f:
                f.write(f"\nEdit {i}: the refinery in Perth doubled its output.\n")
            build_index([corpus], settings, idx, embedder)
            end = time.monotonic() + 60
            while httpx.get(f"{base}/health", timeout=5).json()["index_built_at"] == built:
                if time.monotonic() > end:
                    sys.exit(f"swap {i + 1} not seen within 60 s")
                time.sleep(0.2)
            httpx.post(f"{base}/ask", json=question, timeout=30)
            rows.append((f"swap {i + 1}", rss_mb(proc.pid)))
        for name, mb in rows:
            print(f"{name:>8}: {mb:6.0f} MB")
        first = rows[1][1]
        print(f"after {args.swaps} swaps / after the first: {rows[-1][1] / first:.2f}x")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
