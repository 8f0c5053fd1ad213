"""Reading a request: the JSON body and its fields, query parameters; each refusal names what
was wrong (the field or parameter) and what is expected."""

from __future__ import annotations

import json
from typing import Any, Final, overload

from quart import request

from ._responses import ApiProblem

__all__ = ["MAX_BODY_BYTES", "bad_request", "json_body", "json_type", "query_int", "query_str"]

#: The largest request body the API reads (Quart's ``MAX_CONTENT_LENGTH``): an envelope is at
#: most 1 MiB, which is about 1.4 MiB as base64.
MAX_BODY_BYTES: Final = 2 * 1024 * 1024


def bad_request(detail: str) -> ApiProblem:
    """A 400 ``BadRequest`` saying ``detail``."""
    return ApiProblem(400, "BadRequest", detail)


async def json_body(example: str) -> dict[str, Any]:
    """The request body as a JSON object; ``example`` shows the caller what one looks like.

    Reading refuses a body over :data:`MAX_BODY_BYTES` with 413 (by ``Content-Length`` before
    reading anything, else as soon as the limit is passed).
    """
    raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    if not raw.strip():
        raise bad_request(f"the request has no body: send a JSON object such as {example}")
    try:
        body = json.loads(raw.decode("utf-8"))  # JSON is UTF-8 (RFC 8259): no guessing
    except UnicodeDecodeError:
        raise bad_request("the body is not UTF-8 text: send JSON") from None
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"the body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            f"send a JSON object such as {example}"
        ) from None
    if not isinstance(body, dict):
        raise bad_request(
            f"the body must be a JSON object, not a {json_type(body)}: send one such as {example}"
        )
    return body


@overload
def query_int(name: str, *, default: int, low: int, high: int | None = None) -> int: ...
@overload
def query_int(name: str, *, default: None, low: int, high: int | None = None) -> int | None: ...
def query_int(name: str, *, default: int | None, low: int, high: int | None = None) -> int | None:
    """The integer query parameter ``name`` within ``[low, high]``, or ``default``."""
    text = request.args.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"query parameter '{name}' must be an integer, got {text!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise bad_request(f"query parameter '{name}' must be {bounds}, got {value}")
    return value


def query_str(name: str, *, max_length: int = 200) -> str | None:
    """The text query parameter ``name``, or ``None`` when absent or empty."""
    text = request.args.get(name)
    if not text:
        return None
    if len(text) > max_length:
        raise bad_request(f"query parameter '{name}' is longer than {max_length} characters")
    return text


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for error messages."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null"
