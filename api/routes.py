"""The endpoints. Thin: validate (models), call the pipeline, shape the answer; errors become JSON at the edge."""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter, Depends, HTTPException, Response

from api.deps import IndexDep, PipelineDep, StateDep, require_api_key
from api.errors import Utf8JsonRoute
from api.models import AskRequest, AskResponse, DocumentInfo, DocumentText, ErrorResponse, HealthResponse
from api.page import asset_response
from rag.errors import InvalidQuestion
from rag.types import Document

Info = TypeVar("Info", bound=DocumentInfo)

router = APIRouter(route_class=Utf8JsonRoute)  # JSON bodies are UTF-8 only


def utf8_size(text: str) -> int:
    """Size of ``text`` in UTF-8 bytes (documents are read as UTF-8, so they always encode)."""
    return len(text.encode("utf-8"))


_ERRORS = {503: {"model": ErrorResponse, "description": "No usable index; the detail says how to build one."}}
_KEY = [Depends(require_api_key)]  # routes that serve answers or documents: RAG_API_KEY applies
_KEY_ERROR = {401: {"model": ErrorResponse, "description": "RAG_API_KEY is set and the request lacks the key."}}


@router.post(
    "/ask",
    dependencies=_KEY,
    response_model=AskResponse,
    responses={
        **_KEY_ERROR,
        413: {"model": ErrorResponse, "description": "Request body too large."},
        422: {"model": ErrorResponse, "description": "Invalid body; the detail names the field."},
        **_ERRORS,
    },
    summary="Answer a question with exact spans and citations",
    response_model_exclude_none=True,  # `page` only on citations of paged documents, as in `rag ask --json`
)
async def ask(body: AskRequest, pipeline: PipelineDep, state: StateDep) -> AskResponse:
    try:
        result = await state.ask(pipeline, body.question, top_k=body.top_k)  # batched, on the inference thread
    except InvalidQuestion as exc:  # stricter Settings.max_question_chars than the HTTP limit
        raise HTTPException(status_code=422, detail=f"Invalid request: question: {exc}") from None
    return AskResponse.model_validate(result.to_dict())


@router.get("/health", response_model=HealthResponse, responses=_ERRORS, summary="Is the index loaded?")
def health(index: IndexDep) -> HealthResponse:
    m = index.manifest
    return HealthResponse(
        documents=len(index.documents),
        chunks=len(index.chunks),
        model=m.embedding.model,
        index_built_at=m.created_at,
    )


@router.get(
    "/documents",
    dependencies=_KEY,
    response_model=list[DocumentInfo],
    responses={**_KEY_ERROR, **_ERRORS},
    summary="List indexed documents",
    response_model_exclude_none=True,  # `title` and `pages` only where the format has them
)
def list_documents(index: IndexDep) -> list[DocumentInfo]:
    return [_info(d, DocumentInfo) for d in sorted(index.documents.values(), key=lambda d: d.doc_id)]


@router.get(
    "/documents/{doc_id:path}",
    dependencies=_KEY,
    response_model=DocumentText,
    responses={
        404: {"model": ErrorResponse, "description": "Not an indexed document id."},
        **_KEY_ERROR,
        **_ERRORS,
    },
    summary="Full text of an indexed document (citation offsets index into it)",
    response_model_exclude_none=True,
)
def get_document(doc_id: str, index: IndexDep) -> DocumentText:
    # Served from the index's stored copy only: the id is a dictionary key, never a filesystem path,
    # so "../", absolute paths and encoded variants simply are not keys.
    doc = index.documents.get(doc_id)
    if doc is None:
        shown = doc_id if len(doc_id) <= 200 else doc_id[:200] + "..."
        raise HTTPException(
            status_code=404, detail=f"No indexed document has the id {shown!r}. GET /documents lists them."
        )
    return _info(doc, DocumentText, text=doc.text, page_starts=list(doc.pages) or None)


def _info(doc: Document, model: type[Info], **extra: object) -> Info:
    return model(
        doc_id=doc.doc_id,
        chars=len(doc.text),
        bytes=utf8_size(doc.text),
        sha256=doc.sha256,
        title=doc.title,
        pages=len(doc.pages) or None,
        **extra,
    )


# ------------------------------------------------------------------------------------ the web page
# Fixed routes for the three files of the page (api/static/); no route takes a file name.
@router.get("/", include_in_schema=False)
def page() -> Response:
    return asset_response("index.html")


@router.get("/static/app.js", include_in_schema=False)
def page_script() -> Response:
    return asset_response("app.js")


@router.get("/static/app.css", include_in_schema=False)
def page_style() -> Response:
    return asset_response("app.css")
