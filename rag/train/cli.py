"""``rag train-reader``: the learned reader's training recipe as one command (torch imported only when run)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from rag.errors import RagError

if TYPE_CHECKING:
    from rag.train.export import Weights

EXAMPLE = (
    "rag train-reader --train ../shared/data/train/squad1-train.json.gz "
    "--train ../shared/data/train/squad2-train-first10.json.gz "
    "--validation ../shared/data/squad2-dev-half.json --out rag/models/reader"
)


@click.command(
    "train-reader",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=f"Example (a first model from the bare encoder; rag/models/reader/README.md has the two stages that "
    f"produced the shipped one):\n\n  {EXAMPLE}\n\n"
    "Long runs: start it with nohup in the background and poll the log; after an interruption run the same "
    "command with --resume.",
)
@click.option(
    "--train",
    "train_files",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="SQuAD-format training file (plain or .gz); repeat for several.",
)
@click.option(
    "--validation",
    type=click.Path(path_type=Path),
    help="SQuAD 2.0 file for validation F1 and checkpoint choice (never a file you report as a test figure).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Write the shipped model here when training ends.")
@click.option("--checkpoint-dir", type=click.Path(path_type=Path), default=Path("runs/reader"), show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --checkpoint-dir.")
@click.option(
    "--stop-after", type=click.IntRange(1), help="Stop this run after N steps (continue later with --resume)."
)
@click.option(
    "--base-model",
    default="sentence-transformers/all-MiniLM-L6-v2",
    show_default=True,
    help="Encoder to fine-tune (name of the bundled model, or a local directory).",
)
@click.option("--max-steps", type=click.IntRange(1), default=2200, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=1e-4, show_default=True)
@click.option(
    "--max-length",
    type=click.IntRange(32, 512),
    default=160,
    show_default=True,
    help="Tokens per window (question + sentences).",
)
@click.option("--limit", type=click.IntRange(1), help="Use only this many training questions (seeded draw).")
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--eval-every", type=click.IntRange(1), default=200, show_default=True)
@click.option("--val-questions", type=click.IntRange(1), default=300, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=2, show_default=True)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the training steps run: cuda (bf16 autocast) when a GPU is there with auto; the recipe is "
    "the same on both.",
)
@click.option(
    "--shared-norm/--window-norm",
    default=False,
    show_default=True,
    help="Span softmax over all of a question's training windows at once (shared normalisation), so span "
    "scores compare across the windows read; or over each window alone.",
)
@click.option(
    "--init-from",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Start from this shipped reader model directory (its reader.onnx) instead of the bare encoder.",
)
@click.option(
    "--neighbour-rate",
    type=click.FloatRange(0, 1),
    default=0.25,
    show_default=True,
    help="Share of answerable questions given same-paragraph negative windows.",
)
@click.option(
    "--neighbours-each",
    type=click.IntRange(1, 8),
    default=1,
    show_default=True,
    help="Same-paragraph negative windows per such question.",
)
@click.option(
    "--retrieved-rate",
    type=click.FloatRange(0, 1),
    default=0.25,
    show_default=True,
    help="Share of answerable questions given BM25-retrieved negative windows from other paragraphs.",
)
@click.option(
    "--retrieved-each",
    type=click.IntRange(1, 8),
    default=1,
    show_default=True,
    help="Retrieved negative windows per such question.",
)
@click.option(
    "--title-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of windows given their article's title as a heading line above them.",
)
@click.option(
    "--weights",
    type=click.Choice(["int8", "fp16"]),
    default="fp16",
    show_default=True,
    help="Exported weights: fp16 (no quantisation loss; the shipped model) or int8 (per-channel dynamic "
    "quantisation: 1.2-1.4x faster reading, about 1 point of validation F1). The validation F1 of the checkpoint "
    "and of the export goes in the manifest.",
)
def train_reader(
    train_files: tuple[Path, ...],
    validation: Path | None,
    out: Path | None,
    checkpoint_dir: Path,
    resume: bool,
    stop_after: int | None,
    base_model: str,
    max_steps: int,
    batch_size: int,
    lr: float,
    max_length: int,
    limit: int | None,
    seed: int,
    eval_every: int,
    val_questions: int,
    threads: int,
    device: str,
    shared_norm: bool,
    init_from: Path | None,
    neighbour_rate: float,
    neighbours_each: int,
    retrieved_rate: float,
    retrieved_each: int,
    title_rate: float,
    weights: Weights,
) -> None:
    """Fine-tune the bundled encoder into the learned extractive reader, on CPU.

    Reads SQuAD-format questions, cuts sentence windows like those the reader sees at run time (answer
    windows, same-paragraph and retrieved negatives, SQuAD 2.0 unanswerable and swapped-entity questions),
    trains a span head and an answerability head with validation F1 logged every --eval-every steps and a
    checkpoint every 50 steps, then exports the best checkpoint to --out.
    """
    from rag.train.loop import TrainConfig
    from rag.train.recipe import run
    from rag.train.windows import WindowRates

    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    rates = WindowRates(
        neighbour=neighbour_rate,
        retrieved=retrieved_rate,
        neighbours_each=neighbours_each,
        retrieved_each=retrieved_each,
        title=title_rate,
    )

    config = TrainConfig(
        base_model=base_model,
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        max_length=max_length,
        eval_every=eval_every,
        threads=threads,
        train_files=tuple(str(p) for p in train_files),
        validation_file=str(validation) if validation else None,
        val_questions=val_questions,
        limit=limit,
        shared_norm=shared_norm,
        init_from=str(init_from) if init_from else None,
        rates=rates,
        device=device,
    )
    try:
        run(config, out, resume=resume, stop_after=stop_after, weights=weights, say=click.echo)
    except RagError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise click.exceptions.Exit(1) from None
