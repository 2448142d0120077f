"""When do the documents disagree? Conflict notes on the seeds gold set, and the data behind the rule's constants.

Run from the repository root:

    python eval/conflicts.py            # the seeds: every eval/gold.jsonl question, each conflict note shown
    python eval/conflicts.py --dev      # the sweeps that chose rag.conflict's LIVE_FRACTION and COVERAGE
    python eval/conflicts.py --time     # microseconds per question, on the answers the two runs saved

The seeds report asks every question of ``eval/gold.jsonl`` (both splits) with the default settings (the
learned reader, top 3 answers) over an index of ``seeds/`` built in a temporary folder, and prints how many
answers carry a ``conflict`` and, for each, the question, its gold answers, the answers and their documents,
and the note. It only reports: the constants were not chosen on it.

``--dev`` answers the questions of ``tests/data/conflicts/questions.jsonl`` over that corpus (planted
disagreements, agreements in other words, single-source questions) and every question of the SQuAD 2.0
sample ``eval/data/squad2-dev-sample.json`` over its 173 paragraphs (documents that do not disagree: any
conflict there is counted as a false alarm), then prints, for each ``live_fraction`` and ``coverage``, the
planted disagreements flagged and the questions flagged that should not be. Answers go to ``--out``
(``eval/runs/conflicts``); ``--reuse`` sweeps the saved ones again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.conflict import COVERAGE, LIVE_FRACTION, find_conflict  # noqa: E402
from rag.types import Answer, Citation  # noqa: E402

PLANTED = ROOT / "tests" / "data" / "conflicts"
SQUAD = ROOT / "eval" / "data" / "squad2-dev-sample.json"
FRACTIONS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
COVERAGES = (0.0, 0.5, 0.75, 1.0)


def ask_all(corpus: Path, questions: list[str], work: Path) -> list[dict[str, Any]]:
    """Index ``corpus`` into ``work`` and answer every question (default settings); the answer JSONs."""
    import rag

    rag.index([corpus], index_dir=work / "index")
    qa = rag.open(work / "index")
    return [r.to_dict() for r in qa.ask_batch(questions)]


def answers_of(body: dict[str, Any]) -> list[Answer]:
    """The answers of an answer JSON as :class:`Answer` records (what find_conflict reads)."""
    fields = ("doc_id", "start", "end", "quote", "quote_start", "quote_end")
    return [
        Answer(a["text"], a["score"], tuple(Citation(*(c[f] for f in fields)) for c in a["citations"]))
        for a in body["answers"]
    ]


def saved(out: Path, name: str, make: Any, reuse: bool) -> list[dict[str, Any]]:
    path = out / f"{name}.jsonl"
    if reuse and path.is_file():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows = make()
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def describe(body: dict[str, Any]) -> list[str]:
    lines = []
    for i, a in enumerate(body["answers"]):
        docs = ", ".join(dict.fromkeys(c["doc_id"] for c in a["citations"]))
        lines.append(f"    [{i}] {a['text']!r} ({a['score']:.3f}) {docs}")
    return lines


# ------------------------------------------------------------------------------------------- seeds report
def seeds_report(out: Path, reuse: bool) -> None:
    gold = [json.loads(line) for line in (ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()]

    def make() -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="rag-conflicts-") as tmp:
            bodies = ask_all(ROOT / "seeds", [g["question"] for g in gold], Path(tmp))
        return [{"id": g["id"], "gold": g["answers"], **b} for g, b in zip(gold, bodies)]

    rows = saved(out, "seeds", make, reuse)
    flagged = [r for r in rows if "conflict" in r]
    answered = sum(1 for r in rows if r["answers"])
    several = sum(1 for r in rows if len(r["answers"]) > 1)
    print(f"seeds gold set: {len(flagged)} of {len(rows)} questions get a conflict note")
    print(f"  ({answered} answered, {several} with two answers or more)")
    for r in flagged:
        print(f"\n{r['id']} {r['question']}  gold: {r['gold']}")
        print("\n".join(describe(r)))
        print(f"    conflict {r['conflict']['answers']} {r['conflict']['kind']}: {r['conflict']['note']}")


# ------------------------------------------------------------------------------------------- dev sweeps
def planted_hit(row: dict[str, Any], conflict: Any) -> bool:
    """Whether ``conflict`` is the planted one: its kind, and its answers citing both planted documents."""
    if conflict is None or conflict.kind != row["kind"]:
        return False
    cited = {c["doc_id"] for i in conflict.answers for c in row["answers"][i]["citations"]}
    return set(row["docs"]) <= cited


def dev(out: Path, reuse: bool) -> None:
    planted_q = [json.loads(line) for line in (PLANTED / "questions.jsonl").read_text(encoding="utf-8").splitlines()]

    def make_planted() -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="rag-conflicts-") as tmp:
            bodies = ask_all(PLANTED / "docs", [q["question"] for q in planted_q], Path(tmp))
        return [{**q, **b} for q, b in zip(planted_q, bodies)]

    def make_squad() -> list[dict[str, Any]]:
        from rag.squad import load_squad, write_corpus

        docs, items = load_squad(SQUAD)
        with tempfile.TemporaryDirectory(prefix="rag-conflicts-") as tmp:
            corpus = write_corpus(docs, Path(tmp) / "corpus")
            bodies = ask_all(corpus, [it.question for it in items], Path(tmp))
        return [{"id": it.id, "gold": list(it.answers), **b} for it, b in zip(items, bodies)]

    planted = saved(out, "planted", make_planted, reuse)
    squad = saved(out, "squad", make_squad, reuse)
    disagree = [r for r in planted if r["role"] == "disagree"]
    others = [r for r in planted if r["role"] != "disagree"]
    print(f"planted: {len(disagree)} disagreements, {len(others)} questions that must not be flagged")
    print(f"SQuAD sample: {len(squad)} questions, none of whose documents disagree")
    print("\nlive_fraction coverage | planted flagged | planted false alarms | SQuAD flagged")
    for fraction in FRACTIONS:
        for coverage in COVERAGES:
            kw = {"live_fraction": fraction, "coverage": coverage}
            hits = sum(planted_hit(r, find_conflict(answers_of(r), r["question"], **kw)) for r in disagree)
            alarms = sum(find_conflict(answers_of(r), r["question"], **kw) is not None for r in others)
            sq = sum(find_conflict(answers_of(r), r["question"], **kw) is not None for r in squad)
            mark = "  <- chosen" if (fraction, coverage) == (LIVE_FRACTION, COVERAGE) else ""
            print(
                f"{fraction:13.2f} {coverage:8.2f} | {hits:7d} of {len(disagree)} | {alarms:12d} of {len(others)} | "
                f"{sq:5d} of {len(squad)}{mark}"
            )
    print("\nat the chosen constants:")
    print("\n".join(ratio_lines(planted)))
    for r in squad:
        c = find_conflict(answers_of(r), r["question"])
        if c is not None:
            print(f"\nSQuAD {r['id']} {r['question']}  gold: {r['gold'][:2]}")
            print("\n".join(describe(r)))
            print(f"    {c.note}")


def ratio_lines(planted: list[dict[str, Any]]) -> list[str]:
    """Each planted question: its answers' scores as fractions of the best, and what was flagged."""
    lines = []
    for r in planted:
        c = find_conflict(answers_of(r), r["question"])
        verdict = "flagged" if c is not None else "not flagged"
        if r["role"] == "disagree":
            verdict += " (planted: right)" if planted_hit(r, c) else " (planted: MISSED)"
        elif c is not None:
            verdict += " (FALSE ALARM)"
        best = r["answers"][0]["score"] if r["answers"] else 1.0
        shown = ", ".join(f"{a['text']!r} {a['score'] / best:.2f}" for a in r["answers"])
        lines.append(f"  {r['role']:8} {r['question']}: {verdict}; {shown}")
    return lines


