"""TrustContext: anchors, authorisation of envelopes, chain completion, proofs_for, the file."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nuactor import Delegation, Envelope, Handle, Identity, TrustContext
from nuactor.errors import TrustContextError, Unauthorized
from nuactor.ucan import command_covers
from nuactor.ucan._envelope import cid_from_digest

NODE, OWNER, ORG, USER, OTHER, LAPTOP = (Identity.from_seed(bytes([n]) * 32) for n in range(1, 7))
PAST = 1_000_000_000  # 2001: long expired


def call(
    sender: Identity,
    beh: str,
    body: Any = None,
    *,
    to: str | None = None,
    prf: tuple[bytes, ...] = (),
    tok: tuple[bytes, ...] = (),
) -> Envelope:
    """A signed envelope from ``sender`` to NODE's root actor (or to ``to``)."""
    return Envelope.build(
        sender=Handle(sender.did, "client"),
        to=Handle(NODE.did if to is None else to, "root"),
        beh=beh,
        body={} if body is None else body,
        prf=prf,
        tok=tok,
    ).sign(sender)


def chain_of(*links: Delegation) -> dict[str, tuple[bytes, ...]]:
    """``prf`` and ``tok`` citing and attaching ``links`` (root first)."""
    return {"prf": tuple(d.cid_bytes for d in links), "tok": tuple(d.encode() for d in links)}


def refused(trust: TrustContext, envelope: Envelope, **kwargs: Any) -> str:
    with pytest.raises(Unauthorized) as caught:
        trust.authorize(envelope, **kwargs)
    return str(caught.value)


@pytest.fixture
def trust() -> TrustContext:
    return TrustContext(NODE)


@pytest.fixture
def org_member(trust: TrustContext) -> Delegation:
    """NODE requires ORG for /dms/deployment; ORG gives USER /dms/deployment (a powerline)."""
    trust.grant(ORG.did, "/dms/deployment", require=True)
    return Delegation.issue(ORG, USER.did, None, "/dms/deployment")


# --- anchors -------------------------------------------------------------------------------------


def test_root_anchor_trusts_fully(trust: TrustContext) -> None:
    root = trust.add_root(OWNER.did)
    assert (root.iss, root.aud, root.sub, root.cmd, root.exp) == (
        NODE.did,
        OWNER.did,
        NODE.did,
        "/",
        None,
    )
    assert trust.add_root(OWNER.did) == root  # idempotent while active
    trust.authorize(call(OWNER, "/dms/node/onboarding/onboard"))
    trust.authorize(call(OWNER, "/anything/at/all", [1, 2]))
    reason = refused(trust, call(OTHER, "/dms/node/onboarding/onboard"))
    assert reason.startswith(
        f"no delegation for /dms/node/onboarding/onboard from {OTHER.did} rooted at this node"
    )
    assert [(a.kind, a.cid) for a in trust.anchors()] == [("root", str(root.cid))]


def test_require_anchor_lets_grantee_call_without_carrying_it(trust: TrustContext) -> None:
    grant = trust.grant(USER.did, "/dms/node/peers")
    assert [a.kind for a in trust.anchors()] == []  # a grant is not stored by default
    assert "no root or require anchor" in refused(trust, call(USER, "/dms/node/peers/list"))
    trust.add_require(TrustContext.bundle_text([grant]))
    trust.authorize(call(USER, "/dms/node/peers/list"))  # no proof: completed
    trust.authorize(call(USER, "/dms/node/peers/list", prf=(grant.cid_bytes,)))  # cited by CID
    assert [a.kind for a in trust.anchors()] == ["require"]


def test_require_anchor_must_be_issued_by_this_node_about_it(trust: TrustContext) -> None:
    foreign = Delegation.issue(ORG, USER.did, ORG.did, "/dms")
    with pytest.raises(TrustContextError, match=f"issued by {ORG.did}, not by this node"):
        trust.add_require(foreign)
    powerline = Delegation.issue(NODE, USER.did, None, "/dms")
    with pytest.raises(TrustContextError, match="powerline"):
        trust.add_require(powerline.encode())
    with pytest.raises(TrustContextError, match=r"not a UCAN 1\.0 delegation"):
        trust.add_require(b"\x82garbage")
    with pytest.raises(TrustContextError, match="not base64"):
        trust.add_require("not a token!")
    assert trust.anchors() == []


