"""VERIFY.txt at the bag root: how an examiner checks the whole package with standard tools, trusting nothing
from us but the agency root's fingerprint (obtained out of band), and exactly which facts are signed by whom.
Pure text; `verify_text` fills in the package's fingerprints and anchor."""
from __future__ import annotations

__all__ = ["verify_text"]

_HEAD = """\
How to verify this evidence package (no trust in the sender needed)
====================================================================

Package format:           evidence-package/2
Agency root fingerprint:  {root}
Export key fingerprint:   {export}
Export anchor:            {anchor} (custody event {last_event_id}, hash {last_hash})

{root_note}

The quick way, in this folder (Python 3 with the `cryptography` package; it does every step below and names each
finding, exit 0 when nothing is wrong):
    {quick}
Whoever forged a package could have changed its verify.py too: run a copy you trust (the agency's published
verify.py, or catalog/package_verifier.py of the evidence-ingest release, compared by SHA-256 with this one), as
python3 /path/to/trusted/verify.py --trust FINGERPRINT [--tsa-ca TSA-CA.pem] .
(it never imports from the package folder; --tsa-ca: the timestamp authority's CA certificate as you know it).

WHAT IS SIGNED, AND BY WHOM
 * tagmanifest-sha256.txt is signed by the export key (tagmanifest-sha256.txt.sig, raw Ed25519). It lists the
   SHA-256 of every tag file (bag-info.txt, manifest-sha256.txt, manifest-sha512.txt, verify.py, VERIFY.txt,
   trust/...), and manifest-sha256.txt lists the SHA-256 of every file under data/: this one signature covers
   every byte of the package except itself and the optional timestamp (tagmanifest-sha256.txt.tsr).
 * Each manifest body (data/manifests/<sha256>.r<N>.body.json, exact bytes) is signed by the station key that
   copied the file off the recorder: the file's SHA-256 and size, its capture times and their source, the stamp
   (case number, purpose, collector, place), and the custody events (id and hash) that existed then.
 * Each anchor body (data/custody/anchors/<name>.body.json) is signed by a station key: the id and hash of the
   newest custody event when it was written into WORM storage.
{root_signs}
 * NOT signed on their own: items.json, the report (report.html, report.pdf), premis.xml and the readable
   fields of events.jsonl. They are inside the bag (so covered by the export key's signature) and verify.py
   compares them with the signed bodies: every fact of items.json a manifest carries; every fact cell of
   report.html (data-field), which holds no script, form, embedded object or hiding style; and report.pdf's text,
   which must show each item's fact table as report.html does. Where they differ, the signed body is what counts.
"""

_ROOTED = """\
The root fingerprint above is only a claim of this package: compare it with the fingerprint the agency gave you
out of band (letter, website, phone). Everything below is worth what that comparison is worth."""

_ROOTLESS = """\
NO AGENCY ROOT: this archive has no agency root key, so NO certificate vouches for the keys below. The
signatures still prove the package has not changed since it was signed, but whose keys these are must be
established some other way (ask the agency for the export and station key fingerprints out of band)."""

_STEPS_ROOTED = """\
1. The bag is intact (BagIt, RFC 8493):
     sha256sum -c tagmanifest-sha256.txt && sha256sum -c manifest-sha256.txt
   (or `bagit.py --validate .`, pip install bagit)

2. The package signature and the certificates (bash, OpenSSL 3):
     openssl verify -CAfile trust/root.pem trust/certs/*.pem
     openssl x509 -in trust/root.pem -pubkey -noout | openssl pkey -pubin -outform DER | tail -c 32 | sha256sum
         -> must print {root}, and that must be the fingerprint you obtained out of band
     openssl pkeyutl -verify -pubin -inkey <(openssl x509 -in trust/certs/{export}.pem -pubkey -noout) \\
         -rawin -in tagmanifest-sha256.txt -sigfile tagmanifest-sha256.txt.sig
   (openssl verify checks the first certificate of each file: the newest; a renewed key's older certificates
   follow it.) trust/revocations/ and trust/retirements/ hold the root's signed statements that a key was
   revoked or retired from a given time: nothing that key signed after that time counts.
"""

_STEPS_ROOTLESS = """\
1. The bag is intact (BagIt, RFC 8493):
     sha256sum -c tagmanifest-sha256.txt && sha256sum -c manifest-sha256.txt
   (or `bagit.py --validate .`, pip install bagit)

2. The package signature (bash, OpenSSL 3; no certificate vouches for the key, see above):
     openssl pkeyutl -verify -pubin -inkey data/keys/{export}.pem \\
         -rawin -in tagmanifest-sha256.txt -sigfile tagmanifest-sha256.txt.sig
"""

_QUICK_ROOTED = "python3 verify.py --trust FINGERPRINT .    (FINGERPRINT: the agency root's, obtained out of band)"
_QUICK_ROOTLESS = "python3 verify.py --trust FINGERPRINT .    (FINGERPRINT: the export key's, obtained out of band)"
_KEY_ROOTED = "<(openssl x509 -in trust/certs/$FP.pem -pubkey -noout)"
_KEY_ROOTLESS = "data/keys/$FP.pem"

