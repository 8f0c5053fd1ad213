"""The Noise core against the cacophony vectors for ``Noise_XX_25519_ChaChaPoly_*``.

Cacophony's convention: messages alternate between the parties, the initiator first, and the
alternation continues after the handshake. For XX the three handshake messages are
initiator, responder, initiator; the transport messages that follow are responder,
initiator, responder, ... Each side checks that it writes the expected bytes and that the other
side reads the payload back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from nuactor.transport import (
    CipherState,
    DecryptError,
    HandshakeError,
    HandshakeState,
    KeyPair,
)

_CONFORMANCE = Path(
    os.environ.get(
        "NUACTOR_CONFORMANCE_DIR",
        Path(__file__).resolve().parents[2].parent / "shared" / "conformance",
    )
)
_VECTORS_FILE = _CONFORMANCE / "noise" / "cacophony-xx-chachapoly.json"
_HANDSHAKE_MESSAGES = 3


def _load() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(_VECTORS_FILE.read_text())["vectors"]
    return vectors


VECTORS = _load()


def test_every_hash_has_a_vector() -> None:
    names = {v["protocol_name"] for v in VECTORS}
    assert names == {
        f"Noise_XX_25519_ChaChaPoly_{h}" for h in ("SHA256", "SHA512", "BLAKE2s", "BLAKE2b")
    }


def _parties(vector: dict[str, Any]) -> tuple[HandshakeState, HandshakeState]:
    hash_name = vector["protocol_name"].rsplit("_", 1)[1]

    def side(prefix: str, initiator: bool) -> HandshakeState:
        return HandshakeState(
            initiator=initiator,
            static=KeyPair.from_private(bytes.fromhex(vector[f"{prefix}_static"])),
            ephemeral=KeyPair.from_private(bytes.fromhex(vector[f"{prefix}_ephemeral"])),
            prologue=bytes.fromhex(vector[f"{prefix}_prologue"]),
            hash_name=hash_name,
        )

    return side("init", True), side("resp", False)


def _run_handshake(
    vector: dict[str, Any],
) -> tuple[HandshakeState, HandshakeState, list[bytes]]:
    initiator, responder = _parties(vector)
    written = []
    for index, message in enumerate(vector["messages"][:_HANDSHAKE_MESSAGES]):
        writer, reader = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        payload = bytes.fromhex(message["payload"])
        ciphertext = writer.write_message(payload)
        assert ciphertext.hex() == message["ciphertext"], f"handshake message {index}"
        assert reader.read_message(ciphertext) == payload
        written.append(ciphertext)
    assert initiator.complete
    assert responder.complete
    return initiator, responder, written


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["protocol_name"])
def test_vector_reproduced_byte_for_byte(vector: dict[str, Any]) -> None:
    initiator, responder, _ = _run_handshake(vector)
    assert initiator.handshake_hash.hex() == vector["handshake_hash"]
    assert responder.handshake_hash.hex() == vector["handshake_hash"]
    assert (
        initiator.remote_static == KeyPair.from_private(bytes.fromhex(vector["resp_static"])).public
    )
    assert (
        responder.remote_static == KeyPair.from_private(bytes.fromhex(vector["init_static"])).public
    )

    i_send, i_recv = initiator.split()
    r_send, r_recv = responder.split()
    for index, message in enumerate(vector["messages"]):
        if index < _HANDSHAKE_MESSAGES:
            continue
        by_initiator = index % 2 == 0
        send, recv = (i_send, r_recv) if by_initiator else (r_send, i_recv)
        payload = bytes.fromhex(message["payload"])
        ciphertext = send.encrypt_with_ad(b"", payload)
        assert ciphertext.hex() == message["ciphertext"], f"transport message {index}"
        assert recv.decrypt_with_ad(b"", ciphertext) == payload


def _flips(data: bytes) -> list[bytes]:
    """``data`` with one bit flipped, at every byte position (a different bit each time)."""
    return [data[:i] + bytes([data[i] ^ (1 << (i % 8))]) + data[i + 1 :] for i in range(len(data))]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["protocol_name"])
@pytest.mark.parametrize("index", [1, 2])
def test_flipped_bit_in_encrypted_handshake_message_fails(
    vector: dict[str, Any], index: int
) -> None:
    # Message 0 is "-> e" in the clear: a flip there is caught by the next message instead.
    _, _, written = _run_handshake(vector)
    for tampered in _flips(written[index]):
        initiator, responder = _parties(vector)
        for i in range(index):
            writer, reader = (initiator, responder) if i % 2 == 0 else (responder, initiator)
            reader.read_message(
                writer.write_message(bytes.fromhex(vector["messages"][i]["payload"]))
            )
        writer, reader = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        writer.write_message(bytes.fromhex(vector["messages"][index]["payload"]))
        with pytest.raises(HandshakeError):
            reader.read_message(tampered)
        with pytest.raises(HandshakeError):  # a failed handshake stays failed
            reader.read_message(written[index])


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["protocol_name"])
def test_flipped_bit_in_first_message_breaks_the_second(vector: dict[str, Any]) -> None:
    _, _, written = _run_handshake(vector)
    first = written[0]
    for tampered in _flips(first)[:: max(1, len(first) // 8)]:
        initiator, responder = _parties(vector)
        initiator.write_message(bytes.fromhex(vector["messages"][0]["payload"]))
        responder.read_message(tampered)
        second = responder.write_message(bytes.fromhex(vector["messages"][1]["payload"]))
        with pytest.raises(HandshakeError):
            initiator.read_message(second)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["protocol_name"])
def test_flipped_bit_in_transport_message_fails(vector: dict[str, Any]) -> None:
    initiator, responder, _ = _run_handshake(vector)
    i_send, _ = initiator.split()
    _, r_recv = responder.split()
    ciphertext = i_send.encrypt_with_ad(b"", b"some transport payload")
    for tampered in _flips(ciphertext):
        with pytest.raises(DecryptError):
            r_recv.decrypt_with_ad(b"", tampered)
    assert r_recv.nonce == 0  # a failed decryption does not consume the nonce
    assert r_recv.decrypt_with_ad(b"", ciphertext) == b"some transport payload"


def test_cipher_state_without_key_passes_through() -> None:
    cipher = CipherState()
    assert cipher.encrypt_with_ad(b"ad", b"plain") == b"plain"
    assert cipher.decrypt_with_ad(b"ad", b"plain") == b"plain"
