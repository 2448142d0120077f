"""The training loop: fixed seeds, a progress bar, validation logged as it goes, atomic checkpoints, resume.

A checkpoint (``<checkpoint_dir>/last.pt``) holds the network, optimiser and schedule state and the step;
the batch order is a pure function of the seed, so resuming replays it from that step. A checkpoint is
written to a temporary file and renamed into place, so an interrupted run (Ctrl-C, ``kill -9``, a session
that stops) never leaves a damaged one. ``best.pt`` is the checkpoint with the best validation F1.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

from rag.errors import RagError
from rag.reader.learned_model import base_model_path
from rag.train.data import Example
from rag.train.features import Feature, epoch_batches
from rag.train.validate import ValItem, predict, scores
from rag.train.windows import WindowRates

FROZEN = ("encoder.embeddings.word_embeddings.weight",)  # never trained: not saved in checkpoints


class CheckpointError(RagError):
    """A checkpoint cannot be read or belongs to another training configuration."""


@dataclass(frozen=True)
class TrainConfig:
    base_model: str
    checkpoint_dir: Path
    seed: int = 13
    max_steps: int = 2400
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.06
    max_length: int = 160
    max_question_tokens: int = 40
    eval_every: int = 200
    checkpoint_every: int = 50
    threads: int = 2
    train_files: tuple[str, ...] = field(default_factory=tuple)
    validation_file: str | None = None
    val_questions: int = 400
    limit: int | None = None  # use only this many training questions (drawn with the seed)
    shared_norm: bool = False  # span softmax over all of a question's windows (rag/train/model.py)
    init_from: str | None = None  # a shipped reader model directory to start from instead of the bare encoder
    rates: WindowRates = field(default_factory=WindowRates)  # which windows are cut (rag/train/windows.py)
    device: str = "cpu"  # cpu, or cuda (bf16 autocast): where the steps run; not part of a run's identity

    def fingerprint(self) -> dict:
        """What must match for a checkpoint to be resumed: not the logging/checkpoint cadence, not the
        device, and not ``max_steps`` (a run may be lengthened or shortened on resume; the learning-rate
        schedule then follows the new total from the step reached)."""
        d = asdict(self)
        for k in (
            "checkpoint_dir",
            "eval_every",
            "checkpoint_every",
            "threads",
            "val_questions",
            "max_steps",
            "device",
        ):
            d.pop(k)
        if not self.shared_norm:  # as written before these options existed
            d.pop("shared_norm")
        if self.init_from is None:
            d.pop("init_from")
        if self.rates == WindowRates():
            d.pop("rates")
        return d


def lr_factor(step: int, max_steps: int, warmup: float) -> float:
    """Linear warm-up over ``warmup`` of the steps, then linear decay to zero."""
    w = max(1, int(max_steps * warmup))
    if step < w:
        return (step + 1) / w
    return max(0.0, (max_steps - step) / max(1, max_steps - w))


def trained_state(net) -> dict:  # noqa: ANN001 - a ReaderNet
    """The network's weights less the frozen embedding table (taken from the base model when loading)."""
    return {k: v.detach().to("cpu") for k, v in net.state_dict().items() if k not in FROZEN}


def load_trained_state(net, state: dict) -> None:  # noqa: ANN001 - a ReaderNet
    """Load ``state`` into ``net``; only the frozen table may be missing (older checkpoints hold it too)."""
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) - set(FROZEN):
        raise CheckpointError(
            f"the checkpoint does not fit the network (missing {sorted(set(missing) - set(FROZEN))[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}); was it written by another base model?"
        )


