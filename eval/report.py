"""Regenerate eval/REPORT.md: the seeds test split and the SQuAD 2.0 sample, baselines beside the system.

Run from the repository root:  python eval/report.py [--squad-half PATH]
(it calls `rag eval` three times, writing runs under eval/runs/, then renders the tables; a few minutes
on 2 cores). ``--squad-half PATH`` adds a fourth run on a larger SQuAD 2.0 file (the half dev set,
6,078 questions; not bundled). ``--render-only`` re-renders the tables from the runs already in eval/runs/.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "eval" / "runs"
sys.path.insert(0, str(ROOT))

from rag.evaluate import markdown_table  # noqa: E402

HALF_NOTE = (
    "This is the learned reader's validation set: its training checkpoint, reading settings, score calibration "
    "and abstention threshold were chosen here (calibration and threshold on split 1 of the off-topic "
    "protocol, checked on split 2, see rag/models/reader/README.md), so these are validation figures, not a test."
)
WIKI_NOTE = (
    "New Wikipedia articles with SQuAD-style questions (Miller et al., 2020; CC BY 4.0): out of distribution "
    "for a reader trained on SQuAD; reported, never trained or tuned on. All its questions are answerable. A "
    "seeded random 2,000 of its 7,938 questions are asked (`rag eval --limit 2000`), against all paragraphs."
)


WIKI_QUESTIONS = 2000  # a seeded random 2,000 of its 7,938 questions (about 0.13 s a question with the learned reader)


def calibration_section() -> str:
    """The learned reader on the SQuAD 2.0 half dev set, from `python eval/calibrate.py` (its validation run)."""
    md = RUNS / "calibration" / "calibration.md"
    if not md.is_file():
        return ""
    body = md.read_text(encoding="utf-8").split("\n", 1)[1]
    return f"""
## SQuAD 2.0 half dev set, learned reader: calibration and abstention (validation)

From `python eval/calibrate.py --squad ../shared/data/squad2-dev-half.json`. The off-topic protocol: the
file's articles split in two halves by a fixed seed; split 1 indexes the first half only and asks its
answerable questions (must answer), its unanswerable ones (on-topic unanswerable, reported) and every
question of the second half (off-topic: must abstain); split 2 swaps the halves. The calibration and the
threshold (false abstention <= 5%) are fitted on split 1 and the seeds dev split, checked on split 2; the
open corpus (all 646 paragraphs) is reported at the same threshold. Percentages are shares of the
questions of that role; `f1_answerable` counts a withheld answer as 0. These are validation figures.
{body}"""


def rag_eval(*args: str, run: bool = True) -> dict:
    out = RUNS / args[-1]
    if not run:
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    cmd = [sys.executable, "-m", "rag.cli", "eval", *args[:-1], "--out", str(out)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def findings(seeds: dict, squad: dict) -> str:
    """A few plain sentences computed from the figures, so they stay true when the report is regenerated."""
    full, heur = "hybrid + reader (full)", "hybrid + heuristic reader"

    def pct(v: dict, name: str, key: str) -> str:
        return f"{v[name][key] * 100:.1f}"

    lines = [
        f"- Citations: {pct(seeds, full, 'citation_validity')}% valid on the seeds and "
        f"{pct(squad, full, 'citation_validity')}% on SQuAD ({squad[full]['citations']} citations checked).",
        f"- Retrieval finds a supporting document in the top 5 for {pct(seeds, full, 'recall_at_5')}% of answerable "
        f"seed questions and {pct(squad, full, 'recall_at_5')}% on SQuAD.",
    ]
    if heur in seeds and heur in squad:
        lines.append(
            f"- The learned reader (full system) against the heuristic reader on the same passages: F1 "
            f"{pct(seeds, full, 'f1')} vs {pct(seeds, heur, 'f1')} (seeds test), {pct(squad, full, 'f1')} vs "
            f"{pct(squad, heur, 'f1')} (SQuAD sample); on answerable questions {pct(seeds, full, 'f1_answerable')} "
            f"vs {pct(seeds, heur, 'f1_answerable')} and {pct(squad, full, 'f1_answerable')} vs "
            f"{pct(squad, heur, 'f1_answerable')}; median latency {seeds[full]['latency_p50_ms']:.1f} ms a question "
            "on the seeds (the heuristic reader's is not measured separately; it costs about 1 ms)."
        )
    always = squad[full]["unanswerable"] / squad[full]["questions"] * 100  # an abstention is right exactly there
    lines.append(
        f"- Abstention: {pct(seeds, full, 'abstention_unanswerable')}% of unanswerable seed questions and "
        f"{pct(squad, full, 'abstention_unanswerable')}% on SQuAD get no answer, at a false-abstention cost of "
        f"{pct(seeds, full, 'false_abstention_answerable')}% / {pct(squad, full, 'false_abstention_answerable')}%. "
        f"Always abstaining scores F1 {always:.1f} on SQuAD against the system's {pct(squad, full, 'f1')}."
    )
    return "\n".join(lines)


def big_section(run: dict, path: str, title: str, note: str) -> str:
    raw = Path(path).read_bytes()
    data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)["data"]
    paragraphs = sum(len(article["paragraphs"]) for article in data)
    unanswerable = run["variants"]["hybrid + reader (full)"]["unanswerable"]
    return f"""
## {title}, open corpus ({run["meta"]["questions"]} questions over {paragraphs} paragraphs)

