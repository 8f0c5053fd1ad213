"""Chain validation: every rule, its error name and message, and the memoised validator."""

from __future__ import annotations

from typing import Any

import dag_cbor
import pytest

from nuactor import Identity
from nuactor.ucan import (
    DLG_TAG,
    ChainValidator,
    CommandMismatch,
    Delegation,
    DelegationStore,
    Expired,
    InvalidAudience,
    InvalidClaim,
    InvalidSignature,
    InvalidSubject,
    Invocation,
    MatchError,
    RevocationStore,
    Revoked,
    TooEarly,
    UcanError,
    UnavailableProof,
    validate_invocation,
)

NOW = 1_900_000_000
NODE = Identity.from_seed(b"\x01" * 32)  # the subject: the resource owner
ORG = Identity.from_seed(b"\x02" * 32)
TEAM = Identity.from_seed(b"\x03" * 32)
USER = Identity.from_seed(b"\x04" * 32)
MALLORY = Identity.from_seed(b"\x05" * 32)


def grant(
    issuer: Identity,
    audience: Identity,
    cmd: str = "/dms",
    *,
    subject: str | None = NODE.did,
    policy: Any = (),
    exp: int | None = NOW + 3600,
    nbf: int | None = None,
) -> Delegation:
    return Delegation.issue(
        issuer, audience.did, subject, cmd, policy, expiration=exp, not_before=nbf
    )


def chain3(**last: Any) -> list[Delegation]:
    """NODE → ORG → TEAM → USER, commands narrowing /dms → /dms/node → /dms/node/peers."""
    return [
        grant(NODE, ORG, "/dms"),
        grant(ORG, TEAM, "/dms/node", policy=[["==", ".verbose", False]]),
        grant(TEAM, USER, last.pop("cmd", "/dms/node/peers"), **last),
    ]


def invoke(
    links: list[Delegation],
    cmd: str = "/dms/node/peers/list",
    args: dict[str, Any] | None = None,
    *,
    issuer: Identity = USER,
    subject: str = NODE.did,
    **kwargs: Any,
) -> Invocation:
    kwargs.setdefault("expiration", NOW + 60)
    return Invocation.issue(
        issuer,
        subject,
        cmd,
        {"verbose": False} if args is None else args,
        [link.cid for link in links],
        **kwargs,
    )


def proofs(links: list[Delegation]) -> dict[Any, Delegation]:
    return {link.cid: link for link in links}


def check(invocation: Invocation, links: list[Delegation], **kwargs: Any) -> Any:
    return validate_invocation(invocation, proofs(links), now=kwargs.pop("now", NOW), **kwargs)


# --- the happy paths --------------------------------------------------------------------------


def test_three_link_chain_validates_and_returns_the_chain() -> None:
    links = chain3()
    assert check(invoke(links), links) == tuple(links)


def test_subject_may_invoke_without_proof() -> None:
    invocation = Invocation.issue(NODE, NODE.did, "/dms/anything", {}, [], expiration=NOW + 5)
    assert check(invocation, []) == ()


def test_powerline_stands_for_the_chain_subject() -> None:
    links = [grant(NODE, ORG, "/dms"), grant(ORG, USER, "/dms", subject=None)]
    check(invoke(links, "/dms/x", {}), links)


def test_exact_and_top_commands() -> None:
    links = [grant(NODE, USER, "/")]
    check(invoke(links, "/", {}), links)
    links = [grant(NODE, USER, "/dms/node/peers/list")]
    check(invoke(links, "/dms/node/peers/list", {}), links)


def test_store_lookup_and_attached_proofs() -> None:
    links = chain3()
    store = DelegationStore(links[:2])
    validator = ChainValidator(store)
    invocation = invoke(links)
    with pytest.raises(UnavailableProof):
        validator.validate(invocation, now=NOW)
    assert validator.validate(invocation, {links[2].cid: links[2]}, now=NOW) == tuple(links)
    store.add(links[2])
    assert validate_invocation(invocation, store, now=NOW) == tuple(links)


