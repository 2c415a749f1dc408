"""Station signing keys (Ed25519) and detached signatures over canonical JSON.

A station's private key is a PEM file (mode 0600) created at set-up; its
public key is registered in the catalog so anyone can check a manifest
without trusting the station. `sign_document` / `verify_document` are pure.
New signatures cover the RFC 8785 bytes of the body and say so
(`"canonicalization": "RFC8785"`); a signature without the tag covers the
legacy bytes (catalog.canonical) and keeps verifying.
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from catalog.canonical import SCHEME_JCS, SCHEME_LEGACY, jcs, legacy_json

__all__ = ["SignatureInvalid", "TrustedKeys", "fingerprint", "load_or_create_key", "public_key_b64", "sign_document",
           "signed_bytes", "verify_document"]


class SignatureInvalid(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"signature does not verify: {reason}")


class TrustedKeys(set[str]):
    """The fingerprints of trusted keys, and for keys the catalogue knows but does not trust, why not
    (so a signature made with such a key is refused with the reason, not just "unknown key")."""

    def __init__(self, fingerprints: set[str] | None = None, *, untrusted: dict[str, str] | None = None) -> None:
        super().__init__(fingerprints or ())
        self.untrusted: dict[str, str] = dict(untrusted or {})


def signed_bytes(document: dict[str, Any]) -> bytes:
    """The exact bytes *document*'s signature covers: the body in the canonical form its signature names
    (RFC 8785; no "canonicalization" field: the legacy form every signature had before it)."""
    try:
        scheme = document["signature"].get("canonicalization", SCHEME_LEGACY)
        body = document["manifest"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise SignatureInvalid(f"malformed signed document ({exc!r})") from exc
    if scheme == SCHEME_JCS:
        return jcs(body)
    if scheme == SCHEME_LEGACY:
        return legacy_json(body)
    raise SignatureInvalid(f"unsupported canonicalization {scheme!r} (known: {SCHEME_JCS!r}, or none for legacy)")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(_raw_public(key.public_key())).decode()


def fingerprint(public_b64: str) -> str:
    """SHA-256 of the raw public key, hex: how keys are named in manifests and the catalog."""
    return hashlib.sha256(base64.b64decode(public_b64)).hexdigest()


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """Read the station key, creating it (0600, never overwritten) the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def sign_document(body: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """`{"manifest": body, "signature": {...}}` with an Ed25519 signature over the RFC 8785 bytes of *body*
    (catalog.canonical.jcs; CanonicalJSONError if the body holds a value JSON cannot carry exactly)."""
    public = public_key_b64(key)
    return {"manifest": body, "signature": {
        "algorithm": "Ed25519", "canonicalization": SCHEME_JCS, "public_key": public,
        "key_fingerprint": fingerprint(public), "value": base64.b64encode(key.sign(jcs(body))).decode()}}


def verify_document(document: dict[str, Any], *, trusted_fingerprints: set[str] | None = None) -> dict[str, Any]:
    """Return the signed body if the signature verifies (and, if given, the key is trusted)."""
    try:
        body, signature = document["manifest"], document["signature"]
        if signature["algorithm"] != "Ed25519":
            raise SignatureInvalid(f"unsupported algorithm {signature['algorithm']!r}")
        public = signature["public_key"]
        if fingerprint(public) != signature["key_fingerprint"]:
            raise SignatureInvalid("the key fingerprint does not match the public key")
        if trusted_fingerprints is not None and signature["key_fingerprint"] not in trusted_fingerprints:
            why = (trusted_fingerprints.untrusted.get(signature["key_fingerprint"])
                   if isinstance(trusted_fingerprints, TrustedKeys) else None)
            raise SignatureInvalid(f"key {signature['key_fingerprint'][:16]}… is not a registered station key"
                                   + (f" ({why})" if why else ""))
        Ed25519PublicKey.from_public_bytes(base64.b64decode(public)).verify(
            base64.b64decode(signature["value"]), signed_bytes(document))
    except (KeyError, TypeError, ValueError) as exc:
        raise SignatureInvalid(f"malformed signed document ({exc})") from exc
    except InvalidSignature as exc:
        raise SignatureInvalid("the manifest was changed after it was signed") from exc
    result: dict[str, Any] = body
    return result
