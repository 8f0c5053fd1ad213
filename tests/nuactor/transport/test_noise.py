"""The Noise core's own rules: limits, nonces, misuse. (Byte-exactness is in tests/conformance.)"""

from __future__ import annotations

import pytest

from nuactor.transport import (
    MAX_MESSAGE_LEN,
    MAX_PLAINTEXT_LEN,
    CipherState,
    DecryptError,
    FrameTooLarge,
    HandshakeError,
    HandshakeState,
    KeyPair,
    NoiseHash,
    NonceExhausted,
)
from nuactor.transport._noise import MAX_NONCE


def pair(hash_name: str = "SHA256") -> tuple[HandshakeState, HandshakeState]:
    return (
        HandshakeState(initiator=True, static=KeyPair.generate(), hash_name=hash_name),  # type: ignore[arg-type]
        HandshakeState(initiator=False, static=KeyPair.generate(), hash_name=hash_name),  # type: ignore[arg-type]
    )


def complete(
    i: HandshakeState, r: HandshakeState
) -> tuple[tuple[CipherState, CipherState], tuple[CipherState, CipherState]]:
    r.read_message(i.write_message(b""))
    i.read_message(r.write_message(b"responder"))
    r.read_message(i.write_message(b"initiator"))
    return i.split(), r.split()


@pytest.mark.parametrize("hash_name", ["SHA256", "SHA512", "BLAKE2s", "BLAKE2b"])
def test_handshake_with_generated_keys(hash_name: str) -> None:
    i, r = pair(hash_name)
    assert i.protocol_name == f"Noise_XX_25519_ChaChaPoly_{hash_name}"
    assert i.writes_next
    assert not r.writes_next
    (i_send, i_recv), (r_send, r_recv) = complete(i, r)
    assert i.complete
    assert r.complete
    assert i.handshake_hash == r.handshake_hash
    assert r_recv.decrypt_with_ad(b"ad", i_send.encrypt_with_ad(b"ad", b"ping")) == b"ping"
    assert i_recv.decrypt_with_ad(b"", r_send.encrypt_with_ad(b"", b"pong")) == b"pong"


def test_unknown_hash_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Noise hash"):
        NoiseHash.named("MD5")  # type: ignore[arg-type]


def test_out_of_turn_and_after_completion() -> None:
    i, r = pair()
    with pytest.raises(HandshakeError, match="out of turn"):
        r.write_message(b"")
    with pytest.raises(HandshakeError, match="not complete"):
        i.split()
    complete(i, r)
    with pytest.raises(HandshakeError, match="complete"):
        i.write_message(b"")


def test_short_handshake_message_fails_and_stays_failed() -> None:
    i, r = pair()
    with pytest.raises(HandshakeError, match="too short"):
        r.read_message(b"\x01" * 31)
    with pytest.raises(HandshakeError, match="failed"):
        r.read_message(i.write_message(b""))


def test_handshake_message_size_limit() -> None:
    i, r = pair()
    largest = MAX_MESSAGE_LEN - 32  # "-> e" carries the key and an unencrypted payload
    with pytest.raises(FrameTooLarge):
        i.write_message(bytes(largest + 1))
    message = i.write_message(bytes(largest))
    assert len(message) == MAX_MESSAGE_LEN
    assert r.read_message(message) == bytes(largest)
    largest = MAX_MESSAGE_LEN - 32 - 48 - 16  # "<- e, ee, s, es" + tag
    with pytest.raises(FrameTooLarge):
        r.write_message(bytes(largest + 1))
    assert len(r.write_message(bytes(largest))) == MAX_MESSAGE_LEN


def test_handshake_read_refuses_more_than_the_limit() -> None:
    _, r = pair()
    with pytest.raises(HandshakeError, match="at most"):
        r.read_message(bytes(MAX_MESSAGE_LEN + 1))


def test_transport_size_limits() -> None:
    cipher = CipherState(bytes(32))
    with pytest.raises(FrameTooLarge):
        cipher.encrypt_with_ad(b"", bytes(MAX_PLAINTEXT_LEN + 1))
    assert cipher.nonce == 0
    assert len(cipher.encrypt_with_ad(b"", bytes(MAX_PLAINTEXT_LEN))) == MAX_MESSAGE_LEN
    with pytest.raises(FrameTooLarge):
        CipherState(bytes(32)).decrypt_with_ad(b"", bytes(MAX_MESSAGE_LEN + 1))
    with pytest.raises(DecryptError, match="shorter"):
        CipherState(bytes(32)).decrypt_with_ad(b"", bytes(15))


def test_nonce_2_64_minus_1_is_never_used() -> None:
    sender, receiver = CipherState(bytes(32)), CipherState(bytes(32))
    sender.set_nonce(MAX_NONCE - 1)
    receiver.set_nonce(MAX_NONCE - 1)
    assert receiver.decrypt_with_ad(b"", sender.encrypt_with_ad(b"", b"last")) == b"last"
    assert sender.nonce == MAX_NONCE
    with pytest.raises(NonceExhausted):
        sender.encrypt_with_ad(b"", b"x")
    with pytest.raises(NonceExhausted):
        receiver.decrypt_with_ad(b"", bytes(20))
    with pytest.raises(ValueError, match="64-bit"):
        sender.set_nonce(2**64)


def test_wrong_ad_or_nonce_fails() -> None:
    sender, receiver = CipherState(bytes(range(32))), CipherState(bytes(range(32)))
    ciphertext = sender.encrypt_with_ad(b"ad", b"data")
    with pytest.raises(DecryptError):
        receiver.decrypt_with_ad(b"other", ciphertext)
    receiver.set_nonce(1)
    with pytest.raises(DecryptError):
        receiver.decrypt_with_ad(b"ad", ciphertext)


def test_rekey_keeps_both_sides_in_step() -> None:
    sender, receiver = CipherState(bytes(range(32))), CipherState(bytes(range(32)))
    before = sender.encrypt_with_ad(b"", b"m")
    receiver.decrypt_with_ad(b"", before)
    sender.rekey()
    receiver.rekey()
    after = sender.encrypt_with_ad(b"", b"m")
    assert receiver.decrypt_with_ad(b"", after) == b"m"
    stale = CipherState(bytes(range(32)))
    stale.set_nonce(1)
    with pytest.raises(DecryptError):
        stale.decrypt_with_ad(b"", after)
    with pytest.raises(ValueError, match="without a key"):
        CipherState().rekey()


def test_key_pair_validation() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KeyPair.from_private(bytes(31))
    with pytest.raises(ValueError, match="32 bytes"):
        CipherState(bytes(16))
    assert "private" not in repr(KeyPair.generate())