def test_time_bounds_are_inclusive_and_leeway_applies() -> None:
    links = [grant(NODE, USER, exp=NOW, nbf=NOW)]
    invocation = invoke(links, "/dms", {}, expiration=NOW)
    check(invocation, links, now=NOW)
    with pytest.raises(Expired):
        check(invocation, links, now=NOW + 1)
    with pytest.raises(TooEarly):
        check(invocation, links, now=NOW - 1)
    check(invocation, links, now=NOW + 30, leeway=30)
    check(invocation, links, now=NOW - 30, leeway=30)


def test_default_now_is_the_present() -> None:
    links = [grant(NODE, USER, exp=None)]
    validate_invocation(Invocation.issue(USER, NODE.did, "/dms", {}, links), proofs(links))
    expired = [grant(NODE, USER, exp=1_000)]
    with pytest.raises(Expired):
        validate_invocation(Invocation.issue(USER, NODE.did, "/dms", {}, expired), proofs(expired))


def test_executor_must_be_the_audience_or_subject() -> None:
    links = chain3()
    check(invoke(links), links, executor=NODE.did)
    with pytest.raises(InvalidAudience, match="not to this executor"):
        check(invoke(links), links, executor=MALLORY.did)
    check(invoke(links, audience=MALLORY.did), links, executor=MALLORY.did)


# --- every failure ------------------------------------------------------------------------------


def test_no_proof_is_an_invalid_claim() -> None:
    with pytest.raises(InvalidClaim, match="without proof"):
        check(invoke([]), [])


def test_unavailable_proof_names_the_cid() -> None:
    links = chain3()
    with pytest.raises(UnavailableProof, match=str(links[1].cid)):
        check(invoke(links), [links[0], links[2]])


def test_a_mapping_that_lies_about_a_cid_is_refused() -> None:
    links = chain3()
    lying = proofs(links)
    lying[links[1].cid] = links[0]
    with pytest.raises(UnavailableProof, match="different token"):
        validate_invocation(invoke(links), lying, now=NOW)


def test_invocation_signature() -> None:
    links = chain3()
    token = invoke(links).encode()
    signature, sig_payload = dag_cbor.decode(token)
    sig_payload[next(k for k in sig_payload if k != "h")]["args"] = {"verbose": True}
    forged = Invocation.decode(dag_cbor.encode([signature, sig_payload]))
    with pytest.raises(InvalidSignature, match="invocation"):
        check(forged, links)


def test_delegation_signature() -> None:
    links = chain3()
    signature, sig_payload = dag_cbor.decode(links[1].encode())
    sig_payload[DLG_TAG]["cmd"] = "/"
    forged = Delegation.decode(dag_cbor.encode([signature, sig_payload]))
    links[1] = forged
    with pytest.raises(InvalidSignature, match=str(forged.cid)):
        check(invoke(links), links)


def test_expired_link_names_it_and_the_time() -> None:
    links = chain3(exp=NOW - 10)
    with pytest.raises(Expired) as caught:
        check(invoke(links), links)
    message = str(caught.value)
    assert str(links[2].cid) in message
    assert "2030-03-17T17:46:30Z" in message  # NOW - 10, in UTC


def test_expired_invocation() -> None:
    links = chain3()
    with pytest.raises(Expired, match="invocation"):
        check(invoke(links, expiration=NOW - 1), links)


def test_not_yet_valid_link() -> None:
    links = chain3(nbf=NOW + 100)
    with pytest.raises(TooEarly, match=str(links[2].cid)):
        check(invoke(links), links)


def test_powerline_root_is_an_invalid_claim() -> None:
    links = [grant(NODE, USER, subject=None)]
    with pytest.raises(InvalidClaim, match="powerline"):
        check(invoke(links, "/dms", {}), links)


def test_root_must_be_issued_by_the_subject() -> None:
    links = [grant(ORG, USER)]  # ORG delegates NODE's authority it never had
    with pytest.raises(InvalidSubject, match="only a subject"):
        check(invoke(links, "/dms", {}), links)


def test_principal_alignment_inside_the_chain() -> None:
    links = [grant(NODE, ORG), grant(TEAM, USER)]
    with pytest.raises(InvalidAudience, match="is issued by"):
        check(invoke(links, "/dms", {}), links)


