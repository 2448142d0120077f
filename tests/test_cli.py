from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rag.cli import app
from rag.conflict import same_value
from rag.generations import files_of
from rag.store import read_manifest

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
runner = CliRunner()


def invoke(*args, env=None) -> Result:
    r = runner.invoke(app, list(args), env={"RAG_CORPUS_DIR": str(SEEDS), **(env or {})})
    # CliRunner catches every exception and reports exit code 1 without a traceback in the output, so a
    # crash would pass for a clean error: only exits the CLI chose itself are acceptable.
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r


@pytest.mark.slow
def test_ask_json_contract(seed_index_dir):
    q = "How big is Australia's strategic reserve?"
    r = invoke("ask", q, "--json", "--index-dir", str(seed_index_dir))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["question"] == q
    top = data["answers"][0]
    assert set(top) >= {"text", "score", "citations"}
    for c in top["citations"]:
        text = (SEEDS / c["doc_id"]).read_text(encoding="utf-8")
        assert text[c["quote_start"] : c["quote_end"]] == c["quote"]
        span = text[c["start"] : c["end"]]
        assert span == top["text"] or same_value(span, top["text"])  # the same value in other words
    first = top["citations"][0]  # the first place writes it as shown
    assert (SEEDS / first["doc_id"]).read_text(encoding="utf-8")[first["start"] : first["end"]] == top["text"]


@pytest.mark.slow
def test_ask_human_output(seed_index_dir):
    r = invoke("ask", "How big is Australia's strategic reserve?", "--index-dir", str(seed_index_dir))
    assert r.exit_code == 0, r.output
    assert "1.2 billion" in r.stdout and "score" in r.stdout and ".txt" in r.stdout


