"""rag: offline extractive question answering with checkable citations.

Build an index, open it, ask::

    import rag
    summary = rag.index(["docs/"], index_dir="my-index")   # like `rag index docs/ --index-dir my-index`
    qa = rag.open("my-index", reader="heuristic")          # settings by name, over RAG_* variables
    result = qa.ask("Who opposed the price floor?", top_k=3)
    for answer in result.answers:                           # best first; none: the documents do not say
        c = answer.citations[0]
        print(answer.text, answer.score, c.doc_id, c.start, c.end, c.quote)
    result.to_dict()                                        # the JSON of `rag ask --json` and POST /ask
    qa.document(c.doc_id).text[c.start:c.end]               # == answer.text: the text citations index into

:func:`index` and :func:`open` are the entry points (``help(rag.open)``); results are the frozen dataclasses
:class:`Result`, :class:`Answer`, :class:`Citation`, :class:`Conflict`, :class:`Passage` and :class:`Document`.
Problems raise the exceptions below (all :class:`RagError`), with the message the ``rag`` command prints;
nothing prints.

Kept deliberately light: importing :mod:`rag` loads no numpy, FAISS, ONNX Runtime, torch or model; the first
:func:`index` or :func:`open` does.
"""

from __future__ import annotations

__version__ = "0.1.0"

from rag.errors import (
    CorpusError,
    DocumentNotFound,
    GoldFormatError,
    IndexBusy,
    IndexCorrupt,
    IndexDamaged,
    IndexMismatch,
    IndexMissing,
    IndexNotFound,
    IndexWriteError,
    InvalidQuestion,
    InvalidSetting,
    ModelError,
    RagError,
)
from rag.library import QA, IndexSummary
from rag.library import index as index  # explicit re-exports ("as"), kept out of __all__: see below
from rag.library import open as open
from rag.types import Answer, Citation, Conflict, Document, Passage, Result

# `index` and `open` are left out of __all__ so that `from rag import *` never shadows the builtin open():
# call them as rag.index(...) and rag.open(...).
__all__ = [
    "QA",
    "Answer",
    "Citation",
    "Conflict",
    "CorpusError",
    "Document",
    "DocumentNotFound",
    "GoldFormatError",
    "IndexBusy",
    "IndexCorrupt",
    "IndexDamaged",
    "IndexMismatch",
    "IndexMissing",
    "IndexNotFound",
    "IndexSummary",
    "IndexWriteError",
    "InvalidQuestion",
    "InvalidSetting",
    "ModelError",
    "Passage",
    "RagError",
    "Result",
    "__version__",
]
