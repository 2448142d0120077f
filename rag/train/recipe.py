"""``rag train-reader``: data -> windows -> features -> train -> export, one function per step."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rag.reader.learned_model import base_model_path
from rag.train.data import load_all, load_examples
from rag.train.features import make_features
from rag.train.loop import TrainConfig, sample, train
from rag.train.validate import validation_items
from rag.train.windows import RetrievedRows, build_windows, chosen_for_retrieval, retrieved_rows

if TYPE_CHECKING:
    from rag.train.export import Weights


def _finished(config: TrainConfig) -> bool:
    from rag.train.loop import load_checkpoint

    last = config.checkpoint_dir / "last.pt"
    return last.exists() and load_checkpoint(last)["step"] >= config.max_steps


def cached_retrieved_rows(config: TrainConfig, examples: list, say: Callable[[str], None]) -> RetrievedRows:
    """The BM25 negatives' paragraphs (most of the preparation time), kept in the checkpoint directory and
    reused by a run with the same data, seed and rates (a resumed run, or the same data on another machine)."""
    import hashlib

    rates = config.rates
    key = hashlib.sha256(
        json.dumps(
            [
                [Path(f).name for f in config.train_files],
                len(examples),
                hashlib.sha256("".join(e.qid for e in examples).encode()).hexdigest(),
                config.seed,
                rates.retrieved,
                rates.retrieved_each,
            ]
        ).encode()
    ).hexdigest()
    path = config.checkpoint_dir / "retrieved-rows.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            say(f"retrieved negatives: reusing {path}")
            return {int(k): v for k, v in stored["rows"].items()}
    except (OSError, ValueError, AttributeError):
        pass
    t0 = time.time()
    rows = retrieved_rows(examples, chosen_for_retrieval(examples, config.seed, rates), rates.retrieved_each)
    config.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"key": key, "rows": rows}), encoding="utf-8")
    tmp.replace(path)
    say(f"retrieved negatives for {len(rows):,} questions in {time.time() - t0:.0f} s")
    return rows


def run(
    config: TrainConfig,
    out_dir: Path | None,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    weights: Weights = "fp16",
    say: Callable[[str], None] = print,
) -> Path:
    """Train (or resume) and, when ``out_dir`` is given, export the best checkpoint there."""
    from rag.reader.qa_windows import load_tokenizer

    base = base_model_path(config.base_model)
    tokenizer = load_tokenizer(Path(base) / "tokenizer.json")
    t0 = time.time()
    examples = sample(load_all(config.train_files), config.limit, config.seed)
    say(f"{len(examples):,} training questions ({sum(not e.answerable for e in examples):,} unanswerable)")
    rows = cached_retrieved_rows(config, examples, say) if config.rates.retrieved > 0 else {}
    windows = build_windows(examples, config.seed, config.rates, rows=rows)
    kinds: dict[str, int] = {}
    for w in windows:
        kinds[w.kind] = kinds.get(w.kind, 0) + 1
    features = make_features(windows, tokenizer, config.max_length, config.max_question_tokens)
    mean_len = sum(len(f.enc) for f in features) / max(1, len(features))
    say(
        f"{len(features):,} windows ({json.dumps(kinds)}), mean {mean_len:.0f} tokens; "
        f"prepared in {time.time() - t0:.0f} s"
    )
    val = (
        validation_items(load_examples(config.validation_file), config.val_questions, config.seed)
        if config.validation_file
        else []
    )
    best = train(config, features, val, tokenizer, resume=resume, stop_after=stop_after)
    if out_dir is not None and (stop_after is None or _finished(config)):
        from rag.train.export import export

        export(best, config, out_dir, weights=weights, say=say)
    return best
