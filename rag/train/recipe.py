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
from rag.train.windows import WindowRates, build_windows

if TYPE_CHECKING:
    from rag.train.export import Weights


def _finished(config: TrainConfig) -> bool:
    from rag.train.loop import load_checkpoint

    last = config.checkpoint_dir / "last.pt"
    return last.exists() and load_checkpoint(last)["step"] >= config.max_steps


def run(
    config: TrainConfig,
    out_dir: Path | None,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    rates: WindowRates | None = None,
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
    windows = build_windows(examples, config.seed, rates or WindowRates())
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