def _save(obj: dict, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is one clear error
        raise CheckpointError(
            f"Checkpoint {path} cannot be read ({exc.__class__.__name__}); delete it to start over."
        ) from None


def _log(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def train(
    config: TrainConfig,
    features: Sequence[Feature],
    val_items: Sequence[ValItem],
    tokenizer,  # noqa: ANN001
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Train to ``max_steps`` (or resume towards it); return the path of the best checkpoint.

    ``stop_after`` ends this run after that many steps (with a checkpoint), to split training across
    sessions; ``--resume`` continues exactly where it stopped (same batches, same random state).
    """
    import numpy as np
    import torch
    from tqdm import tqdm

    from rag.train.model import ReaderNet, reader_loss

    torch.set_num_threads(config.threads)
    ckdir = config.checkpoint_dir
    ckdir.mkdir(parents=True, exist_ok=True)
    last, best_path, log = ckdir / "last.pt", ckdir / "best.pt", ckdir / "log.jsonl"
    for stale in ckdir.glob("*.pt.tmp*"):
        stale.unlink(missing_ok=True)  # left by a run killed while saving

    net = ReaderNet.from_base(base_model_path(config.base_model), config.seed)
    if config.init_from and not (resume and last.exists()):
        from rag.train.init import state_from_model_dir

        load_trained_state(net, state_from_model_dir(Path(config.init_from)))
    device = torch.device(config.device)
    net.to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    params = [p for p in net.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    step, best = 0, -math.inf
    if resume and last.exists():
        state = load_checkpoint(last)
        stored = {k: v for k, v in (state.get("config") or {}).items() if k != "max_steps"}
        if stored != config.fingerprint():
            raise CheckpointError(
                f"{last} was written by another training configuration; use the same options as that run, "
                "or another --checkpoint-dir, or delete it to start over."
            )
        load_trained_state(net, state["model"])
        opt.load_state_dict(state["optimizer"])
        step, best = state["step"], state["best"]
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
    elif last.exists() and not resume:
        raise CheckpointError(f"{last} exists; pass --resume to continue that run, or another --checkpoint-dir.")

    def forward(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.inference_mode(), autocast:
            s, e, a = net(**{k: torch.from_numpy(v).to(device) for k, v in arrays.items()})
        return s.float().cpu().numpy(), e.float().cpu().numpy(), a.float().cpu().numpy()

    def validate() -> dict[str, float]:
        net.eval()
        result = scores(
            val_items, predict(val_items, forward, tokenizer, config.max_length, config.max_question_tokens)
        )
        net.train()
        return result

    def checkpoint(path: Path) -> None:
        _save(
            {
                "model": trained_state(net),
                "optimizer": opt.state_dict(),
                "step": step,
                "best": best,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                "config": config.fingerprint(),
            },
            path,
        )

    order = islice(epoch_batches(features, config.batch_size, config.seed, config.shared_norm), step, None)
    net.train()
    bar = tqdm(total=config.max_steps, initial=step, disable=not progress, desc="training reader", unit="step")
    t0, window_loss = time.time(), []
    stop_at = config.max_steps if stop_after is None else min(config.max_steps, step + stop_after)
    while step < stop_at:
        idx = next(order)
        batch = [features[i] for i in idx]
        width = max(len(f.enc) for f in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        types = torch.zeros_like(ids)
        window = torch.zeros((len(batch), width), dtype=torch.bool)
        for r, f in enumerate(batch):
            n = len(f.enc)
            ids[r, :n] = torch.tensor(f.enc.ids)
            mask[r, :n] = 1
            types[r, :n] = torch.tensor(f.enc.type_ids)
            window[r, f.enc.first : f.enc.last + 1] = True
        starts = torch.tensor([f.start for f in batch])
        ends = torch.tensor([f.end for f in batch])
        has = torch.tensor([f.has_answer for f in batch])
        group = torch.tensor([f.group for f in batch]) if config.shared_norm else None
        if device.type != "cpu":
            ids, mask, types, window = ids.to(device), mask.to(device), types.to(device), window.to(device)
            starts, ends, has = starts.to(device), ends.to(device), has.to(device)
            group = group.to(device) if group is not None else None
        for g in opt.param_groups:
            g["lr"] = config.lr * lr_factor(step, config.max_steps, config.warmup)
        with autocast:
            s, e, a = net(ids, mask, types)
        span_loss, bce = reader_loss(s.float(), e.float(), a.float(), window, starts, ends, has, group)
        loss = span_loss + bce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        window_loss.append((span_loss.item(), bce.item()))
        bar.update(1)
        bar.set_postfix(
            span=f"{np.mean([x for x, _ in window_loss[-50:]]):.3f}",
            noans=f"{np.mean([y for _, y in window_loss[-50:]]):.3f}",
        )
        if step % config.eval_every == 0 or step == config.max_steps:
            v = validate()
            record = {"step": step, "elapsed_s": round(time.time() - t0, 1), **{k: round(x, 3) for k, x in v.items()}}
            record["span_loss"] = round(float(np.mean([x for x, _ in window_loss])), 4)
            record["answer_loss"] = round(float(np.mean([y for _, y in window_loss])), 4)
            window_loss = []
            _log(log, record)
            bar.write(json.dumps(record))
            if v["f1"] > best:
                best = v["f1"]
                checkpoint(best_path)
            checkpoint(last)
        elif step % config.checkpoint_every == 0 or step == stop_at:
            checkpoint(last)
    bar.close()
    return best_path if best_path.exists() else last


def sample(examples: Sequence[Example], limit: int | None, seed: int) -> list[Example]:
    """The first ``limit`` of the examples in a seeded shuffle (all of them, in file order, when None)."""
    import random

    if limit is None or limit >= len(examples):
        return list(examples)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in sorted(order[:limit])]
