"""UCAN chain validation, cold and warm.

``python -m benchmarks.ucan`` validates a request against a 3-link delegation chain
(subject → org → team → user, with a policy on two links):

- ``chain3_validate_cold``: a fresh :class:`ChainValidator` each time, so every link's Ed25519
  signature is verified (three verifications per validation);
- ``chain3_validate_warm``: one validator that has seen the chain, so only the time bounds,
  revocation, principal/subject/command alignment of the request and the policies are checked;
- ``warm_signature_verifications``: signature verifications the warm runs did (must be 0);
- ``ratio_warm_cold``: warm over cold, the median of interleaved rounds (goal >= 20);
- ``invocation3_validate_warm``: for scale, validating freshly signed invocation tokens that
  cite the warm chain (one verification each: the invocation's own signature).
"""

from __future__ import annotations

import time

from nuactor import Identity
from nuactor.ucan import ChainValidator, Delegation, DelegationStore, Invocation

from ._measure import compare, emit


def main() -> None:
    node, org, team, user = (Identity.generate() for _ in range(4))
    expires = int(time.time()) + 24 * 3600
    links = [
        Delegation.issue(node, org.did, node.did, "/dms", expiration=expires),
        Delegation.issue(
            org,
            team.did,
            node.did,
            "/dms/node",
            [["==", ".verbose", False]],
            expiration=expires,
        ),
        Delegation.issue(
            team,
            user.did,
            node.did,
            "/dms/node/peers",
            [["all", ".peers", ["like", ".", "12D3*"]]],
            expiration=expires,
        ),
    ]
    store = DelegationStore(links)
    proofs = [link.cid for link in links]
    args = {"verbose": False, "peers": ["12D3KooWA", "12D3KooWB"]}

    def validate(validator: ChainValidator) -> object:
        return validator.authorize(
            issuer=user.did,
            subject=node.did,
            command="/dms/node/peers/list",
            args=args,
            proofs=proofs,
        )

    warm_validator = ChainValidator(store)
    validate(warm_validator)
    verified_before = warm_validator.signature_verifications

    result = compare(
        lambda: validate(warm_validator),
        lambda: validate(ChainValidator(store)),
        rounds=15,
        batch=1_000,
    )
    emit("chain3_validate_cold", result.baseline, "ops/s")
    emit("chain3_validate_warm", result.subject, "ops/s")
    emit(
        "warm_signature_verifications",
        warm_validator.signature_verifications - verified_before,
        "count",
    )
    emit("ratio_warm_cold", result.ratio, "ratio")

    invocations = [
        Invocation.issue(user, node.did, "/dms/node/peers/list", args, proofs) for _ in range(3_000)
    ]
    start = time.perf_counter()
    for invocation in invocations:
        warm_validator.validate(invocation)
    emit("invocation3_validate_warm", len(invocations) / (time.perf_counter() - start), "ops/s")


if __name__ == "__main__":
    main()
