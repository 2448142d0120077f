from __future__ import annotations

from pathlib import Path

import pytest

from rag.chunking import chunk_documents, chunk_text, split_sentences

SEEDS = sorted((Path(__file__).resolve().parent.parent / "seeds").glob("*.txt"))


def test_split_sentences_keeps_abbreviations_and_lines():
    text = "The U.S. met Dr. Smith on Feb. 3. Prices rose 2.5 percent!\nNew line here.  Last one?"
    got = [text[s.start : s.end] for s in split_sentences(text)]
    assert got == ["The U.S. met Dr. Smith on Feb. 3.", "Prices rose 2.5 percent!", "New line here.", "Last one?"]


def test_split_sentences_after_closing_quote():
    text = "“We agree,” he said. “So do we.” They left."
    got = [text[s.start : s.end] for s in split_sentences(text)]
    assert got == ["“We agree,” he said.", "“So do we.”", "They left."]


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
@pytest.mark.parametrize("max_chars,overlap", [(600, 1), (200, 2), (1000, 0)])
def test_chunk_offsets_round_trip_on_seeds(path, max_chars, overlap):
    text = path.read_text(encoding="utf-8")
    chunks = chunk_documents([(path.name, text)], max_chars, overlap)
    assert chunks
    covered = set()
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.text == c.text.strip()
        for s in c.sentences:
            assert c.start <= s.start < s.end <= c.end
            covered.update(range(s.start, s.end))
    # every non-space character of the document is in some chunk
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_chunks_respect_size_and_overlap():
    sentence = "This sentence has exactly forty-four chars. "
    text = sentence * 30
    chunks = chunk_text(text, max_chars=200, overlap=1)
    assert all(e - s <= 200 for s, e, _ in chunks)
    for (_, _, a), (_, _, b) in zip(chunks, chunks[1:]):
        assert a[-1] == b[0]  # one sentence of overlap


def test_overlong_sentence_is_split_at_spaces():
    text = " ".join(["word"] * 400)
    chunks = chunk_text(text, max_chars=100, overlap=0)
    assert all(e - s <= 100 for s, e, _ in chunks)
    assert " ".join(text[s:e] for s, e, _ in chunks) == text


def test_paragraph_breaks_close_half_full_chunks():
    para = "One short sentence here. " * 5
    text = para.strip() + "\n" + para.strip()
    chunks = chunk_text(text, max_chars=200, overlap=1)
    assert [text[s:e].count("\n") for s, e, _ in chunks] == [0, 0]
