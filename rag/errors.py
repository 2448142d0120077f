"""The library's named exceptions. Each message says how to fix the problem.

The CLI turns any :class:`RagError` into one line and exit code 1; the API turns it into a JSON ``detail``.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class: something the user can fix; the message says how."""


class InvalidQuestion(RagError):
    """The question is empty, blank or too long."""


class CorpusError(RagError):
    """The corpus path is missing, or holds no readable text document."""


class IndexMissing(RagError):
    """No index has been built in the index directory yet."""


class IndexMismatch(RagError):
    """The index was built with other settings or another model than the current ones."""


class IndexCorrupt(RagError):
    """A file of the index is missing, truncated or altered."""


class IndexWriteError(RagError):
    """The index directory cannot be created or written (permissions, disk full, a file in the way)."""


class IndexBusy(RagError):
    """Another process is writing the same index directory (and the caller chose not to wait)."""


class ModelError(RagError):
    """The embedding or reader model cannot be loaded or exported."""


class GoldFormatError(RagError):
    """A gold question file (eval JSON lines or SQuAD JSON) is malformed; the message names file and item."""


class InvalidSetting(RagError, ValueError):
    """A setting (keyword override, ``RAG_*`` variable or argument such as ``top_k``) has a value it cannot take."""


class DocumentNotFound(RagError, LookupError):
    """No document of that id is in the index (ids are paths relative to the corpus root, with ``/``)."""


# The names the Python API documents (``rag.IndexNotFound``, ``rag.IndexDamaged``): the same classes.
IndexNotFound = IndexMissing
IndexDamaged = IndexCorrupt