def test_provide_anchor_must_be_to_this_node(trust: TrustContext) -> None:
    to_someone_else = Delegation.issue(OWNER, USER.did, None, "/dms")
    with pytest.raises(TrustContextError, match=f"is to {USER.did}, not to this context"):
        trust.add_provide(to_someone_else)
    mine = Delegation.issue(OWNER, NODE.did, None, "/dms")
    assert trust.add_provide(TrustContext.bundle_text([mine])) == mine
    assert [(a.kind, a.delegation) for a in trust.anchors()] == [("provide", mine)]


def test_provide_bundle_must_be_a_chain_root_first(trust: TrustContext) -> None:
    first = Delegation.issue(OWNER, ORG.did, None, "/dms/deployment")
    second = Delegation.issue(ORG, NODE.did, None, "/dms/deployment/new")
    with pytest.raises(TrustContextError, match="do not form a chain"):
        trust.add_provide([second, first])
    widened = Delegation.issue(ORG, NODE.did, None, "/dms")
    with pytest.raises(TrustContextError, match="does not cover"):
        trust.add_provide([first, widened])
    expired = Delegation.issue(ORG, NODE.did, None, "/dms/deployment", expiration=PAST)
    with pytest.raises(TrustContextError, match="expired at 2001-"):
        trust.add_provide([first, expired])
    anchor = trust.add_provide(TrustContext.bundle_text([first, second]))
    (listed,) = trust.anchors()
    assert listed.delegation == anchor == second and listed.chain == (first,)


# --- authorize -----------------------------------------------------------------------------------


def test_direct_grant_attached_then_remembered(trust: TrustContext) -> None:
    grant = trust.grant(USER.did, "/dms/node")
    cited = call(USER, "/dms/node/peers/list", prf=(grant.cid_bytes,))
    assert "was neither sent with the invocation nor found" in refused(trust, cited)
    trust.authorize(call(USER, "/dms/node/peers/list", **chain_of(grant)))
    # Once its chain validated, an attached token need not come again.
    trust.authorize(call(USER, "/dms/node/peers/list", prf=(grant.cid_bytes,)))


def test_org_chain_is_completed_with_the_require_anchor(
    trust: TrustContext, org_member: Delegation
) -> None:
    envelope = call(USER, "/dms/deployment/new", **chain_of(org_member))
    assert len(envelope.prf) == 1  # only org → user; the node adds node → org
    trust.authorize(envelope)


def test_org_grant_about_the_org_is_refused_with_a_hint(
    trust: TrustContext, org_member: Delegation
) -> None:
    about_org = Delegation.issue(ORG, USER.did, ORG.did, "/dms/deployment")
    reason = refused(trust, call(USER, "/dms/deployment/new", **chain_of(about_org)))
    assert f"is about {ORG.did}, but the chain is about {NODE.did}" in reason
    assert "--powerline" in reason


def test_org_without_require_anchor(trust: TrustContext) -> None:
    member = Delegation.issue(ORG, USER.did, None, "/dms/deployment")
    reason = refused(trust, call(USER, "/dms/deployment/new", **chain_of(member)))
    assert reason.startswith(f"no delegation for /dms/deployment/new from {USER.did}")
    assert f"issued by {ORG.did}, and this node has no root or require anchor for" in reason


def test_chain_rooted_at_another_node(trust: TrustContext) -> None:
    elsewhere = Delegation.issue(OTHER, USER.did, OTHER.did, "/dms")
    reason = refused(trust, call(USER, "/dms/x", **chain_of(elsewhere)))
    assert f"starts at {OTHER.did}" in reason and "not over this node" in reason


def test_broadcast_is_authorised_on_this_node_as_subject(
    trust: TrustContext, org_member: Delegation
) -> None:
    broadcast = call(USER, "/dms/deployment/request", to="*", **chain_of(org_member))
    trust.authorize(broadcast)
    stranger = call(OTHER, "/dms/deployment/request", to="*")
    assert "no delegation for /dms/deployment/request" in refused(trust, stranger)


def test_public_behaviours_are_open(trust: TrustContext) -> None:
    trust.authorize(call(OTHER, "/public/hello"))
    trust.authorize(call(OTHER, "/public", to="*"))
    assert "no delegation" in refused(trust, call(OTHER, "/publicity"))  # whole segments
    closed = TrustContext(NODE, public=("/open",))
    assert "no delegation" in refused(closed, call(OTHER, "/public/hello"))
    closed.authorize(call(OTHER, "/open/door"))


def test_own_node_needs_no_proof(trust: TrustContext) -> None:
    trust.authorize(call(NODE, "/dms/node/onboarding/onboard"))


