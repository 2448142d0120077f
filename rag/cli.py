"""The ``rag`` command line: index a corpus, ask questions, serve HTTP, evaluate.

Built on click (plain, well-kept, ~15 ms to import). typer 0.29 coerces every parameter through pydantic
TypeAdapters at parse time and renders flags as ``--json <bool>``; click gives standard help and leaves
more of a cold ``rag ask`` for the work itself.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from rag import __version__
from rag.errors import RagError

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.pipeline import Pipeline

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(message: str) -> NoReturn:
    """One red ``error:`` line on stderr and exit code 1: how every user-fixable problem ends."""
    click.secho(f"error: {message}", fg="red", err=True)
    raise click.exceptions.Exit(1)


def _settings(**overrides: object):  # noqa: ANN202
    from pydantic import ValidationError

    from rag.config import Settings

    try:
        s = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        _fail(f"bad setting RAG_{str(err['loc'][0]).upper()}: {err['msg']}")
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


index_dir_option = click.option(
    "--index-dir",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Index directory (default: index/, or RAG_INDEX_DIR).",
)


def ray_option(help_text: str):  # noqa: ANN201 - a click decorator
    """``--ray [ADDRESS]``: a flag that may take a value (alone: a local Ray)."""
    return click.option(
        "--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]", help=help_text
    )


def count_option(name: str, most: int, help_text: str):  # noqa: ANN201 - a click decorator
    return click.option(name, type=click.IntRange(1, most), default=None, metavar="N", help=help_text)


@click.group(context_settings=CONTEXT, epilog='Start with:  rag ask "Who opposed the price floor?"')
@click.version_option(__version__, "--version", prog_name="rag")
def app() -> None:
    """Offline extractive question answering with checkable citations.

    Answers are exact spans copied from your documents, each cited by document id, character offsets
    and the sentence around it. The first `rag ask` builds the default index (index/) from seeds/ (or
    RAG_CORPUS_DIR); any other index is built with `rag index`.
    Settings come from RAG_* environment variables or a .env file (see the README).
    """


@app.command(context_settings=CONTEXT, short_help="Build or update the index (default corpus: seeds/).")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path), metavar="[PATH]...")
@index_dir_option
@click.option(
    "--rebuild", is_flag=True, help="Re-embed everything (and re-export the ONNX model), ignoring the old index."
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="If another rag process is writing the same index, fail at once instead of waiting for it.",
)
@ray_option(
    "Read and embed on Ray (needs the ray extra): alone, a local Ray on this machine's CPUs; `auto`, the "
    "cluster started here by `ray start --head`; HOST:PORT, a remote cluster's head. Same index as without."
)
@count_option("--ray-workers", 4096, "With --ray: embedder workers (one ONNX session each); default one per 2 CPUs.")
def index(
    paths: tuple[Path, ...],
    index_dir: Path | None,
    rebuild: bool,
    no_wait: bool,
    ray_address: str | None,
    ray_workers: int | None,
) -> None:
    """Build or update the index from documents (folders are read recursively).

    Reads .txt and .md (UTF-8, UTF-16 with a byte order mark, or legacy encodings such as cp1252; a .md
    file as it is written, or with RAG_MARKDOWN_RENDERED=true the text its rendered page shows, which
    offsets then index), .pdf (the text layer; citations name the page), .html/.htm (the page's main text)
    and .docx.
    PATH defaults to the corpus the index was built from (for a new index, seeds/ or RAG_CORPUS_DIR); other
    PATHs replace that corpus (one warning line says so). Unchanged files are skipped; changed and removed ones
    are handled. A file that cannot be read (damaged, scanned PDF, encrypted, over RAG_MAX_FILE_MB) is
    named in one warning line and the build goes on. The new index replaces the old one only once it is
    complete; one process writes an index at a time (a second one waits, or fails with --no-wait).

    \b
    Examples:
      rag index                       # the bundled seeds, into index/
      rag index docs/ --index-dir my-index/
      rag index --index-dir my-index/ # update my-index/ from docs/, the corpus it records
      rag index docs/ --rebuild       # re-embed everything
      rag index big/ --ray            # read and embed on a local Ray (pip install -e ".[ray]")
      rag index big/ --ray 10.0.0.5:6379 --ray-workers 64
    """
    s = _settings(index_dir=index_dir)
    on_wait = lambda msg: click.echo(msg, err=True)  # noqa: E731
    corpus = list(paths) or None  # None: the corpus the index records (else seeds/, RAG_CORPUS_DIR)
    on_replace = lambda msg: click.secho(f"warning: {msg}", fg="yellow", err=True)  # noqa: E731
    try:
        if ray_address is not None:
            from rag.scale.ray_index import build_index_ray

            report = build_index_ray(
                corpus,
                s,
                s.index_dir,
                address=ray_address,
                workers=ray_workers,
                progress=True,
                rebuild=rebuild,
                wait=not no_wait,
                on_wait=on_wait,
                on_replace=on_replace,
            )
        else:
            from rag.embedding import load_embedder
            from rag.store import build_index

            report = build_index(
                corpus,
                s,
                s.index_dir,
                lambda: load_embedder(s, rebuild=rebuild),
                progress=True,
                rebuild=rebuild,
                wait=not no_wait,
                on_wait=on_wait,
                on_replace=on_replace,
            )
    except RagError as exc:
        _fail(str(exc))
    from rag.library import IndexSummary

    for line in IndexSummary.from_report(report).lines():
        click.echo(line)


def _warn_if_stale(pipeline: Pipeline, settings: Settings) -> None:
    """One warning line when indexed files changed on disk since the index was built."""
    from rag.freshness import staleness_warning

    warning = staleness_warning(pipeline.index, settings, settings.index_dir)
    if warning:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


def _highlight(quote: str, start: int, end: int) -> str:
    return quote[:start] + click.style(quote[start:end], bold=True, fg="green") + quote[end:]


@app.command(context_settings=CONTEXT, short_help="Answer a question, with citations.")
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the answer JSON (the same as POST /ask).")
@click.option(
    "--top-k", type=click.IntRange(1, 20), default=3, show_default=True, metavar="N", help="Most answers to show."
)
@index_dir_option
def ask(question: str, as_json: bool, top_k: int, index_dir: Path | None) -> None:
    """Answer QUESTION with spans copied from the documents, each with its citation.

    Each answer is followed by its citations: [doc_id start:end] and the quoted sentence, the answer
    highlighted. When answers from different documents disagree (an amount, a date, a name), one `note:`
    line above them names them and their documents. No answer: the documents do not answer; the closest
    passages read are shown. The
    default index (index/) is built from seeds/ (or RAG_CORPUS_DIR) the first time; another --index-dir
    that holds no index is an error naming the `rag index` command that builds it.

    \b
    Examples:
      rag ask "Who opposed the price floor?"
      rag ask "How big is Australia's strategic reserve?" --json --top-k 1
    """
    from rag.pipeline import Pipeline, clean_question

    s = _settings(index_dir=index_dir)
    try:
        clean_question(question, s.max_question_chars)  # fail fast, before loading anything
        pipeline = Pipeline.from_settings(s, progress=True, on_message=lambda msg: click.echo(msg, err=True))
        result = pipeline.ask(question, top_k=top_k)
    except RagError as exc:
        _fail(str(exc))
    _warn_if_stale(pipeline, s)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    if not result.answers:
        click.echo("The documents do not answer this question.")
        if result.closest:
            click.echo("The closest passages read:")
            for p in result.closest:
                click.echo(f"   [{p.doc_id} {p.start}:{p.end}] {' '.join(p.text.split())}")
        return
    if result.conflict is not None:  # the documents disagree: said once, above the answers it names
        click.secho("note: ", fg="yellow", bold=True, nl=False)
        click.echo(result.conflict.note)
    for i, a in enumerate(result.answers, start=1):
        click.secho(f"{i}. {a.text}", bold=True, nl=False)
        click.echo(f"   (score {a.score:.2f})")
        for c in a.citations:
            click.echo(
                f"   [{c.doc_id}{f' p.{c.page}' if c.page is not None else ''} {c.start}:{c.end}] "
                + _highlight(c.quote, c.start - c.quote_start, c.end - c.quote_start)
            )


@app.command(context_settings=CONTEXT, short_help="Run the HTTP service (POST /ask).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="TCP port.")
@index_dir_option
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log one line per request (costs about 1 ms a request).",
)
@ray_option("Serve with Ray Serve (needs the ray extra): alone, a local Ray; `auto` or HOST:PORT, a cluster.")
@count_option(
    "--replicas", 1024, "With --ray: copies of the service, each with its own index and model in memory (default 1)."
)
def serve(
    host: str, port: int, index_dir: Path | None, access_log: bool, ray_address: str | None, replicas: int | None
) -> None:
    """Run the HTTP service: POST /ask, GET /health, GET /documents (docs at /docs).

    The index and model load once, and the port opens only after a warm-up question. The default index
    (index/) is built from seeds/ (or RAG_CORPUS_DIR) the first time; with another --index-dir that holds
    no index, it answers 503 naming the `rag index` command until that index is built.

    \b
    Example:
      rag serve --port 8080 --index-dir my-index/
      curl -s localhost:8080/ask -H 'content-type: application/json' -d '{"question": "Who opposed the price floor?"}'
      rag serve --ray --replicas 2    # Ray Serve (pip install -e ".[ray]"): same endpoints, 2 replicas
    """
    if replicas is not None and ray_address is None:
        _fail("--replicas needs --ray (one `rag serve` process is one replica).")
    try:
        from api.main import check_port
        from api.main import serve as run_server
    except ImportError as exc:
        _fail(f"the HTTP service is not available ({exc}); reinstall with `pip install -e .`")
    s = _settings(index_dir=index_dir)
    if s.api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        click.secho(
            f"warning: serving on {host} without RAG_API_KEY: anyone who can reach port {port} can ask "
            "questions and read every indexed document. Set RAG_API_KEY to require a key.",
            fg="yellow",
            err=True,
        )
    try:
        if ray_address is not None:
            from rag.scale.ray_serve import serve_forever

            serve_forever(s, host=host, port=port, replicas=replicas or 1, address=ray_address, on_ready=click.echo)
        else:
            check_port(host, port)  # before loading anything: one error line, not uvicorn's Errno 98 later
            run_server(s, host=host, port=port, access_log=access_log)
    except RagError as exc:
        _fail(str(exc))


@app.command("eval", context_settings=CONTEXT, short_help="Score answers against a gold or SQuAD file.")
@click.option(
    "--gold", type=click.Path(path_type=Path), metavar="FILE", help="Gold set (JSON lines), e.g. eval/gold.jsonl."
)
@click.option(
    "--squad",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="A SQuAD 1.1/2.0 JSON file: each paragraph becomes a document, every question is asked against all.",
)
@click.option(
    "--split",
    type=click.Choice(["dev", "test", "all"]),
    default="all",
    show_default=True,
    help="Gold split to use (tune on dev, report test).",
)
@index_dir_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("eval/runs/latest"),
    show_default=True,
    metavar="DIR",
    help="Where predictions.jsonl and metrics.json go.",
)
@click.option(
    "--baselines/--no-baselines",
    default=True,
    show_default=True,
    help="Also run BM25-only, dense-only, the naive first-sentence reader and always-abstain.",
)
@click.option("--sweep", is_flag=True, help="Print F1 per abstention threshold (tune on the dev split only).")
@click.option(
    "--limit",
    type=click.IntRange(1),
    help="Ask only N questions, drawn at random with a fixed seed (the corpus stays whole).",
)
def eval_(
    gold: Path | None,
    squad: Path | None,
    split: str,
    index_dir: Path | None,
    out: Path,
    baselines: bool,
    sweep: bool,
    limit: int | None,
) -> None:
    """Evaluate answers against a gold set and print a metrics table.

    Writes predictions.jsonl (every answer with its citations and latency) and metrics.json to --out.
    With --squad, the SQuAD file becomes a corpus (doc ids <title>/<n>.txt) indexed in --index-dir, or
    in a temporary folder removed afterwards.

    \b
    Examples:
      rag eval --gold eval/gold.jsonl --split test --out eval/runs/seeds-test
      rag eval --gold eval/gold.jsonl --split dev --sweep
      rag eval --squad eval/data/squad2-dev-sample.json --out eval/runs/squad
    """
    import tempfile

    if (gold is None) == (squad is None):
        _fail("give exactly one of --gold FILE or --squad FILE")
    s = _settings(index_dir=index_dir)
    work: Path | None = None
    try:
        if squad is not None:
            from rag.squad import check_squad_index_dir, load_squad, write_corpus

            docs, items = load_squad(squad)
            if index_dir is not None:  # never replace an index of other documents (e.g. the seeds' one)
                check_squad_index_dir(index_dir, [d for d, _ in docs])
            work = Path(tempfile.mkdtemp(prefix="rag-squad-"))
            corpus = write_corpus(docs, work / "corpus")
            s = s.model_copy(update={"corpus_dir": corpus, "index_dir": index_dir or work / "index"})
            click.echo(f"SQuAD: {len(docs)} paragraphs, {len(items)} questions; indexing into {s.index_dir}", err=True)
            from rag.embedding import load_embedder
            from rag.store import build_index

            build_index([corpus], s, s.index_dir, lambda: load_embedder(s), progress=True)
        else:
            from rag.squad import load_gold, select_split

            items = select_split(load_gold(gold), split)
        if not items:
            _fail(f"no questions to evaluate (split {split!r} is empty)")
        if limit is not None and limit < len(items):
            import random

            keep = set(random.Random(13).sample(range(len(items)), limit))
            items = [it for i, it in enumerate(items) if i in keep]
        _evaluate(s, items, squad or gold, "squad" if squad else split, out, baselines, sweep)
    except RagError as exc:
        _fail(str(exc))
    finally:
        if work is not None and index_dir is None:  # the SQuAD corpus and index were only for this run
            shutil.rmtree(work, ignore_errors=True)


def _evaluate(s, items, source: Path, split: str, out: Path, baselines: bool, sweep: bool) -> None:  # noqa: ANN001
    from rich.progress import Progress

    from rag import evaluate
    from rag.pipeline import Pipeline

    pipeline = Pipeline.from_settings(s, progress=True)
    with Progress(transient=True) as bar:
        task = bar.add_task("answering", total=len(items))
        runs = evaluate.run(pipeline, items, with_baselines=baselines, on_progress=lambda n: bar.advance(task, n))
    assert pipeline.index is not None
    documents = {d: doc.text for d, doc in pipeline.index.documents.items()}
    all_metrics = {r.name: evaluate.metrics(r, documents) for r in runs}
    for line in evaluate.citation_warnings(all_metrics):
        logging.getLogger("rag.evaluate").warning("%s", line)
    meta = {
        "source": str(source),
        "split": split,
        "questions": len(items),
        "embedder_backend": getattr(pipeline.embedder, "backend", None),  # what "auto" resolved to
        "settings": {k: str(v) for k, v in s.model_dump().items()},
    }
    evaluate.write_outputs(out, runs, all_metrics, meta)
    click.echo(evaluate.markdown_table(all_metrics))
    click.echo(f"\nwrote {out / 'predictions.jsonl'} and {out / 'metrics.json'}")
    if sweep:
        full = next(r for r in runs if r.name == evaluate.FULL)
        for k in (1, 3):
            curve = evaluate.sweep_thresholds(full.records, k=k)
            best_t, best_f1 = max(curve, key=lambda tf: (tf[1], -tf[0]))
            label = "F1 of the top answer" if k == 1 else "F1 of the best of the top 3"
            click.echo(
                f"\nabstention threshold by {label}: best {best_t:.2f} ({best_f1 * 100:.1f}) on {len(items)} questions"
            )
            click.echo("  " + "  ".join(f"{t:.2f}:{f * 100:.1f}" for t, f in curve[20:81:5]))


def _register_training() -> None:
    from rag.train.cli import train_reader

    app.add_command(train_reader)


_register_training()


def main() -> None:
    _setup_logging()
    t0 = time.perf_counter()
    try:
        # not click's standalone mode, which turns Ctrl-C into "Aborted!" and exit code 1
        code = app.main(prog_name="rag", standalone_mode=False)
    except click.ClickException as exc:  # bad usage: click's own message and exit code
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        if isinstance(exc, click.exceptions.Abort) and not isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo("Aborted!", err=True)  # e.g. end of input at a prompt
            raise SystemExit(1) from None
        click.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except Exception as exc:  # a bug, not bad input: still one line, with the way to the details
        if os.environ.get("RAG_DEBUG"):
            raise
        click.secho(
            f"error: unexpected {exc.__class__.__name__}: {exc} (a bug in rag; RAG_DEBUG=1 shows the traceback)",
            fg="red",
            err=True,
        )
        raise SystemExit(1) from None
    finally:
        logging.getLogger("rag").debug("done in %.2f s", time.perf_counter() - t0)
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
