"""The ``rag`` command line: index a corpus, ask questions, serve HTTP, evaluate."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from rag.errors import RagError

app = typer.Typer(
    help="Offline extractive question answering with checkable citations.\n\n"
    'Start with:  rag ask "Who opposed the price floor?"  (builds the index from seeds/ on first use).',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IndexDirOpt = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional on 3.10
    typer.Option("--index-dir", help="Index directory (default: index/, or RAG_INDEX_DIR)."),
]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def _settings(**overrides: object):  # noqa: ANN202
    from pydantic import ValidationError

    from rag.config import Settings

    try:
        s = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        raise _fail(f"bad setting RAG_{str(err['loc'][0]).upper()}: {err['msg']}") from None
    return s.model_copy(update={k: v for k, v in overrides.items() if v is not None})


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    root = logging.getLogger("rag")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


@app.command()
def index(
    paths: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Argument(help="Files or folders of .txt/.md documents (default: seeds/, or RAG_CORPUS_DIR)."),
    ] = None,
    index_dir: IndexDirOpt = None,
    rebuild: Annotated[
        bool,
        typer.Option("--rebuild", help="Re-embed everything (and re-export the ONNX model), ignoring the old index."),
    ] = False,
) -> None:
    """Build or update the index. Unchanged files are skipped; changed and removed ones are handled.

    Example: rag index seeds/ --index-dir index/
    """
    from rag.embedding import load_embedder
    from rag.store import build_index

    s = _settings(index_dir=index_dir)
    corpus = paths or [s.corpus_dir]
    try:
        report = build_index(
            corpus, s, s.index_dir, lambda: load_embedder(s, rebuild=rebuild), progress=True, rebuild=rebuild
        )
    except RagError as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"indexed {report.documents} documents into {report.chunks} chunks in {report.path} "
        f"({len(report.added)} added, {len(report.changed)} changed, {len(report.removed)} removed, "
        f"{len(report.unchanged)} unchanged; {report.embedded} texts embedded; {report.seconds:.1f} s)"
    )


def _highlight(quote: str, start: int, end: int) -> str:
    return quote[:start] + typer.style(quote[start:end], bold=True, fg=typer.colors.GREEN) + quote[end:]


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer JSON (same as POST /ask).")] = False,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=20, help="Most answers to show.")] = 3,
    index_dir: IndexDirOpt = None,
) -> None:
    """Answer a question with spans copied from the documents, each with its citation.

    If no index exists yet, one is built from seeds/ first.

    Example: rag ask "Who opposed the price floor?" --json
    """
    from rag.pipeline import Pipeline, clean_question

    s = _settings(index_dir=index_dir)
    try:
        clean_question(question, s.max_question_chars)  # fail fast, before loading anything
        if not (s.index_dir / "manifest.json").exists():
            typer.echo(f"no index in {s.index_dir} yet: building it from {s.corpus_dir}/ ...", err=True)
        pipeline = Pipeline.from_settings(s, progress=True)
        result = pipeline.ask(question, top_k=top_k)
    except RagError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    if not result.answers:
        typer.echo("The documents do not answer this question (no answer scored above the threshold).")
        return
    for i, a in enumerate(result.answers, start=1):
        typer.secho(f"{i}. {a.text}", bold=True, nl=False)
        typer.echo(f"   (score {a.score:.2f})")
        for c in a.citations:
            typer.echo(
                f"   [{c.doc_id} {c.start}:{c.end}] "
                + _highlight(c.quote, c.start - c.quote_start, c.end - c.quote_start)
            )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    index_dir: IndexDirOpt = None,
    access_log: Annotated[bool, typer.Option(help="Log one line per request (off: ~1 ms less per request).")] = False,
) -> None:
    """Run the HTTP service (POST /ask, GET /health, GET /documents; docs at /docs)."""
    try:
        from api.main import serve as run_server
    except ImportError as exc:
        raise _fail(f"the HTTP service is not available ({exc}); reinstall with `pip install -e .`") from None
    s = _settings(index_dir=index_dir)
    try:
        run_server(s, host=host, port=port, access_log=access_log)
    except RagError as exc:
        raise _fail(str(exc)) from None


@app.command("eval")
def eval_(
    gold: Annotated[Optional[Path], typer.Option("--gold", help="Gold set (JSON lines), e.g. eval/gold.jsonl.")] = None,  # noqa: UP045
    squad: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--squad", help="A SQuAD 1.1/2.0 JSON file: each paragraph becomes a document."),
    ] = None,
    split: Annotated[str, typer.Option(help="Gold split to use: dev, test or all.")] = "all",
    index_dir: IndexDirOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Where predictions.jsonl and metrics.json go.")] = Path(
        "eval/runs/latest"
    ),
    baselines: Annotated[bool, typer.Option(help="Also run BM25-only, dense-only and the naive reader.")] = True,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="Print F1 per abstention threshold (tune on the dev split only).")
    ] = False,
) -> None:
    """Evaluate answers against a gold set and print a metrics table.

    Examples:

      rag eval --gold eval/gold.jsonl --split test --out eval/runs/seeds-test

      rag eval --squad data/squad2-dev-sample.json --out eval/runs/squad
    """
    import tempfile

    from rich.progress import Progress

    from rag import evaluate
    from rag.pipeline import Pipeline

    if (gold is None) == (squad is None):
        raise _fail("give exactly one of --gold FILE or --squad FILE")
    if split not in ("dev", "test", "all"):
        raise _fail(f"--split must be dev, test or all, not {split!r}")
    s = _settings(index_dir=index_dir)
    work: Path | None = None
    try:
        if squad is not None:
            from rag.squad import load_squad, write_corpus

            docs, items = load_squad(squad)
            work = Path(tempfile.mkdtemp(prefix="rag-squad-"))
            corpus = write_corpus(docs, work / "corpus")
            s = s.model_copy(update={"corpus_dir": corpus, "index_dir": index_dir or work / "index"})
            typer.echo(f"SQuAD: {len(docs)} paragraphs, {len(items)} questions; indexing into {s.index_dir}", err=True)
            from rag.embedding import load_embedder
            from rag.store import build_index

            build_index([corpus], s, s.index_dir, lambda: load_embedder(s), progress=True)
        else:
            from rag.squad import load_gold

            items = load_gold(gold)
            if split != "all":
                items = [it for it in items if it.split == split]
        if not items:
            raise _fail(f"no questions to evaluate (split {split!r} is empty)")
        pipeline = Pipeline.from_settings(s, progress=True)
        with Progress(transient=True) as bar:
            task = bar.add_task("answering", total=len(items))
            runs = evaluate.run(pipeline, items, with_baselines=baselines, on_progress=lambda n: bar.advance(task, n))
    except RagError as exc:
        if work is not None and index_dir is None:
            shutil.rmtree(work, ignore_errors=True)
        raise _fail(str(exc)) from None
    assert pipeline.index is not None
    documents = {d: doc.text for d, doc in pipeline.index.documents.items()}
    all_metrics = {r.name: evaluate.metrics(r, documents) for r in runs}
    meta = {
        "source": str(squad or gold),
        "split": "squad" if squad else split,
        "questions": len(items),
        "embedder_backend": getattr(pipeline.embedder, "backend", None),  # what "auto" resolved to
        "settings": {k: str(v) for k, v in s.model_dump().items()},
    }
    if work is not None and index_dir is None:  # the SQuAD corpus and index were only for this run
        shutil.rmtree(work, ignore_errors=True)
    evaluate.write_outputs(out, runs, all_metrics, meta)
    typer.echo(evaluate.markdown_table(all_metrics))
    typer.echo(f"\nwrote {out / 'predictions.jsonl'} and {out / 'metrics.json'}")
    if sweep:
        full = next(r for r in runs if r.name == evaluate.FULL)
        for k in (1, 3):
            curve = evaluate.sweep_thresholds(full.records, k=k)
            best_t, best_f1 = max(curve, key=lambda tf: (tf[1], -tf[0]))
            label = "F1 of the top answer" if k == 1 else "F1 of the best of the top 3"
            typer.echo(
                f"\nabstention threshold by {label}: best {best_t:.2f} ({best_f1 * 100:.1f}) on {len(items)} questions"
            )
            typer.echo("  " + "  ".join(f"{t:.2f}:{f * 100:.1f}" for t, f in curve[20:81:5]))


def main() -> None:
    _setup_logging()
    t0 = time.perf_counter()
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    finally:
        logging.getLogger("rag").debug("done in %.2f s", time.perf_counter() - t0)


if __name__ == "__main__":
    main()