def test_envelope_for_another_node(trust: TrustContext) -> None:
    trust.add_root(OWNER.did)
    reason = refused(trust, call(OWNER, "/dms/x", to=OTHER.did))
    assert f"is addressed to {OTHER.did}, not to this node" in reason


def test_warm_chain_costs_no_signature_and_revocation_is_immediate(
    trust: TrustContext, org_member: Delegation
) -> None:
    envelope = call(USER, "/dms/deployment/new", **chain_of(org_member))
    trust.authorize(envelope)
    cold = trust.signature_verifications
    assert cold == 2  # the require anchor and org → user
    for _ in range(3):
        trust.authorize(call(USER, "/dms/deployment/new", **chain_of(org_member)))
    assert trust.signature_verifications == cold
    assert trust.revoke(str(org_member.cid)) == str(org_member.cid)
    reason = refused(trust, call(USER, "/dms/deployment/new", **chain_of(org_member)))
    assert reason.endswith(f"delegation {org_member.cid} has been revoked")
    assert trust.revoked() == [str(org_member.cid)]


def test_revoking_the_require_anchor_cuts_every_member(
    trust: TrustContext, org_member: Delegation
) -> None:
    trust.authorize(call(USER, "/dms/deployment/new", **chain_of(org_member)))
    (anchor,) = trust.anchors()
    trust.revoke(anchor.delegation.cid_bytes)
    reason = refused(trust, call(USER, "/dms/deployment/new", **chain_of(org_member)))
    assert f"delegation {anchor.cid}" in reason and "revoked" in reason
    assert trust.anchors()[0].revoked


def test_expired_delegation(trust: TrustContext) -> None:
    old = trust.grant(USER.did, "/dms", expiration=PAST)
    reason = refused(trust, call(USER, "/dms/x", **chain_of(old)))
    assert f"delegation {old.cid}" in reason and "expired at 2001-09-09T01:46:40Z" in reason


def test_warm_chain_expires(trust: TrustContext) -> None:
    grant = trust.grant(USER.did, "/dms", expiration=2_000_000_000)
    trust.authorize(call(USER, "/dms/x", **chain_of(grant)), now=1_900_000_000)
    reason = refused(trust, call(USER, "/dms/x", **chain_of(grant)), now=2_000_000_001)
    assert "expired at 2033-05-18T03:33:20Z" in reason


def test_command_outside_the_grant(trust: TrustContext, org_member: Delegation) -> None:
    reason = refused(trust, call(USER, "/dms/node/peers/list", **chain_of(org_member)))
    assert reason.endswith(
        f"delegation {org_member.cid} grants /dms/deployment, not /dms/node/peers/list"
    )


def test_widened_command_in_the_chain(trust: TrustContext, org_member: Delegation) -> None:
    widened = Delegation.issue(USER, LAPTOP.did, None, "/dms")
    envelope = call(LAPTOP, "/dms/deployment/new", **chain_of(org_member, widened))
    reason = refused(trust, envelope)
    assert f"delegation {widened.cid} grants /dms, which its parent {org_member.cid}" in reason


def test_policy_on_the_body(trust: TrustContext) -> None:
    grant = trust.grant(USER.did, "/dms/deployment", [["<=", ".cpu", 4]])
    trust.authorize(call(USER, "/dms/deployment/new", {"cpu": 2}, **chain_of(grant)))
    reason = refused(trust, call(USER, "/dms/deployment/new", {"cpu": 8}, **chain_of(grant)))
    assert f"policy of delegation {grant.cid}" in reason and "['<=', '.cpu', 4] is false" in reason


def test_a_body_that_is_not_a_map_is_args_body(trust: TrustContext) -> None:
    grant = trust.grant(USER.did, "/dms", [["==", ".body", [1, 2]]])
    trust.authorize(call(USER, "/dms/x", [1, 2], **chain_of(grant)))
    assert "policy" in refused(trust, call(USER, "/dms/x", [1, 3], **chain_of(grant)))
    scalar = trust.grant(USER.did, "/dms", [["==", ".body", "go"]])
    trust.authorize(call(USER, "/dms/x", "go", **chain_of(scalar)))


def test_wrong_audience(trust: TrustContext) -> None:
    grant = trust.grant(USER.did, "/dms")
    reason = refused(trust, call(OTHER, "/dms/x", **chain_of(grant)))
    assert f"is to {USER.did}, but the invocation is issued by {OTHER.did}" in reason


