"""Private key files for the agency root and the export key: written once (0600, O_EXCL), never overwritten.

The root key is the one secret that makes every certificate believable, so it is meant to live offline (or on
the archive host only) and may be encrypted with a passphrase. A station's own key file is
catalog.signing.load_or_create_key's.
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog.errors import CatalogError

__all__ = ["KeyFileError", "PassphraseNeeded", "read_private_key", "write_private_key"]


class KeyFileError(CatalogError):
    """A key file cannot be written or read as asked (the message names the file and why)."""


class PassphraseNeeded(KeyFileError):
    """The key file is encrypted and no passphrase was given."""


def write_private_key(path: Path, key: Ed25519PrivateKey, *, passphrase: bytes | None = None) -> None:
    """Write *key* to a new file *path* (mode 0600; encrypted when *passphrase* is given). An existing file is
    never replaced: KeyFileError says so."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists: a key file is never overwritten (move it away first if you "
                           "really mean to replace it)") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())


def read_private_key(path: Path, *, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key in *path*; PassphraseNeeded when it is encrypted and *passphrase* is None."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as exc:  # encrypted without a passphrase, or a passphrase for a plain file
        if passphrase is None:
            raise PassphraseNeeded(f"{path} is encrypted: its passphrase is needed") from exc
        raise KeyFileError(f"{path} is not encrypted: give no passphrase") from exc
    except ValueError as exc:
        raise KeyFileError(f"{path} cannot be read as a private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key
