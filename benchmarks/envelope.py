"""Envelope cost beside the cryptography it cannot avoid.

``python -m benchmarks.envelope`` prints the rates of envelope build+sign+encode and of
decode+verify, and raw PyNaCl sign and verify of the same bytes, measured interleaved in the
same run, and the two ratios (goal: each >= 0.8).
"""

from __future__ import annotations

import nacl.signing

from nuactor import Envelope, Handle, Identity
from nuactor._envelope import SIGNING_CONTEXT

from ._measure import compare, emit


def main() -> None:
    sender, receiver = Identity.generate(), Identity.generate()
    source, destination = Handle(sender.did, "root"), Handle(receiver.did, "root")
    body = {"cpu_cores": 2, "ram": 8 << 30, "labels": ["gpu", "eu-west"], "ok": True}

    def sign_encode() -> bytes:
        envelope = Envelope.build(
            sender=source, to=destination, beh="/dms/node/peers/list", body=body
        )
        return envelope.sign(sender).encode()

    wire = sign_encode()
    sample = Envelope.decode(wire)
    assert sample.signed_body is not None
    signed_bytes = SIGNING_CONTEXT + sample.signed_body
    signing_key = nacl.signing.SigningKey(sender.seed)
    verify_key = signing_key.verify_key
    signature = signing_key.sign(signed_bytes).signature

    signing = compare(sign_encode, lambda: signing_key.sign(signed_bytes))
    emit("envelope_sign_encode", signing.subject, "ops/s")
    emit("pynacl_sign", signing.baseline, "ops/s")
    verifying = compare(
        lambda: Envelope.decode(wire), lambda: verify_key.verify(signed_bytes, signature)
    )
    emit("envelope_decode_verify", verifying.subject, "ops/s")
    emit("pynacl_verify", verifying.baseline, "ops/s")
    emit("ratio_sign_encode", signing.ratio, "ratio")
    emit("ratio_decode_verify", verifying.ratio, "ratio")


if __name__ == "__main__":
    main()
