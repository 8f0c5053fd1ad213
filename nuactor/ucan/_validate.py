"""Validating an invocation against its proof chain, memoised by CID.

What is checked, in this order (each failure raises the named :class:`UcanError`):

1. the invocation's signature (``InvalidSignature``) and expiry (``Expired``);
2. with no proofs, the invoker must be the subject (``InvalidClaim``);
3. every cited proof can be found (``UnavailableProof``), none is revoked (``Revoked``), each is
   signed by its issuer (``InvalidSignature``) and within its time bounds (``Expired``,
   ``TooEarly``);
4. the chain's own shape: the root is not a powerline (``InvalidClaim``) and is issued by its
   subject, every link is about that subject or is a powerline (``InvalidSubject``), each link's
   ``aud`` is the next link's ``iss`` (``InvalidAudience``), and commands only narrow
   (``CommandMismatch``, named ``InvalidClaim``);
5. the invocation against the chain: its issuer is the last audience (``InvalidAudience``), its
   subject is the root's (``InvalidSubject``), its command is covered (``CommandMismatch``), and
   its arguments satisfy every link's policy (``MatchError``).

:class:`ChainValidator` remembers, per delegation CID, that the signature verified, and per
sequence of proof CIDs, that step 4 passed. Both facts are permanent (a CID names fixed bytes),
so a chain seen before costs no signature verification at all; expiry and revocation are
re-checked on every call (they are a comparison and a set lookup), and an expired or revoked
link is dropped from the memo. Step 5 always runs, since the arguments change with every call.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final, TypeVar, final

from multiformats import CID

from ._command import command_covers
from ._delegation import Delegation
from ._envelope import as_cid, cid_key, cid_text
from ._errors import (
    CommandMismatch,
    Expired,
    InvalidAudience,
    InvalidClaim,
    InvalidSignature,
    InvalidSubject,
    MatchError,
    Revoked,
    TooEarly,
    UnavailableProof,
)
from ._fields import now_seconds
from ._invocation import Invocation
from ._policy import Policy
from ._store import DelegationStore, RevocationStore

__all__ = ["ChainValidator", "validate_invocation"]

DEFAULT_CACHE_SIZE: Final = 16_384
_K = TypeVar("_K")
_V = TypeVar("_V")


@final
@dataclass(frozen=True, slots=True)
class _Chain:
    """A chain whose signatures verified and whose shape (step 4) holds."""

    links: tuple[Delegation, ...]
    subject: str
    audience: str
    command: str
    not_before: int | None
    expires: int | None
    policies: tuple[tuple[Delegation, Policy], ...]


@final
class ChainValidator:
    """Validates invocations and proof chains, remembering what it has verified.

    ``store`` is where cited proofs are looked up (after any proofs passed to a call);
    ``revocations`` is consulted on every call; ``leeway`` seconds of clock skew are allowed on
    every time bound. :attr:`signature_verifications` counts the Ed25519 verifications done,
    so that "a warm chain costs none" can be observed.

    A chain once validated is served from memory even if its delegations later leave the store:
    withdraw authority by revocation (or :meth:`forget`), not by deleting from the store.
    """

    __slots__ = (
        "_chains",
        "_invocations",
        "_links",
        "leeway",
        "max_cached",
        "revocations",
        "signature_verifications",
        "store",
    )

    def __init__(
        self,
        store: Mapping[CID, Delegation] | None = None,
        *,
        revocations: RevocationStore | Iterable[CID | Delegation] | None = None,
        leeway: int = 0,
        max_cached: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.store: Mapping[CID, Delegation] = DelegationStore() if store is None else store
        if revocations is None or isinstance(revocations, RevocationStore):
            self.revocations = revocations
        else:
            self.revocations = RevocationStore(revocations)
        self.leeway = leeway
        self.max_cached = max_cached
        self.signature_verifications = 0
        self._links: dict[bytes, Delegation] = {}
        self._chains: dict[tuple[bytes, ...], _Chain] = {}
        self._invocations: dict[bytes, None] = {}

    # --- public API ---------------------------------------------------------------------------

    def validate(
        self,
        invocation: Invocation,
        proofs: Mapping[CID, Delegation] | None = None,
        *,
        now: int | None = None,
        executor: str | None = None,
    ) -> tuple[Delegation, ...]:
        """Check that ``invocation`` is authorised; return its chain, root first.

        ``proofs`` are delegations that came with the invocation (looked up before the store).
        ``executor``, if given, is the DID that is to run the invocation: it must be the
        invocation's ``aud`` (or its ``sub`` when there is no ``aud``).
        """
        now = now_seconds() if now is None else now
        if invocation.digest not in self._invocations:
            self.signature_verifications += 1
            if not invocation.verify_signature():
                raise InvalidSignature(
                    f"invocation {invocation.cid} is not signed by its issuer {invocation.iss}"
                )
            _remember(self._invocations, invocation.digest, None, self.max_cached)
        if invocation.exp is not None and now - self.leeway > invocation.exp:
            raise Expired(f"invocation {invocation.cid} expired at {_when(invocation.exp)}")
        if executor is not None and (invocation.aud or invocation.sub) != executor:
            raise InvalidAudience(
                f"invocation {invocation.cid} is addressed to {invocation.aud or invocation.sub},"
                f" not to this executor {executor}"
            )
        return self.authorize(
            issuer=invocation.iss,
            subject=invocation.sub,
            command=invocation.cmd,
            args=invocation.args,
            proofs=invocation.prf,
            attached=proofs,
            now=now,
        )

    def authorize(
        self,
        *,
        issuer: str,
        subject: str,
        command: str,
        args: Mapping[str, object],
        proofs: Sequence[CID | bytes | str],
        attached: Mapping[CID, Delegation] | None = None,
        now: int | None = None,
    ) -> tuple[Delegation, ...]:
        """Check that ``proofs`` let ``issuer`` run ``command`` with ``args`` on ``subject``.

        This is validation without an invocation token, for callers (such as the signed
        envelope) that authenticate the request themselves. ``proofs`` are CIDs, binary CIDs
        (the fastest: no parsing) or CID strings, root first. Returns the chain, root first.
        """
        now = now_seconds() if now is None else now
        if not proofs:
            if issuer == subject:
                return ()
            raise InvalidClaim(
                f"{issuer} invoked {command} on {subject} without proof; only the subject"
                " itself may invoke without a delegation"
            )
        keys = tuple(cid_key(cid) for cid in proofs)
        chain = self._chains.get(keys)
        if chain is None or not self._still_valid(chain, keys, now):
            if chain is not None:
                del self._chains[keys]
            chain = self._build(keys, proofs, attached, now)
            _remember(self._chains, keys, chain, self.max_cached)
        _check_request(chain, issuer, subject, command, args)
        return chain.links

    def forget(self, cid: CID | bytes | str | Delegation) -> None:
        """Drop what is remembered about this delegation (and every chain it is in)."""
        key = cid.digest if isinstance(cid, Delegation) else cid_key(cid)
        self._links.pop(key, None)
        for keys in [k for k in self._chains if key in k]:
            del self._chains[keys]

    def clear(self) -> None:
        """Forget everything: the next validation of any chain is cold again."""
        self._links.clear()
        self._chains.clear()
        self._invocations.clear()

    @property
    def cached_delegations(self) -> int:
        """How many delegations are remembered as verified."""
        return len(self._links)

    @property
    def cached_chains(self) -> int:
        """How many proof chains are remembered as well-formed."""
        return len(self._chains)

    # --- internals ----------------------------------------------------------------------------

    def _still_valid(self, chain: _Chain, keys: tuple[bytes, ...], now: int) -> bool:
        revocations = self.revocations
        if revocations is not None and any(revocations.has_digest(k) for k in keys):
            return False
        if chain.not_before is not None and now + self.leeway < chain.not_before:
            return False
        return chain.expires is None or now - self.leeway <= chain.expires

    def _build(
        self,
        keys: tuple[bytes, ...],
        proofs: Sequence[CID | bytes | str],
        attached: Mapping[CID, Delegation] | None,
        now: int,
    ) -> _Chain:
        links = tuple(self._find(key, cid, attached) for key, cid in zip(keys, proofs, strict=True))
        for link in links:
            if self.revocations is not None and self.revocations.has_digest(link.digest):
                self._links.pop(link.digest, None)
                raise Revoked(f"delegation {link.cid} ({_describe(link)}) has been revoked")
        for link in links:
            if link.digest not in self._links:
                self.signature_verifications += 1
                if not link.verify_signature():
                    raise InvalidSignature(
                        f"delegation {link.cid} ({_describe(link)}) is not signed by its"
                        f" issuer {link.iss}"
                    )
                _remember(self._links, link.digest, link, self.max_cached)
        for link in links:
            self._check_time(link, now)
        return _shape(links)

    def _find(
        self, key: bytes, cid: CID | bytes | str, attached: Mapping[CID, Delegation] | None
    ) -> Delegation:
        found = self._links.get(key)
        if found is not None:
            return found
        for source in (attached, self.store):
            if source is None:
                continue
            if isinstance(source, DelegationStore):
                found = source.get_by_digest(key)
            else:
                found = source.get(as_cid(cid))
            if found is not None:
                if not isinstance(found, Delegation) or found.digest != key:
                    raise UnavailableProof(
                        f"the delegation supplied for proof {cid_text(cid)} is a different token"
                    )
                return found
        raise UnavailableProof(
            f"proof {cid_text(cid)} was neither sent with the invocation nor found in the"
            " delegation store"
        )

    def _check_time(self, link: Delegation, now: int) -> None:
        if link.exp is not None and now - self.leeway > link.exp:
            self._links.pop(link.digest, None)
            raise Expired(
                f"delegation {link.cid} ({_describe(link)}) expired at {_when(link.exp)}"
                f" (now {_when(now)})"
            )
        if link.nbf is not None and now + self.leeway < link.nbf:
            raise TooEarly(
                f"delegation {link.cid} ({_describe(link)}) is not valid before"
                f" {_when(link.nbf)} (now {_when(now)})"
            )


def validate_invocation(
    invocation: Invocation,
    proofs: Mapping[CID, Delegation] | None = None,
    *,
    now: int | None = None,
    revocations: RevocationStore | Iterable[CID | Delegation] | None = None,
    executor: str | None = None,
    leeway: int = 0,
) -> tuple[Delegation, ...]:
    """Check that ``invocation`` is authorised by ``proofs`` (a mapping or a
    :class:`DelegationStore`), with nothing remembered from earlier calls.

    Returns the chain, root first; raises a :class:`UcanError` subclass naming what failed.
    """
    validator = ChainValidator(proofs, revocations=revocations, leeway=leeway)
    return validator.validate(invocation, now=now, executor=executor)


def _shape(links: tuple[Delegation, ...]) -> _Chain:
    """Check step 4 (the chain's own shape) and summarise the chain."""
    root = links[0]
    if root.sub is None:
        raise InvalidClaim(
            f"the root delegation {root.cid} ({_describe(root)}) is a powerline (sub = null);"
            " a chain must start with a delegation from its subject"
        )
    if root.iss != root.sub:
        raise InvalidSubject(
            f"the root delegation {root.cid} is about {root.sub} but was issued by {root.iss};"
            " only a subject can start a chain about itself"
        )
    for parent, child in pairwise(links):
        if parent.aud != child.iss:
            raise InvalidAudience(
                f"delegation {child.cid} is issued by {child.iss}, but the delegation before it,"
                f" {parent.cid}, is to {parent.aud}"
            )
    for link in links[1:]:
        if link.sub is not None and link.sub != root.sub:
            raise InvalidSubject(
                f"delegation {link.cid} is about {link.sub}, but the chain is about {root.sub}"
            )
    for parent, child in pairwise(links):
        if not command_covers(parent.cmd, child.cmd):
            raise CommandMismatch(
                f"delegation {child.cid} grants {child.cmd}, which its parent {parent.cid}"
                f" ({parent.cmd}) does not cover"
            )
    nbfs = [link.nbf for link in links if link.nbf is not None]
    exps = [link.exp for link in links if link.exp is not None]
    return _Chain(
        links=links,
        subject=root.sub,
        audience=links[-1].aud,
        command=links[-1].cmd,
        not_before=max(nbfs) if nbfs else None,
        expires=min(exps) if exps else None,
        policies=tuple((link, link.pol) for link in links if link.pol),
    )


def _check_request(
    chain: _Chain, issuer: str, subject: str, command: str, args: Mapping[str, object]
) -> None:
    """Check step 5: the request against a well-formed chain."""
    if chain.audience != issuer:
        last = chain.links[-1]
        raise InvalidAudience(
            f"the last delegation {last.cid} is to {last.aud}, but the invocation is issued by"
            f" {issuer}"
        )
    if chain.subject != subject:
        raise InvalidSubject(
            f"the proofs are about {chain.subject}, but the invocation is on {subject}"
        )
    if not command_covers(chain.command, command):
        raise CommandMismatch(
            f"the proofs grant {chain.command}, which does not cover the command {command}"
        )
    for link, policy in chain.policies:
        failed = policy.first_failure(args)
        if failed is not None:
            raise MatchError(
                f"the arguments do not satisfy the policy of delegation {link.cid}:"
                f" {_render(failed.to_ipld())} is false"
            )


def _remember(cache: dict[_K, _V], key: _K, value: _V, limit: int) -> None:
    if limit <= 0:
        return
    while len(cache) >= limit:
        del cache[next(iter(cache))]
    cache[key] = value


def _describe(link: Delegation) -> str:
    return f"{link.cmd} from {link.iss} to {link.aud}"


def _when(timestamp: int) -> str:
    """A Unix time as ``2025-10-20T00:00:00Z`` (or the number, if out of datetime's range)."""
    try:
        moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return str(timestamp)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _render(value: object) -> str:
    if isinstance(value, bytes):
        return f"bytes({value.hex()})"
    if isinstance(value, CID):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_render(v)}" for k, v in value.items()) + "}"
    return repr(value)
