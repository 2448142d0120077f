"""Small real documents made by the tests: PDF (written by hand, with a text layer), HTML, DOCX."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_pdf(pages: Sequence[Sequence[str]], *, text_layer: bool = True) -> bytes:
    """A PDF whose page i shows the lines ``pages[i]`` in Helvetica (a drawn box instead when not ``text_layer``)."""
    objects: list[str] = []
    n = len(pages)
    font_id = 3 + 2 * n
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objects.append("<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>")
    for i, lines in enumerate(pages):
        if text_layer:
            body = "BT /F1 11 Tf 14 TL 72 740 Td " + " T* ".join(f"{_pdf_string(line)} Tj" for line in lines) + " ET"
        else:  # a "scanned" page: only graphics, no text
            body = "0.2 g 72 600 400 120 re f"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {4 + 2 * i} 0 R >>"
        )
        objects.append(f"<< /Length {len(body.encode('cp1252', 'replace'))} >>\nstream\n{body}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode("cp1252", "replace")  # WinAnsiEncoding
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("latin-1")
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode("latin-1")
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode("latin-1")
    return bytes(out)


def encrypt_pdf(data: bytes, password: str = "secret") -> bytes:
    """``data`` protected by a user password (RC4, which pypdf reads without extra packages)."""
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


NEWS_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Gallium refinery opens in Perth</title>
<style>body { font-family: serif; } .menu { color: red; }</style>
<script>var tracker = "The refinery was opened by the Prime Minister.";</script></head>
<body>
<header class="site-header"><a href="/">Daily Metals</a> <nav><ul><li><a href="/world">World</a></li>
<li><a href="/mining">Mining minister resigns</a></li></ul></nav></header>
<div id="cookie-banner">We use cookies. The refinery was opened by the Queen. <button>Accept</button></div>
<main>
<article>
<h1>Gallium refinery opens in Perth</h1>
<p>The new gallium refinery in Perth was opened by Governor Chris Dawson on Monday, officials said.</p>
<p>It will process 50&nbsp;tonnes a year &amp; employ 120 people.<br>Exports start in March.</p>
<div class="share-buttons">Share on social media</div>
</article>
</main>
<aside class="sidebar">Most read: Lithium prices fall</aside>
<footer class="site-footer">Copyright Daily Metals 2026. Contact us.</footer>
</body></html>
"""


def make_docx(path: Path) -> Path:
    """A Word file with a heading, two paragraphs and a table, saved at ``path``."""
    import docx

    d = docx.Document()
    d.add_heading("Quarterly minerals report", level=1)
    d.add_paragraph("Rare earth output rose in the third quarter.")
    table = d.add_table(rows=3, cols=2)
    for row, (mineral, tonnes) in zip(table.rows, [("Mineral", "Tonnes"), ("Gallium", "310"), ("Germanium", "95")]):
        row.cells[0].text, row.cells[1].text = mineral, tonnes
    d.add_paragraph("The Germanium figure was revised by the auditor Helen Park.")
    d.save(str(path))
    return path
