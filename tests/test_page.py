"""The web page at "/": served files and headers (fast), and the page in a real browser (slow).

The browser tests drive Debian's ``chromium`` (``/usr/bin/chromium``, or ``RAG_CHROMIUM``) with Playwright,
against real ``rag serve`` processes on free loopback ports: one over the seeds, one whose index is
damaged (503), one over a small corpus whose document holds HTML and JavaScript. Playwright's own
browser download is never used. Every test records the page's requests and fails if any leaves the
server's origin, if a dialog opens, if a script error or a Content-Security-Policy violation occurs.

Each state is saved as a screenshot in a temporary folder (``RAG_SCREENSHOT_DIR`` chooses another); its
path is printed at the end of the run. Without chromium the browser tests are skipped, except under CI
(``CI`` set), where they fail: CI must run them (``.ci/run`` installs chromium).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from rag.config import Settings
from tests.servers import free_port, running_server

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
STATIC = ROOT / "api" / "static"
CHROMIUM = Path(os.environ.get("RAG_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUESTION = "Who opposed the price floor?"
UNANSWERABLE = [
    "What is the price of bananas on Mars?",
    "What colour is the cheese on the far side of the moon?",
    "How many dragons live in the royal aquarium?",
]


# ------------------------------------------------------------------------------------------- fast
@pytest.fixture(scope="module")
def page_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app without an index (every API route answers 503): the page must be served all the same."""
    s = Settings(_env_file=None, corpus_dir=SEEDS, index_dir=tmp_path_factory.mktemp("page") / "no-index")
    with TestClient(create_app(s, build_if_missing=False)) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/", "text/html"), ("/static/app.js", "text/javascript"), ("/static/app.css", "text/css")],
)
def test_page_files_are_served_with_a_strict_policy(page_client: TestClient, path: str, media_type: str) -> None:
    r = page_client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media_type)
    csp = r.headers["content-security-policy"]
    for directive in ("script-src 'self'", "style-src 'self'", "connect-src 'self'", "object-src 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    name = "index.html" if path == "/" else path.rsplit("/", 1)[1]
    assert r.content == (STATIC / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/static/",
        "/static/index.html",
        "/static/../page.py",
        "/static/%2e%2e/page.py",
        "/static/app.js/../../main.py",
        "/static/page.py",
        "/api/page.py",
        "/index.html",
        "/app.js",
    ],
)
def test_the_page_serves_no_other_file(page_client: TestClient, path: str) -> None:
    r = page_client.get(path)
    assert r.status_code == 404 and r.json()["detail"]


def test_page_files_hold_no_inline_code_and_no_outside_url() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    css = (STATIC / "app.css").read_text(encoding="utf-8")
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/static/app.js" defer>']
    assert "<style" not in html and not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
    for text in (html, js, css):
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE)  # no outside URL
        assert "@import" not in text and "@font-face" not in text
    # document text and questions go in as text only
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js


# ------------------------------------------------------------------------------------------- browser
def _require(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} CI must run the browser tests: `.ci/run` installs chromium with apt.")
    pytest.skip(why)


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    chosen = os.environ.get("RAG_SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("page-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    shots = sorted(p.name for p in folder.glob("*.png"))
    line = f"\npage screenshots ({len(shots)}): {folder}"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():  # printed even though pytest captures test output
        print(line)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require(CHROMIUM.is_file(), f"chromium is not installed at {CHROMIUM} (apt-get install chromium).")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright is not installed (pip install -e '.[test]').")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


# Runs in the page before its own script: records what a test must never see.
WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


class Tab:
    """A browser page bound to one server, recording every request, dialog and script error."""

    def __init__(self, browser: Any, base: str, *, width: int = 1280, height: int = 900) -> None:
        self.base = base
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
        self.context.set_default_timeout(30_000)
        self.context.add_init_script(WATCH)
        self.context.on("request", lambda req: self.requests.append(req.url))
        # anything not to this origin is recorded (above) and never leaves the machine
        self.context.route(lambda url: not self._own(url), lambda route: route.abort())
        self.page = self.context.new_page()
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _own(self, url: str) -> bool:
        return url.startswith(self.origin + "/") or url.startswith("data:")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def shot(self, folder: Path, name: str, *, full_page: bool = False) -> None:
        self.page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)

    def assert_clean(self) -> None:
        outside = [u for u in self.requests if not self._own(u)]
        assert not outside, f"requests outside {self.origin}: {outside}"
        assert not self.dialogs, f"dialogs opened: {self.dialogs}"
        assert not self.errors, f"script errors: {self.errors}"
        assert self.page.evaluate("window.__cspViolations") == []

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def open_tab(browser: Any) -> Iterator[Any]:
    tabs: list[Tab] = []

    def make(base: str, **kw: Any) -> Tab:
        tab = Tab(browser, base, **kw)
        tabs.append(tab)
        return tab

    yield make
    for tab in tabs:
        tab.close()


