"""Compare ways of reading (windows read, neighbours, distinct windows, span scoring) on validation.

    python eval/reading_sweep.py --squad ../shared/data/squad2-dev-half.json --questions 800

Open corpus (all the file's paragraphs indexed, the index of eval/calibrate.py reused), a seeded sample of
its answerable questions, no abstention: answerable F1 of the top answer, the share whose gold answer lies
in the windows read, and the reader's time per question. Validation only: never run it on a report-only set.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from calibrate import evidence_hit, pipeline_over  # noqa: E402

from rag.metrics import f1  # noqa: E402

CONFIGS = {  # name: (windows, neighbours, distinct, shared scoring, headings, guided)
    "2 windows": (2, 1, False, False, True, 0),
    "2 windows, shared": (2, 1, False, True, True, 0),
    "2 distinct, shared": (2, 1, True, True, True, 0),
    "3 distinct, shared": (3, 1, True, True, True, 0),
    "4 distinct, shared": (4, 1, True, True, True, 0),
    "3 windows, shared": (3, 1, False, True, True, 0),
    "2 distinct, 2 neighbours, shared": (2, 2, True, True, True, 0),
    "3 distinct, shared, 1 guided": (3, 1, True, True, True, 1),
    "3 distinct, shared, 2 guided": (3, 1, True, True, True, 2),
    "shipped: 3 distinct, shared, 1 guided, no headings": (3, 1, True, True, False, 1),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad", type=Path, required=True)
    ap.add_argument("--model", type=Path, action="append", help="Reader model directory (repeat to compare).")
    ap.add_argument("--questions", type=int, default=800)
    ap.add_argument("--configs", nargs="*", help="Names of CONFIGS to run (default: all).")
    ap.add_argument("--work", type=Path, default=ROOT / "eval" / "runs" / "calibration-indexes")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "runs" / "reading-sweep.jsonl")
    args = ap.parse_args()

    from rag.config import Settings
    from rag.squad import load_squad

    docs, items = load_squad(args.squad)
    text = dict(docs)
    answerable = [it for it in items if it.answers]
    sample = random.Random(7).sample(answerable, min(args.questions, len(answerable)))
    for model in args.model or [None]:
        p = pipeline_over(docs, args.work / "index-open", Settings(learned_reader_model=model))
        r = p.reader
        for name in args.configs or CONFIGS:
            r.windows, r.neighbours, r.distinct, r.shared, r.headings, r.guided = CONFIGS[name]
            if r.guided and r.guide is None:
                from rag.reader.learned import guide_reader

                r.guide = guide_reader(r.ranker)
            f1s, hits, t0 = [], [], time.perf_counter()
            for it in sample:
                top = next(iter(p.ask(it.question, top_k=1).answers), None)
                f1s.append(f1(top.text if top else None, list(it.answers)))
                hits.append(evidence_hit(it.answers, top.extra.get("windows", []) if top else [], text))
            ms = (time.perf_counter() - t0) / len(sample) * 1000
            row = {
                "model": str(model or "shipped"),
                "config": name,
                "questions": len(sample),
                "f1_answerable": round(100 * sum(f1s) / len(f1s), 2),
                "answer_in_windows_read": round(100 * sum(hits) / len(hits), 2),
                "ms_per_question": round(ms, 1),
            }
            print(json.dumps(row), flush=True)
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