def test_garbage_tokens_are_refused_and_nothing_is_kept(trust: TrustContext) -> None:
    trust.add_root(OWNER.did)
    uncited = call(OWNER, "/dms/x", tok=(b"garbage",))
    assert "is not one of the proofs the envelope cites" in refused(trust, uncited)
    digest = b"\x12\x20" + hashlib.sha256(b"garbage").digest()
    cited = call(OWNER, "/dms/x", prf=(b"\x01\x71" + digest,), tok=(b"garbage",))
    reason = refused(trust, cited)
    assert f"attached token 1 ({cid_from_digest(digest)}) is not a UCAN delegation" in reason
    assert "not a CID" in refused(trust, call(OWNER, "/dms/x", prf=(b"\x00junk",)))
    too_many = call(OWNER, "/dms/x", prf=(b"\x01\x71" + digest,) * 16, tok=(b"garbage",) * 17)
    assert "attaches 17 tokens; at most 16" in refused(trust, too_many)
    long_chain = call(OWNER, "/dms/x", prf=(b"\x01\x71" + digest,) * 17)
    assert "cites 17 proofs; at most 16" in refused(trust, long_chain)
    assert [a.kind for a in trust.anchors()] == ["root"]


def test_attached_tokens_are_not_kept_unless_their_chain_validates(trust: TrustContext) -> None:
    member = Delegation.issue(ORG, USER.did, None, "/dms/deployment")
    refused(trust, call(USER, "/dms/deployment/new", **chain_of(member)))  # no anchor for ORG
    trust.grant(ORG.did, "/dms/deployment", require=True)
    by_cid_only = call(USER, "/dms/deployment/new", prf=(member.cid_bytes,))
    assert "was neither sent with the invocation nor found" in refused(trust, by_cid_only)
    trust.authorize(call(USER, "/dms/deployment/new", **chain_of(member)))
    trust.authorize(by_cid_only)


def test_depth_limits_re_delegation(trust: TrustContext) -> None:
    require = trust.grant(ORG.did, "/dms", depth=1, require=True)
    assert require.meta == {"depth": 1}
    member = Delegation.issue(ORG, USER.did, None, "/dms")
    trust.authorize(call(USER, "/dms/x", **chain_of(member)))
    laptop = Delegation.issue(USER, LAPTOP.did, None, "/dms")
    reason = refused(trust, call(LAPTOP, "/dms/x", **chain_of(member, laptop)))
    assert f"delegation {require.cid}" in reason
    assert "may be passed on 1 more time(s), but the chain has 2 delegation(s) after it" in reason
    with pytest.raises(TrustContextError, match="depth must be"):
        trust.grant(ORG.did, "/dms", depth=-1)


# --- proofs_for and delegate ----------------------------------------------------------------------


def test_proofs_for_between_two_contexts() -> None:
    """B's owner gives A part of B; A proves it to B with proofs_for."""
    node_a, node_b = TrustContext(OTHER), TrustContext(NODE)
    owner = TrustContext(OWNER)
    root = node_b.add_root(OWNER.did)
    owner.add_provide(root.encode())  # the owner keeps what B gave it
    grant, chain = owner.delegate(OTHER.did, "/dms/deployment")
    assert chain == (root,) and (grant.iss, grant.aud, grant.sub) == (
        OWNER.did,
        OTHER.did,
        NODE.did,
    )
    node_a.add_provide(TrustContext.bundle_text([*chain, grant]))

    prf, tok = node_a.proofs_for(NODE.did, "/dms/deployment/request")
    assert prf == (root.cid_bytes, grant.cid_bytes) and tok == (root.encode(), grant.encode())
    node_b.authorize(call(OTHER, "/dms/deployment/request", prf=prf, tok=tok))
    assert node_a.proofs_for(NODE.did, "/dms/node/peers") == ((), ())
    assert node_a.proofs_for(OTHER.did, "/dms/deployment") == ((), ())
    assert node_a.proofs_for(USER.did, "/dms/deployment") == ((), ())  # about NODE only
    assert node_a.proofs_for("*", "/dms/deployment/bid")[0] == prf
    reason = refused(node_b, call(OTHER, "/dms/node/peers/list", prf=prf, tok=tok))
    assert "grants /dms/deployment, not /dms/node/peers/list" in reason