def timing(out: Path) -> None:
    """Microseconds per question of find_conflict and of reconcile (merge, then find) over the saved answers."""
    import gc
    import statistics
    import time

    from rag.conflict import parse_amount, parse_date, parse_name, reconcile

    paths = [out / f"{name}.jsonl" for name in ("seeds", "planted", "squad")]
    rows = [
        json.loads(line) for path in paths if path.is_file() for line in path.read_text(encoding="utf-8").splitlines()
    ]
    if not rows:
        raise SystemExit(f"no saved answers in {out}: run this script (and --dev) first")
    cases = [(r["question"], answers_of(r)) for r in rows]
    for name, fn in (("find_conflict", find_conflict), ("reconcile", reconcile)):
        runs = []
        for cold in (True, False, False, False, False, False):
            if cold:  # the parsers' caches emptied: as for answers never seen before
                for f in (parse_amount, parse_date, parse_name):
                    f.cache_clear()
            gc.disable()
            t = time.perf_counter()
            for q, answers in cases:
                fn(answers, q) if fn is find_conflict else fn(q, answers)
            runs.append((time.perf_counter() - t) / len(cases) * 1e6)
            gc.enable()
        print(
            f"{name}: {runs[0]:.1f} µs a question with empty caches, {statistics.median(runs[1:]):.1f} µs warm "
            f"(median of 5; {len(cases)} questions, {sum(len(a) for _, a in cases)} answers)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", action="store_true", help="the planted corpus and SQuAD sweeps instead of the seeds")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "runs" / "conflicts", help="where answers go")
    ap.add_argument("--reuse", action="store_true", help="sweep the answers saved in --out instead of asking")
    ap.add_argument("--time", action="store_true", help="time find_conflict and reconcile on the saved answers")
    args = ap.parse_args()
    if args.time:
        timing(args.out)
    elif args.dev:
        dev(args.out, args.reuse)
    else:
        seeds_report(args.out, args.reuse)


if __name__ == "__main__":
    main()
