"""The keystore: create and load, wrong passphrases, damaged files, permissions, overwrite."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from nuactor import Identity, Keystore
from nuactor.errors import CorruptKeyFile, KeyExists, KeyNotFound, WrongPassphrase


@pytest.fixture
def store(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "key")


def test_create_and_load(store: Keystore) -> None:
    created = store.create("dms", "correct horse")
    loaded = store.load("dms", "correct horse")
    assert loaded == created and loaded.seed == created.seed
    assert store.did("dms") == created.did
    assert [(k.name, k.did) for k in store.list()] == [("dms", created.did)]


def test_file_format(store: Keystore) -> None:
    identity = store.create("dms", "pw")
    document = json.loads(store.path("dms").read_text())
    assert set(document) == {"version", "did", "kdf", "nonce", "ciphertext"}
    assert document["version"] == 1 and document["did"] == identity.did
    assert document["kdf"]["alg"] == "argon2id"
    assert {"opslimit", "memlimit", "salt"} <= set(document["kdf"])
    # The seed itself is never in the file.
    assert identity.seed.hex() not in store.path("dms").read_text()


def test_permissions(store: Keystore) -> None:
    store.create("dms", "pw")
    assert stat.S_IMODE(store.path("dms").stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    # No temporary file is left behind.
    assert [p.name for p in store.directory.iterdir()] == ["dms.json"]


def test_wrong_passphrase(store: Keystore) -> None:
    store.create("dms", "right")
    with pytest.raises(WrongPassphrase, match="wrong passphrase for key 'dms'"):
        store.load("dms", "wrong")


def test_missing_key(store: Keystore) -> None:
    with pytest.raises(KeyNotFound, match="dmsnode key new ghost"):
        store.load("ghost", "pw")
    with pytest.raises(KeyNotFound):
        store.did("ghost")
    assert store.list() == []


def test_existing_key_is_not_overwritten(store: Keystore) -> None:
    first = store.create("dms", "pw")
    with pytest.raises(KeyExists, match="--force"):
        store.create("dms", "pw")
    assert store.load("dms", "pw") == first
    second = store.create("dms", "other", force=True)
    assert second != first
    assert store.load("dms", "other") == second


def test_store_a_given_identity(store: Keystore) -> None:
    identity = Identity.from_seed(bytes(32))
    store.create("user", "pw", identity=identity)
    assert store.load("user", "pw") == identity


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_bad_names(store: Keystore, name: str) -> None:
    with pytest.raises(ValueError, match="invalid key name"):
        store.create(name, "pw")


def test_empty_passphrase_refused(store: Keystore) -> None:
    with pytest.raises(ValueError, match="passphrase"):
        store.create("dms", "")


def corrupt(store: Keystore, change: dict[str, object]) -> None:
    path = store.path("dms")
    document = json.loads(path.read_text())
    for dotted, value in change.items():
        target = document
        *parents, last = dotted.split(".")
        for parent in parents:
            target = target[parent]
        if value is None:
            del target[last]
        else:
            target[last] = value
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 9}, "unsupported version"),
        ({"did": "did:key:zNope"}, "'did'"),
        ({"kdf.alg": "scrypt"}, "argon2id"),
        ({"kdf.opslimit": 1000}, "opslimit"),
        ({"kdf.memlimit": 1 << 40}, "memlimit"),
        ({"kdf.salt": "!!!"}, "'salt'"),
        ({"nonce": "AAAA"}, "'nonce' must be 24 bytes"),
        ({"ciphertext": None}, "'ciphertext'"),
    ],
)
def test_corrupt_fields(store: Keystore, change: dict[str, object], message: str) -> None:
    store.create("dms", "pw")
    corrupt(store, change)
    with pytest.raises(CorruptKeyFile, match=message):
        store.load("dms", "pw")


def test_not_json(store: Keystore) -> None:
    store.create("dms", "pw")
    store.path("dms").write_bytes(b"\x00garbage")
    with pytest.raises(CorruptKeyFile, match="not JSON"):
        store.load("dms", "pw")
    assert store.list() == []  # listed keys skip unreadable files


def test_tampered_ciphertext_reads_as_wrong_passphrase(store: Keystore) -> None:
    store.create("dms", "pw")
    path = store.path("dms")
    document = json.loads(path.read_text())
    first = document["ciphertext"][0]
    # Flip the first base64 digit to a different one (a fixed "A" is a no-op 1 time in 64).
    document["ciphertext"] = ("B" if first == "A" else "A") + document["ciphertext"][1:]
    path.write_text(json.dumps(document))
    with pytest.raises(WrongPassphrase):
        store.load("dms", "pw")


def test_did_label_that_lies_is_caught(store: Keystore) -> None:
    store.create("dms", "pw")
    corrupt(store, {"did": Identity.generate().did})
    with pytest.raises(CorruptKeyFile, match="holds the key of"):
        store.load("dms", "pw")
