"""Plain text: UTF-8 first (exactly as ``Path.read_text(encoding="utf-8")`` reads it), then the encodings
people still have: UTF-16/32 with a byte order mark, and legacy 8-bit ones (cp1252, latin-1, ...) found by
charset-normalizer. Binary files are refused."""

from __future__ import annotations

from rag.extract import Unreadable

# Byte order marks of encodings that are not UTF-8 (UTF-32 first: its little-endian BOM starts like UTF-16's).
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# Control characters that text files do not hold (tab, newlines and form feed excluded).
_CONTROL = frozenset(range(0, 32)) - {9, 10, 12, 13}


def universal_newlines(text: str) -> str:
    """``\\r\\n`` and ``\\r`` become ``\\n``, as Python's text mode reads files."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def decode(data: bytes) -> tuple[str, str | None]:
    """Decode text bytes: (text, encoding) with encoding None for UTF-8; raises :class:`Unreadable`."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding  # the codec reads the BOM and drops it
            except UnicodeDecodeError:
                raise Unreadable(f"claims to be {encoding.upper()} (byte order mark) but is not") from None
    sample = data[:65536]
    if b"\x00" in data or sum(b in _CONTROL for b in sample) > len(sample) // 100:
        raise Unreadable("binary file, not text", "skipped")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise Unreadable("not text in any encoding charset-normalizer knows; convert it to UTF-8", "skipped")
    # Short Western texts fit cp1250 and cp1252 equally well; the far commoner cp1252 wins a tie.
    western = from_bytes(data, cp_isolation=["cp1252"]).best()
    if western is not None and western.chaos <= best.chaos:
        best = western
    return str(best), best.encoding


def extract_text(data: bytes) -> tuple[str, str | None]:
    """A text file's indexed text (universal newlines, like ``Path.read_text``) and its encoding if not UTF-8."""
    text, encoding = decode(data)
    return universal_newlines(text), encoding
