"""What saying when the documents disagree costs a warm question (issue 24), measured A/B in one process.

``Pipeline.answer`` with ``rag.conflict.reconcile`` (merge the same values, find a conflict) and with it
replaced by a no-op, alternated question by question over the 104 questions of ``eval/gold.jsonl`` (the order
of the two flipped every other question): a busy machine's speed drifts too much for two separate server
runs to show a difference of microseconds. Prints the median time of each, the median of the paired
differences, and ``reconcile`` alone on the same answers.

    PYTHONPATH=. python bench/conflict.py [--index-dir index] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index-dir", type=Path, default=None, help="index to answer from (default: Settings.index_dir)")
    ap.add_argument("--rounds", type=int, default=5, help="passes over the questions")
    args = ap.parse_args()

    import rag.pipeline
    from rag.config import Settings
    from rag.conflict import reconcile
    from rag.pipeline import Pipeline

    settings = Settings()
    if args.index_dir is not None:
        settings = settings.model_copy(update={"index_dir": args.index_dir})
    gold = (ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in gold if line.strip()]
    pipeline = Pipeline.from_settings(settings)
    queries = pipeline.queries(questions)  # embedded once: the same work either way, left out

    def no_op(question, answers):  # noqa: ANN001, ANN202 - the pipeline before issue 24
        return list(answers), None

    def timed(query, with_conflict: bool) -> float:  # noqa: ANN001
        rag.pipeline.reconcile = reconcile if with_conflict else no_op
        t = time.perf_counter()
        pipeline.answer(query)
        return (time.perf_counter() - t) * 1000

    for q in queries:  # warm every code path and cache once
        timed(q, True), timed(q, False)
    on: list[float] = []
    off: list[float] = []
    for r in range(args.rounds):
        for i, q in enumerate(queries):
            first = (i + r) % 2 == 0
            a = timed(q, first)
            b = timed(q, not first)
            on.append(a if first else b)
            off.append(b if first else a)
    rag.pipeline.reconcile = reconcile
    diffs = [x - y for x, y in zip(on, off)]
    results = [pipeline.answer(q)[0] for q in queries]
    alone = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        for q, res in zip(questions, results):
            reconcile(q, res.answers)
        alone.append((time.perf_counter() - t) / len(questions) * 1e6)

    flagged = sum(r.conflict is not None for r in results)
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"reader {settings.reader}; {len(queries)} questions x {args.rounds} rounds; {flagged} with a conflict")
    print(f"Pipeline.answer with reconcile     median {statistics.median(on):7.3f} ms")
    print(f"Pipeline.answer without (no-op)    median {statistics.median(off):7.3f} ms")
    print(f"paired difference (with - without) median {statistics.median(diffs) * 1000:7.1f} µs")
    print(f"reconcile alone                    median {statistics.median(alone):7.1f} µs a question")


if __name__ == "__main__":
    main()
