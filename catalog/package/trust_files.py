"""trust/ at the bag root: what an examiner needs to decide which keys to believe, from the agency root down.

* trust/root.pem: the agency root's self-signed certificate (absent when the archive has no root);
* trust/certs/<fingerprint>.pem: every certificate the root issued for each key that signed something in the
  package (manifests, anchors) and for the export key, newest first (a renewed key has several: the one valid
  when a signature was made is among them); `openssl verify -CAfile trust/root.pem trust/certs/*.pem` checks the
  first of each file;
* trust/revocations/<fingerprint>.json, trust/retirements/<fingerprint>.json: the root-signed statements about
  those keys, byte for byte as WORM storage holds them.
What counts is catalog.cert_trust's judgement (only certificates that chain to the root, only statements the
root signed), read once for the export.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from catalog.cert_trust import TRUST_PREFIX, Certification
from catalog.certificates import to_pem
from storage import EvidenceStore

__all__ = ["write_trust"]


def write_trust(bag: Path, found: Certification, store: EvidenceStore, fingerprints: Iterable[str]) -> list[str]:
    """Write trust/ into the bag at *bag* for keys *fingerprints*; the paths written (relative to the bag)."""
    if found.root is None:
        return []
    written = ["trust/root.pem"]
    (bag / "trust" / "certs").mkdir(parents=True, exist_ok=True)
    (bag / "trust" / "root.pem").write_text(to_pem(found.root.certificate), encoding="ascii")
    for fp in sorted(set(fingerprints)):
        standing = found.keys.get(fp)
        if standing is not None and standing.certificates:
            newest_first = sorted(standing.certificates, key=lambda c: c.not_after, reverse=True)
            path = f"trust/certs/{fp}.pem"
            (bag / path).write_text("".join(to_pem(c.certificate) for c in newest_first), encoding="ascii")
            written.append(path)
        for change in found.changes.get(fp, []):
            if change.source.startswith(TRUST_PREFIX):  # a statement the root signed (not only a chain event)
                path = change.source  # trust/revocations/<fp>.json or trust/retirements/<fp>.json
                (bag / path).parent.mkdir(parents=True, exist_ok=True)
                (bag / path).write_bytes(store.get_record(change.source))
                written.append(path)
    return written
