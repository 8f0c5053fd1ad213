"""The Quart-trio application: its limits, its routes and the error handlers that make every
failure a JSON ``{error, detail}`` response (never a traceback, never HTML)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from ._body import MAX_BODY_BYTES
from ._gateway import gateway_blueprint
from ._observe import install_request_metrics
from ._responses import ApiProblem, error_response
from ._routes import readable_blueprint

if TYPE_CHECKING:
    from ..node import Node

__all__ = ["create_app"]

log = logging.getLogger("dmsnode.api")


def create_app(node: Node) -> QuartTrio:
    """A new application serving ``node``'s REST API (routes: see ``docs/api.md``)."""
    app = QuartTrio("dmsnode.api", static_folder=None)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        # The routes list their methods; an automatic OPTIONS would be one more to document.
        PROVIDE_AUTOMATIC_OPTIONS=False,
        # Handled errors are answered, not re-raised into the server, even under a debugger.
        PROPAGATE_EXCEPTIONS=False,
    )
    app.register_blueprint(gateway_blueprint(node))
    app.register_blueprint(readable_blueprint(node))
    install_request_metrics(app, node)

    @app.before_request
    async def refuse_large_bodies() -> None:
        """Refuse a declared oversized body before any of it is read, on every route."""
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            raise RequestEntityTooLarge()

    app.register_error_handler(ApiProblem, _problem)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    return app


async def _problem(problem: ApiProblem) -> Response:
    return problem.response()


async def _http_error(exc: HTTPException) -> Response:
    """Quart's own refusals (routing, body limits), in the API's error shape."""
    status = exc.code or 500
    method, path = request.method, request.path
    headers: dict[str, str] = {}
    if isinstance(exc, MethodNotAllowed):
        allowed = sorted(set(exc.valid_methods or ()) - {"HEAD", "OPTIONS"})
        headers["Allow"] = ", ".join(sorted(set(exc.valid_methods or ())))
        detail = f"{path} does not take {method}; it takes {', '.join(allowed)}"
    elif status == 404:
        detail = f"no route {method} {path}: the routes are listed at /api/v1/openapi.json"
    elif status == 413:
        detail = (
            f"the request body is larger than {MAX_BODY_BYTES} bytes; an envelope is at most "
            "1 MiB (about 1.4 MiB as base64)"
        )
    else:
        detail = exc.description or exc.name
    return error_response(status, type(exc).__name__, detail, headers=headers)


async def _unexpected(exc: Exception) -> Response:
    """A bug or an unforeseen failure: logged in full here, told in one line to the caller."""
    log.error(
        "unexpected %s while handling %s %s",
        type(exc).__name__,
        request.method,
        request.path,
        exc_info=exc,
    )
    return error_response(
        500,
        "InternalError",
        f"unexpected {type(exc).__name__} while handling {request.method} {request.path}; "
        "the node logged the details",
    )