def test_proofs_for_a_single_token_completed_by_the_receiver() -> None:
    node_a, node_b = TrustContext(OTHER), TrustContext(NODE)
    node_b.add_root(OWNER.did)
    node_a.add_provide(Delegation.issue(OWNER, OTHER.did, NODE.did, "/dms"))
    prf, tok = node_a.proofs_for(NODE.did, "/dms/x")
    assert len(prf) == 1
    node_b.authorize(call(OTHER, "/dms/x", prf=prf, tok=tok))


def test_proofs_for_prefers_a_usable_rooted_and_short_chain(trust: TrustContext) -> None:
    powerline = Delegation.issue(ORG, NODE.did, None, "/dms")
    rooted = Delegation.issue(OTHER, NODE.did, OTHER.did, "/dms")
    trust.add_provide(powerline)
    trust.add_provide(rooted)
    assert trust.proofs_for(OTHER.did, "/dms/x")[0] == (rooted.cid_bytes,)
    assert trust.proofs_for(USER.did, "/dms/x")[0] == (powerline.cid_bytes,)
    trust.revoke(powerline.cid)
    assert trust.proofs_for(USER.did, "/dms/x") == ((), ())
    short_lived = Delegation.issue(ORG, NODE.did, None, "/dms", expiration=2_000_000_000)
    trust.add_provide(short_lived)
    assert trust.proofs_for(USER.did, "/dms/x", now=1_900_000_000)[0] == (short_lived.cid_bytes,)
    assert trust.proofs_for(USER.did, "/dms/x", now=2_000_000_001) == ((), ())


def test_delegate_needs_a_covering_provide_anchor(trust: TrustContext) -> None:
    with pytest.raises(TrustContextError, match="no provide anchor"):
        trust.delegate(USER.did, "/dms")
    given = Delegation.issue(OWNER, NODE.did, None, "/dms/deployment", expiration=2_000_000_000)
    trust.add_provide(given)
    with pytest.raises(TrustContextError, match="covers /dms/node"):
        trust.delegate(USER.did, "/dms/node", now=1_900_000_000)
    new, chain = trust.delegate(USER.did, "/dms/deployment/new", expiration=None, now=1_900_000_000)
    assert chain == (given,) and new.exp == 2_000_000_000  # never outlives its chain
    assert (new.iss, new.aud, new.sub, new.cmd) == (NODE.did, USER.did, None, "/dms/deployment/new")


def test_delegate_respects_depth(trust: TrustContext) -> None:
    trust.add_provide(Delegation.issue(OWNER, NODE.did, None, "/dms", meta={"depth": 0}))
    with pytest.raises(TrustContextError, match="forbids re-delegation"):
        trust.delegate(USER.did, "/dms")


def test_remove_takes_effect_at_once(trust: TrustContext) -> None:
    root = trust.add_root(OWNER.did)
    trust.authorize(call(OWNER, "/dms/x"))
    removed = trust.remove(str(root.cid))
    assert removed.kind == "root" and trust.anchors() == []
    assert "no root or require anchor" in refused(trust, call(OWNER, "/dms/x"))
    assert "was neither sent" in refused(trust, call(OWNER, "/dms/x", prf=(root.cid_bytes,)))
    with pytest.raises(TrustContextError, match="there is no anchor"):
        trust.remove(root.cid)
    first = Delegation.issue(OWNER, ORG.did, None, "/dms")
    trust.add_provide([first, Delegation.issue(ORG, NODE.did, None, "/dms")])
    with pytest.raises(TrustContextError, match="is a link in the chain of provide anchor"):
        trust.remove(first.cid)
    with pytest.raises(TrustContextError, match="is not the CID of a delegation"):
        trust.remove("bafy-nonsense")


@settings(max_examples=40, deadline=None)
@given(
    granted=st.sampled_from(["/", "/dms", "/dms/node", "/dms/deployment", "/public2"]),
    invoked=st.sampled_from(["/dms", "/dms/node/peers", "/dms/deployment/new", "/dmsx", "/x"]),
)
def test_accepted_exactly_when_the_command_is_covered(granted: str, invoked: str) -> None:
    trust = TrustContext(NODE)
    grant = trust.grant(USER.did, granted)
    envelope = call(USER, invoked, **chain_of(grant))
    if command_covers(granted, invoked):
        trust.authorize(envelope)
    else:
        assert f"grants {granted}, not {invoked}" in refused(trust, envelope)


# --- the context file -----------------------------------------------------------------------------


