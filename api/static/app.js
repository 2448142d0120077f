// The page at "/": ask a question, read the answers, open any citation in its document.
//
// Plain JavaScript, no build step, nothing fetched but this server's own JSON API (POST /ask,
// GET /documents/{id}, GET /health). Every question, answer, quote, document id and document text is
// inserted as text (textContent, Text nodes), never parsed as HTML.
//
// State lives in the URL so a view can be shared, bookmarked and reloaded:
//   /?q=QUESTION&k=N                       the answers (k is omitted when it is the default, 3)
//   ...#doc=ID&start=S&end=E&also=S-E,...  a document, the citation S..E scrolled to, the other places
//                                          of the same answer in that document highlighted too
// Offsets are the API's: Python code point indices (a character outside the BMP, e.g. an emoji, is one
// code point but two UTF-16 units in a JavaScript string; utf16Offsets converts).
"use strict";

(() => {
  const DEFAULT_K = 3;
  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $("ask"), q: $("q"), k: $("k"), submit: $("submit"),
    status: $("status"), error: $("error"),
    results: $("results"), resultsTitle: $("results-title"), noAnswer: $("no-answer"), answers: $("answers"),
    why: $("no-answer-why"), closest: $("closest"), closestList: $("closest-list"),
    conflict: $("conflict"), conflictNote: $("conflict-note"), conflictList: $("conflict-list"),
    doc: $("doc"), back: $("back"), prev: $("prev-mark"), next: $("next-mark"),
    docTitle: $("doc-title"), docMeta: $("doc-meta"), docText: $("doc-text"), corpus: $("corpus"),
  };

  let result = null;          // {key, body}: the answers on show
  let asking = null;          // AbortController of the request in flight
  let askingKey = null;       // and the [question, top_k] it asks
  let docToken = 0;           // drops document responses that arrive after the user moved on
  const docCache = new Map(); // doc id -> {doc_id, chars, text}; a few, most recent last
  let marks = [];             // <mark> elements of the document view
  let current = 0;            // index into marks of the citation in focus
  let openedFromResults = false;
  let returnFocus = null;     // the citation link that opened the document view
  let routed = null;          // the URL last shown, so popstate + hashchange route once

  // ------------------------------------------------------------------------------------ offsets
  const SURROGATES = /[\uD800-\uDFFF]/;

  /** UTF-16 indices into `text` of the code point offsets `cps` (any order; clamped to the end). */
  function utf16Offsets(text, cps) {
    if (!SURROGATES.test(text)) return cps.map((c) => Math.min(c, text.length));
    const order = cps.map((c, i) => [c, i]).sort((a, b) => a[0] - b[0]);
    const out = new Array(cps.length);
    let cp = 0;
    let u = 0;
    for (const [target, i] of order) {
      while (cp < target && u < text.length) {
        const hi = text.charCodeAt(u);
        const pair = hi >= 0xd800 && hi <= 0xdbff && u + 1 < text.length &&
          (text.charCodeAt(u + 1) & 0xfc00) === 0xdc00;
        u += pair ? 2 : 1;
        cp += 1;
      }
      out[i] = u;
    }
    return out;
  }

  /**
   * `text` as a fragment of Text nodes and <mark> elements, one mark per span ({start, end, focus}, code
   * point offsets; overlapping spans merge). A few nodes whatever the length of the text, plus one empty
   * element per break ({at, page}: UTF-16 offset; a page's label, or without `page` a paragraph's gap),
   * which adds no text.
   */
  function highlighted(text, spans, breaks = []) {
    const flat = utf16Offsets(text, spans.flatMap((s) => [s.start, s.end]));
    const units = spans
      .map((s, i) => ({ start: flat[2 * i], end: flat[2 * i + 1], focus: Boolean(s.focus) }))
      .filter((s) => s.end > s.start)
      .sort((a, b) => a.start - b.start || b.end - a.end);
    const merged = [];
    for (const s of units) {
      const last = merged[merged.length - 1];
      if (last && s.start < last.end) {
        last.end = Math.max(last.end, s.end);
        last.focus = last.focus || s.focus;
      } else {
        merged.push({ ...s });
      }
    }
    let b = 0; // the next break to place
    /** text[from, to) into `parent`, with the breaks inside it (and one at `to` when `closing`). */
    const emit = (parent, from, to, closing) => {
      let pos = from;
      while (b < breaks.length && (breaks[b].at < to || (closing && breaks[b].at === to))) {
        const at = Math.max(breaks[b].at, pos);
        if (at > pos) parent.append(text.slice(pos, at)); // a string becomes a Text node
        parent.append(breakNode(breaks[b]));
        pos = at;
        b += 1;
      }
      if (to > pos) parent.append(text.slice(pos, to));
    };
    const fragment = document.createDocumentFragment();
    const made = [];
    let pos = 0;
    for (const s of merged) {
      emit(fragment, pos, s.start, true); // a break where a mark starts goes before it
      const mark = document.createElement("mark");
      emit(mark, s.start, s.end, false);
      if (s.focus) mark.classList.add("focus");
      fragment.append(mark);
      made.push(mark);
      pos = s.end;
    }
    emit(fragment, pos, text.length, true);
    return { fragment, marks: made };
  }

  function breakNode(brk) {
    const node = document.createElement("span");
    if (brk.page === undefined) {
      node.className = "gap"; // the space between two paragraphs
      node.setAttribute("aria-hidden", "true");
    } else {
      node.className = "page-break"; // its label is drawn by CSS, so it is no part of the text
      node.dataset.page = String(brk.page);
      node.setAttribute("role", "separator");
      node.setAttribute("aria-label", `Page ${brk.page}`);
    }
    return node;
  }

  // a line break that ends a paragraph: one alone (a blank line already makes a gap), not the last character
  const PARAGRAPH_END = /(?<!\n)\n(?=[^\n])/g;

  /** Where the document view breaks `text`: each page's start (`pageStarts`, code points), each paragraph's end. */
  function breaksOf(text, pageStarts) {
    const starts = Array.isArray(pageStarts) ? pageStarts.filter(Number.isInteger) : [];
    const pages = utf16Offsets(text, starts).map((at, i) => ({ at, page: i + 1 }));
    const taken = new Set(pages.map((p) => p.at));
    const gaps = [];
    for (const m of text.matchAll(PARAGRAPH_END)) {
      if (!taken.has(m.index + 1)) gaps.push({ at: m.index + 1 });
    }
    return [...pages, ...gaps].sort((x, y) => x.at - y.at);
  }

  // ------------------------------------------------------------------------------------ small helpers
  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  function setStatus(text, busy = false) {
    ui.status.textContent = text;
    ui.status.classList.toggle("busy", busy);
  }

  function clearError() {
    ui.error.hidden = true;
    ui.error.replaceChildren();
  }

  /** Show what went wrong (`what`: ask, document, health); `status` 0 means the server could not be reached. */
  function showError(status, body, what) {
    const detail = body && typeof body.detail === "string" ? body.detail : "";
    let title;
    let hint = "";
    if (status === 0) {
      title = "Cannot reach the server.";
      hint = `Nothing answered at ${location.origin}. Check that \`rag serve\` is still running, then try again.`;
    } else if (status === 413) {
      title = "The question is too long to send.";
    } else if (status === 422) {
      title = "The question could not be asked.";
    } else if (status === 503) {
      title = "Nothing can be answered yet.";
    } else if (status === 404) {
      title = what === "document" ? "This document is not in the index." : "Not found.";
    } else {
      title = `The server answered with an error (HTTP ${status}).`;
    }
    const box = [make("p", "error-title", title)];
    if (detail) box.push(make("p", "error-detail", detail));
    if (hint) box.push(make("p", "error-detail", hint));
    ui.error.replaceChildren(...box);
    ui.error.dataset.from = what;
    ui.error.hidden = false;
  }

  function parseK(raw) {
    if (raw === null || raw === "") return DEFAULT_K;
    const n = Number(raw);
    return Number.isInteger(n) ? n : raw; // not a whole number: sent as is, the API's detail says why
  }

  function questionUrl(q, k) {
    const p = new URLSearchParams();
    p.set("q", q);
    if (String(k) !== String(DEFAULT_K)) p.set("k", String(k));
    return `${location.pathname}?${p}`;
  }

  function docHash(docId, start, end, also, sha) {
    const p = new URLSearchParams({ doc: docId, start: String(start), end: String(end) });
    if (also.length) p.set("also", also.map(([s, e]) => `${s}-${e}`).join(","));
    if (sha) p.set("sha", sha.slice(0, 16)); // the version of the document the answer cites
    return `#${p}`;
  }

  // a document whose sha256 is not the one the citation names: the index was updated since the answer
  const stale = (doc, sha) => Boolean(sha) && !String(doc.sha256 || "").startsWith(sha);

  const integer = (s) => (s !== null && /^\d{1,12}$/.test(s) ? Number(s) : null);

  function percent(score) {
    return `${Math.round(Math.max(0, Math.min(1, score)) * 100)}%`;
  }

  // ------------------------------------------------------------------------------------ answers
  async function ask(q, kRaw) {
    asking?.abort();
    const controller = new AbortController();
    const topK = parseK(kRaw);
    const key = JSON.stringify([q, topK]);
    asking = controller;
    askingKey = key;
    clearError();
    setStatus("Working… looking for the answer in the documents.", true);
    ui.submit.classList.add("busy");
    ui.results.setAttribute("aria-busy", "true");
    try {
      const response = await fetch("/ask", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ question: q, top_k: topK }),
        signal: controller.signal,
      });
      const body = await readJson(response);
      if (asking !== controller) return;
      if (!response.ok || !body || !Array.isArray(body.answers)) {
        result = null;
        ui.results.hidden = true;
        setStatus("");
        showError(response.ok ? 500 : response.status, body, "ask");
        return;
      }
      result = { key, body };
      renderAnswers(body);
      const n = body.answers.length;
      setStatus(n ? `${n} answer${n === 1 ? "" : "s"}, best first.` : ""); // none: the message below says so, once
      if (!ui.doc.hidden) ui.results.hidden = true; // a shared document link: the answers wait behind it
    } catch (err) {
      if (err && err.name === "AbortError") return;
      if (asking !== controller) return;
      result = null;
      ui.results.hidden = true;
      setStatus("");
      showError(0, null, "ask");
    } finally {
      if (asking === controller) {
        asking = null;
        askingKey = null;
        ui.submit.classList.remove("busy");
        ui.results.removeAttribute("aria-busy");
      }
    }
  }

  function renderAnswers(body) {
    ui.resultsTitle.replaceChildren("Answers to ", make("q", "asked", body.question));
    const none = body.answers.length === 0;
    ui.noAnswer.hidden = !none;
    // no answer: the passages that came closest (`closest`), each one opens in its document like a citation
    const closest = none && Array.isArray(body.closest) ? body.closest : [];
    ui.why.textContent = closest.length
      ? "Below are the passages that came closest; none of them answers it well enough. Try other words."
      : "Nothing in the documents matched it; try other words.";
    ui.closestList.replaceChildren(...closest.map(renderPassage));
    ui.closest.hidden = closest.length === 0;
    // the documents disagree: the note above the answers, with each disagreeing answer's citation
    const conflict = conflictOf(body);
    ui.conflictNote.textContent = conflict ? conflict.note : "";
    ui.conflictList.replaceChildren(...(conflict ? conflict.answers.map((i) => renderDisagreeing(body.answers[i], i)) : []));
    ui.conflict.hidden = !conflict;
    const disagreeing = new Set(conflict ? conflict.answers : []);
    const items = body.answers.map((answer, i) => renderAnswer(answer, i, disagreeing.has(i)));
    ui.answers.replaceChildren(...items);
    ui.results.hidden = false;
  }

  /** "Open DOC_ID[, page N,] at S–E": opens the document with S..E highlighted (and `also`, other places). */
  function sourceLink(docId, start, end, also, page, sha) {
    const link = make("a", "cite");
    link.href = docHash(docId, start, end, also, sha);
    link.append("Open ", make("span", "doc-id", docId));
    if (Number.isInteger(page)) link.append(make("span", "page", `, page ${page},`));
    link.append(make("span", "offsets", ` at ${start}–${end}`));
    link.addEventListener("click", () => {
      openedFromResults = true;
      returnFocus = link;
    });
    const source = make("p", "source");
    source.append(link);
    return source;
  }

  function renderPassage(p) {
    const li = make("li", "passage");
    li.append(make("blockquote", "quote", p.text), sourceLink(p.doc_id, p.start, p.end, []));
    return li;
  }

  /** The body's `conflict` when it is usable (a note, and indexes of answers that have a citation), else null. */
  function conflictOf(body) {
    const c = body.conflict;
    if (!c || typeof c.note !== "string" || !Array.isArray(c.answers) || c.answers.length < 2) return null;
    const fine = (i) => Number.isInteger(i) && i >= 0 && i < body.answers.length &&
      Array.isArray(body.answers[i].citations) && body.answers[i].citations.length > 0;
    return c.answers.every(fine) ? c : null;
  }

  /** One disagreeing answer in the note: its text, its number, and its first citation, one click away. */
  function renderDisagreeing(answer, i) {
    const li = make("li", "disagreeing");
    li.append(make("strong", "conflict-answer", answer.text), make("span", "conflict-rank", ` (answer ${i + 1})`));
    const c = answer.citations[0];
    const others = answer.citations.filter((x) => x !== c && x.doc_id === c.doc_id).map((x) => [x.start, x.end]);
    li.append(sourceLink(c.doc_id, c.start, c.end, others, c.page, c.doc_sha256));
    return li;
  }

  function renderAnswer(answer, i, disagrees = false) {
    const li = make("li", "answer");
    if (disagrees) li.classList.add("disagrees");
    const head = make("div", "answer-head");
    const rank = make("span", "rank", `${i + 1}.`);
    rank.setAttribute("aria-hidden", "true");
    const text = make("strong", "answer-text", answer.text);
    const score = make("span", "score");
    const meter = document.createElement("meter");
    meter.min = 0;
    meter.max = 1;
    meter.value = answer.score;
    meter.setAttribute("aria-hidden", "true");
    const pct = make("span", "pct", `score ${percent(answer.score)}`);
    pct.title = `score ${answer.score} (0 to 1, higher is surer)`;
    score.append(meter, pct);
    const tag = disagrees ? [make("span", "disagrees-tag", "disagrees with another document")] : [];
    head.append(rank, text, ...tag, score);

    const list = make("ul", "citations");
    list.setAttribute("aria-label", `Where “${answer.text}” is written`);
    // a quote repeated verbatim in one document (an article held twice) is shown once, "also at" its other places
    const same = new Map();
    for (const c of answer.citations) {
      let key = JSON.stringify([c.doc_id, c.quote, c.start - c.quote_start, c.end - c.quote_start]);
      if (same.get(key)?.some((o) => o.start === c.start)) key += `@${c.start}`; // the same place: no repeat
      if (!same.has(key)) same.set(key, []);
      same.get(key).push(c);
    }
    for (const group of same.values()) list.append(renderCitation(answer, group));
    li.append(head, list);
    return li;
  }

  /** One quote and its link; `group`: the citations of that very quote in one document, the first shown. */
  function renderCitation(answer, group) {
    const c = group[0];
    const li = make("li", "citation");
    const quote = make("blockquote", "quote");
    const { fragment } = highlighted(c.quote, [{ start: c.start - c.quote_start, end: c.end - c.quote_start }]);
    quote.append(fragment);
    const othersThere = (o) => answer.citations.filter((x) => x !== o && x.doc_id === o.doc_id).map((x) => [x.start, x.end]);
    li.append(quote, sourceLink(c.doc_id, c.start, c.end, othersThere(c), c.page, c.doc_sha256));
    if (group.length > 1) {
      const also = make("p", "also", "The same sentence is also at ");
      group.slice(1).forEach((o, i) => {
        if (i) also.append(", ");
        const link = make("a", "also-cite", `${Number.isInteger(o.page) ? `page ${o.page}, ` : ""}${o.start}–${o.end}`);
        link.href = docHash(o.doc_id, o.start, o.end, othersThere(o), o.doc_sha256);
        link.addEventListener("click", () => {
          openedFromResults = true;
          returnFocus = link;
        });
        also.append(link);
      });
      also.append(".");
      li.append(also);
    }
    return li;
  }

  // ------------------------------------------------------------------------------------ document view
  async function loadDocument(docId, fresh = false) {
    if (!fresh && docCache.has(docId)) return { ok: true, doc: docCache.get(docId) };
    const response = await fetch(`/documents/${encodeURIComponent(docId)}`, { headers: { accept: "application/json" } });
    const body = await readJson(response);
    if (!response.ok || !body || typeof body.text !== "string") return { ok: false, status: response.ok ? 500 : response.status, body };
    docCache.set(docId, body);
    while (docCache.size > 4) docCache.delete(docCache.keys().next().value);
    return { ok: true, doc: body };
  }

  async function showDocument(docId, focusSpan, also, sha = null) {
    const token = ++docToken;
    ui.results.hidden = true;
    ui.status.hidden = true; // it speaks of the answers, which are not on show
    ui.doc.hidden = false;
    ui.back.href = `${location.pathname}${location.search}`;
    ui.docTitle.replaceChildren("Document ", make("span", "doc-id", docId));
    ui.docMeta.textContent = "Loading the document…";
    ui.docText.replaceChildren();
    ui.prev.hidden = ui.next.hidden = true;
    marks = [];
    let loaded;
    try {
      loaded = await loadDocument(docId);
      if (loaded.ok && stale(loaded.doc, sha)) loaded = await loadDocument(docId, true); // not an old copy
    } catch {
      loaded = { ok: false, status: 0, body: null };
    }
    if (token !== docToken) return;
    if (!loaded.ok) {
      ui.docMeta.textContent = "";
      showError(loaded.status, loaded.body, "document");
      return;
    }
    const doc = loaded.doc;
    const chars = typeof doc.chars === "number" ? doc.chars : Array.from(doc.text).length;
    const valid = (span) => Boolean(span) && span[0] !== null && span[1] !== null && span[0] < span[1] && span[1] <= chars;
    const changed = stale(doc, sha); // its offsets point into another version: nothing is highlighted
    const focusValid = !changed && valid(focusSpan);
    const spans = changed ? [] : also.filter(valid).map(([start, end]) => ({ start, end, focus: false }));
    if (focusValid) spans.unshift({ start: focusSpan[0], end: focusSpan[1], focus: true });
    const outside = changed ? [] : [...(focusSpan ? [focusSpan] : []), ...also].filter((span) => !valid(span));

    const t0 = performance.now();
    const built = highlighted(doc.text, spans, breaksOf(doc.text, doc.page_starts));
    ui.docText.replaceChildren(built.fragment);
    marks = built.marks;
    ui.docText.dataset.renderMs = String(Math.round(performance.now() - t0));

    const parts = [`${chars.toLocaleString("en")} characters.`];
    if (changed) parts.push("The index was updated since this answer: this document has changed, so the cited text is not highlighted. Ask again.");
    if (focusValid) {
      const page = pageOf(doc.page_starts, focusSpan[0]);
      parts.push(`Cited span: characters ${focusSpan[0]}–${focusSpan[1]}${page ? `, on page ${page}` : ""}.`);
    }
    if (marks.length > 1) parts.push(`${marks.length} places of this answer are highlighted.`);
    if (outside.length) {
      parts.push(`${outside.length} cited span${outside.length > 1 ? "s are" : " is"} outside this document; the index may have changed since the link was made.`);
    }
    ui.docMeta.textContent = parts.join(" ");
    ui.prev.hidden = ui.next.hidden = marks.length < 2;
    current = Math.max(0, marks.findIndex((m) => m.classList.contains("focus")));
    if (marks.length) {
      goToMark(current, openedFromResults);
    } else {
      window.scrollTo(0, 0);
      ui.docTitle.focus({ preventScroll: true });
    }
  }

  /** The 1-based page holding code point `offset`, given each page's start; null for a document without pages. */
  function pageOf(pageStarts, offset) {
    if (!Array.isArray(pageStarts) || pageStarts.length === 0) return null;
    let page = 1;
    pageStarts.forEach((start, i) => {
      if (start <= offset) page = i + 1;
    });
    return page;
  }

  function goToMark(i, moveFocus = true) {
    marks.forEach((m) => m.classList.remove("current"));
    current = (i + marks.length) % marks.length;
    const mark = marks[current];
    mark.classList.add("current");
    mark.tabIndex = -1;
    mark.scrollIntoView({ block: "center", inline: "nearest" });
    if (moveFocus) mark.focus({ preventScroll: true });
  }

  function leaveDocument() {
    docToken += 1;
    ui.doc.hidden = true;
    ui.status.hidden = false;
    ui.docText.replaceChildren(); // a large document is not kept in the page
    marks = [];
  }

  // ------------------------------------------------------------------------------------ routing
  function route() {
    if (location.href === routed) return;
    routed = location.href;
    const params = new URLSearchParams(location.search);
    const q = params.get("q") ?? "";
    const k = params.get("k");
    ui.q.value = q;
    ui.k.value = k ?? String(DEFAULT_K);
    const hash = new URLSearchParams(location.hash.slice(1));
    const docId = hash.get("doc");

    const key = JSON.stringify([q, parseK(k)]);
    if (q !== "" && (!result || result.key !== key) && askingKey !== key) ask(q, k);
    if (docId !== null) {
      if (ui.error.dataset.from === "document") clearError();
      const focusSpan = [integer(hash.get("start")), integer(hash.get("end"))];
      const also = (hash.get("also") || "").split(",").filter(Boolean).map((p) => p.split("-").map(integer));
      const sha = /^[0-9a-f]{1,64}$/.test(hash.get("sha") || "") ? hash.get("sha") : null;
      showDocument(docId, focusSpan[0] === null ? null : focusSpan, also, sha);
      return;
    }
    leaveDocument();
    if (ui.error.dataset.from === "document") clearError();
    if (q === "") {
      result = null;
      ui.results.hidden = true;
      clearError();
      setStatus("");
      return;
    }
    if (result) ui.results.hidden = false;
    if (returnFocus && returnFocus.isConnected) {
      returnFocus.focus({ preventScroll: false });
      returnFocus.scrollIntoView({ block: "center" });
    }
    returnFocus = null;
    openedFromResults = false;
  }

  function submit(event) {
    event.preventDefault();
    const q = ui.q.value;
    const k = ui.k.value;
    const url = questionUrl(q, k);
    if (`${location.pathname}${location.search}${location.hash}` !== url) history.pushState(null, "", url);
    routed = location.href;
    leaveDocument();
    returnFocus = null;
    openedFromResults = false;
    ask(q, k);
  }

  function back(event) {
    event.preventDefault();
    if (openedFromResults) {
      history.back();
    } else {
      history.pushState(null, "", `${location.pathname}${location.search}`);
      route();
    }
  }

  // ------------------------------------------------------------------------------------ corpus line
  async function health() {
    let response;
    try {
      response = await fetch("/health", { headers: { accept: "application/json" } });
    } catch {
      if (ui.error.hidden) showError(0, null, "health");
      return;
    }
    const body = await readJson(response);
    if (response.ok && body) {
      ui.corpus.textContent = `Answers come from ${body.documents} indexed document${body.documents === 1 ? "" : "s"} ` +
        `(${body.chunks} passages, model ${body.model}).`;
    } else if (ui.error.hidden && !asking) {
      showError(response.status, body, "health");
    }
  }

  // ------------------------------------------------------------------------------------ start
  ui.form.addEventListener("submit", submit);
  ui.back.addEventListener("click", back);
  ui.prev.addEventListener("click", () => goToMark(current - 1));
  ui.next.addEventListener("click", () => goToMark(current + 1));
  window.addEventListener("popstate", route);
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", (event) => {
    const typing = event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement;
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      ui.q.focus();
      ui.q.select();
    } else if (event.key === "Escape" && !typing && !ui.doc.hidden) {
      back(event);
    }
  });
  route();
  health();
  if (!ui.q.value && ui.doc.hidden) ui.q.focus();
})();
