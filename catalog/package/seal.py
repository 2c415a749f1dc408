"""Making the bag and sealing it: BagIt manifests over data/, the root tag files (verify.py, VERIFY.txt, trust/)
in the tag manifests, then the export key's signature over the exact bytes of tagmanifest-sha256.txt and, when
a timestamp authority is configured, an RFC 3161 token over the same bytes.

One read pass per byte: the originals' SHA-256 and SHA-512 are measured while they are copied out of the store
(`storage.hashing.TwoDigests`), and the payload manifests are written from those digests (only the small files
the export wrote itself are hashed here), instead of bagit.make_bag reading every byte again and a full validate
a third time.
bagit-python writes bag-info.txt and the tag manifests (`Bag.save`) and checks the result (`validate(fast=True)`:
structure, Payload-Oxum, every payload file listed); the bytes of the originals were checked against the store's
SHA-256 as they were copied.

tagmanifest-sha256.txt lists every tag file, and manifest-sha256.txt (one of them) every payload file, so one
signature pins every byte of the package. The signature and the token are written after the last bag save and
are in no manifest (they cannot list themselves); bagit accepts such extra root files.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import bagit
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage.hashing import hashed_chunks

__all__ = ["BAGIT_VERSION", "CHECKSUMS", "SIGNATURE", "TAGMANIFEST", "TIMESTAMP", "make_bag", "seal",
           "sign_tagmanifest"]

#: What bagit-python 1.9.0's make_bag declares; kept so packages stay as they were (README says which).
BAGIT_VERSION = "0.97"

CHECKSUMS = ["sha256", "sha512"]
TAGMANIFEST = "tagmanifest-sha256.txt"
SIGNATURE = f"{TAGMANIFEST}.sig"
TIMESTAMP = f"{TAGMANIFEST}.tsr"


def make_bag(bag: Path, bag_info: dict[str, str], measured: Mapping[str, Mapping[str, str]]) -> None:
    """Make *bag* a BagIt bag of the payload already written in *bag*/data/.

    *measured*: "data/…" path -> {"sha256", "sha512"} of each file whose digests were measured as it was written
    (the originals); every other payload file is small and hashed here."""
    lines: dict[str, list[str]] = {algorithm: [] for algorithm in CHECKSUMS}
    total_bytes = total_files = 0
    for path in sorted(p for p in (bag / "data").rglob("*") if p.is_file()):
        name = path.relative_to(bag).as_posix()
        digests = measured.get(name) or _digests(path)
        for algorithm in CHECKSUMS:
            lines[algorithm].append(f"{digests[algorithm]}  {_encoded(name)}\n")
        total_bytes += path.stat().st_size
        total_files += 1
    (bag / "bagit.txt").write_text(f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n",
                                   encoding="utf-8")
    for algorithm in CHECKSUMS:
        (bag / f"manifest-{algorithm}.txt").write_text("".join(lines[algorithm]), encoding="utf-8")
    made = bagit.Bag(str(bag))
    made.info.update(bag_info)
    made.info["Bagging-Date"] = date.today().isoformat()
    made.info["Payload-Oxum"] = f"{total_bytes}.{total_files}"
    made.save(manifests=False)  # bag-info.txt and the tag manifests


def _digests(path: Path) -> dict[str, str]:
    """SHA-256 and SHA-512 of a small payload file the export wrote itself, in one read."""
    sha256, sha512 = hashlib.sha256(), hashlib.sha512()
    with path.open("rb") as fh:
        for chunk in hashed_chunks(fh, into=sha256):
            sha512.update(chunk)
    return {"sha256": sha256.hexdigest(), "sha512": sha512.hexdigest()}


def _encoded(name: str) -> str:
    """A path as bagit-python writes and reads it in manifests (CR and LF percent-encoded; safe_name leaves
    neither in a package's file names)."""
    return name.replace("\r", "%0D").replace("\n", "%0A")


def seal(bag: Path, tag_files: dict[str, bytes]) -> None:
    """Add *tag_files* (path in the bag -> bytes; those already written, e.g. trust/, are listed anyway) to the
    bag's root, list them in the tag manifests, and validate the bag's structure and completeness."""
    for name, data in tag_files.items():
        path = bag / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    made = bagit.Bag(str(bag))
    made.save(manifests=False)
    bagit.Bag(str(bag)).validate(fast=True)  # structure, Payload-Oxum, completeness (the bytes: see module doc)


def sign_tagmanifest(bag: Path, key: Ed25519PrivateKey) -> tuple[bytes, str]:
    """Sign the exact bytes of tagmanifest-sha256.txt with *key* into tagmanifest-sha256.txt.sig (raw 64-byte
    Ed25519); the signed bytes and their SHA-256, which pins the whole bag."""
    data = (bag / TAGMANIFEST).read_bytes()
    (bag / SIGNATURE).write_bytes(key.sign(data))
    return data, hashlib.sha256(data).hexdigest()
