"""Shared normalisation (training and reading), grouped windows, heading windows, starting from a shipped model."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from rag.reader.qa_windows import Encoded, best_window_spans, window_shares
from rag.train.data import Example
from rag.train.features import Feature, group_batches
from rag.train.windows import TrainWindow, WindowRates, build_windows, neighbour_windows, sentence_spans, with_heading

P1 = "Acme was founded in 1901. Its founder was Alice Smith. It made bicycles in Leeds. Later it made cars."


def _enc(n_window: int, first: int = 3) -> Encoded:
    n = first + n_window + 1
    return Encoded(tuple(range(n)), (0,) * n, ((0, 0),) * n, first, first + n_window - 1, False)


def test_window_shares_give_the_shared_softmax_of_every_span():
    rng = np.random.default_rng(0)
    encs = [_enc(5), _enc(7), _enc(4)]
    width = max(len(e) for e in encs)
    start, end = rng.normal(size=(3, width)) * 3, rng.normal(size=(3, width)) * 3
    shares = window_shares(start, end, encs)
    assert shares.sum() <= 1.0 + 1e-9
    # brute force: softmax over all windows' tokens at once, for the start and for the end
    s_all = np.concatenate([start[r, e.first : e.last + 1] for r, e in enumerate(encs)])
    e_all = np.concatenate([end[r, e.first : e.last + 1] for r, e in enumerate(encs)])
    zs, ze = np.exp(s_all).sum(), np.exp(e_all).sum()
    for r, enc in enumerate(encs):
        for i, j, p in best_window_spans(start[r], end[r], enc, 30, 3):
            shared = np.exp(start[r, i]) / zs * np.exp(end[r, j]) / ze
            assert p * shares[r] == pytest.approx(shared, rel=1e-9)


def test_window_shares_favour_the_window_with_the_confident_span():
    encs = [_enc(4), _enc(4)]
    start = np.zeros((2, 8))
    end = np.zeros((2, 8))
    start[1, 4], end[1, 5] = 8.0, 8.0
    shares = window_shares(start, end, encs)
    assert shares[1] > 0.9 and shares[0] < 0.01
    assert window_shares(start, end, []).size == 0


def test_shared_loss_normalises_over_the_group():
    torch = pytest.importorskip("torch")
    from rag.train.model import group_logsumexp, reader_loss

    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 3.0, 1.0], [2.0, 2.0, 2.0]])
    group = torch.tensor([7, 7, 9])
    lse = group_logsumexp(logits, group)
    want = torch.logsumexp(logits[:2].reshape(-1), 0)
    assert torch.allclose(lse[:2], want.expand(2))
    assert torch.allclose(lse[2], torch.logsumexp(logits[2], 0))

    window = torch.ones_like(logits, dtype=torch.bool)
    start_pos, end_pos = torch.tensor([1, 0, 0]), torch.tensor([1, 0, 0])
    has = torch.tensor([True, False, False])
    span, _ = reader_loss(logits, logits, torch.zeros(3), window, start_pos, end_pos, has, group)
    # the answer row's token against every token of both rows of its group, not its own row only
    assert span.item() == pytest.approx((want - logits[0, 1]).item(), rel=1e-6)
    alone, _ = reader_loss(logits, logits, torch.zeros(3), window, start_pos, end_pos, has)
    assert alone.item() < span.item()


def _feature(group: int, length: int, has: bool = False) -> Feature:
    return Feature(_enc(length), 3 if has else 0, 3 if has else 0, has, "answer" if has else "neighbour", group)


def test_group_batches_keep_each_question_whole_and_use_every_window():
    rng = random.Random(1)
    feats = []
    for g in range(40):
        feats.append(_feature(g, rng.randint(4, 30), True))
        feats += [_feature(g, rng.randint(4, 30)) for _ in range(rng.randint(0, 4))]
    out = group_batches(feats, 8, seed=3)
    assert sorted(i for b in out for i in b) == list(range(len(feats)))
    for b in out:
        assert len(b) <= 8
        for g in {feats[i].group for i in b}:
            assert sum(feats[i].group == g for i in b) == sum(f.group == g for f in feats)
    assert out == group_batches(feats, 8, seed=3) != group_batches(feats, 8, seed=4)


def test_build_windows_groups_a_question_with_its_negatives():
    exs = [
        Example(
            "a", "Who founded Acme?", P1, ((P1.index("Alice Smith"), P1.index("Alice Smith") + 11),), "f#0/0", "Acme"
        ),
        Example("b", "Where were bicycles made?", P1, ((P1.index("Leeds"), P1.index("Leeds") + 5),), "f#0/0", "Acme"),
    ]
    rates = WindowRates(neighbour=1.0, retrieved=0.0, swapped=0.0, neighbours_each=2)
    wins = build_windows(exs, 5, rates, retrieval=False)
    groups = {w.group for w in wins}
    assert len(groups) == 2
    for g in groups:
        mine = [w for w in wins if w.group == g]
        assert sum(w.answer is not None for w in mine) == 1
        assert len(mine) >= 2 and len({w.window for w in mine}) == len(mine) and len({w.qid for w in mine}) == 1


def test_neighbour_windows_are_distinct_and_never_hold_the_answer():
    ex = Example("a", "Who founded Acme?", P1, ((P1.index("Alice"), P1.index("Alice") + 11),), "p", "Acme")
    sents = sentence_spans(P1)
    for seed in range(10):
        ws = neighbour_windows(ex, sents, random.Random(seed), 3)
        assert len({w.window for w in ws}) == len(ws) >= 1
        for w in ws:
            assert w.window[1] <= ex.answers[0][0] or w.window[0] >= ex.answers[0][1]


def test_heading_window_keeps_the_answer_offsets_exact():
    start = P1.index("Leeds")
    win = TrainWindow("Where?", P1, (P1.index("Its"), len(P1)), (start, start + 5), "answer", "q")
    h = with_heading(win, "Acme_Company")
    assert h.context.startswith("Acme Company\nIts founder")
    assert h.context[h.answer[0] : h.answer[1]] == "Leeds"
    assert h.window == (0, len(h.context))
    assert [h.context[s.start : s.end] for s in sentence_spans(h.context)][0] == "Acme Company"
    neg = with_heading(TrainWindow("Q", P1, (0, 25), None, "neighbour", "q"), "T")
    assert neg.answer is None and neg.context == "T\n" + P1[:25]


@pytest.mark.slow
def test_init_from_a_shipped_model_reads_back_its_weights():
    torch = pytest.importorskip("torch")
    from rag.config import BUNDLED_MODEL
    from rag.reader.learned_model import PACKAGED, base_model_path, load_reader_model
    from rag.train.init import state_from_model_dir
    from rag.train.loop import load_trained_state
    from rag.train.model import ReaderNet

    base = base_model_path(BUNDLED_MODEL)
    net = ReaderNet.from_base(base, 13)
    load_trained_state(net, state_from_model_dir(Path(PACKAGED)))
    net.eval()
    session = load_reader_model(PACKAGED, base)
    ids = torch.randint(1000, 5000, (2, 24))
    mask = torch.ones_like(ids)
    mask[1, 18:] = 0
    types = torch.zeros_like(ids)
    types[:, 8:] = 1
    with torch.no_grad():
        s, e, a = net(ids, mask, types)
    arrays = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": types.numpy()}
    s2, e2, a2 = session.run_arrays(arrays)
    assert np.abs(s.numpy()[0] - s2[0]).max() < 1e-3
    assert np.abs(a.numpy() - a2).max() < 1e-3


def test_calibration_uses_the_evidence_answerability_only_when_fitted_with_it(tmp_path):
    import json
    import math

    from rag.reader.learned_model import CALIBRATION, Calibration, load_calibration

    old = Calibration(a=0.5, b=-1.0, d=0.4)
    assert old(0.3, 0.0, 0.8, 0.001) == old(0.3, 0.0, 0.8, 0.999)  # e = 0: the evidence is not read
    new = Calibration(a=0.5, b=-1.0, d=0.4, e=1.5)
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    z = 0.5 * logit(0.3) + 0.4 * logit(0.8) + 1.5 * logit(0.9) - 1.0
    assert new(0.3, 0.0, 0.8, 0.9) == pytest.approx(1 / (1 + math.exp(-z)))
    assert new(0.3, 0.0, 0.8, 0.1) < new(0.3, 0.0, 0.8, 0.9)
    (tmp_path / CALIBRATION).write_text(json.dumps({"a": 0.5, "b": -1.0, "d": 0.4, "e": 1.5, "model_sha256": "x"}))
    assert load_calibration(tmp_path, "x") == new