def _populated(path: Path) -> tuple[TrustContext, Delegation, Delegation]:
    trust = TrustContext(NODE, path=path)
    trust.add_root(OWNER.did)
    trust.grant(ORG.did, "/dms/deployment", require=True)
    first = Delegation.issue(OTHER, ORG.did, OTHER.did, "/dms")
    trust.add_provide([first, Delegation.issue(ORG, NODE.did, None, "/dms/node")])
    member = Delegation.issue(ORG, USER.did, None, "/dms/deployment")
    bad = Delegation.issue(ORG, LAPTOP.did, None, "/dms/deployment")
    trust.revoke(bad.cid)
    return trust, member, bad


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "cap" / "dms.json"
    trust, member, bad = _populated(path)
    assert trust.save() == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert set(document) == {"version", "did", "root", "require", "provide", "revoked"}
    assert document["version"] == 1 and document["did"] == NODE.did
    assert len(document["provide"]) == 1 and len(document["provide"][0]) == 2
    assert document["revoked"] == [str(bad.cid)]
    assert list(tmp_path.joinpath("cap").iterdir()) == [path]  # no temporary file left

    loaded = TrustContext.load(path, NODE)
    assert [(a.kind, a.cid, a.chain) for a in loaded.anchors()] == [
        (a.kind, a.cid, a.chain) for a in trust.anchors()
    ]
    assert loaded.revoked() == trust.revoked()
    for context in (trust, loaded):
        context.authorize(call(OWNER, "/dms/x"))
        context.authorize(call(USER, "/dms/deployment/new", **chain_of(member)))
        assert "revoked" in refused(context, call(LAPTOP, "/dms/deployment/new", **chain_of(bad)))
        assert context.proofs_for(OTHER.did, "/dms/node/x") == trust.proofs_for(
            OTHER.did, "/dms/node/x"
        )


def test_load_with_another_key(tmp_path: Path) -> None:
    path = tmp_path / "dms.json"
    TrustContext(NODE).save(path)
    with pytest.raises(TrustContextError, match=f"belongs to {NODE.did}, but the key given is"):
        TrustContext.load(path, OWNER)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"version": 2, "did": "did:key:x"}', "unsupported version 2"),
        ('{"version": 1}', "'did' must be a DID"),
        ('{"version": 1, "did": "DID", "root": []}', "'did' must be a DID"),
        ('{"version": 1, "did": "%s", "root": "x"}', "'root' must be a list of token strings"),
        ('{"version": 1, "did": "%s", "root": ["@@@"]}', "root[0]: '@@@' is not a delegation"),
        ('{"version": 1, "did": "%s", "provide": {}}', "'provide' must be a list of chains"),
        ('{"version": 1, "did": "%s", "revoked": ["x"]}', "revoked[0]"),
        ('{"version": 1, "did": "%s", "revoked": [1]}', "'revoked' must be a list of CID"),
    ],
)
def test_corrupt_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "dms.json"
    path.write_text(content.replace("%s", NODE.did))
    with pytest.raises(TrustContextError, match="is not valid") as caught:
        TrustContext.load(path, NODE)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_file_with_an_anchor_that_breaks_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "dms.json"
    foreign = Delegation.issue(ORG, USER.did, ORG.did, "/dms")
    document = {
        "version": 1,
        "did": NODE.did,
        "require": [TrustContext.bundle_text([foreign])],
    }
    path.write_text(json.dumps(document))
    with pytest.raises(TrustContextError, match=r"require\[0\]: delegation .* issued by"):
        TrustContext.load(path, NODE)
    document = {"version": 1, "did": NODE.did, "root": [TrustContext.bundle_text([foreign])]}
    path.write_text(json.dumps(document))
    with pytest.raises(TrustContextError, match=r"root\[0\]"):
        TrustContext.load(path, NODE)


def test_missing_file_and_save_without_a_path(tmp_path: Path) -> None:
    with pytest.raises(TrustContextError, match="there is no trust context file at"):
        TrustContext.load(tmp_path / "ghost.json", NODE)
    with pytest.raises(TrustContextError, match="pass save\\(\\) a path"):
        TrustContext(NODE).save()


def test_expired_anchor_loads_and_is_listed_expired(tmp_path: Path) -> None:
    path = tmp_path / "dms.json"
    old = Delegation.issue(NODE, ORG.did, NODE.did, "/dms", expiration=PAST)
    path.write_text(
        json.dumps({"version": 1, "did": NODE.did, "require": [TrustContext.bundle_text([old])]})
    )
    loaded = TrustContext.load(path, NODE)
    (anchor,) = loaded.anchors()
    assert anchor.expired() and not anchor.revoked
    assert "expired at 2001-" in refused(loaded, call(ORG, "/dms/x"))
