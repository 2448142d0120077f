"""The Pipeline: one object that composes an embedder, a retriever and a reader (DrQA-style)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import wait
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rag.config import Settings
from rag.conflict import reconcile
from rag.errors import InvalidQuestion
from rag.evidence import SentenceRanker, select_windows
from rag.extract import page_at
from rag.reader import read_batch
from rag.retrieval import BM25Retriever, HybridRetriever, PassageRetriever, Query
from rag.store import IndexData, bm25_for, dense_retriever, load_index, open_index
from rag.types import Answer, Document, Hit, Passage, Result

if TYPE_CHECKING:
    from concurrent.futures import Future

    from rag.embedding import Embedder
    from rag.reader import Reader
    from rag.reader.learned_model import ReaderSession


def clean_question(question: str, max_chars: int = 1000) -> str:
    """Strip the question and check its length; raise :class:`InvalidQuestion` with how to fix it."""
    if not isinstance(question, str):
        raise InvalidQuestion("The question must be text.")
    q = question.strip()
    if not q:
        raise InvalidQuestion('The question is empty. Ask something, e.g. rag ask "Who opposed the price floor?"')
    if len(q) > max_chars:
        raise InvalidQuestion(f"The question is {len(q)} characters long; the limit is {max_chars}. Shorten it.")
    return q


class Pipeline:
    def __init__(
        self,
        retriever: PassageRetriever,
        reader: Reader,
        embedder: Embedder | None,
        *,
        index: IndexData | None = None,
        retrieve_k: int = 8,
        top_k: int = 3,
        max_question_chars: int = 1000,
        companion: Reader | None = None,
        evidence: SentenceRanker | None = None,
        closest_k: int = Settings.model_fields["closest_passages"].default,
    ) -> None:
        """``companion``: another reader over the same evidence that ``rag eval`` reports beside ``reader``
        (the heuristic reader beside the learned one). ``evidence``: the evidence stage's ranker, whose best
        ``closest_k`` windows a result without answers shows as ``closest`` (none without it)."""
        self.retriever, self.reader, self.embedder, self.index = retriever, reader, embedder, index
        self.retrieve_k, self.top_k, self.max_question_chars = retrieve_k, top_k, max_question_chars
        self.companion = companion
        self.evidence, self.closest_k = evidence, closest_k
        self._lock = threading.Lock()  # the embedder's session is not shared across threads unguarded

    def ask(self, question: str, top_k: int | None = None) -> Result:
        return self.ask_batch([question], top_k)[0]

    def ask_batch(self, questions: Sequence[str], top_k: int | Sequence[int | None] | None = None) -> list[Result]:
        """Answer several questions together: one embedding call for all of them, retrieval per question,
        one reader pass over all their evidence (for readers that batch). The answers are those of asking
        each alone. ``top_k``: one for all, or one per question (None: the pipeline's)."""
        qs = [clean_question(q, self.max_question_chars) for q in questions]
        return [r for r, _ in self.answer_batch(self.queries(qs), top_k)]

    def answer(self, query: Query, top_k: int | None = None) -> tuple[Result, list[Hit]]:
        """Retrieve and read for one prepared query; also return the evidence passages."""
        return self.answer_batch([query], top_k)[0]

    def answer_batch(
        self, queries: Sequence[Query], top_k: int | Sequence[int | None] | None = None
    ) -> list[tuple[Result, list[Hit]]]:
        """:meth:`answer` for several prepared queries (the reader reads them in one batch)."""
        ks = top_k if isinstance(top_k, Sequence) else [top_k] * len(queries)
        if len(ks) != len(queries):
            raise ValueError(f"top_k: {len(ks)} values for {len(queries)} questions")
        hits = [self.retriever.retrieve(q, self.retrieve_k) for q in queries]
        answers = read_batch(self.reader, queries, hits, [k or self.top_k for k in ks])
        return [(self.result(q, a, h), h) for q, a, h in zip(queries, answers, hits, strict=True)]

    def result(self, query: Query, answers: Sequence[Answer], hits: Sequence[Hit]) -> Result:
        """The :class:`Result` of ``answers`` read for ``query`` from ``hits``: citations stamped with their
        document's version (and page), the same value written two ways merged and a disagreement between
        documents flagged (:func:`rag.conflict.reconcile`), the closest passages when there is no answer."""
        answers, conflict = reconcile(query.text, answers)
        closest = None if answers else self.closest(query, hits)
        if self.index is None:
            return Result(query.text, tuple(answers), closest=closest, conflict=conflict)
        answers = with_pages(answers, self.index.documents)
        built = self.index.built_at
        return Result(query.text, tuple(answers), closest=closest, index_built_at=built, conflict=conflict)

    def closest(self, query: Query, hits: Sequence[Hit]) -> tuple[Passage, ...] | None:
        """The best ``closest_k`` passages read for ``query`` (the evidence stage's windows, best first, none
        inside another and no heading line alone), shown when there is no answer; empty when nothing was
        retrieved, None without an evidence stage."""
        if self.evidence is None:
            return None
        documents = self.evidence.index.documents
        return tuple(
            Passage(w.doc_id, w.start, w.end, documents[w.doc_id].text[w.start : w.end])
            for w in select_windows(query, hits, self.evidence, self.closest_k, distinct=True, headings=False)
        )

    def retrieve(self, question: str, k: int | None = None) -> list[Hit]:
        q = self.queries([clean_question(question, self.max_question_chars)])[0]
        return self.retriever.retrieve(q, k or self.retrieve_k)

    def queries(self, qs: Sequence[str]) -> list[Query]:
        """Embed questions once (when the retriever or reader uses vectors)."""
        if self.embedder is None:
            return [Query.make(q) for q in qs]
        with self._lock:
            vecs = self.embedder.encode(list(qs))
        return [Query.make(q, v) for q, v in zip(qs, vecs)]

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def from_index(
        cls,
        index: IndexData,
        settings: Settings,
        embedder: Embedder | None = None,
        reader_model: Future[ReaderSession] | None = None,
    ) -> Pipeline:
        """Wire the configured retriever and reader over a loaded index (``reader_model``: the learned
        reader's model, being opened in the background by :func:`rag.reader.learned.preload`)."""
        from rag.embedding import load_embedder

        bm25 = bm25_for(index)
        dense = dense_retriever(index, settings)
        searcher = {"dense": dense, "bm25": bm25, "hybrid": HybridRetriever(dense, bm25, settings.rrf_k)}[
            settings.retrieval
        ]
        retriever = PassageRetriever(searcher, index.chunks, settings.candidate_k, settings.duplicate_threshold)
        if embedder is None:
            embedder = load_embedder(settings)
        ranker = make_ranker(index, bm25)
        reader = make_reader(settings, index, ranker, reader_model)
        companion = None
        if settings.reader == "learned":  # reported beside it by `rag eval`
            companion = make_reader(settings.model_copy(update={"reader": "heuristic"}), index, ranker)
        return cls(
            retriever,
            reader,
            embedder,
            index=index,
            retrieve_k=settings.retrieve_k,
            top_k=settings.top_k,
            max_question_chars=settings.max_question_chars,
            companion=companion,
            evidence=ranker,
            closest_k=settings.closest_passages,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        index_dir: Path | None = None,
        *,
        build_if_missing: bool = True,
        progress: bool = False,
        on_message: Callable[[str], None] | None = None,
    ) -> Pipeline:
        """Load the index as it is (a reader never replaces one). ``build_if_missing``: the default index
        that has never existed is built from ``settings.corpus_dir`` first (see :func:`rag.store.open_index`;
        ``on_message`` hears that it is, or that a writer is waited for)."""
        from rag.embedding import load_embedder

        index_dir = index_dir or settings.index_dir
        reader_model = None
        if settings.reader == "learned":  # opened while the index and the embedder load
            from rag.reader.learned import preload

            reader_model = preload(settings)
        embedder: Embedder | None = None

        def load_embedder_once() -> Embedder:  # only when the first-use build embeds something
            nonlocal embedder
            embedder = embedder or load_embedder(settings)
            return embedder

        try:
            if build_if_missing:
                index = open_index(settings, index_dir, load_embedder_once, progress=progress, on_message=on_message)
            else:
                index = load_index(index_dir, settings)
            return cls.from_index(index, settings, embedder, reader_model)
        except BaseException:
            if reader_model is not None:  # no loading thread outlives a failed start
                wait([reader_model])
            raise


def with_pages(answers: Sequence[Answer], documents: Mapping[str, Document]) -> list[Answer]:
    """The answers with each citation saying which version of its document it cites (``doc_sha256``) and, for
    a paged document (PDF), the page its answer starts on."""
    out = []
    for a in answers:
        cites = []
        for c in a.citations:
            doc = documents.get(c.doc_id)
            if doc is None:
                cites.append(c)
                continue
            page = page_at(doc.pages, c.start)
            cites.append(replace(c, doc_sha256=doc.sha256, **({"page": page} if page is not None else {})))
        out.append(replace(a, citations=tuple(cites)))
    return out


def make_ranker(index: IndexData, bm25: BM25Retriever) -> SentenceRanker:
    """The evidence stage's sentence ranker over ``index`` (its term weights: BM25's idf)."""
    return SentenceRanker(index, bm25.idf, bm25.default_idf)


def make_reader(
    settings: Settings, index: IndexData, ranker: SentenceRanker, reader_model: Future[ReaderSession] | None = None
) -> Reader:
    """The configured reader; the learned and heuristic ones read the sentences ``ranker`` puts first."""
    if settings.reader == "hf":
        from rag.reader.hf import HFReader

        return HFReader.from_settings(settings, index)
    if settings.reader == "learned":
        from rag.reader.learned import LearnedReader

        return LearnedReader.from_settings(settings, index, ranker, reader_model)
    from rag.reader.heuristic import HeuristicReader

    return HeuristicReader(index, ranker.idf, ranker.default_idf, threshold=settings.abstain_threshold, ranker=ranker)
