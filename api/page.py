"""The web page at ``/``: three static files shipped in ``api/static/``, read once into memory.

The files are served from a fixed table (no path parameter, nothing read from disk per request), with a
Content-Security-Policy that allows only the app's own scripts, styles and requests: questions and document
texts are inserted by ``app.js`` as text nodes, and the policy is the second line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi.responses import Response

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the question is in the page's URL
    "X-Frame-Options": "DENY",
    # small files; "no-cache" revalidates them on every load, so a new version is picked up at once
    "Cache-Control": "no-cache",
}

# name in api/static/ -> media type; nothing outside this table is ever served
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str


@cache
def asset(name: str) -> Asset:
    """The bytes of one file of the page, read from the package once."""
    media_type = ASSETS[name]  # KeyError for anything else: callers pass constants only
    body = resources.files("api").joinpath("static").joinpath(name).read_bytes()
    return Asset(body, media_type)


def asset_response(name: str) -> Response:
    a = asset(name)
    return Response(content=a.body, media_type=a.media_type, headers=SECURITY_HEADERS)
