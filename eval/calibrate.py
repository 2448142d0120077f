"""Fit the learned reader's score calibration and abstention threshold: answer when the documents answer.

Run from the repository root (about 20 minutes on 2 cores; ``--reuse`` re-fits from the saved answers):

    python eval/calibrate.py --squad ../shared/data/squad2-dev-half.json

The decision it implements (issue 20): abstain when the documents do not cover the question, and answer
whenever they do. So the objective is **false abstention <= 5%** on answerable validation questions, and
as many off-topic questions abstained as that allows. SQuAD 2.0's adversarial unanswerable questions
(written about the paragraph's own topic) are reported ("unanswerable about an indexed topic"), not fitted.

1. **Off-topic protocol.** The file's articles are split in two halves by a fixed seed. Split 1 indexes
   only the first half's paragraphs and asks the first half's answerable questions (must answer), its
   unanswerable ones (on-topic unanswerable: reported) and every question of the second half (off-topic:
   must abstain); split 2 swaps the halves. The seeds gold set's ``dev`` split counts too (its
   unanswerable questions are off-topic for the seeds). Every question is asked with the learned reader as
   configured in rag/config.py (windows read, neighbours), uncalibrated and with no abstention; the top
   answer's raw score, its window's answerability, the best answerability of all windows read, its F1 and
   whether a gold answer lies in the windows read go to ``<out>/raw-*.jsonl``.
2. **Open corpus.** All the file's paragraphs indexed, every question asked (the validation figure of
   the issue's targets: answerable F1 with false abstention <= 5%).
3. **Fit** on split 1 (its answerable and off-topic questions) two logistic calibrations of "the top answer
   is right" (F1 >= 0.5): of the raw score and the window's answerability (as before), and with the best
   answerability of the evidence added. The threshold of each is the highest at which false abstention on
   split 1's answerable questions and on the seeds dev split's stays <= 5%; the fit that then abstains on
   more off-topic questions of split 1 (and seeds dev) is kept. **Split 2 checks it**; the open corpus and
   the seeds ``test`` split (report only) are reported at that threshold.
4. Writes ``<model>/calibration.json`` (tied to the model file's sha256) and ``<out>/calibration.md``. The
   threshold is a setting (``learned_abstain_threshold`` in rag/config.py).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.metrics import f1, normalize  # noqa: E402
from rag.reader import calibration as cal  # noqa: E402

SPLIT_SEED = 20  # the fixed seed of the article halves
MAX_FALSE_ABSTENTION = 0.05


def article_titles(squad: Path) -> dict[str, str]:
    """Question id -> its article's title (unanswerable questions name no document, so read the file)."""
    import gzip

    raw = squad.read_bytes()
    data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)["data"]
    return {qa["id"]: art.get("title", "") for art in data for p in art["paragraphs"] for qa in p["qas"]}


