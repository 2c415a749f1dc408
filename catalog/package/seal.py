"""Making the bag and sealing it: BagIt manifests over data/, the root tag files (verify.py, VERIFY.txt, trust/)
in the tag manifests, then the export key's signature over the exact bytes of tagmanifest-sha256.txt and, when
a timestamp authority is configured, an RFC 3161 token over the same bytes.

tagmanifest-sha256.txt lists every tag file, and manifest-sha256.txt (one of them) every payload file, so one
signature pins every byte of the package. The signature and the token are written after the last bag save and
are in no manifest (they cannot list themselves); bagit accepts such extra root files.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import bagit
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["CHECKSUMS", "SIGNATURE", "TAGMANIFEST", "TIMESTAMP", "make_bag", "seal", "sign_tagmanifest"]

CHECKSUMS = ["sha256", "sha512"]
TAGMANIFEST = "tagmanifest-sha256.txt"
SIGNATURE = f"{TAGMANIFEST}.sig"
TIMESTAMP = f"{TAGMANIFEST}.tsr"


def make_bag(bag: Path, bag_info: dict[str, str]) -> None:
    """Make *bag* a bag of the payload already written in *bag*/data/.

    bagit.make_bag moves everything in the folder into data/: the payload is written under data/ (so that what
    reads it sees the paths it will have) and lifted back up for the move; each entry is one rename."""
    data = bag / "data"
    for entry in data.iterdir():
        entry.rename(bag / entry.name)
    data.rmdir()
    bagit.make_bag(str(bag), bag_info=bag_info, checksums=CHECKSUMS)


def seal(bag: Path, tag_files: dict[str, bytes]) -> None:
    """Add *tag_files* (path in the bag -> bytes; those already written, e.g. trust/, are listed anyway) to the
    bag's root, list them in the tag manifests, and validate the whole bag (full fixity) before it leaves."""
    for name, data in tag_files.items():
        path = bag / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    made = bagit.Bag(str(bag))
    made.save(manifests=False)
    bagit.Bag(str(bag)).validate(fast=False)


def sign_tagmanifest(bag: Path, key: Ed25519PrivateKey) -> tuple[bytes, str]:
    """Sign the exact bytes of tagmanifest-sha256.txt with *key* into tagmanifest-sha256.txt.sig (raw 64-byte
    Ed25519); the signed bytes and their SHA-256, which pins the whole bag."""
    data = (bag / TAGMANIFEST).read_bytes()
    (bag / SIGNATURE).write_bytes(key.sign(data))
    return data, hashlib.sha256(data).hexdigest()