# ------------------------------------------------------------------------------------------- servers
@contextmanager
def rag_serve(index_dir: Path, log_path: Path, *, corpus: Path = SEEDS, ready: int = 200) -> Iterator[str]:
    """``python -m rag.cli serve`` on a free loopback port; yields its base URL once /health answers ``ready``."""
    port = free_port()
    pythonpath = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath,
        "RAG_CORPUS_DIR": str(corpus),
        # the page is reader-agnostic; the heuristic reader answers the price-floor question the issue names
        "RAG_READER": "heuristic",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    if ready == 200 and not index_dir.exists():  # `rag serve` builds only the default index itself
        build = [sys.executable, "-m", "rag.cli", "index", str(corpus), "--index-dir", str(index_dir)]
        subprocess.run(build, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--index-dir", str(index_dir)]
    # the CPU may be busy
    with running_server(cmd, env, log_path, f"http://127.0.0.1:{port}", ready=ready, timeout=300) as base:
        yield base


@pytest.fixture(scope="module")
def seed_server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`rag serve` over the seeds (indexed first)."""
    d = tmp_path_factory.mktemp("page-seeds")
    with rag_serve(d / "index", d / "serve.log") as base:
        yield base


def ask_json(base: str, question: str, top_k: int = 3) -> httpx.Response:
    return httpx.post(f"{base}/ask", json={"question": question, "top_k": top_k}, timeout=60)


def document_text(base: str, doc_id: str) -> str:
    r = httpx.get(f"{base}/documents/{quote(doc_id, safe='')}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["text"]


# What the page shows, read back from the DOM (textContent: what a reader sees, never parsed as HTML).
READ_ANSWERS = """
() => [...document.querySelectorAll('#answers > li.answer')].map((li) => ({
  text: li.querySelector('.answer-text').textContent,
  pct: li.querySelector('.pct').textContent,
  meter: Number(li.querySelector('meter').value),
  citations: [...li.querySelectorAll('li.citation')].map((c) => ({
    quote: c.querySelector('.quote').textContent,
    marks: [...c.querySelectorAll('.quote mark')].map((m) => m.textContent),
    href: c.querySelector('a.cite').getAttribute('href'),
    link: c.querySelector('a.cite').textContent,
    also: [...c.querySelectorAll('a.also-cite')].map((a) => a.getAttribute('href')),
  })),
}))
"""

READ_DOCUMENT = """
() => {
  const box = document.querySelector('#doc-text');
  const current = box.querySelector('mark.current');
  const r = current ? current.getBoundingClientRect() : null;
  return {
    text: box.textContent,
    nodes: box.childNodes.length,
    marks: [...box.querySelectorAll('mark')].map((m) => m.textContent),
    current: current ? current.textContent : null,
    inView: r ? r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0 : false,
    focused: document.activeElement === current,
    whiteSpace: getComputedStyle(box).whiteSpace,
    elements: box.querySelectorAll('*:not(mark):not(.gap):not(.page-break)').length,
    gaps: box.querySelectorAll('.gap').length,
    breaks: box.querySelectorAll('.gap, .page-break').length,
    pages: [...box.querySelectorAll('.page-break')].map((b) => b.dataset.page),
    renderMs: Number(box.dataset.renderMs),
  };
}
"""


PARAGRAPH_END = re.compile(r"(?<!\n)\n(?=[^\n])")  # where the document view puts a paragraph gap


def shown_citations(answer: dict) -> list[tuple[dict, list[dict]]]:
    """The citations as the page shows them: a quote repeated verbatim in one document once, with the others
    of it as its "also at" places."""
    groups: dict[tuple, list[dict]] = {}
    for c in answer["citations"]:
        key: tuple = (c["doc_id"], c["quote"], c["start"] - c["quote_start"], c["end"] - c["quote_start"])
        if any(o["start"] == c["start"] for o in groups.get(key, [])):
            key += (c["start"],)  # the same place twice is no repeat
        groups.setdefault(key, []).append(c)
    return [(g[0], g[1:]) for g in groups.values()]


def wait_for_answers(tab: Tab) -> None:
    tab.page.wait_for_function(
        "() => !document.querySelector('#results').hidden || !document.querySelector('#error').hidden"
    )


def wait_for_document(tab: Tab) -> dict:
    tab.page.wait_for_function(
        "() => !document.querySelector('#doc').hidden && "
        "(document.querySelector('#doc-text').childNodes.length > 0 || !document.querySelector('#error').hidden)"
    )
    return tab.page.evaluate(READ_DOCUMENT)


def merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s < out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def hash_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).fragment).items()}


def assert_document_view(tab: Tab, base: str, answer: dict, citation: dict) -> None:
    """The document view shows the cited document, its span highlighted, current, and scrolled into view."""
    view = wait_for_document(tab)
    text = document_text(base, citation["doc_id"])
    assert view["text"] == text  # the whole text, as text (line breaks included)
    assert view["whiteSpace"] == "pre-wrap"  # ... and shown with its line breaks
    assert view["current"] == text[citation["start"] : citation["end"]] == answer["text"]
    assert view["inView"], "the cited span is not scrolled into view"
    same_doc = [(c["start"], c["end"]) for c in answer["citations"] if c["doc_id"] == citation["doc_id"]]
    assert view["marks"] == [text[s:e] for s, e in merged(same_doc)]  # every place of the answer there
    assert view["nodes"] <= 2 * (len(view["marks"]) + view["breaks"]) + 1 and view["elements"] == 0
    assert view["gaps"] == len(PARAGRAPH_END.findall(text))  # paragraphs set apart, no text added
    h = hash_params(tab.page.url)
    assert (h["doc"], int(h["start"]), int(h["end"])) == (citation["doc_id"], citation["start"], citation["end"])


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.slow
def test_ask_read_and_check_a_citation(seed_server: str, open_tab: Any, screenshots: Path) -> None:
    tab = open_tab(seed_server, width=1024, height=640)
    response = tab.goto("/")
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    page = tab.page
    assert page.evaluate("document.activeElement.id") == "q"  # the question box has the focus

    # ask with the keyboard: type, Enter
    page.get_by_label("Question", exact=True).fill(QUESTION)
    page.get_by_label("Answers", exact=True).fill("3")
    page.get_by_label("Question", exact=True).press("Enter")
    wait_for_answers(tab)
    assert page.locator("#error").is_hidden()
    expected = ask_json(seed_server, QUESTION).json()
    assert expected["answers"], "the seeds answer this question"
    shown = page.evaluate(READ_ANSWERS)
    assert [a["text"] for a in shown] == [a["text"] for a in expected["answers"]]  # best first
    for got, want in zip(shown, expected["answers"]):
        assert got["pct"] == f"score {math.floor(want['score'] * 100 + 0.5)}%" and got["meter"] == pytest.approx(
            want["score"]
        )
        assert len(got["citations"]) == len(shown_citations(want))
        for g, (c, others) in zip(got["citations"], shown_citations(want)):
            assert [(hash_params(h)["start"], hash_params(h)["end"]) for h in g["also"]] == [
                (str(o["start"]), str(o["end"])) for o in others
            ]
            assert g["quote"] == c["quote"]  # the quoted sentence, whole
            assert g["marks"] == [want["text"]]  # the answer highlighted inside it, exactly
            h = hash_params(g["href"])
            assert (h["doc"], int(h["start"]), int(h["end"])) == (c["doc_id"], c["start"], c["end"])
            assert c["doc_id"] in g["link"]
    assert parse_qs(urlsplit(page.url).query) == {"q": [QUESTION]}  # the question lives in the URL
    tab.shot(screenshots, "answers", full_page=True)  # the README's docs/page.png

    # the first citation, reached with Tab and opened with Enter
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('cite')"):
            break
    else:
        pytest.fail("Tab never reached a citation link")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "keyboard focus is not visible"
    page.keyboard.press("Enter")
    first_answer = expected["answers"][0]
    assert_document_view(tab, seed_server, first_answer, first_answer["citations"][0])
    assert page.evaluate(READ_DOCUMENT)["focused"]  # keyboard users land on the span
    assert page.locator("#status").is_hidden()  # "N answers, best first." speaks of the answers, not shown here
    tab.shot(screenshots, "document")

    # the document view survives a reload (a shared or bookmarked link)
    page.reload()
    assert_document_view(tab, seed_server, first_answer, first_answer["citations"][0])
    page.get_by_role("link", name="Back to the answers").click()
    wait_for_answers(tab)
    assert page.locator("#doc").is_hidden() and page.locator("#answers > li").count() == len(expected["answers"])
    assert page.locator("#status").is_visible()
    assert urlsplit(page.url).fragment == ""

    # every citation: one click opens it, the browser's Back returns to the answers
    for i, answer in enumerate(expected["answers"]):
        for j, (citation, _) in enumerate(shown_citations(answer)[:4]):
            page.locator("#answers > li.answer").nth(i).locator("a.cite").nth(j).click()
            assert_document_view(tab, seed_server, answer, citation)
            page.go_back()
            page.wait_for_function("() => document.querySelector('#doc').hidden")
            assert page.locator("#results").is_visible()
    tab.assert_clean()


@pytest.mark.slow
def test_states_no_answer_invalid_too_large_working_unreachable(
    seed_server: str, open_tab: Any, screenshots: Path
) -> None:
    tab = open_tab(seed_server)
    page = tab.page
    unanswered = next((q for q in UNANSWERABLE if not ask_json(seed_server, q).json()["answers"]), None)
    if unanswered is None:  # a reader that answers every one of them: the page's state is still checked
        unanswered = UNANSWERABLE[0]
        page.route(
            "**/ask",
            lambda route: route.fulfill(
                status=200, content_type="application/json", body=json.dumps({"question": unanswered, "answers": []})
            ),
        )
    tab.goto("/?" + "q=" + quote(unanswered))  # straight from a shared URL
    wait_for_answers(tab)
    assert page.locator("#no-answer").is_visible()
    assert "The documents do not answer this question" in page.locator("#no-answer").inner_text()
    assert page.locator("#answers > li").count() == 0
    assert page.locator("#results-title").text_content() == f"Answers to {unanswered}"
    tab.shot(screenshots, "no-answer")
    page.unroute("**/ask")

    # invalid input: the API's detail, word for word
    for question, k in (("   ", "3"), (QUESTION, "21")):
        detail = ask_json(seed_server, question, int(k)).json()["detail"]
        page.get_by_label("Question", exact=True).fill(question)
        page.get_by_label("Answers", exact=True).fill(k)
        page.get_by_label("Question", exact=True).press("Enter")
        page.wait_for_function("(d) => document.querySelector('#error .error-detail')?.textContent === d", arg=detail)
        assert page.locator("#error").is_visible() and page.locator("#results").is_hidden()
    tab.shot(screenshots, "invalid-input")

    # 413: a body over the server's limit
    page.get_by_label("Answers", exact=True).fill("3")
    page.get_by_label("Question", exact=True).fill("x" * 70_000)
    page.get_by_label("Question", exact=True).press("Enter")
    page.locator("#error .error-title").filter(has_text="too long").wait_for()
    assert "65536" in page.locator("#error").inner_text()
    tab.shot(screenshots, "too-large")

    # the working state, while the answer is held back
    held: list[Any] = []
    page.route("**/ask", lambda route: held.append(route))
    page.get_by_label("Question", exact=True).fill(QUESTION)
    page.get_by_label("Question", exact=True).press("Enter")
    page.locator("#status.busy").wait_for()
    assert page.locator("#status").inner_text().startswith("Working")
    assert page.locator("#error").is_hidden()
    tab.shot(screenshots, "working")
    while not held:
        page.wait_for_timeout(50)
    held[0].continue_()
    page.locator("#answers > li").first.wait_for()
    assert page.locator("#status.busy").count() == 0
    page.unroute("**/ask")

    # the server unreachable
    page.route("**/ask", lambda route: route.abort("connectionrefused"))
    page.get_by_label("Question", exact=True).press("Enter")
    page.locator("#error .error-title").filter(has_text="Cannot reach the server").wait_for()
    assert page.locator("#status.busy").count() == 0
    tab.shot(screenshots, "unreachable")
    tab.assert_clean()


READ_CLOSEST = """
() => [...document.querySelectorAll('#closest-list > li.passage')].map((li) => ({
  text: li.querySelector('.quote').textContent,
  href: li.querySelector('a.cite').getAttribute('href'),
  link: li.querySelector('a.cite').textContent,
}))
"""


@pytest.mark.slow
def test_no_answer_shows_the_closest_passages_and_says_so_once(
    seed_server: str, open_tab: Any, screenshots: Path
) -> None:
    tab = open_tab(seed_server)
    page = tab.page
    unanswered = next((q for q in UNANSWERABLE if not ask_json(seed_server, q).json()["answers"]), None)
    if unanswered is None:  # a reader that answers every one of them: a real passage of a seed, as the API gives it
        unanswered = UNANSWERABLE[0]
        doc_id = "000_0ad6adc2e8399668.txt"
        text = document_text(seed_server, doc_id)
        fake = {
            "question": unanswered,
            "answers": [],
            "closest": [{"doc_id": doc_id, "start": 0, "end": 80, "text": text[:80]}],
        }
        page.route(
            "**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(fake))
        )
        closest = fake["closest"]
    else:
        closest = ask_json(seed_server, unanswered).json()["closest"]
    assert closest
    tab.goto("/?" + "q=" + quote(unanswered))
    wait_for_answers(tab)
    main = page.locator("main").inner_text()
    assert main.count("The documents do not answer this question") == 1 and "No answer" not in main  # said once
    assert page.locator("#closest").is_visible() and page.locator("#answers > li").count() == 0
    shown = page.evaluate(READ_CLOSEST)
    assert [s["text"] for s in shown] == [p["text"] for p in closest]  # best first, each whole
    for s, p in zip(shown, closest):
        assert document_text(seed_server, p["doc_id"])[p["start"] : p["end"]] == s["text"]  # checkable
        h = hash_params(s["href"])
        assert (h["doc"], int(h["start"]), int(h["end"])) == (p["doc_id"], p["start"], p["end"])
        assert p["doc_id"] in s["link"] and f"{p['start']}–{p['end']}" in s["link"]
    tab.shot(screenshots, "no-answer-closest", full_page=True)

    # a passage opens in its document, highlighted there; Back returns to the passages
    page.locator("#closest-list a.cite").first.click()
    view = wait_for_document(tab)
    first = closest[0]
    assert view["current"] == document_text(seed_server, first["doc_id"])[first["start"] : first["end"]]
    assert view["inView"] and view["marks"] == [first["text"]]
    page.go_back()
    page.wait_for_function("() => document.querySelector('#doc').hidden")
    assert page.locator("#closest").is_visible()
    page.unroute("**/ask")

    # an answered question hides them again
    page.get_by_label("Question", exact=True).fill(QUESTION)
    page.get_by_label("Question", exact=True).press("Enter")
    page.locator("#answers > li").first.wait_for()
    assert page.locator("#closest").is_hidden() and page.locator("#no-answer").is_hidden()
    assert page.locator("#closest-list > li").count() == 0
    tab.assert_clean()


@pytest.mark.slow
def test_phone_width(seed_server: str, open_tab: Any, screenshots: Path) -> None:
    tab = open_tab(seed_server, width=375, height=740)
    page = tab.page
    tab.goto("/?q=" + quote(QUESTION))
    wait_for_answers(tab)
    no_scroll = "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    assert page.evaluate(no_scroll), "the answers overflow a 375 px screen"
    for label in ("Question", "Answers"):
        box = page.get_by_label(label, exact=True).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375
    tab.shot(screenshots, "phone-answers")
    ratios = page.evaluate(CONTRAST)
    expected = ask_json(seed_server, QUESTION).json()
    if expected["answers"]:
        page.locator("a.cite").first.click()
        answer = expected["answers"][0]
        assert_document_view(tab, seed_server, answer, answer["citations"][0])
        assert page.evaluate(no_scroll), "the document overflows a 375 px screen"
        tab.shot(screenshots, "phone-document")
        ratios.update({k: v for k, v in page.evaluate(CONTRAST).items() if v is not None})

    # readable contrast: WCAG AA (4.5:1) for the text of every kind on the page, in both views
    assert all(ratios[k] is not None for k in ("body", "label", "#submit", ".answer-text", ".quote mark", "a.cite"))
    low = {sel: r for sel, r in ratios.items() if r is not None and r < 4.5}
    assert not low, f"contrast below 4.5:1: {low}"
    tab.assert_clean()


CONTRAST = """
() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let n = el; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = {};
  for (const sel of ['body', 'label', '.hint', '#submit', '#status', '.answer-text', '.pct', '.quote',
                     '.quote mark', 'a.cite', '.offsets', '.foot', '#doc-meta', '#doc-text', '#doc-text mark']) {
    const el = document.querySelector(sel);
    if (!el || !el.getClientRects().length) { out[sel] = null; continue; }
    const a = lum(rgb(getComputedStyle(el).color).slice(0, 3));
    const b = lum(background(el));
    out[sel] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }
  return out;
}
"""


@pytest.mark.slow
def test_no_usable_index_is_the_503_state(browser: Any, open_tab: Any, tmp_path: Path, screenshots: Path) -> None:
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    (index_dir / "manifest.json").write_text("{not json", encoding="utf-8")
    with rag_serve(index_dir, tmp_path / "serve.log", ready=503) as base:
        detail = ask_json(base, QUESTION).json()["detail"]
        assert "rag index" in detail
        tab = open_tab(base)
        page = tab.page
        tab.goto("/")  # the page itself is served; the health check shows why nothing can be asked
        page.locator("#error").wait_for(state="visible")
        assert page.locator("#error .error-detail").first.inner_text() == detail
        tab.goto("/?q=" + quote(QUESTION))
        page.locator("#error").wait_for(state="visible")
        assert page.locator("#error .error-title").inner_text() == "Nothing can be answered yet."
        assert page.locator("#error .error-detail").first.inner_text() == detail
        assert page.locator("#results").is_hidden()
        tab.shot(screenshots, "no-index")
        tab.assert_clean()


HOSTILE_ID = "guest book/notes & #1 <b>.txt"  # a folder, spaces, &, #, < and > in the id
HOSTILE_TEXT = (
    "Field notes 😀 from the lab 𝄞.\n"
    "The lab cat is named Whiskers and sleeps by the window.\n\n"
    "A visitor 🐈 left this in the guest book: <script>alert(1)</script> and "
    '<img src=x onerror=alert(2)> and <b onmouseover="alert(5)">bold</b> &amp; more.\n'
    "Another visitor wrote <iframe src=javascript:alert(6)></iframe> below it.\n"
)


@pytest.mark.slow
def test_html_in_documents_and_questions_is_inert(
    browser: Any, open_tab: Any, tmp_path: Path, screenshots: Path
) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "guest book").mkdir(parents=True)
    (corpus / HOSTILE_ID).write_text(HOSTILE_TEXT, encoding="utf-8")
    (corpus / "lakes.txt").write_text("Lake Baikal is the deepest lake in the world.\n", encoding="utf-8")
    with rag_serve(tmp_path / "index", tmp_path / "serve.log", corpus=corpus) as base:
        assert document_text(base, HOSTILE_ID) == HOSTILE_TEXT
        tab = open_tab(base)
        page = tab.page
        script = HOSTILE_TEXT.index("<script>")
        img = HOSTILE_TEXT.index("<img")
        spans = [(script, HOSTILE_TEXT.index("</script>") + 9), (img, HOSTILE_TEXT.index(">", img) + 1)]
        # code point offsets, after three characters outside the BMP (two UTF-16 units each in JS)
        assert len(HOSTILE_TEXT[:script].encode("utf-16-le")) // 2 == script + 3
        fragment = (
            f"doc={quote(HOSTILE_ID, safe='')}&start={spans[0][0]}&end={spans[0][1]}&also={spans[1][0]}-{spans[1][1]}"
        )
        tab.goto("/#" + fragment)
        view = wait_for_document(tab)
        assert view["text"] == HOSTILE_TEXT
        assert view["current"] == "<script>alert(1)</script>"
        assert view["marks"] == ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"]
        assert view["elements"] == 0  # nothing but Text nodes and the two marks
        assert page.locator("#doc-title").inner_text() == f"Document {HOSTILE_ID}"
        page.wait_for_timeout(300)  # time for any injected handler to fire
        tab.shot(screenshots, "html-inert")

        # a question with markup, asked for real: shown as text
        question = "<img src=x onerror=alert(3)> What is the lab cat named?"
        page.get_by_label("Question", exact=True).fill(question)
        page.get_by_label("Question", exact=True).press("Enter")
        wait_for_answers(tab)
        assert page.locator("#results-title").text_content() == f"Answers to {question}"

        # an answer, quote and document id that are all markup (the API could hold such a corpus)
        quote_start = HOSTILE_TEXT.index("A visitor")
        quote_end = HOSTILE_TEXT.index("\n", quote_start)
        answer = {
            "text": HOSTILE_TEXT[img : spans[1][1]],
            "score": 0.5,
            "citations": [
                {
                    "doc_id": HOSTILE_ID,
                    "start": img,
                    "end": spans[1][1],
                    "quote": HOSTILE_TEXT[quote_start:quote_end],
                    "quote_start": quote_start,
                    "quote_end": quote_end,
                }
            ],
        }
        body = json.dumps({"question": "<script>alert(4)</script>", "answers": [answer]})
        page.route("**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=body))
        page.get_by_label("Question", exact=True).press("Enter")
        page.locator("#results-title").filter(has_text="alert(4)").wait_for()
        shown = page.evaluate(READ_ANSWERS)
        assert shown[0]["text"] == answer["text"]
        assert shown[0]["citations"][0]["quote"] == answer["citations"][0]["quote"]
        assert shown[0]["citations"][0]["marks"] == [answer["text"]]  # offsets right after the 🐈
        assert page.locator("main img, main script, main iframe, main b").count() == 0
        page.locator("a.cite").first.click()
        assert_document_view(tab, base, answer, answer["citations"][0])
        page.wait_for_timeout(300)
        tab.assert_clean()


@pytest.mark.slow
def test_a_citation_of_another_index_version_is_not_highlighted_and_says_ask_again(
    seed_server: str, open_tab: Any, screenshots: Path
) -> None:
    """Issue 21: a link carries the cited document's sha256; one that the served document no longer has
    (the index was updated since the answer) highlights nothing and says to ask again."""
    answer = ask_json(seed_server, QUESTION).json()["answers"][0]
    c = answer["citations"][0]
    tab = open_tab(seed_server)
    tab.goto("/")
    tab.page.locator("#q").fill(QUESTION)
    tab.page.locator("#q").press("Enter")
    wait_for_answers(tab)
    href = tab.page.locator("#answers > li.answer").nth(0).locator("a.cite").nth(0).get_attribute("href")
    assert hash_params(href)["sha"] == c["doc_sha256"][:16]
    tab.page.locator("#answers > li.answer").nth(0).locator("a.cite").nth(0).click()
    assert_document_view(tab, seed_server, answer, c)  # the same version: highlighted as before
    meta = tab.page.locator("#doc-meta").text_content() or ""
    assert "index was updated" not in meta
    older = f"#doc={quote(c['doc_id'])}&start={c['start']}&end={c['end']}&sha={'0' * 16}"
    tab.page.evaluate("(h) => { location.hash = h; }", older)
    tab.page.wait_for_function("() => document.querySelector('#doc-meta').textContent.includes('index was updated')")
    view = wait_for_document(tab)
    assert view["marks"] == [] and view["text"] == document_text(seed_server, c["doc_id"])
    assert "Ask again." in (tab.page.locator("#doc-meta").text_content() or "")
    tab.shot(screenshots, "document-of-another-index")
    tab.assert_clean()


@pytest.mark.slow
def test_a_citation_of_a_paged_document_shows_its_page(seed_server: str, open_tab: Any, screenshots: Path) -> None:
    """A citation with `page` (a PDF's) says the page in its link; one without says none."""
    doc_id = "004_237733e5469944db.txt"
    text = document_text(seed_server, doc_id)
    start = text.index("A$1.2 billion")
    quote_end = text.index("\n", start)
    cite = {"doc_id": doc_id, "start": start, "end": start + 13, "quote": text[start:quote_end]}
    cite |= {"quote_start": start, "quote_end": quote_end}
    answer = {"text": "A$1.2 billion", "score": 0.5, "citations": [{**cite, "page": 2}, cite]}
    tab = open_tab(seed_server)
    page = tab.page
    body = json.dumps({"question": "How big is the reserve?", "answers": [answer]})
    page.route("**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=body))
    tab.goto("/")
    page.get_by_label("Question", exact=True).fill("How big is the reserve?")
    page.get_by_label("Question", exact=True).press("Enter")
    wait_for_answers(tab)
    links = [c["link"] for c in page.evaluate(READ_ANSWERS)[0]["citations"]]
    assert links == [f"Open {doc_id}, page 2, at {start}–{start + 13}", f"Open {doc_id} at {start}–{start + 13}"]
    tab.shot(screenshots, "page-of-a-citation")
    tab.assert_clean()


@pytest.mark.slow
def test_a_paged_document_shows_its_pages_and_a_repeated_quote_shows_once(
    seed_server: str, open_tab: Any, screenshots: Path
) -> None:
    """The document view of a PDF labels each page (no text added) and says the cited span's page; a quote
    repeated verbatim in one document is one block, "also at" its other place, which opens there."""
    page_one = "Minerals alliance talks\nThe ministers met in Washington.\n"
    page_two = "Opposition\nThe gallium levy was opposed by the Japanese trade ministry.\n"
    text = page_one + page_two + page_one  # the first page's text again at the end: a repeated quote
    starts = [0, len(page_one), len(page_one) + len(page_two)]
    doc = {"doc_id": "talks.pdf", "chars": len(text), "bytes": len(text.encode()), "sha256": "0" * 64}
    doc |= {"pages": 3, "text": text, "page_starts": starts}
    where = [text.index("Washington"), text.rindex("Washington")]
    quote_start = page_one.index("The ministers")
    quote = page_one[quote_start:-1]
    cites = [
        {"doc_id": "talks.pdf", "start": w, "end": w + 10, "quote": quote, "page": 1 if w < starts[1] else 3}
        | {"quote_start": w - page_one.index("Washington") + quote_start}
        | {"quote_end": w - page_one.index("Washington") + quote_start + len(quote)}
        for w in where
    ]
    answer = {"text": "Washington", "score": 0.5, "citations": cites}
    tab = open_tab(seed_server)
    page = tab.page
    body = json.dumps({"question": "Where did the ministers meet?", "answers": [answer]})
    page.route("**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=body))
    page.route(
        "**/documents/talks.pdf",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(doc)),
    )
    tab.goto("/")
    page.get_by_label("Question", exact=True).fill("Where did the ministers meet?")
    page.get_by_label("Question", exact=True).press("Enter")
    wait_for_answers(tab)
    shown = page.evaluate(READ_ANSWERS)[0]["citations"]
    assert len(shown) == 1 and shown[0]["quote"] == quote  # one block for the two places
    assert page.locator("p.also").inner_text() == f"The same sentence is also at page 3, {where[1]}–{where[1] + 10}."
    tab.shot(screenshots, "repeated-quote")

    page.locator("a.also-cite").click()  # opens the other place
    view = wait_for_document(tab)
    assert view["text"] == text and view["current"] == "Washington" and view["marks"] == ["Washington"] * 2
    assert view["pages"] == ["1", "2", "3"]
    assert hash_params(page.url)["start"] == str(where[1])
    meta = page.locator("#doc-meta").inner_text()
    assert f"characters {where[1]}–{where[1] + 10}, on page 3." in meta
    labels = page.evaluate(
        "() => [...document.querySelectorAll('.page-break')].map((b) => getComputedStyle(b, '::before').content)"
    )
    assert labels == ['"Page " attr(data-page)'] * 3 or labels == ['"Page 1"', '"Page 2"', '"Page 3"']
    tab.shot(screenshots, "pdf-pages")
    tab.assert_clean()


@pytest.mark.slow
def test_a_1mb_document_stays_responsive(seed_server: str, open_tab: Any, screenshots: Path) -> None:
    """The page's rendering of a 1 MB document (served by a route in the browser: indexing 1 MB here would
    take minutes): a few nodes, highlighted by code point offsets past thousands of non-BMP characters."""
    line = "Paragraph of filler text with an emoji 🙂 and some words, repeated to make a large document.\n"
    text = line * (1_000_000 // len(line.encode("utf-8")))
    start = len(text) - 5 * len(line) + line.index("filler")
    other = len(text) // 2 + line.index("emoji")
    spans = [(start, start + 6), (other, other + 5)]
    doc = {"doc_id": "big.txt", "chars": len(text), "bytes": len(text.encode()), "sha256": "0" * 64, "text": text}
    assert len(text.encode("utf-8")) > 990_000
    tab = open_tab(seed_server)
    page = tab.page
    page.route(
        "**/documents/big.txt",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(doc)),
    )
    tab.goto("/")
    t0 = time.monotonic()
    page.evaluate(
        "(h) => { location.hash = h; }",
        f"doc=big.txt&start={spans[0][0]}&end={spans[0][1]}&also={spans[1][0]}-{spans[1][1]}",
    )
    view = wait_for_document(tab)
    elapsed = time.monotonic() - t0
    assert view["current"] == text[spans[0][0] : spans[0][1]] == "filler"
    assert view["marks"] == [text[s:e] for s, e in sorted(spans)] == ["emoji", "filler"]
    assert view["inView"]
    assert view["breaks"] == text.count("\n") - 1  # a gap after each line but the last (each one paragraph)
    assert view["nodes"] == 5 + 2 * view["breaks"]  # before / mark / between / mark / after, split at the gaps
    assert view["renderMs"] < 1000, view["renderMs"]
    assert elapsed < 10, f"the 1 MB document took {elapsed:.1f} s to show"
    t1 = time.monotonic()
    page.get_by_role("button", name="Previous citation").click()  # still responsive
    page.wait_for_function("() => document.querySelector('mark.current').textContent === 'emoji'")
    assert time.monotonic() - t1 < 5
    assert page.evaluate(READ_DOCUMENT)["inView"]
    tab.shot(screenshots, "large-document")
    tab.assert_clean()


READ_CONFLICT = """
() => {
  const box = document.querySelector('#conflict');
  const answers = document.querySelector('#answers');
  return {
    hidden: box.hidden,
    note: box.querySelector('#conflict-note').textContent,
    above: Boolean(box.compareDocumentPosition(answers) & Node.DOCUMENT_POSITION_FOLLOWING) &&
      box.getBoundingClientRect().bottom <= answers.getBoundingClientRect().top,
    items: [...box.querySelectorAll('#conflict-list > li')].map((li) => ({
      text: li.querySelector('.conflict-answer').textContent,
      href: li.querySelector('a.cite').getAttribute('href'),
    })),
    marked: [...document.querySelectorAll('#answers > li.answer')].map((li) => li.classList.contains('disagrees')),
  };
}
"""


def seed_answer(base: str, doc_id: str, text: str, score: float) -> dict:
    """An answer citing the first place ``text`` is written in seed ``doc_id`` (its line as the quote)."""
    doc = document_text(base, doc_id)
    start = doc.index(text)
    quote_start = doc.rindex("\n", 0, start) + 1
    quote_end = doc.index("\n", start)
    cite = {"doc_id": doc_id, "start": start, "end": start + len(text), "quote": doc[quote_start:quote_end]}
    return {"text": text, "score": score, "citations": [cite | {"quote_start": quote_start, "quote_end": quote_end}]}


def fulfil_json(body: dict) -> Any:
    """A route handler that answers with ``body`` as JSON."""
    return lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(body))


@pytest.mark.slow
def test_a_conflict_note_shows_above_the_answers_with_each_citation_one_click_away(
    seed_server: str, open_tab: Any, screenshots: Path
) -> None:
    """Issue 24: the answer JSON's `conflict` is shown above the answers; each disagreeing answer's first
    citation opens in its document with one click; a body without a usable `conflict` shows none."""
    answers = [
        seed_answer(seed_server, "004_237733e5469944db.txt", "17,000–18,000 tonnes", 0.9),
        seed_answer(seed_server, "000_0ad6adc2e8399668.txt", "Washington", 0.5),
        seed_answer(seed_server, "001_9d22b42193b165a8.txt", "20,000 tonnes", 0.8),
    ]
    note = (
        'The documents disagree: "17,000–18,000 tonnes" (004_237733e5469944db.txt) vs "20,000 tonnes" '
        "(001_9d22b42193b165a8.txt)."
    )
    question = "How many tonnes of magnets does Europe import from China?"
    body = {"question": question, "answers": answers, "conflict": {"answers": [0, 2], "kind": "amount", "note": note}}
    tab = open_tab(seed_server)
    page = tab.page
    page.route(
        "**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(body))
    )
    tab.goto("/?q=" + quote(question))
    wait_for_answers(tab)
    shown = page.evaluate(READ_CONFLICT)
    assert not shown["hidden"] and shown["note"] == note and shown["above"]
    assert [i["text"] for i in shown["items"]] == ["17,000–18,000 tonnes", "20,000 tonnes"]
    for item, i in zip(shown["items"], (0, 2)):
        c = answers[i]["citations"][0]
        h = hash_params(item["href"])
        assert (h["doc"], int(h["start"]), int(h["end"])) == (c["doc_id"], c["start"], c["end"])
    assert shown["marked"] == [True, False, True]
    tab.shot(screenshots, "conflict", full_page=True)

    for n, i in enumerate((0, 2)):  # one click from the note to each citation, Back to the note
        page.locator("#conflict-list > li").nth(n).locator("a.cite").click()
        assert_document_view(tab, seed_server, answers[i], answers[i]["citations"][0])
        page.go_back()
        page.wait_for_function("() => document.querySelector('#doc').hidden")
        assert page.locator("#conflict").is_visible()

    # a conflict that names no answer shown, or none at all: no note
    for conflict in ({"answers": [0, 7], "kind": "amount", "note": note}, {"answers": [0], "note": note}, None):
        bad = {**body, "question": f"{question} {conflict}", "conflict": conflict}
        page.unroute("**/ask")
        page.route("**/ask", fulfil_json(bad))
        page.get_by_label("Question", exact=True).fill(bad["question"])
        page.get_by_label("Question", exact=True).press("Enter")
        page.locator("#results-title").filter(has_text=str(conflict)).wait_for()
        assert page.locator("#conflict").is_hidden() and page.locator("#answers > li.answer").count() == 3
        assert page.evaluate(READ_CONFLICT)["marked"] == [False, False, False]
    tab.assert_clean()