def article_halves(titles: list[str], seed: int = SPLIT_SEED) -> tuple[set[str], set[str]]:
    """The articles in two halves, by a fixed seeded shuffle of the sorted titles."""
    order = sorted(set(titles))
    random.Random(seed).shuffle(order)
    return set(order[: len(order) // 2]), set(order[len(order) // 2 :])


def evidence_hit(answers: tuple[str, ...], windows: list, docs: dict[str, str]) -> bool:
    """Does a gold answer's text lie in one of the windows read (after SQuAD normalisation)?"""
    texts = [normalize(docs[d][s:e]) for d, s, e in windows]
    return any(normalize(a) and any(normalize(a) in t for t in texts) for a in answers)


def ask_all(pipeline, items: list, roles: dict[str, str], docs: dict[str, str], label: str) -> list[dict]:  # noqa: ANN001
    rows = []
    t0 = time.perf_counter()
    for n, item in enumerate(items, 1):
        result = pipeline.ask(item.question, top_k=1)
        top = result.answers[0] if result.answers else None
        x = top.extra if top else {}
        rows.append(
            {
                "id": item.id,
                "role": roles[item.id],
                "answerable": bool(item.answers),
                "text": top.text if top else None,
                "raw": top.score if top else 0.0,
                "p_answer": float(x.get("p_answer", 0.0)),
                "evidence": float(x.get("evidence_answerability", 0.0)),
                "f1": f1(top.text if top else None, list(item.answers)) if item.answers else 0.0,
                "hit": evidence_hit(item.answers, x.get("windows", []), docs) if item.answers else False,
            }
        )
        if n % 1000 == 0:
            print(f"{label}: {n}/{len(items)}, {(time.perf_counter() - t0) / n * 1000:.1f} ms each", flush=True)
    return rows


def pipeline_over(docs: list[tuple[str, str]], index_dir: Path, settings):  # noqa: ANN001, ANN201
    """A learned-reader pipeline (raw scores, no abstention) over an index of ``docs`` (built once)."""
    import tempfile

    from rag.embedding import load_embedder
    from rag.pipeline import Pipeline
    from rag.squad import check_squad_index_dir, write_corpus
    from rag.store import build_index, load_index

    s = settings.model_copy(update={"index_dir": index_dir, "learned_abstain_threshold": 0.0, "reader": "learned"})
    try:
        check_squad_index_dir(index_dir, [d for d, _ in docs])
        load_index(index_dir, s)
    except Exception:  # noqa: BLE001 - no usable index of these paragraphs yet: build one
        corpus = write_corpus(docs, Path(tempfile.mkdtemp(prefix="rag-calibrate-")) / "corpus")
        s = s.model_copy(update={"corpus_dir": corpus})
        build_index([corpus], s, index_dir, lambda: load_embedder(s), progress=True)
    pipeline = Pipeline.from_settings(s, build_if_missing=False)
    pipeline.reader.model.calibration = None  # raw scores
    return pipeline


def collect(squad: Path, model: Path | None, out: Path, work: Path, gold: Path, resume: bool = False) -> dict:
    from rag.config import Settings
    from rag.squad import load_gold, load_squad, select_split

    docs, items = load_squad(squad)
    article_of = article_titles(squad)
    settings = Settings(learned_reader_model=model)
    first, second = article_halves(list(article_of.values()))
    folder_article = {}
    for it in items:
        for d in it.doc_ids:
            folder_article[d.split("/")[0]] = article_of[it.id]
    text_of = dict(docs)
    runs: dict[str, list[dict]] = {}
    out.mkdir(parents=True, exist_ok=True)

    def run(name: str, make) -> None:  # noqa: ANN001 - make() -> rows
        path = out / f"raw-{name}.jsonl"
        if resume and path.is_file():
            runs[name] = [json.loads(line) for line in open(path, encoding="utf-8")]
            return
        runs[name] = make()
        with open(path, "w", encoding="utf-8") as fh:  # each run kept as soon as it is done
            fh.writelines(json.dumps(r) + "\n" for r in runs[name])

    def open_corpus() -> list[dict]:
        p = pipeline_over(docs, work / "index-open", settings)
        roles = {it.id: "answerable" if it.answers else "on_topic_unanswerable" for it in items}
        return ask_all(p, items, roles, text_of, "open corpus")

    def split(name: str, inside: set[str]) -> list[dict]:
        part = [(d, t) for d, t in docs if folder_article.get(d.split("/")[0]) in inside]
        p = pipeline_over(part, work / f"index-{name}", settings)
        roles = {
            it.id: ("answerable" if it.answers else "on_topic_unanswerable")
            if article_of[it.id] in inside
            else "off_topic"
            for it in items
        }
        return ask_all(p, items, roles, dict(part), name)

    seeds_pipeline: list = []  # opened once, for whichever seeds split is asked first

    def seeds(split_name: str) -> list[dict]:
        from rag.pipeline import Pipeline

        if not seeds_pipeline:
            s = settings.model_copy(update={"learned_abstain_threshold": 0.0, "reader": "learned"})
            seeds_pipeline.append(Pipeline.from_settings(s))
            seeds_pipeline[0].reader.model.calibration = None
        p = seeds_pipeline[0]
        seed_docs = {d: doc.text for d, doc in p.index.documents.items()}
        chosen = select_split(load_gold(gold), split_name)
        roles = {it.id: "answerable" if it.answers else "off_topic" for it in chosen}
        return ask_all(p, chosen, roles, seed_docs, f"seeds {split_name}")

    run("seeds_dev", lambda: seeds("dev"))
    run("seeds_test", lambda: seeds("test"))
    run("split1", lambda: split("split1", first))
    run("split2", lambda: split("split2", second))
    run("open", open_corpus)
    return runs


def features(rows: list[dict], evidence: bool):  # noqa: ANN201 - a numpy array
    """logit(raw score), logit(answerability of the answer's window) and, with ``evidence``, logit(best
    answerability of the windows read) of each top answer."""
    import numpy as np

    def logit(key: str) -> np.ndarray:
        x = np.clip(np.array([r.get(key, 0.0) for r in rows], dtype=np.float64), 1e-6, 1 - 1e-6)
        return np.log(x / (1 - x))

    cols = [logit("raw"), logit("p_answer")] + ([logit("evidence")] if evidence else [])
    return np.column_stack(cols)


def score_rows(w, rows: list[dict], evidence: bool) -> list[float]:  # noqa: ANN001
    import numpy as np

    z = features(rows, evidence) @ np.asarray(w[:-1]) + w[-1]
    return list(1 / (1 + np.exp(-z)))


def figures(rows: list[dict], scores: list[float], t: float) -> dict:
    """What the threshold ``t`` does on one set of questions."""
    shown = [s >= t for s in scores]

    def share(role: str, want_shown: bool) -> float | None:
        sel = [sh for r, sh in zip(rows, shown) if r["role"] == role]
        return 100 * sum(sh == want_shown for sh in sel) / len(sel) if sel else None

    ans = [(r, sh) for r, sh in zip(rows, shown) if r["role"] == "answerable"]
    right = [r["answerable"] and r["f1"] >= cal.RIGHT_F1 for r in rows]
    return {
        "questions": len(rows),
        "answerable": len(ans),
        "f1_answerable": 100 * sum(r["f1"] for r, sh in ans if sh) / max(1, len(ans)),
        "f1_answerable_always_answering": 100 * sum(r["f1"] for r, _ in ans) / max(1, len(ans)),
        "answer_in_windows_read": 100 * sum(r["hit"] for r, _ in ans) / max(1, len(ans)),
        "false_abstention": share("answerable", False),
        "off_topic_abstained": share("off_topic", False),
        "on_topic_unanswerable_abstained": share("on_topic_unanswerable", False),
        "f1_squad2_all": 100
        * cal.overall_f1(scores, [r["f1"] for r in rows], [r["answerable"] for r in rows], t),
        "ece_all_top_answers": cal.expected_calibration_error(scores, right),
        "auc_answerable_vs_off_topic": auc(
            [s for s, r in zip(scores, rows) if r["role"] == "answerable"],
            [s for s, r in zip(scores, rows) if r["role"] == "off_topic"],
        ),
        "auc_answerable_vs_on_topic_unanswerable": auc(
            [s for s, r in zip(scores, rows) if r["role"] == "answerable"],
            [s for s, r in zip(scores, rows) if r["role"] == "on_topic_unanswerable"],
        ),
    }


def auc(pos: list[float], neg: list[float]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    import numpy as np

    if not pos or not neg:
        return None
    both = np.concatenate([pos, neg])
    ranks = np.empty(len(both))
    order = np.argsort(both, kind="mergesort")
    ranks[order] = np.arange(1, len(both) + 1)
    for v in np.unique(both):  # average ranks of ties
        tie = both == v
        ranks[tie] = ranks[tie].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def highest_threshold(score_sets: list[tuple[list[dict], list[float]]], limit: float = MAX_FALSE_ABSTENTION) -> float:
    """The highest threshold (0.00-1.00) at which every set's answerable questions are withheld at most
    ``limit`` of the time."""
    best = 0.0
    for i in range(101):
        t = i / 100
        ok = True
        for rows, scores in score_sets:
            ans = [s for r, s in zip(rows, scores) if r["role"] == "answerable"]
            if ans and sum(s < t for s in ans) / len(ans) > limit:
                ok = False
        if ok:
            best = t
    return best


def fit(runs: dict[str, list[dict]]) -> dict:
    fit_rows = [r for r in runs["split1"] if r["role"] in ("answerable", "off_topic")]
    right = [r["answerable"] and r["f1"] >= cal.RIGHT_F1 for r in fit_rows]
    dev = runs["seeds_dev"]
    candidates = {}
    for name, evidence in (("raw score + answerability", False), ("+ evidence answerability", True)):
        w = cal.fit_logistic(features(fit_rows, evidence), right)
        t = highest_threshold([(runs["split1"], score_rows(w, runs["split1"], evidence)), (dev, score_rows(w, dev, evidence))])
        s1 = figures(runs["split1"], score_rows(w, runs["split1"], evidence), t)
        sd = figures(dev, score_rows(w, dev, evidence), t)
        candidates[name] = {
            "weights": [float(x) for x in w],
            "evidence": evidence,
            "threshold": t,
            "off_topic_abstained_split1_and_seeds_dev": (s1["off_topic_abstained"] + sd["off_topic_abstained"]) / 2,
        }
    chosen = max(candidates, key=lambda n: candidates[n]["off_topic_abstained_split1_and_seeds_dev"])
    c = candidates[chosen]
    report = {"chosen": chosen, "candidates": candidates, "threshold": c["threshold"], "sets": {}}
    for name, rows in runs.items():
        report["sets"][name] = figures(rows, score_rows(c["weights"], rows, c["evidence"]), c["threshold"])
    report["sets_always_answering"] = {
        name: figures(rows, score_rows(c["weights"], rows, c["evidence"]), 0.0) for name, rows in runs.items()
    }
    s2 = runs["split2"]
    s2_scores = score_rows(c["weights"], s2, c["evidence"])
    right2 = [r["answerable"] and r["f1"] >= cal.RIGHT_F1 for r in s2 if r["role"] in ("answerable", "off_topic")]
    users = [s for s, r in zip(s2_scores, s2) if r["role"] in ("answerable", "off_topic")]
    report["reliability_split2"] = [asdict(b) for b in cal.reliability(users, right2)]
    report["ece_split2_answerable_and_off_topic"] = cal.expected_calibration_error(users, right2)
    return report


NAMES = {
    "split1": "split 1 (fit)",
    "split2": "split 2 (check)",
    "open": "open corpus, all 646 paragraphs",
    "seeds_dev": "seeds gold dev",
    "seeds_test": "seeds gold test (report only)",
}


def markdown(report: dict, squad: Path) -> str:
    c = report["candidates"][report["chosen"]]
    w = c["weights"]
    keys = [
        "questions",
        "f1_answerable",
        "false_abstention",
        "off_topic_abstained",
        "on_topic_unanswerable_abstained",
        "f1_answerable_always_answering",
        "answer_in_windows_read",
        "f1_squad2_all",
        "ece_all_top_answers",
        "auc_answerable_vs_off_topic",
        "auc_answerable_vs_on_topic_unanswerable",
    ]
    sets = [n for n in NAMES if n in report["sets"]]

    def cell(v: object) -> str:
        if v is None:
            return "–"
        return f"{v:.3f}" if isinstance(v, float) and v < 1.5 else (f"{v:.1f}" if isinstance(v, float) else str(v))

    md = [
        f"# Learned reader calibration ({squad.name}): answer when the documents answer",
        "",
        f"Chosen fit ({report['chosen']}), on split 1's answerable and off-topic questions: weights "
        f"{', '.join(f'{x:.3f}' for x in w)} (logit raw, logit p_answer{', logit evidence' if c['evidence'] else ''}, "
        f"bias); threshold {report['threshold']:.2f}: the highest with false abstention <= 5% on split 1's "
        "answerable questions and on the seeds dev split's.",
        "",
        "| fit | threshold | off-topic abstained (split 1, seeds dev mean) |",
        "|---|---:|---:|",
        *(
            f"| {n} | {v['threshold']:.2f} | {v['off_topic_abstained_split1_and_seeds_dev']:.1f}% |"
            for n, v in report["candidates"].items()
        ),
        "",
        "| | " + " | ".join(NAMES[n] for n in sets) + " |",
        "|---|" + "---:|" * len(sets),
    ]
    for k in keys:
        md.append(f"| {k} | " + " | ".join(cell(report["sets"][n][k]) for n in sets) + " |")
    md += [
        "",
        f"Split 2, answerable and off-topic questions: ECE {report['ece_split2_answerable_and_off_topic']:.3f}.",
        "",
        "Reliability on split 2 (answerable and off-topic questions, calibrated):",
        "",
        cal.markdown_reliability([cal.Bin(**b) for b in report["reliability_split2"]]),
    ]
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad", type=Path, required=True, help="SQuAD 2.0 validation file (never a test file).")
    ap.add_argument("--model", type=Path, help="Reader model directory (default: the shipped one).")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "runs" / "calibration")
    ap.add_argument("--work", type=Path, default=ROOT / "eval" / "runs" / "calibration-indexes", help="Indexes.")
    ap.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold.jsonl", help="Seeds gold set.")
    ap.add_argument("--reuse", action="store_true", help="Re-fit from <out>/raw-*.jsonl without answering again.")
    ap.add_argument("--resume", action="store_true", help="Keep the runs already in <out>/raw-*.jsonl, do the rest.")
    ap.add_argument("--no-write", action="store_true", help="Report only; leave the model's calibration.json.")
    args = ap.parse_args()

    from rag.reader.learned_model import CALIBRATION, MANIFEST, MODEL_FILE, PACKAGED

    model = args.model or PACKAGED
    if args.reuse:
        runs = {
            f.stem.removeprefix("raw-"): [json.loads(line) for line in open(f, encoding="utf-8")]
            for f in sorted(args.out.glob("raw-*.jsonl"))
        }
    else:
        runs = collect(args.squad, args.model, args.out, args.work, args.gold, args.resume)
    report = fit(runs)
    c = report["candidates"][report["chosen"]]
    w = c["weights"]
    md = markdown(report, args.squad)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.md").write_text(md, encoding="utf-8")
    (args.out / "calibration.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not args.no_write:
        manifest = json.loads((model / MANIFEST).read_text(encoding="utf-8"))
        (model / CALIBRATION).write_text(
            json.dumps(
                {
                    "a": w[0],
                    "d": w[1],
                    "e": w[2] if c["evidence"] else 0.0,
                    "c": 0.0,
                    "b": w[-1],
                    "formula": "sigmoid(a * logit(raw) + d * logit(p_answer) + e * logit(evidence) + c * ranker + b)",
                    "model_sha256": manifest["files"][MODEL_FILE]["sha256"],
                    "right": f"top answer F1 >= {cal.RIGHT_F1}",
                    "fitted_on": f"{args.squad.name}, split 1 of the off-topic protocol (seed {SPLIT_SEED})",
                    "suggested_threshold": report["threshold"],
                    "check_on_split2": report["sets"]["split2"],
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    print(md)


if __name__ == "__main__":
    main()
