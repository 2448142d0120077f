"""rag: offline extractive question answering with checkable citations.

Kept deliberately light: importing :mod:`rag` loads no model, torch or FAISS.
"""

from __future__ import annotations

__version__ = "0.1.0"
