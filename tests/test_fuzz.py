"""Schemathesis against the service's own OpenAPI schema (issue 12, item 7): generated requests for every
operation, over the real app and the seeds index (heuristic reader, so a thousand questions take seconds):
no 5xx, and every response conforms to the schema (status code, content type, body, headers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from api.main import create_app
from rag.config import Settings

EXAMPLES = 600  # per operation with inputs (POST /ask, GET /documents/{doc_id})


@pytest.fixture(scope="module")
def api_schema(heuristic_pipeline, seed_index_dir) -> Iterator[schemathesis.BaseSchema]:
    s = Settings(_env_file=None, index_dir=seed_index_dir, reader="heuristic")
    app = create_app(s, pipeline=heuristic_pipeline)
    with TestClient(app):  # runs the lifespan, which the generated calls then find done
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.slow
def test_generated_requests_get_no_5xx_and_conforming_responses(api_schema) -> None:
    """Each operation's generated cases (Hypothesis, derandomized: the same cases every run)."""
    cases: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "POST /ask",
        "GET /health",
        "GET /documents",
        "GET /documents/{doc_id}",
    }
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def run(case) -> None:  # noqa: ANN001
            cases.append(f"{case.method} {case.path}")
            case.call_and_validate()

        run()
    assert len(cases) >= 1000, f"only {len(cases)} generated requests ran"
