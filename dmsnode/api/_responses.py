"""JSON responses and the one error shape, ``{"error": <Type>, "detail": <what to do>}``.

Every route answers JSON; a refusal is an :class:`ApiProblem` raised anywhere in a handler and
turned into a response by the app's error handler, so no route formats errors by hand.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Final, final

from quart import Response

__all__ = ["JSON_TYPE", "ApiProblem", "error_response", "json_response", "jsonable"]

JSON_TYPE: Final = "application/json"


@final
class ApiProblem(Exception):
    """A request the API refuses: the HTTP status, the error type and what to do about it."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return error_response(self.status, self.error, self.detail, headers=self.headers)


def jsonable(value: Any) -> Any:
    """``value`` with what JSON cannot carry made plain: bytes become base64 text, map keys
    strings, tuples and sets lists, dataclasses maps. A behaviour's reply is msgpack, which
    has all of these."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {_key(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return str(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(key)).decode("ascii")
    return json.dumps(jsonable(key))  # 1 -> "1", True -> "true", (1, 2) -> "[1,2]"


def json_response(
    data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None
) -> Response:
    """``data`` as a JSON response (see :func:`jsonable` for what is converted)."""
    body = json.dumps(jsonable(data), ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=status, headers=dict(headers or {}), content_type=JSON_TYPE)


def error_response(
    status: int, error: str, detail: str, *, headers: Mapping[str, str] | None = None
) -> Response:
    """The API's error shape with ``status``."""
    return json_response({"error": error, "detail": detail}, status, headers=headers)
