"""Grid-search the heuristic reader's weights and abstention threshold on the gold DEV split only.

Run from the repository root:  python eval/tune.py [--index-dir DIR]
Prints dev F1 (at the best threshold) for each weight setting, best last. The test split is never read.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag import evaluate  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.evidence import RankerWeights, SentenceRanker  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.reader.heuristic import HeuristicReader, ReaderWeights  # noqa: E402
from rag.squad import load_gold  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index-dir", type=Path, default=None)
    args = ap.parse_args()
    s = Settings()
    p = Pipeline.from_settings(s, args.index_dir)
    dev = [it for it in load_gold(Path("eval/gold.jsonl")) if it.split == "dev"]
    base = p.reader
    assert isinstance(base, HeuristicReader)
    results = []
    grid = itertools.product([0.3, 0.4, 0.5], [0.0, 0.15, 0.3], [0.2, 0.3, 0.4], [(1.0, 0.2, 0.1), (1.0, 0.35, 0.2)])
    for dense, passage, lexical, support in grid:
        rw = replace(RankerWeights(), dense=dense, passage=passage, lexical=lexical)
        w = replace(ReaderWeights(), support=support)
        ranker = SentenceRanker(base.index, base.idf, base.default_idf, rw)
        p.reader = HeuristicReader(base.index, base.idf, base.default_idf, threshold=0.0, weights=w, ranker=ranker)
        run = evaluate.run(p, dev, with_baselines=False)[0]
        t, f = max(evaluate.sweep_thresholds(run.records), key=lambda tf: (tf[1], -tf[0]))
        results.append((f, t, (rw, w)))
        print(f"dense={dense} passage={passage} lexical={lexical} support={support}: dev F1 {f * 100:.1f} at {t:.2f}")
    f, t, w = max(results, key=lambda r: r[0])
    print(f"\nbest on dev: F1 {f * 100:.1f} at threshold {t:.2f} with {w}")


if __name__ == "__main__":
    main()