_STEPS = """
3. Each manifest is genuine, and each file is the one it describes:
     FP=$(jq -r .signature.key_fingerprint data/manifests/<sha256>.r<N>.json)
     openssl pkeyutl -verify -pubin -inkey {key} -rawin \\
         -in data/manifests/<sha256>.r<N>.body.json -sigfile data/manifests/<sha256>.r<N>.sig
     jq -r .sha256 data/manifests/<sha256>.r<N>.body.json      # must equal:
     sha256sum data/recordings/<file>                           (or data/documents/<file>)
   The fingerprint of a key is the SHA-256 of its raw 32-byte public key. The .body.json files hold exactly the
   signed bytes: RFC 8785 canonical JSON when signature.canonicalization is "RFC8785", else JSON with sorted keys,
   no spaces, UTF-8. The readable .json beside it must say the same (jq .manifest).

4. The custody chain is unbroken up to the export anchor:
   data/custody/events.jsonl has every event of the package's items (and of the case) in full; "body" is the
   exact bytes its hash covers (they must parse to the line's kind, recording_id, dock_session_id, actor, at and
   details), and
     chain_version 2:  hash = SHA-256( prev_hash + hex SHA-256(body) )      (RFC 8785 body)
     chain_version 1:  hash = SHA-256( prev_hash + "\\n" + body )          (sorted keys, no spaces)
   data/custody/chain.jsonl has EVERY event from the older anchor's (step 5; else from the first of those)
   through the export anchor's, in id order:
     - "full": true rows are the events of events.jsonl (same id, prev_hash and hash);
     - rows with "body_sha256" are other recordings' version-2 events, shown by digest only:
         hash = SHA-256( prev_hash + body_sha256 )
     - rows with "body_withheld": true are other recordings' version-1 events: their hash needs their whole
       body, which is not shipped, so they show linkage (prev_hash) only.
   Each row's prev_hash is the hash of the row before it; chain versions never go down; and
     tail -n 1 data/custody/chain.jsonl | jq -r .hash
     jq -r .last_hash data/custody/export-anchor.json             # the same hash
   The manifests' "custody" lists name events (id, hash) that must appear in events.jsonl with that hash.

5. The anchors were signed and stored in WORM storage:
     FP=$(jq -r .signature.key_fingerprint data/custody/anchors/<name>.json)
     openssl pkeyutl -verify -pubin -inkey {key} -rawin \\
         -in data/custody/anchors/<name>.body.json -sigfile data/custody/anchors/<name>.sig
     jq . data/custody/export-anchor.json       # where the archive's WORM storage holds the export anchor
   Anyone with read access to that storage can fetch the object and compare it byte for byte with <name>.json.
   The other anchor shipped, if any, is the newest one written at or before the package's first event; its
   last_hash is the hash of its event's row in chain.jsonl.

6. Timestamps, if the package has them (RFC 3161, from the timestamp authority the agency uses):
     openssl ts -verify -data tagmanifest-sha256.txt -in tagmanifest-sha256.txt.tsr -CAfile <TSA CA certificate>
     openssl ts -verify -data data/custody/anchors/<name>.body.json \\
         -in data/custody/anchors/<name>.body.json.tsr -CAfile <TSA CA certificate>
   A token proves the stamped bytes existed at the time it states, whoever held the keys. The TSA that made
   them is named in the signed export-anchor.json:
     jq -r '.timestamp_signers[]' data/custody/export-anchor.json     # e.g. sha256:<hex>
     openssl x509 -in <TSA certificate> -outform DER | sha256sum        # the same hex
   (the hash of the TSA certificate each token's ESS signing-certificate attribute names). A token from any other
   TSA was added or swapped after export, and a package exported without a TSA names none. A key revoked
   before a token's time could not have signed the stamped bytes when its signer says it did.
"""

_ROOT_SIGNS = """\
 * The certificates (trust/certs/*.pem) and the revocation and retirement statements (trust/revocations/,
   trust/retirements/) are signed by the agency root (trust/root.pem): they say which key belongs to which
   station, or is the export key, and from when it no longer counts."""


def verify_text(*, root: str | None, export: str, anchor: str, last_event_id: int, last_hash: str) -> str:
    """VERIFY.txt for a package whose root (None: the archive has none), export key and export anchor are these."""
    head = _HEAD.format(root=root or "none (this archive has no agency root)", export=export, anchor=anchor,
                        last_event_id=last_event_id, last_hash=last_hash,
                        root_note=_ROOTED if root else _ROOTLESS,
                        quick=_QUICK_ROOTED if root else _QUICK_ROOTLESS,
                        root_signs=_ROOT_SIGNS if root else " * Nothing is signed by an agency root: there is none.")
    steps = (_STEPS_ROOTED if root else _STEPS_ROOTLESS).format(root=root, export=export)
    return head + "\n" + steps + _STEPS.format(key=_KEY_ROOTED if root else _KEY_ROOTLESS)
