"""Extraction speed of rag's document readers (rag/extract), beside one alternative per format.

Prints pages/s (PDF) and MB/s for each file: rag's choice (pypdfium2, lxml, python-docx) and, when
installed, an alternative (pypdf, BeautifulSoup with html.parser, docx2txt). The alternatives are not
dependencies (pypdf is a test one): `pip install pypdf beautifulsoup4 docx2txt` to compare.

    python bench/extract.py                     # generated documents (a 100-page PDF, an HTML page, a DOCX)
    python bench/extract.py some.pdf page.html  # your own files too
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.extract import extract, format_of  # noqa: E402
from tests.docfiles import NEWS_HTML, make_pdf  # noqa: E402


def seeds_lines() -> list[str]:
    words = " ".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "seeds").glob("*.txt"))).split()
    return [" ".join(words[i : i + 14]) for i in range(0, len(words) - 14, 14)]


def generated(folder: Path) -> list[Path]:
    import docx

    lines = seeds_lines()
    pdf = folder / "generated-100-pages.pdf"
    pdf.write_bytes(make_pdf([lines[(i * 45) % len(lines) :][:45] or lines[:45] for i in range(100)]))
    html = folder / "generated-news.html"
    body = "".join(f"<p>{line}</p>" for line in lines * 3)
    html.write_text(NEWS_HTML.replace("</article>", body + "</article>"), encoding="utf-8")
    d = docx.Document()
    for i, line in enumerate(lines * 3):
        (d.add_heading(line[:40], level=2) if i % 20 == 0 else d.add_paragraph(line))
    table = d.add_table(rows=50, cols=3)
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            cell.text = f"row {r} col {c}"
    word = folder / "generated-report.docx"
    d.save(str(word))
    return [pdf, html, word]


def alternative(fmt: str) -> tuple[str, Callable[[bytes], str]] | None:
    try:
        if fmt == "pdf":
            from pypdf import PdfReader

            return "pypdf", lambda data: "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
        if fmt == "html":
            from bs4 import BeautifulSoup

            return "beautifulsoup4 (html.parser)", lambda data: BeautifulSoup(data, "html.parser").get_text("\n")
        if fmt == "docx":
            import docx2txt

            return "docx2txt", lambda data: docx2txt.process(io.BytesIO(data))
    except ImportError:
        return None
    return None


def timed(fn: Callable[[], object], min_seconds: float = 1.0) -> float:
    """Seconds per call (best of repeated calls over at least ``min_seconds``)."""
    fn()
    best, spent = float("inf"), 0.0
    while spent < min_seconds:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = [*generated(Path(tmp)), *args.files]
        print(f"{'file':38} {'MB':>6} {'pages':>5}  {'extractor':30} {'s/file':>8} {'MB/s':>7} {'pages/s':>8}")
        for path in files:
            fmt = format_of(path.name)
            if fmt is None or fmt == "text":
                continue
            data = path.read_bytes()
            got = extract(data, fmt)
            pages = len(got.pages) or None
            mb = len(data) / 1e6
            runs = [(got.extractor, lambda data=data, fmt=fmt: extract(data, fmt))]
            alt = alternative(fmt)
            if alt is not None:
                runs.append((alt[0], lambda fn=alt[1], data=data: fn(data)))
            for name, fn in runs:
                s = timed(fn)
                pps = f"{pages / s:8.1f}" if pages else f"{'':>8}"
                print(f"{path.name[:38]:38} {mb:6.2f} {pages or '':>5}  {name[:30]:30} {s:8.4f} {mb / s:7.2f} {pps}")


if __name__ == "__main__":
    main()
