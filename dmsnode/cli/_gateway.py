"""What the commands that talk to a running node share: its API address and the user's key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from nuactor import Identity, TrustContext

from ..client import NodeClient
from ._app import App
from ._cap import context_path
from ._prompt import passphrase

F = TypeVar("F", bound=Callable[..., Any])


def gateway_options(f: F) -> F:
    """``--api`` and ``--key``, on every command that goes through the node's API."""
    f = click.option(
        "--key",
        "key_name",
        default="user",
        show_default=True,
        help="The key that signs (its capability context of the same name supplies proofs).",
    )(f)
    return click.option(
        "--api",
        envvar="DMS_API",
        help="The node's REST API (default: http://<rest.addr>:<rest.port> from the config).",
    )(f)


def client(app: App, api: str | None) -> NodeClient:
    if api is None:
        rest = app.config.get("rest")
        api = f"http://{rest['addr']}:{rest['port']}"
    return NodeClient(api)


def signer(app: App, key_name: str) -> tuple[Identity, TrustContext | None]:
    """The user's identity, and their trust context if they have one (for proofs)."""
    identity = app.keystore.load(key_name, passphrase(confirm=False))
    path = context_path(app, key_name)
    trust = TrustContext.load(path, identity) if path.is_file() else None
    return identity, trust


def call_node(app: App, api: str | None, key_name: str, beh: str, body: Any = None) -> Any:
    """Invoke ``beh`` on the local node (through its gateway), signed with the user's key."""
    node = client(app, api)
    identity, trust = signer(app, key_name)
    return node.invoke(node.envelope(identity, beh, body, reply=True, trust=trust))
