"""The CLI's client for a node's REST API: signed envelopes in, replies out.

The CLI never talks to the network itself: it signs an envelope with the user's key and hands
it to the local node's gateway (``/api/v1/actor/*``), which checks it like any envelope.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any, Final, final

from nuactor import Envelope, Handle, Identity, ReplyTo, TrustContext

from .errors import NodeUnreachable, RequestRefused

__all__ = ["NodeClient"]

REPLY_BEHAVIOUR: Final = "/nuactor/reply"


@final
class NodeClient:
    """Talks to one node's REST API at ``base_url`` (``http://127.0.0.1:9999``)."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._node_did: str | None = None

    # --- HTTP --------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> Any:
        """One JSON request; node errors raise :class:`RequestRefused` with the node's reason."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _refusal(exc.code, exc.read()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NodeUnreachable(
                f"cannot reach the node's API at {self.base_url} ({reason}): is 'dmsnode run' "
                "running, and does rest.addr/rest.port (or --api) point at it?"
            ) from None
        return json.loads(payload) if payload else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    # --- the actor gateway -------------------------------------------------------------------

    @property
    def node_did(self) -> str:
        """The DID of the node behind the API (asked once)."""
        if self._node_did is None:
            handle = self.request("POST", "/api/v1/actor/handle", {})
            self._node_did = str(handle["did"])
        return self._node_did

    def envelope(
        self,
        identity: Identity,
        beh: str,
        body: Any,
        *,
        to: str | None = None,
        actor: str = "root",
        reply: bool,
        topic: str | None = None,
        trust: TrustContext | None = None,
        ttl_ms: int = 30_000,
    ) -> Envelope:
        """An envelope from ``identity``, with the proofs its trust context can offer."""
        target = to or self.node_did
        prf, tok = trust.proofs_for("*" if topic else target, beh) if trust else ((), ())
        return Envelope.build(
            sender=Handle(identity.did, "cli"),
            to=Handle("*", "*") if topic else Handle(target, actor),
            beh=beh,
            body=body,
            ttl_ms=ttl_ms,
            re=ReplyTo(self.node_did, "system", REPLY_BEHAVIOUR) if reply else None,
            topic=topic,
            prf=prf,
            tok=tok,
        ).sign(identity)

    def invoke(self, envelope: Envelope, *, timeout: float = 30.0) -> Any:
        """Relay an invoke through the node; the reply's value, or :class:`RequestRefused`."""
        result = self.request(
            "POST",
            "/api/v1/actor/invoke",
            {"envelope": _b64(envelope), "timeout": timeout},
            timeout=timeout + 10,
        )
        return result.get("result") if isinstance(result, dict) else result

    def send(self, envelope: Envelope) -> Any:
        return self.request("POST", "/api/v1/actor/send", {"envelope": _b64(envelope)})

    def broadcast(self, envelope: Envelope) -> Any:
        return self.request("POST", "/api/v1/actor/broadcast", {"envelope": _b64(envelope)})


def _b64(envelope: Envelope) -> str:
    return base64.b64encode(envelope.encode()).decode("ascii")


def _refusal(status: int, payload: bytes) -> RequestRefused:
    try:
        body = json.loads(payload)
        return RequestRefused(status, str(body["error"]), str(body.get("detail", "")))
    except (ValueError, KeyError, TypeError):
        text = payload.decode("utf-8", "replace").strip()[:200]
        return RequestRefused(status, f"HTTP {status}", text or "no explanation")
