"""The learned reader's network: the bundled MiniLM encoder, a start/end span head and an answerability head.

``forward`` returns ``(start_logits, end_logits, answer_logit)`` (what the exported ONNX model returns);
``answer_logit`` (from the [CLS] vector) says whether the window answers the question at all. The loss
takes the span softmax over the window's tokens only (the reader does the same when reading).
The word-embedding table stays frozen at the bundled model's values: the shipped model then needs only the
weights that training changed, and takes the table from the bundled model when it is loaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

MASKED = -10000.0


class ReaderNet(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.span = nn.Linear(hidden, 2)
        self.answer = nn.Linear(hidden, 1)

    @classmethod
    def from_base(cls, path: str | Path, seed: int) -> ReaderNet:
        from transformers import AutoModel

        torch.manual_seed(seed)
        encoder = AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
        net = cls(encoder)
        net.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
        return net

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        logits = self.span(hidden)
        return logits[..., 0], logits[..., 1], self.answer(hidden[:, 0]).squeeze(-1)


def reader_loss(
    start: torch.Tensor,
    end: torch.Tensor,
    answer_logit: torch.Tensor,
    window: torch.Tensor,
    start_pos: torch.Tensor,
    end_pos: torch.Tensor,
    has_answer: torch.Tensor,
    group: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Span cross-entropy for windows that hold the answer, and answerability binary cross-entropy for all
    windows.

    Without ``group`` the span softmax runs over the window's own tokens. With ``group`` (a question id per
    row) it runs over the tokens of all the question's windows in the batch at once (shared normalisation,
    Clark & Gardner 2018): the answer must outscore every token of the windows that do not hold it, so
    span scores can be compared across windows when reading several.
    """
    start = start.masked_fill(~window, MASKED)
    end = end.masked_fill(~window, MASKED)
    bce = nn.functional.binary_cross_entropy_with_logits(answer_logit, has_answer.float())
    pos = has_answer.bool()
    if group is not None:
        if not pos.any():
            return start.sum() * 0.0, bce
        return (shared_ce(start, group, pos, start_pos) + shared_ce(end, group, pos, end_pos)) / 2, bce
    if pos.any():
        ce = nn.functional.cross_entropy(start[pos], start_pos[pos]) + nn.functional.cross_entropy(
            end[pos], end_pos[pos]
        )
        span = ce / 2
    else:
        span = start.sum() * 0.0
    return span, bce


def group_logsumexp(logits: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """``logsumexp`` over all tokens of all rows of each group: one value per row (its group's)."""
    row = torch.logsumexp(logits.float(), dim=1)
    ids, inverse = torch.unique(group, return_inverse=True)
    peak = torch.full((len(ids),), -torch.inf, device=row.device).scatter_reduce(0, inverse, row, "amax")
    total = torch.zeros(len(ids), device=row.device).index_add(0, inverse, torch.exp(row - peak[inverse]))
    return (peak + torch.log(total))[inverse]


def shared_ce(logits: torch.Tensor, group: torch.Tensor, pos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the target token of each answer row, normalised over its whole group."""
    lse = group_logsumexp(logits, group)
    picked = logits.float()[pos].gather(1, target[pos][:, None]).squeeze(1)
    return (lse[pos] - picked).mean()
