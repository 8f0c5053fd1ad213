"""How a trust context is written down: tokens as text, and the context file.

A token as text is its DAG-CBOR bytes in base64url without padding (the standard alphabet and
padding are accepted too). A *bundle* is several tokens joined by commas, root first: the form in
which a delegation chain is handed to a person (``dmsnode cap delegate`` prints one, ``dmsnode
cap anchor --provide`` takes one).

The context file is JSON (docs/capabilities.md, "The context file")::

    {"version": 1, "did": "did:key:z6Mk…",
     "root": [token, …], "require": [token, …], "provide": [[token, …], …],
     "revoked": ["bafy…", …]}

Each ``provide`` entry is a chain, root first, whose last token is the anchor (its ``aud`` is the
context's DID). The file is written atomically (temporary file, fsync, rename) with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, final

from .errors import TrustContextError
from .ucan import Delegation, MalformedToken

__all__ = [
    "FORMAT_VERSION",
    "ContextFile",
    "bundle_text",
    "parse_bundle",
    "parse_token",
    "read_context_file",
    "token_text",
    "write_context_file",
]

FORMAT_VERSION: Final = 1
_MAX_FILE_SIZE: Final = 64 << 20
_SPACE: Final = re.compile(r"\s+")


def token_text(delegation: Delegation) -> str:
    """A token as text: base64url of its bytes, without padding."""
    return base64.urlsafe_b64encode(delegation.encode()).rstrip(b"=").decode("ascii")


def bundle_text(delegations: Iterable[Delegation]) -> str:
    """Several tokens as one line of text, comma-separated, in the order given (root first)."""
    return ",".join(token_text(d) for d in delegations)


def parse_token(text: str | bytes) -> Delegation:
    """A delegation from its text form (base64url or base64, padded or not) or its raw bytes.

    Raises :class:`TrustContextError` saying what is wrong; the signature is not checked here.
    """
    if isinstance(text, bytes):
        data = text
    else:
        compact = _SPACE.sub("", text)
        if not compact:
            raise TrustContextError("an empty string is not a delegation token")
        try:
            data = base64.b64decode(
                compact.replace("-", "+").replace("_", "/") + "=" * (-len(compact) % 4),
                validate=True,
            )
        except (binascii.Error, ValueError):
            raise TrustContextError(
                f"{_short(compact)} is not a delegation token: not base64 text"
            ) from None
    try:
        return Delegation.decode(data)
    except MalformedToken as exc:
        raise TrustContextError(f"not a UCAN 1.0 delegation token: {exc}") from None


def parse_bundle(text: str) -> tuple[Delegation, ...]:
    """The delegations of a bundle (comma-separated tokens, root first); one token is a bundle."""
    parts = [part for part in _SPACE.sub("", text).split(",") if part]
    if not parts:
        raise TrustContextError("an empty string is not a delegation token or bundle")
    tokens = []
    for index, part in enumerate(parts, 1):
        try:
            tokens.append(parse_token(part))
        except TrustContextError as exc:
            where = f"token {index} of {len(parts)}: " if len(parts) > 1 else ""
            raise TrustContextError(f"{where}{exc}") from None
    return tuple(tokens)


@final
@dataclass(slots=True)
class ContextFile:
    """The contents of a context file, decoded but not yet checked against the rules."""

    did: str
    root: list[Delegation] = field(default_factory=list)
    require: list[Delegation] = field(default_factory=list)
    provide: list[tuple[Delegation, ...]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "did": self.did,
            "root": [token_text(d) for d in self.root],
            "require": [token_text(d) for d in self.require],
            "provide": [[token_text(d) for d in chain] for chain in self.provide],
            "revoked": list(self.revoked),
        }


def read_context_file(path: Path) -> ContextFile:
    """Read and decode a context file; :class:`TrustContextError` names the file and the fault."""
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        raise TrustContextError(f"there is no trust context file at {path}") from None
    except OSError as exc:
        raise TrustContextError(f"cannot read trust context file {path}: {exc.strerror}") from None
    if len(raw) > _MAX_FILE_SIZE:
        raise TrustContextError(f"trust context file {path} is larger than {_MAX_FILE_SIZE} bytes")

    def bad(what: str) -> TrustContextError:
        return TrustContextError(f"trust context file {path} is not valid: {what}")

    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad("not JSON") from None
    if not isinstance(document, dict):
        raise bad("not a JSON object")
    if document.get("version") != FORMAT_VERSION:
        raise bad(f"unsupported version {document.get('version')!r} (this reads {FORMAT_VERSION})")
    did = document.get("did")
    if not isinstance(did, str) or not did.startswith("did:"):
        raise bad("'did' must be a DID string")

    def tokens(key: str, value: object) -> list[Delegation]:
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise bad(f"'{key}' must be a list of token strings")
        found = []
        for index, text in enumerate(value):
            try:
                found.append(parse_token(text))
            except TrustContextError as exc:
                raise bad(f"{key}[{index}]: {exc}") from None
        return found

    provide = document.get("provide", [])
    if not isinstance(provide, list):
        raise bad("'provide' must be a list of chains (lists of token strings)")
    revoked = document.get("revoked", [])
    if not isinstance(revoked, list) or not all(isinstance(c, str) for c in revoked):
        raise bad("'revoked' must be a list of CID strings")
    return ContextFile(
        did=did,
        root=tokens("root", document.get("root", [])),
        require=tokens("require", document.get("require", [])),
        provide=[tuple(tokens(f"provide[{i}]", chain)) for i, chain in enumerate(provide)],
        revoked=list(revoked),
    )


def write_context_file(path: Path, contents: ContextFile) -> None:
    """Write the file atomically: a 0600 temporary file beside it, fsync, rename, fsync the
    directory. The directory is created (0700) if missing."""
    data = json.dumps(contents.to_json(), indent=2).encode() + b"\n"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise TrustContextError(f"cannot write trust context file {path}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _short(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:24] + "…")