@pytest.mark.slow
def test_ask_builds_the_default_index_the_first_time(tmp_path, embedder, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a fresh checkout: no index/ yet (RAG_CORPUS_DIR names the seeds)
    r = invoke("ask", "When will the ministers meet?")
    assert r.exit_code == 0, r.output
    assert "no index in ./index yet: building it from" in r.stderr
    assert len(read_manifest(Path("index")).documents) == 5
    again = invoke("ask", "When will the ministers meet?")
    assert again.exit_code == 0 and "building" not in again.stderr  # built once


def test_ask_with_a_mistyped_index_dir_is_one_error_line_and_builds_nothing(tmp_path):
    typo = tmp_path / "idnex"
    r = invoke("ask", "When will the ministers meet?", "--index-dir", str(typo))
    assert r.exit_code == 1
    assert r.output == (
        f"error: No index in {typo}. Build one with `rag index --index-dir {typo}` "
        f"(or `rag index PATH --index-dir {typo}` for another corpus).\n"
    )
    assert not typo.exists() and not (tmp_path / ".idnex.lock").exists()


@pytest.mark.parametrize("question,needle", [("", "empty"), ("   ", "empty"), ("x" * 1001, "limit is 1000")])
def test_bad_questions_one_line_error(question, needle, tmp_path):
    r = invoke("ask", question, "--index-dir", str(tmp_path / "never-built"))
    assert r.exit_code == 1
    assert needle in r.output and "Traceback" not in r.output
    assert not (tmp_path / "never-built").exists()  # rejected before any work


def test_index_missing_path(tmp_path):
    r = invoke("index", str(tmp_path / "nope"), "--index-dir", str(tmp_path / "i"))
    assert r.exit_code == 1 and "not found" in r.output and "Traceback" not in r.output


def test_index_empty_corpus(tmp_path):
    (tmp_path / "c").mkdir()
    r = invoke("index", str(tmp_path / "c"), "--index-dir", str(tmp_path / "i"))
    assert r.exit_code == 1 and "no readable text" in r.output and r.output.startswith("error: ")


@pytest.mark.slow
def test_damaged_index_one_line_error(seed_index_dir, tmp_path):
    import shutil

    idx = tmp_path / "broken"
    shutil.copytree(seed_index_dir, idx)
    (files_of(idx) / "sentence_vectors.npy").write_bytes(b"junk")
    r = invoke("ask", "Who opposed the price floor?", "--index-dir", str(idx))
    assert r.exit_code == 1 and "rag index" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_index_command_reports_skips(tmp_path, embedder):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text("Alpha Corp makes magnets in Ohio.", encoding="utf-8")
    idx = str(tmp_path / "i")
    first = invoke("index", str(d), "--index-dir", idx)
    assert first.exit_code == 0 and "1 added" in first.output
    second = invoke("index", str(d), "--index-dir", idx)
    assert second.exit_code == 0 and "1 unchanged" in second.output and "0 texts embedded" in second.output


@pytest.mark.slow
def test_markdown_citations_index_the_file_unless_rendering_is_asked_for(tmp_path, embedder):
    from rag.config import Settings
    from rag.store import load_index

    d = tmp_path / "docs"
    d.mkdir()
    md = d / "beta.md"
    md.write_text(
        "# Beta\n\n**Beta Ltd** refines *gallium* in [Perth](https://example.com/perth) since 2019.\n", encoding="utf-8"
    )
    idx = str(tmp_path / "i")
    env = {"RAG_READER": "heuristic"}

    def ask() -> list[dict]:
        r = invoke("ask", "Since when does Beta Ltd refine gallium?", "--json", "--index-dir", idx, env=env)
        assert r.exit_code == 0, r.output
        citations = [c for a in json.loads(r.stdout)["answers"] for c in a["citations"]]
        assert citations
        return citations

    assert invoke("index", str(d), "--index-dir", idx, env=env).exit_code == 0
    text = md.read_text(encoding="utf-8")  # the default: offsets index the file as Path.read_text reads it
    for c in ask():
        assert text[c["quote_start"] : c["quote_end"]] == c["quote"]
    r = invoke("index", str(d), "--index-dir", idx, env={**env, "RAG_MARKDOWN_RENDERED": "true"})
    assert r.exit_code == 0 and "1 changed" in r.output, r.output  # the setting changed: re-extracted
    index = load_index(Path(idx), Settings(_env_file=None), check_settings=False)
    rendered = index.documents["beta.md"].text  # what GET /documents/beta.md returns
    assert rendered == "Beta\n\nBeta Ltd refines gallium in Perth since 2019.\n"
    for c in ask():
        assert rendered[c["quote_start"] : c["quote_end"]] == c["quote"] and "**" not in c["quote"]


def test_help_teaches():
    r = invoke("--help")
    assert r.exit_code == 0 and "rag ask" in r.output
    for command in ("index", "ask", "serve", "eval"):
        assert command in r.output
    r = invoke("ask", "--help")
    assert r.exit_code == 0 and "--json" in r.output and "Examples:" in r.output
    assert 'rag ask "Who opposed the price floor?"' in r.output  # \b keeps the examples unwrapped
    assert "<bool>" not in r.output and "--top-k N" in r.output


def test_usage_errors_are_one_clear_message(tmp_path):
    r = invoke("ask", "Who?", "--top-k", "0", "--index-dir", str(tmp_path / "i"))
    assert r.exit_code == 2 and "'--top-k': 0 is not in the range 1<=x<=20" in r.output
    r = invoke("ask")
    assert r.exit_code == 2 and "Missing argument 'QUESTION'" in r.output
    r = invoke("eval", "--index-dir", str(tmp_path / "i"))
    assert r.exit_code == 1 and "exactly one of --gold FILE or --squad FILE" in r.output
    assert not (tmp_path / "i").exists()


@pytest.mark.slow
def test_eval_squad_never_replaces_another_index(seed_index_dir, tmp_path):
    import shutil

    idx = tmp_path / "seeds-index"
    shutil.copytree(seed_index_dir, idx)
    before = {p.name: p.read_bytes() for p in idx.iterdir() if p.is_file()}
    squad = Path(__file__).resolve().parent / "data" / "squad2-dev-excerpt.json"
    r = invoke("eval", "--squad", str(squad), "--index-dir", str(idx), "--out", str(tmp_path / "out"))
    assert r.exit_code == 1 and "already holds an index of other documents" in r.output
    assert {p.name: p.read_bytes() for p in idx.iterdir() if p.is_file()} == before
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_eval_gold_writes_predictions_and_metrics(seed_index_dir, tmp_path):
    gold = tmp_path / "gold.jsonl"
    lines = [
        {"id": "a", "question": "How big is Australia's strategic reserve?", "answers": ["A$1.2 billion"],
         "doc_ids": ["004_237733e5469944db.txt"]},
        {"id": "b", "question": "Who won the 1998 football World Cup?", "answers": [], "doc_ids": []},
    ]  # fmt: skip
    gold.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    out = tmp_path / "out"
    r = invoke("eval", "--gold", str(gold), "--index-dir", str(seed_index_dir), "--out", str(out), "--no-baselines")
    assert r.exit_code == 0, r.output
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [p["id"] for p in preds] == ["a", "b"]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert "hybrid + reader (full)" in r.output and metrics


@pytest.mark.parametrize(
    "raised,code,line",
    [("KeyboardInterrupt", 130, "interrupted"), ("EOFError", 1, "Aborted!"), ("ValueError('boom')", 1, "a bug in rag")],
)
def test_main_exit_codes_for_ctrl_c_end_of_input_and_bugs(raised, code, line):
    """`rag` as a program (rag.cli.main): Ctrl-C is exit code 130 with one line, not click's "Aborted!"/1."""
    import os
    import subprocess
    import sys

    program = (
        "import sys, click\n"
        "from rag.cli import app, main\n"
        "@app.command('boom')\n"
        "def boom():\n"
        f"    raise {raised}\n"
        "sys.argv = ['rag', 'boom']\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAG_DEBUG"}
    r = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == code, r.stderr
    assert line in r.stderr and "Traceback" not in r.stderr


def test_main_keeps_click_usage_errors_and_help():
    import subprocess
    import sys

    bad = subprocess.run([sys.executable, "-m", "rag.cli", "ask"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Missing argument" in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "rag.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "ask" in ok.stdout


def test_serve_on_a_port_in_use_is_one_error_line_before_loading(tmp_path):
    import socket
    import subprocess

    from tests.servers import serve_command

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cmd = [*serve_command(), "--port", str(port), "--index-dir", str(tmp_path / "idx")]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use (another `rag serve`?). Stop that process, or choose "
        f"another port: rag serve --port {port + 1}"
    ]
