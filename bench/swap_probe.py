"""Readers racing a writer (issue 21): loads and `rag ask` runs while `rag index` re-indexes the same folder.

    python bench/swap_probe.py                      # this checkout
    python bench/swap_probe.py --root /tmp/old      # another checkout of rag (e.g. `git archive` of an older commit)

A corpus of ``--files`` text files is indexed once; then ``--loads-during`` re-indexes run (each one changes
one file, so every build is a new version) while this process calls ``load_index`` in a loop, and
``--asks-during`` more while ``rag ask`` runs in a loop. Counted: loads and asks that failed (an error
although nothing was damaged), and loads that mixed two versions (a chunk whose text is not its document's
slice, or documents of two builds).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = "gallium lithium cobalt nickel refinery export levy auction reserve quota magnet tariff smelter".split()


def write_corpus(folder: Path, files: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        sentences = [
            f"Report {i} says the {WORDS[(i + j) % len(WORDS)]} market moved {j + i % 7} points in week {j}."
            for j in range(12)
        ]
        (folder / f"doc{i:03d}.txt").write_text(" ".join(sentences) + "\n", encoding="utf-8")


def bump(folder: Path, version: int) -> None:
    (folder / "doc000.txt").write_text(f"Version {version} of the first report. " * 20 + "\n", encoding="utf-8")


def mixed(index) -> bool:  # noqa: ANN001 - an IndexData of either checkout
    if any(index.documents[c.doc_id].text[c.start : c.end] != c.text for c in index.chunks):
        return True
    return (
        len(index.documents) != index.manifest.counts["documents"]
        or len(index.chunks) != index.manifest.counts["chunks"]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="the rag checkout to probe (default: this one)")
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--loads-during", type=int, default=3, help="re-indexes while load_index loops")
    ap.add_argument("--asks-during", type=int, default=8, help="re-indexes while `rag ask` loops")
    args = ap.parse_args()
    root = args.root.resolve()
    sys.path.insert(0, str(root))
    from rag.config import Settings
    from rag.errors import RagError
    from rag.store import load_index

    env = {**os.environ, "PYTHONPATH": str(root), "RAG_READER": "heuristic", "HF_HUB_OFFLINE": "1"}
    work = Path(tempfile.mkdtemp(prefix="swap-probe-"))
    corpus, idx = work / "corpus", work / "index"
    write_corpus(corpus, args.files)
    index_cmd = [sys.executable, "-m", "rag.cli", "index", str(corpus), "--index-dir", str(idx)]
    subprocess.run(index_cmd, cwd=root, env=env, check=True, capture_output=True)
    settings = Settings(_env_file=None, index_dir=idx, reader="heuristic")

    loads = failures = mixes = 0
    errors: dict[str, int] = {}
    version = 0
    for _ in range(args.loads_during):
        version += 1
        bump(corpus, version)
        writer = subprocess.Popen(index_cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while writer.poll() is None:
            loads += 1
            try:
                mixes += mixed(load_index(idx, settings))
            except RagError as exc:
                failures += 1
                key = str(exc).split(" (")[0][:90]
                errors[key] = errors.get(key, 0) + 1
        assert writer.returncode == 0
    print(f"load_index during {args.loads_during} re-indexes: {loads} loads, {failures} failed, {mixes} mixed versions")
    for key, n in sorted(errors.items(), key=lambda kv: -kv[1]):
        print(f"  {n} x {key}")

    asks = ask_failures = 0
    ask_cmd = [sys.executable, "-m", "rag.cli", "ask", "What moved in week 3?", "--index-dir", str(idx), "--json"]
    t0 = time.perf_counter()
    for _ in range(args.asks_during):
        version += 1
        bump(corpus, version)
        writer = subprocess.Popen(index_cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while writer.poll() is None:
            asks += 1
            done = subprocess.run(ask_cmd, cwd=root, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                ask_failures += 1
                print("  ask failed:", done.stderr.strip().splitlines()[-1][:160])
        assert writer.returncode == 0
    print(
        f"rag ask during {args.asks_during} re-indexes: {asks} asks, {ask_failures} failed "
        f"({time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
