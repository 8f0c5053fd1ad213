"""The node's REST API (DESIGN §3.6): Quart-trio on hypercorn's trio worker.

:func:`serve_api` runs it in the caller's nursery; :func:`create_app` builds the application
alone (for tests, or another server). Routes, statuses and schemas: ``docs/api.md``, generated
from :func:`openapi_document` by ``python -m dmsnode.api.docs``.
"""

from __future__ import annotations

from ._app import create_app
from ._observe import RequestObserver
from ._openapi import openapi_document
from ._server import GRACEFUL_TIMEOUT, KEEP_ALIVE_TIMEOUT, serve_api

__all__ = [
    "GRACEFUL_TIMEOUT",
    "KEEP_ALIVE_TIMEOUT",
    "RequestObserver",
    "create_app",
    "openapi_document",
    "serve_api",
]
