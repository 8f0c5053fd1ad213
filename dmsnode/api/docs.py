"""Render the API's OpenAPI document as Markdown: ``python -m dmsnode.api.docs > docs/api.md``.

``docs/api.md`` is generated, so it cannot drift from the routes: a test checks that it equals
this module's output.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

from ._openapi import openapi_document

__all__ = ["main", "render_markdown"]

_METHODS: Final = ("get", "post", "put", "patch", "delete")


def render_markdown(document: dict[str, Any]) -> str:
    """The Markdown reference of ``document`` (an OpenAPI 3.1 document)."""
    info = document["info"]
    out = [
        "# REST API",
        "",
        "<!-- Generated from the OpenAPI document by `python -m dmsnode.api.docs > docs/api.md`;",
        "     edit dmsnode/api/_openapi.py and regenerate, not this file. -->",
        "",
        f"{info['title']} {info['version']}. The same document, as OpenAPI {document['openapi']}"
        " JSON, is served at `GET /api/v1/openapi.json`.",
        "",
        info["description"].rstrip(),
        "",
        "## Routes",
        "",
        "| Method | Path | Summary | Statuses |",
        "|---|---|---|---|",
    ]
    operations = list(_operations(document))
    for method, path, operation in operations:
        statuses = ", ".join(operation["responses"])
        out.append(f"| {method.upper()} | `{path}` | {operation['summary']} | {statuses} |")
    out.append("")
    for method, path, operation in operations:
        out.extend(_operation(document, method, path, operation))
    out.extend(["## Schemas", ""])
    for name, schema in document["components"]["schemas"].items():
        out.extend([f"### {name}", "", "```json", json.dumps(schema, indent=2), "```", ""])
    return "\n".join(out)


def _operations(document: dict[str, Any]) -> Any:
    for path, item in document["paths"].items():
        for method in _METHODS:
            if method in item:
                yield method, path, item[method]


def _operation(
    document: dict[str, Any], method: str, path: str, operation: dict[str, Any]
) -> list[str]:
    out = [f"## {method.upper()} `{path}`", "", f"{operation['summary']}.", ""]
    if "description" in operation:
        out.extend([operation["description"], ""])
    parameters = operation.get("parameters", [])
    for where in ("path", "query"):
        chosen = [p for p in parameters if p["in"] == where]
        if not chosen:
            continue
        heading = f"{where.capitalize()} parameters:"
        out.extend([heading, "", "| Name | Type | Meaning |", "|---|---|---|"])
        for parameter in chosen:
            schema = json.dumps(parameter["schema"], separators=(", ", ": "))
            out.append(f"| `{parameter['name']}` | `{schema}` | {parameter['description']} |")
        out.append("")
    body = operation.get("requestBody")
    if body is not None:
        for content_type, content in body["content"].items():
            out.extend([f"Request body (`{content_type}`): {_schema_name(content['schema'])}.", ""])
    out.extend(["| Status | Body | Meaning |", "|---|---|---|"])
    for status, response in operation["responses"].items():
        response = _resolve(document, response)
        content = response.get("content", {})
        shape = ", ".join(f"{_schema_name(c['schema'])} (`{t}`)" for t, c in content.items())
        meaning = response["description"]
        if "headers" in response:
            meaning += " Headers: " + ", ".join(f"`{h}`" for h in response["headers"]) + "."
        out.append(f"| {status} | {shape or '-'} | {meaning} |")
    out.append("")
    return out


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    ref = item.get("$ref")
    if ref is None:
        return item
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if schema.get("type") == "array":
        return f"array of {_schema_name(schema['items'])}"
    return f"`{schema.get('type', 'any')}`"


def main() -> None:
    """Print the Markdown reference of this API."""
    sys.stdout.write(render_markdown(openapi_document()))


if __name__ == "__main__":
    main()
