"""The OpenAPI document covers every route (and only those), docs/api.md is generated from
it, and the gateway's status mapping and JSON conversion hold for what a test cannot easily
provoke over the wire (a Busy destination)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from dmsnode.api import create_app, openapi_document
from dmsnode.api._gateway import outcome_problem
from dmsnode.api._responses import jsonable
from dmsnode.api.docs import render_markdown
from nuactor._outcome import Outcome

from .conftest import Api

ROOT = Path(__file__).resolve().parents[3]
METHODS = {"get", "post", "put", "patch", "delete"}


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def routed(app: Any) -> set[tuple[str, str]]:
    """The app's routes, with Quart's ``<id>`` written as OpenAPI's ``{id}``."""
    return {
        (method, re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods
        if method not in {"HEAD", "OPTIONS"}
    }


async def test_the_document_is_served(api: Api) -> None:
    reply = await api.client.get("/api/v1/openapi.json")
    assert reply.status == 200
    document = reply.json()
    assert document["openapi"].startswith("3.1")
    assert document == openapi_document()
    assert documented(document) == routed(create_app(api.node))


def test_every_reference_resolves() -> None:
    document = openapi_document()

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(document):
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref


def test_every_operation_has_an_id_and_json_errors() -> None:
    document = openapi_document()
    ids = []
    for item in document["paths"].values():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            ids.append(operation["operationId"])
            assert "500" in operation["responses"]
            for status in operation["responses"]:
                assert status.isdigit()
    assert len(ids) == len(set(ids))


def test_docs_api_md_is_generated_from_the_document() -> None:
    expected = render_markdown(openapi_document())
    written = (ROOT / "docs" / "api.md").read_text()
    assert written == expected, "regenerate: python -m dmsnode.api.docs > docs/api.md"
    for method, path in documented(openapi_document()):
        assert f"## {method} `{path}`" in written


def test_the_docs_module_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dmsnode.api.docs"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.stdout == render_markdown(openapi_document())


def test_failed_outcomes_map_to_statuses() -> None:
    cases = [
        (Outcome.failure("Unauthorized", "no delegation"), 403),
        (Outcome.failure("UnknownActor", "no actor"), 404),
        (Outcome.failure("UnknownBehaviour", "no behaviour"), 404),
        (Outcome.failure("Busy", "mailbox full", retry_after=2.2), 429),
        (Outcome.failure("KeyError", "'x'"), 422),
    ]
    for outcome, status in cases:
        problem = outcome_problem(outcome)
        assert problem.status == status
        assert problem.error == outcome.error_type
        assert problem.detail == outcome.message
    busy = outcome_problem(Outcome.failure("Busy", "rate limit", retry_after=2.2))
    assert busy.headers == {"Retry-After": "3"}
    assert outcome_problem(Outcome.failure("Busy", "full")).headers == {"Retry-After": "1"}


def test_replies_become_json() -> None:
    assert jsonable({1: b"\x01", "t": (1, 2), b"k": {None: True}}) == {
        "1": "AQ==",
        "t": [1, 2],
        "aw==": {"null": True},
    }