def test_principal_alignment_with_the_invoker() -> None:
    links = chain3()
    with pytest.raises(InvalidAudience, match="last delegation"):
        check(invoke(links, issuer=MALLORY), links)


def test_subject_alignment_inside_the_chain() -> None:
    links = [grant(NODE, ORG), grant(ORG, USER, subject=ORG.did)]
    with pytest.raises(InvalidSubject, match="chain is about"):
        check(invoke(links, "/dms", {}), links)


def test_subject_alignment_with_the_invocation() -> None:
    links = chain3()
    with pytest.raises(InvalidSubject, match="the invocation is on"):
        check(invoke(links, subject=ORG.did), links)


def test_widened_command_inside_the_chain() -> None:
    links = chain3(cmd="/dms/other")
    with pytest.raises(CommandMismatch, match="does not cover") as caught:
        check(invoke(links, "/dms/other"), links)
    assert caught.value.name == "InvalidClaim"


def test_invoked_command_outside_the_grant() -> None:
    links = chain3()
    for cmd in ("/dms/node", "/dms/node/peersx", "/", "/other"):
        with pytest.raises(CommandMismatch):
            check(invoke(links, cmd), links)


def test_policies_of_every_link_apply() -> None:
    links = chain3(policy=[["any", ".peers", ["like", ".", "12D3*"]]])
    check(invoke(links, args={"verbose": False, "peers": ["x", "12D3abc"]}), links)
    with pytest.raises(MatchError, match="12D3"):
        check(invoke(links, args={"verbose": False, "peers": ["x"]}), links)
    with pytest.raises(MatchError, match=str(links[1].cid)):  # the middle link's policy
        check(invoke(links, args={"verbose": True, "peers": ["12D3abc"]}), links)


def test_revoked_link() -> None:
    links = chain3()
    revocations = RevocationStore([links[1].cid])
    with pytest.raises(Revoked, match=str(links[1].cid)):
        check(invoke(links), links, revocations=revocations)
    with pytest.raises(Revoked):
        check(invoke(links), links, revocations=[links[1]])


def test_every_error_is_a_ucan_error_with_a_name() -> None:
    for error in (Expired, InvalidClaim, CommandMismatch, Revoked, MatchError):
        assert issubclass(error, UcanError)
        assert error.name


# --- memoisation --------------------------------------------------------------------------------


def test_warm_path_does_no_signature_verification() -> None:
    links = chain3()
    validator = ChainValidator(DelegationStore(links))
    cids = [link.cid for link in links]
    validator.authorize(
        issuer=USER.did,
        subject=NODE.did,
        command="/dms/node/peers/list",
        args={"verbose": False},
        proofs=cids,
        now=NOW,
    )
    assert validator.signature_verifications == 3
    assert (validator.cached_delegations, validator.cached_chains) == (3, 1)
    for _ in range(5):
        validator.authorize(
            issuer=USER.did,
            subject=NODE.did,
            command="/dms/node/peers/list",
            args={"verbose": False},
            proofs=cids,
            now=NOW,
        )
    assert validator.signature_verifications == 3
    # Policies are still evaluated on every call.
    with pytest.raises(MatchError):
        validator.authorize(
            issuer=USER.did,
            subject=NODE.did,
            command="/dms/node/peers/list",
            args={"verbose": True},
            proofs=cids,
            now=NOW,
        )
    # So are the invoker, subject and command.
    with pytest.raises(InvalidAudience):
        validator.authorize(
            issuer=MALLORY.did, subject=NODE.did, command="/dms/node", args={}, proofs=cids
        )
    assert validator.signature_verifications == 3


def test_invocations_count_their_own_signature_once() -> None:
    links = chain3()
    validator = ChainValidator(DelegationStore(links))
    invocation = invoke(links)
    validator.validate(invocation, now=NOW)
    assert validator.signature_verifications == 4
    validator.validate(invocation, now=NOW)
    assert validator.signature_verifications == 4
    validator.validate(invoke(links), now=NOW)  # a new invocation: only its own signature
    assert validator.signature_verifications == 5