`{path}` (not bundled: {len(data)} articles). {note} {unanswerable} questions are unanswerable, so
always abstaining would score F1 {100 * unanswerable / run["meta"]["questions"]:.1f}.

{markdown_table(run["variants"])}
"""


def main() -> None:
    args = sys.argv[1:]
    run = "--render-only" not in args
    half_path = args[args.index("--squad-half") + 1] if "--squad-half" in args else None
    wiki_path = args[args.index("--new-wiki") + 1] if "--new-wiki" in args else None
    seeds = rag_eval("--gold", "eval/gold.jsonl", "--split", "test", "seeds-test", run=run)
    dev = rag_eval("--gold", "eval/gold.jsonl", "--split", "dev", "seeds-dev", run=run)
    squad = rag_eval("--squad", "eval/data/squad2-dev-sample.json", "--no-baselines", "squad2-sample", run=run)
    # the large corpora keep their index under eval/runs/ (built once, reused while the paragraphs match)
    half_index, wiki_index = str(RUNS / "half-index"), str(RUNS / "wiki-index")
    half = (
        rag_eval("--squad", half_path, "--no-baselines", "--index-dir", half_index, "squad2-half", run=run)
        if half_path
        else None
    )
    wiki = (
        rag_eval(
            "--squad",
            wiki_path,
            "--no-baselines",
            "--limit",
            str(WIKI_QUESTIONS),
            "--index-dir",
            wiki_index,
            "new-wiki",
            run=run,
        )
        if wiki_path
        else None
    )
    command = "python eval/report.py" + (f" --squad-half {half_path}" if half_path else "")
    command += f" --new-wiki {wiki_path}" if wiki_path else ""
    s = seeds["meta"]["settings"]
    text = f"""# Evaluation report

Generated by `{command}` on {date.today().isoformat()} on a 2-core CPU machine. Settings:
embedding backend `{seeds["meta"].get("embedder_backend") or s.get("embedding_backend")}`, retrieval
`{s.get("retrieval")}` (depth {s.get("retrieve_k")}), reader `{s.get("reader")}` (the full system; the heuristic
reader, abstention threshold {s.get("abstain_threshold")}, is shown beside it on the same passages; the learned
reader abstains below a calibrated {s.get("learned_abstain_threshold")}, reading {s.get("learned_windows")} sentence windows).
Every figure below comes from that one command, which also writes each run's `predictions.jsonl` (every
answer with its citations and latency) and `metrics.json` under `eval/runs/` (not committed; rerun the
command to get them).

Columns: EM and F1 of the top answer (SQuAD normalisation, best over acceptable answers; an unanswerable
question scores 1 only if the system abstains), F1@3 the best of the top three answers, F1 ans. the top
answer's F1 on answerable questions only (how well it extracts, apart from abstaining), R@5 / MRR
retrieval of a supporting document among the passages handed to the reader (answerable questions),
citation validity (every citation checked against the source text), abstention rate on unanswerable
questions, false-abstention rate on answerable ones, and per-question latency of the full system (the
baselines reuse its query embedding, so their latency is not measured).

## Seeds, `test` split ({seeds["meta"]["questions"]} questions; never used for tuning)

{markdown_table(seeds["variants"])}

## Seeds, `dev` split ({dev["meta"]["questions"]} questions; the heuristic reader's threshold and rules were tuned here; the learned reader was not)

{markdown_table(dev["variants"])}

## SQuAD 2.0 dev sample, open corpus ({squad["meta"]["questions"]} questions over 173 paragraphs)

External data nobody here wrote (see `eval/data/LICENSE-SQuAD.md`): every question is asked against all
paragraphs; half are unanswerable. Reported, never tuned on; but two of its five articles (Normans,
Computational_complexity_theory) are in the half dev set on which the learned reader was validated, so for
the learned reader it is not independent of validation. For scale, the literature's closed-setting
figures on the full SQuAD 2.0 dev set (gold paragraph given, an easier task): always abstaining ≈ 50
F1, the SQuAD 2.0 paper's logistic regression ≈ 52 F1, BERT-base ≈ 76 F1.

{markdown_table(squad["variants"])}
{big_section(half, half_path, "SQuAD 2.0 half dev set (validation)", HALF_NOTE) if half and half_path else ""}
{calibration_section()}
{big_section(wiki, wiki_path, "SQuADShifts new_wiki (report only)", WIKI_NOTE) if wiki and wiki_path else ""}
## Reading the tables

{findings(seeds["variants"], squad["variants"])}

## Use of the test split

The learned reader was trained on SQuAD 1.1 train and the first ten SQuAD 2.0 train articles; its
checkpoint, reading settings (windows read, span scoring, headings) and calibration were chosen on the
SQuAD 2.0 half dev set, and its abstention threshold (and which calibration features to use) on split 1 of
that set's off-topic protocol together with the seeds `dev` split (and its paraphrased questions,
`eval/paraphrase.jsonl`). No choice about it looked at the seeds `test` split or at new_wiki. The heuristic reader's rules and threshold were chosen on the dev split. The test split's predictions were
looked at after changes, to report them; once (2026-12-01) this showed a bug, a cue meant for whole names
firing on a name cut short by trimming ('Chinese' of 'Chinese Foreign Ministry'), which was fixed, with
no dev change. No rule or setting was chosen for its effect on test figures.
"""
    (ROOT / "eval" / "REPORT.md").write_text(text, encoding="utf-8")
    print("wrote eval/REPORT.md")


if __name__ == "__main__":
    main()
