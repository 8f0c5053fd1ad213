"""The trust context of a principal: whom it trusts, whom it accepts calls from, what it can prove.

A :class:`TrustContext` is what an :class:`~nuactor.ActorSystem` asks, for every envelope from
another principal, whether the sender may invoke the behaviour (:meth:`TrustContext.authorize`),
and, for every envelope it sends, which delegation chain proves that it may
(:meth:`TrustContext.proofs_for`). It holds NuNet's three kinds of anchor, all of them UCAN 1.0
delegations (docs/capabilities.md, "Trust contexts and anchors"):

- **root**: this node → a DID it fully trusts, command ``/``;
- **require**: this node → a DID it accepts calls from (often an organisation), for a command;
- **provide**: a delegation to this node, with the chain above it: what this node can prove.

A call is checked as a UCAN invocation (``iss`` = sender, ``sub`` = this node, ``cmd`` = the
behaviour, ``args`` = the body, ``prf`` = the envelope's ``prf``), after *chain completion*: a
chain that does not start at this node is prefixed with this node's anchor for its first issuer.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Final, Literal, final

from ._envelope import Envelope
from ._identity import Identity
from ._paths import is_under
from ._trust_file import (
    ContextFile,
    bundle_text,
    parse_bundle,
    parse_token,
    read_context_file,
    write_context_file,
)
from .errors import TrustContextError, Unauthorized
from .ucan import (
    DEFAULT,
    DEFAULT_DELEGATION_TTL,
    ChainValidator,
    CommandMismatch,
    Delegation,
    DelegationStore,
    InvalidSubject,
    MalformedToken,
    Policy,
    RevocationStore,
    Statement,
    UcanError,
    command_covers,
)
from .ucan._envelope import cid_from_digest, cid_key
from .ucan._fields import Default, now_seconds

__all__ = ["DEPTH_META", "Anchor", "AnchorKind", "TrustContext"]

AnchorKind = Literal["root", "require", "provide"]
TokenLike = Delegation | bytes | str
"""A delegation, its DAG-CBOR bytes, or its text form (base64url)."""

DEPTH_META: Final = "depth"
"""The ``meta`` key of a delegation that limits re-delegation (nuactor's extension, see docs)."""
MAX_PROOFS: Final = 16
"""Most proofs an envelope may cite; a longer chain is not a chain anyone needs."""
MAX_ATTACHED: Final = MAX_PROOFS
"""Most tokens an envelope may attach."""
MAX_LEARNED: Final = 4096
"""Attached delegations remembered (after their chain validated) so they need not come again."""
DEFAULT_PUBLIC: Final = ("/public",)
_SHA2_256_PREFIX: Final = b"\x12\x20"
_KINDS: Final[tuple[AnchorKind, ...]] = ("root", "require", "provide")


@final
@dataclass(frozen=True, slots=True)
class Anchor:
    """One anchor of a trust context, as :meth:`TrustContext.anchors` lists it.

    ``chain`` is, for a provide anchor, the delegations above it (root first), which are sent
    along with it; it is empty for root and require anchors (they start at this node).
    """

    kind: AnchorKind
    delegation: Delegation
    chain: tuple[Delegation, ...] = ()
    revoked: bool = False

    @property
    def cid(self) -> str:
        """The anchor's CID, ``bafy…``."""
        return str(self.delegation.cid)

    def expired(self, now: int | None = None) -> bool:
        """Whether the anchor (or a link above it) is past its ``exp``."""
        t = now_seconds() if now is None else now
        return any(d.exp is not None and d.exp < t for d in (*self.chain, self.delegation))


@final
class TrustContext:
    """A principal's anchors, revocations and memoised chain validation.

    It implements the :class:`~nuactor.Authorizer` protocol. ``public`` lists the behaviour
    prefixes any signed sender may call without a delegation (admission still limits them).
    Changes are kept in memory until :meth:`save`.

    >>> node, owner = Identity.generate(), Identity.generate()
    >>> trust = TrustContext(node)
    >>> root = trust.add_root(owner.did)            # the owner may do anything here
    >>> [a.kind for a in trust.anchors()]
    ['root']
    """

    bundle_text = staticmethod(bundle_text)
    parse_bundle = staticmethod(parse_bundle)

    def __init__(
        self,
        identity: Identity,
        *,
        path: Path | None = None,
        public: Iterable[str] = DEFAULT_PUBLIC,
        leeway: int = 0,
    ) -> None:
        self._identity = identity
        self._did = identity.did
        self.path = path
        self.public: tuple[str, ...] = tuple(public)
        self._anchors: dict[bytes, tuple[AnchorKind, tuple[Delegation, ...]]] = {}
        self._store = DelegationStore()
        self._revocations = RevocationStore()
        self._validator = ChainValidator(self._store, revocations=self._revocations, leeway=leeway)
        self._learned: dict[bytes, Delegation] = {}

    # --- identity and files ------------------------------------------------------------------

    @property
    def did(self) -> str:
        """The DID of the principal whose context this is."""
        return self._did

    @property
    def signature_verifications(self) -> int:
        """Ed25519 verifications done by validation so far (a warm chain costs none)."""
        return self._validator.signature_verifications

    @classmethod
    def load(
        cls,
        path: Path,
        identity: Identity,
        *,
        public: Iterable[str] = DEFAULT_PUBLIC,
        leeway: int = 0,
    ) -> TrustContext:
        """Read the context file at ``path``, which must belong to ``identity``.

        Raises :class:`~nuactor.errors.TrustContextError` for a missing or unreadable file, a
        file of another principal, or an anchor that breaks the rules.
        """
        contents = read_context_file(path)
        if contents.did != identity.did:
            raise TrustContextError(
                f"trust context file {path} belongs to {contents.did}, but the key given is"
                f" {identity.did}: a context is used with the key it was created for"
            )
        trust = cls(identity, path=path, public=public, leeway=leeway)
        where = "revoked"
        try:
            for index, cid in enumerate(contents.revoked):
                where = f"revoked[{index}]"
                trust.revoke(cid)
            sections: list[tuple[AnchorKind, list[tuple[Delegation, ...]]]] = [
                ("root", [(d,) for d in contents.root]),
                ("require", [(d,) for d in contents.require]),
                ("provide", contents.provide),
            ]
            for kind, chains in sections:
                for index, chain in enumerate(chains):
                    where = f"{kind}[{index}]"
                    trust._install(kind, chain, loading=True)
        except TrustContextError as exc:
            raise TrustContextError(
                f"trust context file {path} is not valid: {where}: {exc}"
            ) from None
        return trust

    def save(self, path: Path | None = None) -> Path:
        """Write the context to ``path`` (default: where it was loaded from); return the path.

        The write is atomic (temporary file, fsync, rename) and the file is mode 0600.
        """
        target = self.path if path is None else path
        if target is None:
            raise TrustContextError("this trust context has no file yet: pass save() a path")
        contents = ContextFile(did=self._did)
        for kind, chain in self._anchors.values():
            if kind == "root":
                contents.root.append(chain[-1])
            elif kind == "require":
                contents.require.append(chain[-1])
            else:
                contents.provide.append(chain)
        contents.revoked = [str(cid) for cid in self._revocations]
        write_context_file(target, contents)
        self.path = target
        return target

    # --- anchors -----------------------------------------------------------------------------

    def add_root(
        self, did: str, *, expiration: int | None = None, meta: Mapping[str, object] | None = None
    ) -> Delegation:
        """Trust ``did`` fully: issue and keep the delegation this node → ``did``, command ``/``.

        An active root anchor for ``did`` already here is returned instead of a second one.
        ``expiration`` (Unix seconds) defaults to never.
        """
        for kind, chain in self._anchors.values():
            existing = chain[-1]
            if kind == "root" and existing.aud == did and self._usable(existing, now_seconds()):
                return existing
        delegation = self._issue(did, self._did, "/", (), expiration, None, meta)
        self._install("root", (delegation,))
        return delegation

    def add_require(self, token: TokenLike) -> Delegation:
        """Accept calls from the audience of ``token``, a delegation issued by this node.

        The delegation is kept, so a caller may cite it by CID (or not at all: see chain
        completion) instead of carrying it.
        """
        chain = _tokens(token)
        if len(chain) != 1:
            raise TrustContextError(
                f"a require anchor is one delegation issued by this node, not a bundle of"
                f" {len(chain)}"
            )
        self._install("require", chain)
        return chain[0]

    def add_provide(self, token: TokenLike | Sequence[TokenLike]) -> Delegation:
        """Keep a delegation granted to this principal (with the chain above it, root first),
        to prove to others what it may invoke. Returns the anchor (the last delegation)."""
        chain = _tokens(token)
        self._install("provide", chain)
        return chain[-1]

    def grant(
        self,
        to: str,
        cmd: str,
        policy: Policy | Sequence[Statement | Sequence[object]] = (),
        *,
        expiration: int | Default | None = DEFAULT,
        not_before: int | None = None,
        meta: Mapping[str, object] | None = None,
        depth: int | None = None,
        powerline: bool = False,
        require: bool = False,
    ) -> Delegation:
        """Issue a delegation from this principal to ``to`` for ``cmd`` and return it.

        The subject is this principal, or nobody in particular with ``powerline=True`` (for an
        organisation's grants to its members, which each node completes with its own require
        anchor). ``depth`` limits re-delegation (see :data:`DEPTH_META`); ``require=True`` also
        keeps the grant as a require anchor. ``expiration`` defaults to an hour from now.
        """
        if require and powerline:
            raise TrustContextError("a powerline cannot be a require anchor: it has no subject")
        delegation = self._issue(
            to,
            None if powerline else self._did,
            cmd,
            policy,
            expiration,
            not_before,
            _with_depth(meta, depth),
        )
        if require:
            self._install("require", (delegation,))
        return delegation

    def delegate(
        self,
        to: str,
        cmd: str,
        policy: Policy | Sequence[Statement | Sequence[object]] = (),
        *,
        expiration: int | Default | None = DEFAULT,
        not_before: int | None = None,
        meta: Mapping[str, object] | None = None,
        depth: int | None = None,
        subject: str | None = None,
        now: int | None = None,
    ) -> tuple[Delegation, tuple[Delegation, ...]]:
        """Pass on part of a provide anchor: issue this principal → ``to`` for ``cmd``.

        Uses the shortest usable provide chain whose command covers ``cmd`` (about ``subject``,
        if given). Returns the new delegation and the chain it extends (root first): the
        receiver needs both (``bundle_text((*chain, new))``). The expiration (default: an hour
        from now) is never later than the chain's.
        """
        t = now_seconds() if now is None else now
        usable = [
            chain
            for chain in self._provide_chains(cmd, t)
            if subject is None or all(d.sub in (None, subject) for d in chain)
        ]
        if not usable:
            raise TrustContextError(self._no_provide_reason(cmd, t))
        open_chains = [chain for chain in usable if _depth_allows(chain, extra=1)]
        if not open_chains:
            raise TrustContextError(
                f"every provide anchor covering {cmd} forbids re-delegation (its '{DEPTH_META}'"
                f" limit is reached): ask its issuer for a grant with a larger --depth"
            )
        chain = min(open_chains, key=len)
        if isinstance(expiration, Default):
            expiration = t + DEFAULT_DELEGATION_TTL
        ends = [d.exp for d in chain if d.exp is not None]
        if ends:  # a later expiry would promise what the chain cannot keep
            expiration = min(ends) if expiration is None else min(expiration, *ends)
        delegation = self._issue(
            to, chain[-1].sub, cmd, policy, expiration, not_before, _with_depth(meta, depth)
        )
        return delegation, chain

    def revoke(self, cid: object) -> str:
        """Refuse, from now on, every chain that contains the delegation ``cid`` (a CID string,
        binary CID or :class:`Delegation`); return the CID as text. Chains remembered as valid
        are re-checked on every call, so this takes effect at once."""
        digest = _digest_of(cid)
        self._revocations.add(cid_from_digest(digest))
        self._forget(digest)
        return str(cid_from_digest(digest))

    def remove(self, cid: object) -> Anchor:
        """Take an anchor out of the context (not a revocation: a copy elsewhere still works)."""
        digest = _digest_of(cid)
        entry = self._anchors.pop(digest, None)
        if entry is None:
            for kind, chain in self._anchors.values():
                if any(d.digest == digest for d in chain):
                    raise TrustContextError(
                        f"{cid_from_digest(digest)} is a link in the chain of {kind} anchor"
                        f" {chain[-1].cid}: remove that anchor instead"
                    )
            raise TrustContextError(f"there is no anchor {cid_from_digest(digest)} in this context")
        kind, chain = entry
        still_used = {d.digest for _, other in self._anchors.values() for d in other}
        for link in chain:
            if link.digest not in still_used:
                self._store.discard(link)
                self._forget(link.digest)
        return Anchor(kind, chain[-1], chain[:-1], self._revocations.has_digest(digest))

    def anchors(self) -> list[Anchor]:
        """Every anchor: root, then require, then provide, each in the order added."""
        found = [
            Anchor(kind, chain[-1], chain[:-1], self._revoked(chain))
            for kind, chain in self._anchors.values()
        ]
        return sorted(found, key=lambda a: _KINDS.index(a.kind))

    def revoked(self) -> list[str]:
        """The revoked CIDs, as text."""
        return [str(cid) for cid in self._revocations]

    # --- the Authorizer protocol -------------------------------------------------------------

    def authorize(self, envelope: Envelope, *, now: int | None = None) -> None:
        """Return if the sender may invoke ``envelope.beh`` here; else raise
        :class:`~nuactor.errors.Unauthorized` with a reason a person can act on."""
        sender, beh = envelope.sender.did, envelope.beh
        if sender == self._did or self._is_public(beh):
            return
        to = envelope.to.did
        if to not in (self._did, "*"):
            raise Unauthorized(f"{beh} from {sender} is addressed to {to}, not to this node")
        t = now_seconds() if now is None else now
        body = envelope.body
        args: Mapping[str, object] = body if _is_args(body) else {"body": body}
        prf = envelope.prf
        if len(prf) > MAX_PROOFS:
            raise Unauthorized(
                f"{sender} may not invoke {beh} on this node: the envelope cites {len(prf)}"
                f" proofs; at most {MAX_PROOFS} are accepted"
            )
        try:
            keys = [cid_key(p) for p in prf]
        except UcanError as exc:
            raise Unauthorized(f"{sender} may not invoke {beh} on this node: {exc}") from None
        for key in keys:  # before anything else: a revoked token need not even be found
            if self._revocations.has_digest(key):
                raise Unauthorized(
                    f"{sender} may not invoke {beh} on this node: delegation"
                    f" {cid_from_digest(key)} has been revoked"
                )
        attached = self._attached(envelope.tok, keys, sender, beh)
        first = self._lookup(keys[0], attached) if keys else None
        head = sender if not keys else (None if first is None else first.iss)
        attempts: list[tuple[bytes, ...]] = [tuple(prf)]
        if head is not None and head != self._did:
            anchors = self._anchors_for(head, beh if first is None else first.cmd, beh, t)
            if not anchors:
                raise Unauthorized(self._no_anchor_reason(sender, beh, head, first))
            attempts = [(anchor.cid_bytes, *prf) for anchor in anchors]
        failure: tuple[UcanError, tuple[bytes, ...]] | None = None
        for proofs in attempts:
            try:
                chain = self._validator.authorize(
                    issuer=sender,
                    subject=self._did,
                    command=beh,
                    args=args,
                    proofs=proofs,
                    attached=attached,
                    now=t,
                )
            except UcanError as exc:
                failure = failure or (exc, proofs)
                continue
            self._check_depth(chain, sender, beh)
            self._learn(chain)
            return
        assert failure is not None
        raise Unauthorized(self._reason(failure[0], failure[1], attached, sender, beh))

    def proofs_for(
        self, subject: str, cmd: str, *, now: int | None = None
    ) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """For a call of ``cmd`` on ``subject``: the CIDs (root first) and tokens of the shortest
        usable provide chain, or ``((), ())`` if none (or the subject is this principal).

        For ``subject == "*"`` (a broadcast) any chain covering ``cmd`` will do: each receiver
        completes it with its own anchor. Otherwise a chain rooted at ``subject`` is preferred
        to one that the subject must complete.
        """
        if subject == self._did or not self._anchors:
            return (), ()
        t = now_seconds() if now is None else now
        best: tuple[Delegation, ...] | None = None
        best_rank = (2, 0)
        for chain in self._provide_chains(cmd, t):
            if subject == "*":
                rank = (0, len(chain))
            elif all(d.sub in (None, subject) for d in chain):
                root = chain[0]
                rank = (0 if root.iss == root.sub == subject else 1, len(chain))
            else:
                continue
            if best is None or rank < best_rank:
                best, best_rank = chain, rank
        if best is None:
            return (), ()
        return tuple(d.cid_bytes for d in best), tuple(d.encode() for d in best)

    # --- internals: anchors ------------------------------------------------------------------

    def _issue(
        self,
        audience: str,
        subject: str | None,
        cmd: str,
        policy: Policy | Sequence[Statement | Sequence[object]],
        expiration: int | Default | None,
        not_before: int | None,
        meta: Mapping[str, object] | None,
    ) -> Delegation:
        try:
            return Delegation.issue(
                self._identity, audience, subject, cmd, policy, expiration, not_before, meta
            )
        except MalformedToken as exc:
            raise TrustContextError(f"cannot issue the delegation: {exc}") from None

    def _install(
        self, kind: AnchorKind, chain: tuple[Delegation, ...], *, loading: bool = False
    ) -> None:
        """Check ``chain`` against the rules of ``kind`` and keep it."""
        if not chain:
            raise TrustContextError(f"a {kind} anchor needs a delegation")
        anchor = chain[-1]
        if kind == "provide":
            if anchor.aud != self._did and len(chain) > 1 and chain[0].aud == self._did:
                raise TrustContextError(
                    "the delegations do not form a chain in this order: give them root first,"
                    " the one to this context's principal last"
                )
            if anchor.aud != self._did:
                raise TrustContextError(
                    f"delegation {anchor.cid} is to {anchor.aud}, not to this context's principal"
                    f" {self._did}: a provide anchor is a delegation granted to it"
                )
            _check_chain(chain)
        else:
            if anchor.iss != self._did:
                raise TrustContextError(
                    f"delegation {anchor.cid} is issued by {anchor.iss}, not by this node"
                    f" {self._did}: a {kind} anchor is a delegation this node issues"
                    " ('dmsnode cap grant' with this node's context)"
                )
            if anchor.sub != self._did:
                about = "nobody in particular (a powerline)" if anchor.sub is None else anchor.sub
                raise TrustContextError(
                    f"delegation {anchor.cid} is about {about}; a {kind} anchor must be about"
                    f" this node {self._did}"
                )
            if kind == "root" and anchor.cmd != "/":
                raise TrustContextError(
                    f"delegation {anchor.cid} grants {anchor.cmd}; a root anchor grants '/'"
                    " (use a require anchor for less)"
                )
        for link in chain:
            if not link.verify_signature():
                raise TrustContextError(
                    f"delegation {link.cid} is not signed by its issuer {link.iss}"
                )
        if not loading:
            now = now_seconds()
            for link in chain:
                if self._revocations.has_digest(link.digest):
                    raise TrustContextError(f"delegation {link.cid} has been revoked here")
                if link.exp is not None and link.exp < now:
                    raise TrustContextError(
                        f"delegation {link.cid} expired at {_when(link.exp)}: ask its issuer for"
                        " a new one"
                    )
        existing = self._anchors.get(anchor.digest)
        if existing is not None and existing[0] != kind:
            raise TrustContextError(
                f"delegation {anchor.cid} is already a {existing[0]} anchor of this context"
            )
        self._anchors[anchor.digest] = (kind, chain)
        for link in chain:
            self._store.add(link)
            self._learned.pop(link.digest, None)

    def _revoked(self, chain: Iterable[Delegation]) -> bool:
        return any(self._revocations.has_digest(d.digest) for d in chain)

    def _usable(self, delegation: Delegation, now: int) -> bool:
        return (
            not self._revocations.has_digest(delegation.digest)
            and (delegation.exp is None or now <= delegation.exp)
            and (delegation.nbf is None or delegation.nbf <= now)
        )

    def _provide_chains(self, cmd: str, now: int) -> list[tuple[Delegation, ...]]:
        """The provide chains that cover ``cmd`` and are neither revoked nor out of time."""
        return [
            chain
            for kind, chain in self._anchors.values()
            if kind == "provide"
            and command_covers(chain[-1].cmd, cmd)
            and all(self._usable(d, now) for d in chain)
        ]

    def _no_provide_reason(self, cmd: str, now: int) -> str:
        held = [chain[-1] for kind, chain in self._anchors.values() if kind == "provide"]
        if not held:
            return (
                f"this context has no provide anchor, so it cannot delegate {cmd}: add the"
                " delegation you were given with 'dmsnode cap anchor --provide'"
            )
        listing = ", ".join(f"{d.cmd} ({d.cid})" for d in held)
        return (
            f"no usable provide anchor of this context covers {cmd} (it holds {listing};"
            " revoked or expired ones are not usable)"
        )

    def _forget(self, digest: bytes) -> None:
        self._validator.forget(b"\x01\x71" + digest)  # the binary CID
        self._learned.pop(digest, None)

    # --- internals: authorisation -------------------------------------------------------------

    def _is_public(self, beh: str) -> bool:
        return any(is_under(beh, prefix) for prefix in self.public)

    def _attached(
        self, tokens: Sequence[bytes], keys: Sequence[bytes], sender: str, beh: str
    ) -> DelegationStore | None:
        """The delegations this call may use beyond the store: the tokens it attaches (decoded
        only if new) and those remembered from earlier valid chains. Nothing is kept here."""
        if len(tokens) > MAX_ATTACHED:
            raise Unauthorized(
                f"{sender} may not invoke {beh} on this node: the envelope attaches"
                f" {len(tokens)} tokens; at most {MAX_ATTACHED} are accepted"
            )
        attached: DelegationStore | None = None
        cited = set(keys)
        for index, data in enumerate(tokens, 1):
            digest = _SHA2_256_PREFIX + hashlib.sha256(data).digest()
            if digest not in cited:
                raise Unauthorized(
                    f"{sender} may not invoke {beh} on this node: attached token {index}"
                    f" ({cid_from_digest(digest)}) is not one of the proofs the envelope cites"
                    " (prf); attach only the delegations of the chain"
                )
            if self._store.get_by_digest(digest) is not None or digest in self._learned:
                continue
            try:
                delegation = Delegation.decode(data)
            except MalformedToken as exc:
                raise Unauthorized(
                    f"{sender} may not invoke {beh} on this node: attached token {index}"
                    f" ({cid_from_digest(digest)}) is not a UCAN delegation: {exc}"
                ) from None
            attached = attached if attached is not None else DelegationStore()
            attached.keep(delegation)
        for key in keys:
            learned = self._learned.get(key)
            if learned is not None:
                attached = attached if attached is not None else DelegationStore()
                attached.keep(learned)
        return attached

    def _lookup(self, digest: bytes, attached: DelegationStore | None) -> Delegation | None:
        found = self._store.get_by_digest(digest)
        if found is None and attached is not None:
            found = attached.get_by_digest(digest)
        return found

    def _anchors_for(self, audience: str, head_cmd: str, beh: str, now: int) -> list[Delegation]:
        """This node's root and require anchors to ``audience``, the most promising first."""
        mine = [
            d
            for d in self._store.by_audience(audience)
            if self._anchors.get(d.digest, ("provide",))[0] in ("root", "require")
        ]

        def rank(d: Delegation) -> tuple[bool, bool, bool, int]:
            return (
                not self._usable(d, now),
                not command_covers(d.cmd, head_cmd),
                not command_covers(d.cmd, beh),
                len(d.pol),
            )

        return sorted(mine, key=rank)

    def _no_anchor_reason(self, sender: str, beh: str, head: str, first: Delegation | None) -> str:
        start = f"no delegation for {beh} from {sender} rooted at this node {self._did}"
        if first is None:
            return (
                f"{start}: the call cites no proof, and this node has no root or require anchor"
                f" for {sender} (grant one with 'dmsnode cap grant' and 'cap anchor --require')"
            )
        if first.sub is not None and first.iss == first.sub:
            return (
                f"{start}: the chain cited starts at {first.iss} (delegation {first.cid}), so it"
                " proves authority over that principal, not over this node"
            )
        return (
            f"{start}: the chain cited starts with delegation {first.cid} issued by {head}, and"
            f" this node has no root or require anchor for {head}"
        )

    def _reason(
        self,
        exc: UcanError,
        proofs: Sequence[bytes],
        attached: DelegationStore | None,
        sender: str,
        beh: str,
    ) -> str:
        reason = str(exc)
        leaf = None
        if proofs:
            try:
                leaf = self._lookup(cid_key(proofs[-1]), attached)
            except UcanError:
                leaf = None
        if isinstance(exc, CommandMismatch) and leaf is not None:
            if not command_covers(leaf.cmd, beh):
                reason = f"delegation {leaf.cid} grants {leaf.cmd}, not {beh}"
        elif isinstance(exc, InvalidSubject) and len(proofs) > 1:
            reason += (
                " (a delegation passed on through an organisation must be a powerline, with no"
                " subject: 'dmsnode cap grant --powerline')"
            )
        return f"{sender} may not invoke {beh} on this node: {reason}"

    def _check_depth(self, chain: Sequence[Delegation], sender: str, beh: str) -> None:
        for index, link in enumerate(chain):
            limit = _depth_of(link)
            after = len(chain) - 1 - index
            if limit is not None and after > limit:
                raise Unauthorized(
                    f"{sender} may not invoke {beh} on this node: delegation {link.cid}"
                    f" ({link.cmd} from {link.iss} to {link.aud}) may be passed on {limit}"
                    f" more time(s), but the chain has {after} delegation(s) after it"
                )

    def _learn(self, chain: Sequence[Delegation]) -> None:
        """Remember the links of a chain that just validated, if they came attached."""
        for link in chain:
            digest = link.digest
            if digest in self._learned or self._store.get_by_digest(digest) is not None:
                continue
            while len(self._learned) >= MAX_LEARNED:
                del self._learned[next(iter(self._learned))]
            self._learned[digest] = link


# --- helpers ---------------------------------------------------------------------------------


def _tokens(token: TokenLike | Sequence[TokenLike]) -> tuple[Delegation, ...]:
    """Delegations from a delegation, bytes, text (a token or a comma-separated bundle) or a
    sequence of those."""
    if isinstance(token, Delegation):
        return (token,)
    if isinstance(token, bytes):
        return (parse_token(token),)
    if isinstance(token, str):
        return parse_bundle(token)
    found: list[Delegation] = []
    for item in token:
        found.extend(_tokens(item))
    return tuple(found)


def _check_chain(chain: Sequence[Delegation]) -> None:
    """The shape rules of a (possibly incomplete) chain, root first."""
    for parent, child in pairwise(chain):
        if parent.aud != child.iss:
            raise TrustContextError(
                f"the delegations do not form a chain: {child.cid} is issued by {child.iss}, but"
                f" the one before it, {parent.cid}, is to {parent.aud} (give them root first)"
            )
        if not command_covers(parent.cmd, child.cmd):
            raise TrustContextError(
                f"delegation {child.cid} grants {child.cmd}, which the delegation before it,"
                f" {parent.cid} ({parent.cmd}), does not cover"
            )
    subjects = {d.sub for d in chain if d.sub is not None}
    if len(subjects) > 1:
        raise TrustContextError(
            f"the delegations of the chain are about different subjects: {sorted(subjects)}"
        )
    if not _depth_allows(chain, extra=0):
        raise TrustContextError(
            f"the chain is longer than a '{DEPTH_META}' limit in it allows: it cannot be used"
        )


def _depth_of(delegation: Delegation) -> int | None:
    meta = delegation.meta
    if not meta:
        return None
    value = meta.get(DEPTH_META)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _depth_allows(chain: Sequence[Delegation], *, extra: int) -> bool:
    """Whether every depth limit in ``chain`` allows ``extra`` more links after it."""
    for index, link in enumerate(chain):
        limit = _depth_of(link)
        if limit is not None and len(chain) - 1 - index + extra > limit:
            return False
    return True


def _with_depth(
    meta: Mapping[str, object] | None, depth: int | None
) -> Mapping[str, object] | None:
    if depth is None:
        return meta
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise TrustContextError(f"depth must be a whole number ≥ 0, got {depth!r}")
    return {**(meta or {}), DEPTH_META: depth}


def _digest_of(cid: object) -> bytes:
    if isinstance(cid, Delegation):
        return cid.digest
    if isinstance(cid, str):
        cid = cid.strip()
    try:
        return cid_key(cid)
    except UcanError:
        raise TrustContextError(f"{cid!r:.80} is not the CID of a delegation (bafy…)") from None


def _is_args(body: Any) -> bool:
    """Whether ``body`` is a map with string keys: then it is the invocation's ``args``."""
    return isinstance(body, dict) and all(isinstance(key, str) for key in body)


def _when(timestamp: int) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return str(timestamp)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
