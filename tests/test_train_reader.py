"""The training recipe end to end on a few examples: train, interrupt, resume, export, load without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import app

ROOT = Path(__file__).resolve().parent.parent
EXCERPT = ROOT / "tests" / "data" / "squad2-dev-excerpt.json"


def _config(ckdir: Path, **kw):
    from rag.train.loop import TrainConfig

    base = dict(
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        checkpoint_dir=ckdir,
        max_steps=4,
        batch_size=4,
        max_length=96,
        eval_every=2,
        checkpoint_every=1,
        train_files=(str(EXCERPT),),
        validation_file=str(EXCERPT),
        val_questions=6,
        limit=16,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_interrupted_training_resumes_to_identical_weights_and_exports(tmp_path):
    import numpy as np
    import torch

    from rag.reader.learned_model import base_model_path, load_reader_model
    from rag.train import recipe
    from rag.train.loop import load_checkpoint, load_trained_state

    def run(ckdir: Path, **kw):
        return recipe.run(_config(ckdir), None, say=lambda _m: None, **kw)

    run(tmp_path / "straight")
    run(tmp_path / "split", stop_after=2)
    assert load_checkpoint(tmp_path / "split" / "last.pt")["step"] == 2
    (tmp_path / "split" / "last.pt.tmp999").write_bytes(b"half-written")  # as left by a kill during a save
    run(tmp_path / "split", resume=True)
    assert not list((tmp_path / "split").glob("*.tmp*"))
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "last.pt")
    assert a["step"] == b["step"] == 4
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    log = [json.loads(line) for line in open(tmp_path / "straight" / "log.jsonl", encoding="utf-8")]
    assert [r["step"] for r in log] == [2, 4] and all("f1_answerable" in r for r in log)

    # a second run into a used checkpoint folder without --resume is refused, not silently overwritten
    from rag.train.loop import CheckpointError

    with pytest.raises(CheckpointError, match="--resume"):
        run(tmp_path / "straight")
    with pytest.raises(CheckpointError, match="another training configuration"):
        recipe.run(_config(tmp_path / "straight", lr=3e-4), None, resume=True, say=lambda _m: None)

    # export: a small ONNX model that ONNX Runtime loads with the bundled embedding table, equal to torch
    from rag.train.export import export
    from rag.train.model import ReaderNet

    base = Path(base_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    net = ReaderNet.from_base(base, 13)
    load_trained_state(net, load_checkpoint(tmp_path / "straight" / "best.pt")["model"])
    net.eval()
    ids = np.array([[101, 2040, 2003, 102, 3000, 4000, 5000, 102], [101, 2054, 102, 3000, 4000, 102, 0, 0]])
    mask = (np.arange(8)[None, :] < np.array([[8], [6]])).astype(np.int64)
    types = np.array([[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 0, 0]])
    with torch.inference_mode():
        ref = [t.numpy() for t in net(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types))]
    for weights, tolerance, most in (("fp16", 0.05, 30e6), ("int8", 0.5, 16e6)):
        out = export(
            tmp_path / "straight" / "best.pt",
            _config(tmp_path / "straight"),
            tmp_path / f"model-{weights}",
            weights=weights,
            say=lambda _m: None,
        )
        assert (out / "reader.onnx").stat().st_size < most
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["weights"] == weights
        assert manifest["validation"]["torch_fp32"]["f1_answerable"] == pytest.approx(
            manifest["validation"][f"onnx_{weights}"]["f1_answerable"], abs=2.0
        )
        session = load_reader_model(out, base)
        got = session.run_arrays({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        for g, r, m in zip(got, ref, (mask, mask, None)):
            if m is not None:
                g, r = g[m.astype(bool)], r[m.astype(bool)]
            assert np.abs(g - r).max() < tolerance, weights


def test_train_reader_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [{"title": "x", "paragraphs": [{"context": "abc", "qas": [{"id": "1"}]}]}]}')
    r = CliRunner().invoke(app, ["train-reader", "--train", str(bad), "--checkpoint-dir", str(tmp_path / "ck")])
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert str(bad) in r.output and "qas[0]" in r.output and "'question'" in r.output


def test_train_reader_help_teaches():
    r = CliRunner().invoke(app, ["train-reader", "--help"])
    assert r.exit_code == 0
    assert "--resume" in r.output and "rag train-reader --train" in r.output


def test_training_module_import_is_light():
    """``rag --help`` registers train-reader without importing torch."""
    code = "import sys, rag.cli; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