def test_shared_links_are_verified_once_across_chains() -> None:
    base = [grant(NODE, ORG)]
    one = [*base, grant(ORG, USER, "/dms/a")]
    two = [*base, grant(ORG, USER, "/dms/b")]
    validator = ChainValidator(DelegationStore([*one, *two]))
    validator.validate(invoke(one, "/dms/a", {}), now=NOW)
    validator.validate(invoke(two, "/dms/b", {}), now=NOW)
    assert validator.signature_verifications == 2 + 3  # two invocations, three delegations


def test_expiry_after_warming_is_caught_and_evicts() -> None:
    links = chain3(exp=NOW + 10)
    validator = ChainValidator(DelegationStore(links))
    validator.validate(invoke(links, expiration=None), now=NOW)
    with pytest.raises(Expired, match=str(links[2].cid)):
        validator.validate(invoke(links, expiration=None), now=NOW + 11)
    assert validator.cached_chains == 0
    assert validator.cached_delegations == 2


def test_not_yet_valid_chain_is_not_served_warm() -> None:
    links = chain3(nbf=NOW + 10)
    validator = ChainValidator(DelegationStore(links))
    validator.validate(invoke(links), now=NOW + 10)
    with pytest.raises(TooEarly):
        validator.validate(invoke(links), now=NOW + 5)


def test_revocation_after_warming_is_caught() -> None:
    links = chain3()
    revocations = RevocationStore()
    validator = ChainValidator(DelegationStore(links), revocations=revocations)
    invocation = invoke(links)
    validator.validate(invocation, now=NOW)
    revocations.add(links[0])
    with pytest.raises(Revoked, match=str(links[0].cid)):
        validator.validate(invocation, now=NOW)
    assert validator.cached_chains == 0


def test_forget_and_clear_make_it_cold_again() -> None:
    links = chain3()
    validator = ChainValidator(DelegationStore(links))
    invocation = invoke(links)
    validator.validate(invocation, now=NOW)
    validator.forget(links[1].cid)
    assert (validator.cached_delegations, validator.cached_chains) == (2, 0)
    validator.validate(invocation, now=NOW)
    assert validator.signature_verifications == 5
    validator.clear()
    validator.validate(invocation, now=NOW)
    assert validator.signature_verifications == 9


def test_cache_is_bounded() -> None:
    links = chain3()
    validator = ChainValidator(DelegationStore(links), max_cached=2)
    validator.validate(invoke(links), now=NOW)
    assert validator.cached_delegations == 2
    uncached = ChainValidator(DelegationStore(links), max_cached=0)
    uncached.validate(invoke(links), now=NOW)
    uncached.validate(invoke(links), now=NOW)
    assert uncached.signature_verifications == 8


def test_failed_chains_are_not_remembered_as_good() -> None:
    links = [grant(NODE, ORG), grant(TEAM, USER)]
    validator = ChainValidator(DelegationStore(links))
    for _ in range(2):
        with pytest.raises(InvalidAudience):
            validator.validate(invoke(links, "/dms", {}), now=NOW)
    assert validator.cached_chains == 0
    assert validator.signature_verifications == 2 + 2  # links once; each invocation once


def test_proofs_may_be_cited_as_binary_or_text_cids() -> None:
    links = chain3()

    def authorize(validator: ChainValidator, cited: list[Any]) -> Any:
        return validator.authorize(
            issuer=USER.did,
            subject=NODE.did,
            command="/dms/node/peers/list",
            args={"verbose": False},
            proofs=cited,
            now=NOW,
        )

    warm = ChainValidator(DelegationStore(links))
    for form in (bytes, str, lambda cid: cid.encode("base58btc")):
        assert authorize(warm, [form(link.cid) for link in links]) == tuple(links)
        # A plain dict keyed by CID objects works too (looked up after parsing).
        assert authorize(ChainValidator(proofs(links)), [form(link.cid) for link in links])
    assert warm.signature_verifications == 3
    for junk in (b"junk", "not a cid", 42, bytes(links[0].cid)[:-1]):
        with pytest.raises(UnavailableProof):
            authorize(ChainValidator(proofs(links)), [junk, *links[1:]])
