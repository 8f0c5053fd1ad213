"""Identities encrypted at rest: one JSON file per named key (DESIGN §2.1).

A key file holds ``{version, did, kdf: {alg, opslimit, memlimit, salt}, nonce, ciphertext}``.
The 32-byte seed is sealed with XSalsa20-Poly1305 (``nacl.secret.SecretBox``) under a key that
Argon2id derives from the passphrase. Binary fields are base64 (standard alphabet, padded).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, final

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.utils

from ._identity import Identity, public_key_from_did
from .errors import CorruptKeyFile, InvalidDid, KeyExists, KeyNotFound, WrongPassphrase

__all__ = ["KeyInfo", "Keystore"]

FORMAT_VERSION: Final = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Bounds on what a key file may ask of the KDF, so that a hostile file cannot make loading it
# take minutes or gigabytes.
_MAX_OPSLIMIT: Final = 16
_MAX_MEMLIMIT: Final = 1 << 30


@final
@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key in the store, as listed without its passphrase."""

    name: str
    did: str
    path: Path


@final
class Keystore:
    """Named Ed25519 identities, one encrypted file each, under ``directory``.

    Files are created 0600 in a 0700 directory and written atomically (temporary file, fsync,
    rename), so a crash never leaves a half-written key; an existing key is only replaced when
    ``force=True``.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        opslimit: int = argon2id.OPSLIMIT_INTERACTIVE,
        memlimit: int = argon2id.MEMLIMIT_INTERACTIVE,
    ) -> None:
        self.directory = Path(directory)
        self._opslimit = opslimit
        self._memlimit = memlimit

    def path(self, name: str) -> Path:
        """Where the key called ``name`` is (or would be) stored."""
        if not _NAME.match(name):
            raise ValueError(
                f"invalid key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return self.directory / f"{name}.json"

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def create(
        self,
        name: str,
        passphrase: str | bytes,
        *,
        identity: Identity | None = None,
        force: bool = False,
    ) -> Identity:
        """Store ``identity`` (a new one if omitted) under ``name``, sealed with ``passphrase``."""
        path = self.path(name)
        secret = _passphrase_bytes(passphrase)
        if not secret:
            raise ValueError("a key stored at rest needs a non-empty passphrase")
        if path.exists() and not force:
            raise KeyExists(f"key '{name}' exists already at {path}; pass --force to replace it")
        identity = Identity.generate() if identity is None else identity
        salt = nacl.utils.random(argon2id.SALTBYTES)
        box = nacl.secret.SecretBox(_derive(secret, salt, self._opslimit, self._memlimit))
        sealed = box.encrypt(identity.seed)
        document = {
            "version": FORMAT_VERSION,
            "did": identity.did,
            "kdf": {
                "alg": "argon2id",
                "opslimit": self._opslimit,
                "memlimit": self._memlimit,
                "salt": _b64(salt),
            },
            "nonce": _b64(sealed.nonce),
            "ciphertext": _b64(sealed.ciphertext),
        }
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_atomically(path, json.dumps(document, indent=2).encode() + b"\n", replace=force)
        return identity

    def load(self, name: str, passphrase: str | bytes) -> Identity:
        """The identity stored under ``name``; :class:`WrongPassphrase` if it does not open."""
        path = self.path(name)
        document = self._read(name, path)
        kdf = document["kdf"]
        key = _derive(_passphrase_bytes(passphrase), kdf["salt"], kdf["opslimit"], kdf["memlimit"])
        try:
            seed = nacl.secret.SecretBox(key).decrypt(document["ciphertext"], document["nonce"])
        except nacl.exceptions.CryptoError:
            raise WrongPassphrase(f"wrong passphrase for key '{name}' ({path})") from None
        if len(seed) != 32:
            raise CorruptKeyFile(f"key file {path} holds a {len(seed)}-byte seed, not 32")
        identity = Identity.from_seed(seed)
        if identity.did != document["did"]:
            raise CorruptKeyFile(
                f"key file {path} names {document['did']} but holds the key of {identity.did}"
            )
        return identity

    def did(self, name: str) -> str:
        """The DID of the key ``name``, read without its passphrase."""
        return str(self._read(name, self.path(name))["did"])

    def list(self) -> list[KeyInfo]:
        """Every readable key in the store, by name; unreadable files are skipped."""
        if not self.directory.is_dir():
            return []
        keys = []
        for path in sorted(self.directory.glob("*.json")):
            name = path.stem
            if not _NAME.match(name):
                continue
            with contextlib.suppress(CorruptKeyFile, KeyNotFound):
                keys.append(KeyInfo(name, self.did(name), path))
        return keys

    def _read(self, name: str, path: Path) -> dict[str, Any]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(
                f"no key named '{name}' in {self.directory}; create it with 'dmsnode key new {name}'"
            ) from None
        except OSError as exc:
            raise CorruptKeyFile(f"cannot read key file {path}: {exc.strerror}") from exc
        return _parse(raw, path)


def _parse(raw: bytes, path: Path) -> dict[str, Any]:
    """Check a key file's structure and decode its binary fields."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CorruptKeyFile(f"key file {path} is not JSON") from None

    def bad(what: str) -> CorruptKeyFile:
        return CorruptKeyFile(f"key file {path} is not a valid keystore file: {what}")

    if not isinstance(document, dict):
        raise bad("not a JSON object")
    if document.get("version") != FORMAT_VERSION:
        raise bad(f"unsupported version {document.get('version')!r} (this reads {FORMAT_VERSION})")
    did = document.get("did")
    try:
        public_key_from_did(did)
    except InvalidDid as exc:
        raise bad(f"'did': {exc}") from None
    kdf = document.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("alg") != "argon2id":
        raise bad("'kdf.alg' must be argon2id")
    opslimit, memlimit = kdf.get("opslimit"), kdf.get("memlimit")
    if not (isinstance(opslimit, int) and argon2id.OPSLIMIT_MIN <= opslimit <= _MAX_OPSLIMIT):
        raise bad(
            f"'kdf.opslimit' must be an integer in [{argon2id.OPSLIMIT_MIN}, {_MAX_OPSLIMIT}]"
        )
    if not (isinstance(memlimit, int) and argon2id.MEMLIMIT_MIN <= memlimit <= _MAX_MEMLIMIT):
        raise bad(
            f"'kdf.memlimit' must be an integer in [{argon2id.MEMLIMIT_MIN}, {_MAX_MEMLIMIT}]"
        )
    fields = {
        "salt": (kdf.get("salt"), argon2id.SALTBYTES),
        "nonce": (document.get("nonce"), nacl.secret.SecretBox.NONCE_SIZE),
        "ciphertext": (document.get("ciphertext"), 32 + nacl.secret.SecretBox.MACBYTES),
    }
    decoded: dict[str, bytes] = {}
    for field, (value, size) in fields.items():
        try:
            data = base64.b64decode(value, validate=True) if isinstance(value, str) else None
        except binascii.Error:
            data = None
        if data is None or len(data) != size:
            raise bad(f"'{field}' must be {size} bytes of base64")
        decoded[field] = data
    return {
        "did": did,
        "kdf": {"salt": decoded["salt"], "opslimit": opslimit, "memlimit": memlimit},
        "nonce": decoded["nonce"],
        "ciphertext": decoded["ciphertext"],
    }


def _derive(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit
    )


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    return passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _write_atomically(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` through a 0600 temporary file, fsync and rename.

    Without ``replace``, the final step is a hard link, which fails if ``path`` appeared in the
    meantime: two concurrent creations can never overwrite each other.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeyExists(
                    f"key file {path} exists already; pass --force to replace it"
                ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
