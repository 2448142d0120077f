"""Edges of the HTTP contract (issue 25): one definition of a blank question shared by the schema and the
check, and JSON bodies read as UTF-8 only."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.models import BLANK_CHARS
from tests.test_api import StubPipeline, api_settings, assert_json_error


@pytest.fixture()
def client():
    with TestClient(create_app(api_settings(), pipeline=StubPipeline()), raise_server_exceptions=False) as c:
        yield c


def _schema_pattern(client: TestClient) -> str:
    schema = client.get("/openapi.json").json()
    return schema["components"]["schemas"]["AskRequest"]["properties"]["question"]["pattern"]


QUESTIONS = [
    "\u0085\u0085",  # NEL: Python's whitespace, not ECMAScript's (schemathesis found it: schema-valid, then 422)
    "\ufeff",  # BOM: ECMAScript's whitespace, not Python's (schema-invalid, then 200)
    "\x1c\x1d\x1e\x1f",
    "\u00a0\u3000\u2028",
    " \t\r\n",
    "\u200b",  # zero-width space: neither calls it whitespace; a (strange) question
    "\ufeffWho opposed the price floor?\u0085",
    "Who?",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_schema_and_the_check_agree_on_blank_questions(client: TestClient, question: str) -> None:
    pattern = _schema_pattern(client)
    # the pattern spells every character out (no \s, whose meaning differs between regex dialects), so
    # Python's re reads it as a JSON Schema validator's ECMAScript regex does
    assert "\\s" not in pattern and "\\S" not in pattern
    schema_valid = re.search(pattern, question) is not None
    r = client.post("/ask", json={"question": question})
    assert (r.status_code == 200) == schema_valid, (question, r.status_code, r.text)
    if not schema_valid:
        assert_json_error(r, 422)


def test_every_blank_character_is_blank_in_both_dialects() -> None:
    ecmascript_space = set("\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff") | {
        chr(c) for c in range(0x2000, 0x200B)
    }
    python_space = {chr(c) for c in range(0x110000) if chr(c).isspace()}
    assert set(BLANK_CHARS) == ecmascript_space | python_space


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_json_bodies_are_422(client: TestClient, encoding: str) -> None:
    content = json.dumps({"question": "Who opposed the price floor?"}).encode(encoding)
    r = client.post("/ask", content=content, headers={"content-type": "application/json"})
    detail = assert_json_error(r, 422)
    # with a byte order mark it is not UTF-8; without, its NUL bytes are UTF-8 but not JSON
    assert "not UTF-8" in detail or "not valid JSON" in detail, detail


def test_a_utf8_body_with_a_question_still_answers(client: TestClient) -> None:
    r = client.post(
        "/ask", content='{"question": "Who opposed the café?"}'.encode(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200 and r.json()["question"] == "Who opposed the café?"
