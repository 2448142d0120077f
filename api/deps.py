"""Dependencies handed to the routes: the loaded service state and its pipeline.

They are ``async`` only because they never block: FastAPI then calls them on the event loop instead of
sending each through the threadpool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from rag.config import Settings
from rag.pipeline import Pipeline
from rag.store import IndexData


@dataclass
class ServiceState:
    """What the lifespan loaded: the pipeline, or why there is none (then every query answers 503)."""

    settings: Settings
    pipeline: Pipeline | None = None
    unavailable: str | None = None  # the 503 detail when pipeline is None


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_pipeline(state: Annotated[ServiceState, Depends(get_state)]) -> Pipeline:
    if state.pipeline is None:
        raise HTTPException(status_code=503, detail=state.unavailable or "The service is still starting.")
    return state.pipeline


async def get_index(pipeline: Annotated[Pipeline, Depends(get_pipeline)]) -> IndexData:
    if pipeline.index is None:  # a pipeline wired without an index (library use); never from the lifespan
        raise HTTPException(status_code=503, detail="The pipeline has no index to serve documents from.")
    return pipeline.index


StateDep = Annotated[ServiceState, Depends(get_state)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
IndexDep = Annotated[IndexData, Depends(get_index)]
