"""The ``rag`` command line: index a corpus, ask questions, serve HTTP, evaluate."""

from __future__ import annotations

import json
import logging
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
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-embed everything, ignoring the old index.")] = False,
) -> None:
    """Build or update the index. Unchanged files are skipped; changed and removed ones are handled.

    Example: rag index seeds/ --index-dir index/
    """
    from rag.embedding import load_embedder
    from rag.store import build_index

    s = _settings(index_dir=index_dir)
    corpus = paths or [s.corpus_dir]
    try:
        report = build_index(corpus, s, s.index_dir, lambda: load_embedder(s), progress=True, rebuild=rebuild)
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
) -> None:
    """Run the HTTP service (POST /ask, GET /health, GET /documents; docs at /docs)."""
    try:
        from api.main import serve as run_server
    except ImportError as exc:
        raise _fail(f"the HTTP service is not available ({exc}); reinstall with `pip install -e .`") from None
    s = _settings(index_dir=index_dir)
    try:
        run_server(s, host=host, port=port)
    except RagError as exc:
        raise _fail(str(exc)) from None


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
