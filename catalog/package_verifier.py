#!/usr/bin/env python3
"""verify.py: check an evidence package (format evidence-package/2) without trusting whoever sent it.

    python3 verify.py [--trust ROOT_FINGERPRINT] [--tsa-ca TSA_CA.pem] [--json] PACKAGE_FOLDER

Needs only Python 3.9+ and the `cryptography` package (`pip install cryptography`): this file is the whole
verifier, shipped at the package's root (in the evidence-ingest source it is catalog/package_verifier.py). It
checks the exact bytes shipped and never re-creates what was signed from readable files:

1. the bag: every file listed in manifest-sha256.txt and tagmanifest-sha256.txt hashes right (read once, in 4 MiB
   pieces), no payload file is unlisted, no symbolic link anywhere, Payload-Oxum matches;
2. the package signature (tagmanifest-sha256.txt.sig) by the export key, whose certificate chains to the agency
   root trust/root.pem; with --trust the root must be the one you were told out of band;
3. every signed manifest (.sig over .body.json, by a station key whose certificate is for the station the manifest
   names, valid and not revoked when it signed), every original's SHA-256 against its signed manifest, the
   readable .json against the signed body;
4. the custody chain: each event's hash recomputed from its exact body (chain version 1 or 2), chain.jsonl linked
   row by row up to the export anchor, the events each manifest lists present with the same hash;
5. the signed chain anchors; 6. RFC 3161 timestamps: imprint, a TSA the signed export-anchor.json names, no key
   revoked before the token's time, the signature with `openssl ts -verify` if installed (with --tsa-ca: against
   that CA only);
7. items.json, report.html (every fact cell; no script or hiding style) and report.pdf (each item's fact table
   as report.html shows it; no script, embedded file or later update) against the signed manifests.

Exit 0: nothing wrong. Exit 1: each finding is printed (file, what, expected, found). Exit 2: usage.

Run a copy you trust (the agency's published verify.py, or this file from the evidence-ingest release, compared
by SHA-256), not merely the one inside the package: whoever made a forged package could have changed its copy.
"""
from __future__ import annotations

import sys as _sys  # built in: nothing in the package folder can stand in for it

# A package is hostile until checked, and Python puts this file's folder first on the import path: a planted
# argparse.py beside this file would run as part of the verifier. Drop the folder before importing anything else
# (python3 -I, or -P, does the same; modules Python loaded at start-up, such as os, are already the real ones).
if __name__ == "__main__" and not getattr(_sys.flags, "safe_path", False) and _sys.path:
    del _sys.path[0]

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover - the examiner's machine: exit 2, nothing was checked
    print("verify.py needs the Python package 'cryptography' (42 or newer): pip install cryptography", file=sys.stderr)
    sys.exit(2)

VERSION = "2"
UTC = timezone.utc  # noqa: UP017 - this file runs on Python 3.9+
CHUNK = 4 * 1024 * 1024
KEEP = 8 * 1024 * 1024  # files up to this size are kept from the hashing pass for parsing (never originals)
GENESIS = "0" * 64
SIG_NAME, TSR_NAME = "tagmanifest-sha256.txt.sig", "tagmanifest-sha256.txt.tsr"
EVENTS, CHAIN = "data/custody/events.jsonl", "data/custody/chain.jsonl"
ORIGINALS = ("data/recordings/", "data/documents/")
EVENT_FIELDS = ("kind", "recording_id", "dock_session_id", "actor", "at", "details")
UNITS = {"agency root": "root", "station key": "station", "export key": "export"}
STATEMENT_FOLDERS = {"trust/revocations/": "revoked", "trust/retirements/": "retired"}
#: (items.json path, signed manifest body path): the facts a readable item must share with its newest manifest.
ITEM_FACTS = (("sha256", "sha256"), ("size_bytes", "size_bytes"), ("original_name", "original_name"),
              ("media_kind", "media.kind"), *((f"recording.{key}", path) for key, path in (
                  ("case_number", "stamp.case_number"), ("purpose", "stamp.purpose"), ("collector", "stamp.collector"),
                  ("captured_start", "stamp.captured_start"), ("captured_end", "capture.end"),
                  ("time_source", "capture.time_source"), ("raw_device_time", "capture.raw_device_time"),
                  ("zone_assumed", "capture.zone_assumed"), ("clock_offset_s", "capture.clock_offset_s"),
                  ("place", "stamp.place"), ("officer_name", "officer.name"), ("device_serial", "device_serial"),
                  ("station", "station"), ("important", "stamp.important"), ("stamp_revision", "stamp.revision"))))
HASHES = {"2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.2": "sha384", "2.16.840.1.101.3.4.2.3": "sha512"}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ABSENT = "(absent)"


# -- findings -----------------------------------------------------------------------------------------------------


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 300 else text[:300] + "…"


class Report:
    """What was checked, what is wrong (findings: the package fails) and what the reader must know (warnings)."""

    def __init__(self) -> None:
        self.findings: list[dict[str, str | None]] = []
        self.warnings: list[str] = []
        self.checked: dict[str, Any] = {}

    def find(self, file: str, what: str, expected: Any = None, found: Any = None) -> None:
        self.findings.append({"file": file, "what": what, "expected": _shown(expected), "found": _shown(found)})

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def count(self, key: str, n: int = 1) -> None:
        self.checked[key] = self.checked.get(key, 0) + n


def _loads(data: bytes | str) -> Any:
    """JSON, refusing duplicate keys (two values for one field: which one was signed?)."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(items)
        if len(result) != len(items):
            raise ValueError(f"duplicate keys in one object: {sorted(k for k, _ in items)}")
        return result
    try:
        return json.loads(data, object_pairs_hook=pairs)
    except RecursionError:
        raise ValueError("JSON nested too deeply to be a package file") from None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON scalars: true is not 1, 5 equals 5.0, times equal as instants."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if a != b and _instant(a) is not None:
        return _instant(a) == _instant(b)
    return type(a) is type(b) and bool(a == b)


def difference(signed: Any, readable: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first place where *readable* says something else than *signed*: (dotted path, signed, readable)."""
    if isinstance(signed, dict) and isinstance(readable, dict):
        for key in sorted(set(signed) | set(readable)):
            where = f"{path}.{key}" if path else key
            if key not in signed or key not in readable:
                return where, signed.get(key, _ABSENT), readable.get(key, _ABSENT)
            found = difference(signed[key], readable[key], where)
            if found:
                return found
        return None
    if isinstance(signed, list) and isinstance(readable, list):
        if len(signed) != len(readable):
            return f"{path} (number of entries)", len(signed), len(readable)
        for index, item in enumerate(signed):
            found = difference(item, readable[index], f"{path}[{index}]")
            if found:
                return found
        return None
    return None if _same(signed, readable) else (path or "(the whole value)", signed, readable)


def _dig(value: Any, path: str) -> tuple[bool, Any]:
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


# -- RFC 8785, for the root's key statements (shipped as stored: body and signature in one document) ---------------


def _number(x: float) -> str:
    """A float as RFC 8785 writes it (ECMAScript Number::toString)."""
    if x < 0:
        return "-" + _number(-x)
    if x == 0:
        return "0"
    mantissa, _, exponent = repr(x).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    n = len(whole) + int(exponent or 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    if len(digits) <= n <= 21:
        return digits + "0" * (n - len(digits))
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    return digits[0] + ("." + digits[1:] if digits[1:] else "") + f"e{'+' if n > 0 else '-'}{abs(n - 1)}"


def rfc8785(value: Any) -> str:
    """RFC 8785 text of a JSON value: keys sorted by UTF-16 code units, ECMAScript numbers, minimal escapes."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + rfc8785(value[k]) for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ",".join(rfc8785(item) for item in value) + "]"
    if isinstance(value, float):
        return _number(value)
    return json.dumps(value, ensure_ascii=False)


def _signed_bytes(document: dict[str, Any]) -> bytes:
    """The bytes a stored signed document's signature covers, by the scheme it names (none: the legacy form)."""
    scheme = document["signature"].get("canonicalization")
    if scheme == "RFC8785":
        return rfc8785(document["manifest"]).encode()
    if scheme is None:
        return json.dumps(document["manifest"], sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    raise ValueError(f"unknown canonicalization {scheme!r}")


# -- the bag ------------------------------------------------------------------------------------------------------


def linked(root: Path, rel: str) -> bool:
    """Whether *rel* or any folder on its way down from *root* is a symbolic link (it may lead out of the bag)."""
    parts = Path(rel).parts
    return any((root.joinpath(*parts[:i])).is_symlink() for i in range(1, len(parts) + 1))


def _decode_path(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


class Bag:
    """The package folder: its manifests, and each listed file hashed once (small ones kept for parsing)."""

    def __init__(self, root: Path, report: Report) -> None:
        self.root, self.report = root, report
        self.payload: dict[str, str] = {}  # path -> SHA-256 the bag's manifest lists
        self.tags: dict[str, str] = {}
        self.computed: dict[str, str] = {}  # path -> SHA-256 of the bytes found
        self.info: dict[str, str] = {}
        self._kept: dict[str, bytes] = {}
        self._deferred = {EVENTS, CHAIN}  # hashed while they are parsed, line by line

    def listed(self, rel: str) -> bool:
        return rel in self.payload or rel in self.tags

    def expected(self, rel: str) -> str | None:
        return self.payload.get(rel) or self.tags.get(rel)

    def read(self, rel: str) -> bytes | None:
        """A listed file's bytes (None: unlisted or missing: nothing unlisted is ever used)."""
        if rel in self._kept:
            return self._kept[rel]
        if not self.listed(rel) or linked(self.root, rel) or not (self.root / rel).is_file():
            return None
        return (self.root / rel).read_bytes()

    def lines(self, rel: str) -> Iterator[tuple[int, bytes]]:
        """A listed file line by line, hashed as it is read: one pass for both checks."""
        self._deferred.discard(rel)
        path = self.root / rel
        if not self.listed(rel) or linked(self.root, rel) or not path.is_file():
            return
        digest, size = hashlib.sha256(), 0
        with path.open("rb", buffering=CHUNK) as fh:
            for number, line in enumerate(fh, 1):
                digest.update(line)
                size += len(line)
                yield number, line
        self._compare(rel, digest.hexdigest(), size)

    def deferred(self, rel: str) -> bool:
        return rel in self._deferred

    def finish(self) -> None:
        for rel in sorted(self._deferred):
            for _ in self.lines(rel):
                pass

    def _compare(self, rel: str, found: str, size: int) -> None:
        self.computed[rel] = found
        self.report.count("files_hashed")
        self.report.count("bytes_hashed", size)
        if found != self.expected(rel):
            manifest = "manifest-sha256.txt" if rel in self.payload else "tagmanifest-sha256.txt"
            self.report.find(rel, f"its SHA-256 is not the one {manifest} lists (the file was changed)",
                             self.expected(rel), found)

    def hash_file(self, rel: str) -> None:
        path = self.root / rel
        keep = not rel.startswith(ORIGINALS) and path.stat().st_size <= KEEP
        digest, size, kept = hashlib.sha256(), 0, bytearray()
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        with path.open("rb", buffering=0) as fh:
            while True:
                n = fh.readinto(buffer)
                if not n:
                    break
                digest.update(view[:n])
                size += n
                if keep:
                    kept += view[:n]
        if keep:
            self._kept[rel] = bytes(kept)
        self._compare(rel, digest.hexdigest(), size)


def _read_manifest(bag: Bag, name: str) -> dict[str, str]:
    """A BagIt manifest: {path: checksum}; malformed lines and paths leading out of the bag are findings."""
    path = bag.root / name
    if not path.is_file():
        bag.report.find(name, "the bag's manifest is missing")
        return {}
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):  # not splitlines: U+2028
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        rel = _decode_path(parts[1]) if len(parts) == 2 else ""
        if not rel or rel.startswith(("/", "../")) or "/../" in f"/{rel}/" or "\\" in rel or "\0" in rel or \
                re.match(r"[A-Za-z]:", rel):
            bag.report.find(name, f"line {number} is not '<checksum> <path inside the bag>'", found=line)
            continue
        entries[rel] = parts[0].lower()
    return entries


def _read_info(bag: Bag) -> None:
    text = (bag.root / "bag-info.txt").read_text(encoding="utf-8") if (bag.root / "bag-info.txt").is_file() else ""
    key = ""
    for line in (line.rstrip("\r") for line in text.split("\n")):
        if line[:1].isspace() and key:
            bag.info[key] += " " + line.strip()
        elif ":" in line:
            key, value = (part.strip() for part in line.split(":", 1))
            bag.info[key] = value


def _walk(root: Path, top: str) -> Iterator[str]:
    """Every file and symbolic link under *top* (links to folders are named, never followed)."""
    for folder, dirs, files in os.walk(root / top):
        dirs.sort()
        for name in sorted(files) + sorted(d for d in dirs if (Path(folder) / d).is_symlink()):
            yield (Path(folder) / name).relative_to(root).as_posix()


def check_bag(bag: Bag) -> None:
    """Check 1: every listed file hashes right, nothing unlisted in data/, Payload-Oxum, the two manifests agree."""
    report = bag.report
    bag.payload = _read_manifest(bag, "manifest-sha256.txt")
    bag.tags = _read_manifest(bag, "tagmanifest-sha256.txt")
    _read_info(bag)
    sha512 = _read_manifest(bag, "manifest-sha512.txt") if (bag.root / "manifest-sha512.txt").is_file() else None
    if sha512 is not None and set(sha512) != set(bag.payload):
        report.find("manifest-sha512.txt", "it lists other files than manifest-sha256.txt",
                    sorted(set(bag.payload) ^ set(sha512))[:5], None)
    for rel in _walk(bag.root, "."):
        if (bag.root / rel).is_symlink():
            report.find(rel, "a symbolic link: a package holds files only, and a link may lead out of it", "a file",
                        f"a link to {os.readlink(bag.root / rel)}")
    for rel in sorted(bag.tags) + sorted(bag.payload):
        path = bag.root / rel
        if linked(bag.root, rel) or not path.is_file():
            report.find(rel, "listed in the bag's manifest, but not a file in the package", "a file",
                        "a symbolic link on its path" if linked(bag.root, rel) else "nothing")
        elif not bag.deferred(rel):
            try:
                bag.hash_file(rel)
            except OSError as exc:
                report.find(rel, f"cannot be read ({exc})")
    for rel in _walk(bag.root, "data"):
        if rel not in bag.payload and not (bag.root / rel).is_symlink():
            report.find(rel, "a payload file that manifest-sha256.txt does not list (added after the package "
                             "was made)")
    allowed = {"tagmanifest-sha256.txt", "tagmanifest-sha512.txt", SIG_NAME, TSR_NAME}
    for rel in _walk(bag.root, "."):
        if not rel.startswith("data/") and rel not in bag.tags and rel not in allowed and \
                not (bag.root / rel).is_symlink():
            report.warn(f"{rel} is not listed in tagmanifest-sha256.txt: it was not used")
    _check_oxum(bag)
    report.checked["payload_files"] = len(bag.payload)


def _check_oxum(bag: Bag) -> None:
    octets = sum((bag.root / rel).stat().st_size for rel in bag.payload
                 if not linked(bag.root, rel) and (bag.root / rel).is_file())
    found = f"{octets}.{len(bag.payload)}"
    if bag.info.get("Payload-Oxum") != found:
        bag.report.find("bag-info.txt", "Payload-Oxum (bytes.files of the payload) does not match the payload",
                        bag.info.get("Payload-Oxum"), found)


# -- keys and certificates ----------------------------------------------------------------------------------------


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint_of(public: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex: how every key is named."""
    return hashlib.sha256(_raw(public)).hexdigest()


@dataclass
class Cert:
    fingerprint: str
    role: str | None
    subject: str
    not_before: datetime
    not_after: datetime
    public: Ed25519PublicKey
    file: str


@dataclass
class Change:
    action: str  # revoked | retired
    at: datetime
    reason: str
    file: str


@dataclass
class Trust:
    """The agency root and what it vouches for, as read from trust/ (only what chains to the root counts)."""
    report: Report
    bag: Bag
    root: x509.Certificate | None = None
    root_public: Ed25519PublicKey | None = None
    root_fingerprint: str | None = None
    certs: dict[str, list[Cert]] = field(default_factory=dict)
    changes: dict[str, list[Change]] = field(default_factory=dict)

    def key(self, fp: str, at: datetime | None, roles: tuple[str, ...], file: str, what: str,
            subject: str | None = None) -> Ed25519PublicKey | None:
        """The key *fp* that signed *what* in *file* at *at* for *subject* (the station a manifest or anchor names;
        None: any); every reason it is not covered then is a finding. One certificate must cover all of it: the
        role, the subject and the time (a station key certified for station A is not a key of station B)."""
        if self.root is None:
            return _uncertified_key(self.bag, fp, file, what)
        certs = self.certs.get(fp, [])
        if not certs:
            self.report.find(file, f"{what}: key {fp} has no certificate from the agency root in trust/certs/",
                             "a certificate chaining to trust/root.pem", "none")
            return None
        fitting = [c for c in certs if c.role in roles and subject in (None, _subject_of(c) or subject)]
        if not fitting:
            self.report.find(file, f"{what}: key {fp} is not certified for this", " or ".join(
                f"{role} key {subject!r}" if subject is not None else f"{role} key" for role in roles),
                ", ".join(sorted(f"{c.role} key {c.subject!r}" for c in certs)))
        self._check_time(fp, at, fitting or certs, file, what)
        return certs[0].public

    def _check_time(self, fp: str, at: datetime | None, certs: list[Cert], file: str, what: str) -> None:
        """*at* inside a certificate of *certs* and the root's validity, and before any revocation/retirement."""
        if at is None:
            self.report.find(file, f"{what}: it names no signing time, so its certificate cannot be checked")
            return
        if not any(c.not_before <= at <= c.not_after for c in certs):
            spans = ", ".join(f"{c.not_before.isoformat()} to {c.not_after.isoformat()}" for c in certs)
            self.report.find(file, f"{what}: no certificate of key {fp} for this was valid when it signed", spans,
                             at.isoformat())
        # Not before: a root certifies keys registered before it existed (their first certificate says since when).
        assert self.root is not None
        if at > self.root.not_valid_after_utc:
            self.report.find(file, f"{what}: signed after the agency root expired",
                             f"by {self.root.not_valid_after_utc.isoformat()}", at.isoformat())
        self.check_changes(fp, at, file, what)

    def check_changes(self, fp: str, at: datetime, file: str, what: str, *, trusted_time: bool = False) -> None:
        """A finding for each revocation or retirement of *fp* at or before *at* (with *trusted_time*, *at* is an
        RFC 3161 time over the signature: the signing time written by the signer cannot hide it)."""
        said = "timestamped (RFC 3161)" if trusted_time else "signed"
        for change in self.changes.get(fp, []):
            if at >= change.at:
                self.report.find(file, f"{what}: {said} after the key was {change.action} ({change.file}: "
                                       f"{change.reason})", f"before {change.at.isoformat()}", at.isoformat())


def _subject_of(cert: Cert) -> str | None:
    """What a document signed with *cert*'s key names as its signer: a station key's station; None for the export
    key (whatever station an export anchor names, the export key speaks for the archive)."""
    return cert.subject if cert.role == "station" else None


def _uncertified_key(bag: Bag, fp: str, file: str, what: str) -> Ed25519PublicKey | None:
    """Without a root: the key as the package lists it (data/keys/<fp>.pem, trust/export-key.pem)."""
    for rel in (f"data/keys/{fp}.pem", "trust/export-key.pem"):
        data = bag.read(rel)
        if data is None:
            continue
        try:
            public = serialization.load_pem_public_key(data)
        except ValueError:
            continue
        if isinstance(public, Ed25519PublicKey) and fingerprint_of(public) == fp:
            return public
    bag.report.find(file, f"{what}: the package holds no public key {fp} (data/keys/{fp}.pem)")
    return None


def _extension(cert: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _cert_problem(cert: x509.Certificate, issuer: x509.Certificate, *, ca: bool) -> str | None:
    """Why *cert* is not a certificate *issuer* made for an Ed25519 key of this kind (None: it is)."""
    if not isinstance(cert.public_key(), Ed25519PublicKey):
        return f"its key is {type(cert.public_key()).__name__}, not Ed25519"
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        return f"it was not issued and signed by the agency root {issuer.subject.rfc4514_string()!r} ({exc!r})"
    constraints, usage = _extension(cert, x509.BasicConstraints), _extension(cert, x509.KeyUsage)
    if constraints is None or usage is None or constraints.ca != ca:
        return "its basicConstraints/keyUsage are not those of a " + ("root" if ca else "key certificate")
    if not (usage.key_cert_sign if ca else usage.digital_signature):
        return "its key usage does not allow " + ("signing certificates" if ca else "signatures")
    return None


def _cert(cert: x509.Certificate, file: str) -> Cert:
    public = cert.public_key()
    assert isinstance(public, Ed25519PublicKey)
    units = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return Cert(fingerprint_of(public), UNITS.get(str(units[0].value)) if units else None,
                str(names[0].value) if names else "", cert.not_valid_before_utc, cert.not_valid_after_utc, public,
                file)


def _load_root(trust: Trust, trusted: str | None) -> None:
    bag, report = trust.bag, trust.report
    named = bag.info.get("Root-Key-Fingerprint", "").lower()
    data = bag.read("trust/root.pem")
    if data is None:
        if named not in ("", "none"):
            report.find("trust/root.pem", "bag-info.txt names an agency root, but its certificate is not in the "
                                          "package", named, "nothing")
        report.warn("the archive has no agency root: no key in this package is certified; compare the export "
                    "key's fingerprint out of band (--trust EXPORT_KEY_FINGERPRINT)")
        return
    try:
        root = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        report.find("trust/root.pem", f"not a PEM X.509 certificate ({exc})")
        return
    problem = _cert_problem(root, root, ca=True)
    if problem:
        report.find("trust/root.pem", f"not a valid root certificate: {problem}")
        return
    facts = _cert(root, "trust/root.pem")
    trust.root, trust.root_public, trust.root_fingerprint = root, facts.public, facts.fingerprint
    if named != trust.root_fingerprint:
        report.find("bag-info.txt", "Root-Key-Fingerprint is not the key of trust/root.pem", trust.root_fingerprint,
                    named)
    if trusted is not None and trusted != trust.root_fingerprint:
        report.find("trust/root.pem", "the agency root is not the one you trust (--trust): the package was signed "
                                      "under another root", trusted, trust.root_fingerprint)


def _load_certs(trust: Trust) -> None:
    assert trust.root is not None
    for rel in sorted(r for r in trust.bag.tags if r.startswith("trust/certs/") and r.endswith(".pem")):
        try:
            certs = x509.load_pem_x509_certificates(trust.bag.read(rel) or b"")
        except ValueError as exc:
            trust.report.find(rel, f"not PEM X.509 certificates ({exc})")
            continue
        for cert in certs:
            problem = _cert_problem(cert, trust.root, ca=False)
            if problem:
                trust.report.find(rel, f"certificate {format(cert.serial_number, 'x')} does not count: {problem}")
                continue
            facts = _cert(cert, rel)
            if Path(rel).stem != facts.fingerprint:
                trust.report.find(rel, "the file is named for another key than the certificate's",
                                  Path(rel).stem, facts.fingerprint)
            trust.certs.setdefault(facts.fingerprint, []).append(facts)
            trust.report.count("certificates")


def _load_statement(trust: Trust, rel: str, action: str) -> None:
    """A revocation or retirement the root signed, as WORM storage holds it; counted only if it verifies."""
    assert trust.root_public is not None
    try:
        document = _loads(trust.bag.read(rel) or b"")
        body, signature = document["manifest"], document["signature"]
        trust.root_public.verify(base64.b64decode(signature["value"]), _signed_bytes(document))
        fp = str(body["fingerprint"])
        at = _instant(body.get("at"))
        if (body.get("format"), body.get("action"), fp, at is None) != ("evidence-key-statement/1", action,
                                                                        Path(rel).stem, False):
            raise ValueError(f"it is not a {action} statement about key {Path(rel).stem} with a time "
                             f"(format {body.get('format')!r}, action {body.get('action')!r}, key {fp})")
    except (ValueError, KeyError, TypeError, AttributeError, InvalidSignature) as exc:
        trust.report.find(rel, f"the key statement does not verify with the agency root key ({exc!r})")
        return
    assert at is not None
    trust.changes.setdefault(fp, []).append(Change(action, at, str(body.get("reason", "")), rel))
    trust.report.count("key_statements")


def load_trust(bag: Bag, report: Report, trusted: str | None) -> Trust:
    """Check 2 (root part): the root, the certificates that chain to it, the statements it signed."""
    trust = Trust(report, bag)
    _load_root(trust, trusted)
    report.checked["root_fingerprint"] = trust.root_fingerprint
    if trust.root is None:
        return trust
    _load_certs(trust)
    for rel in sorted(bag.tags):
        for folder, action in STATEMENT_FOLDERS.items():
            if rel.startswith(folder) and rel.endswith(".json"):
                _load_statement(trust, rel, action)
    return trust


def _verify(public: Ed25519PublicKey | None, signature: bytes, data: bytes) -> bool:
    if public is None:
        return False
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


# -- signatures: the package, manifests, anchors ------------------------------------------------------------------


def check_package_signature(bag: Bag, trust: Trust, exported_at: datetime | None, trusted: str | None) -> None:
    """Check 2: the export key signed the exact bytes of tagmanifest-sha256.txt."""
    report = bag.report
    fp = bag.info.get("Export-Key-Fingerprint", "").lower()
    report.checked["export_key_fingerprint"] = fp or None
    signature = (bag.root / SIG_NAME).read_bytes() if (bag.root / SIG_NAME).is_file() else None
    if signature is None:
        report.find(SIG_NAME, "the package is not signed: its signature file is missing", "a 64-byte Ed25519 "
                    "signature by the export key", "nothing")
        return
    if not _HEX64.fullmatch(fp):
        report.find("bag-info.txt", "Export-Key-Fingerprint does not name a key", "64 hex digits", fp)
        return
    if trust.root is None and trusted is not None and trusted != fp:
        report.find("bag-info.txt", "the export key is not the one you trust (--trust; this archive has no root)",
                    trusted, fp)
    public = trust.key(fp, exported_at, ("export",), SIG_NAME, "the package signature")
    verified = public is not None and _verify(public, signature, (bag.root / "tagmanifest-sha256.txt").read_bytes())
    if public is not None and not verified:
        report.find(SIG_NAME, "the package signature does not verify over tagmanifest-sha256.txt (the package "
                              "was changed after it was signed, or signed by another key)",
                    f"a signature by export key {fp}", signature.hex()[:32] + "…")
    report.checked["package_signature"] = verified


def _signed_record(bag: Bag, trust: Trust, rel: str, what: str, time_key: str,
                   roles: tuple[str, ...]) -> dict[str, Any] | None:
    """A signed document shipped as <stem>.json (as stored), .body.json (the exact bytes signed) and .sig: the
    signed body if its signature verifies with the certified key it names (findings say everything else)."""
    stem, report = rel[:-len(".json")], bag.report
    raw, body_bytes, sig = bag.read(rel), bag.read(f"{stem}.body.json"), bag.read(f"{stem}.sig")
    if raw is None or body_bytes is None or sig is None:
        report.find(rel, f"{what}: the .json, .body.json and .sig must all be in the package",
                    "all three", ", ".join(n for n, d in ((".json", raw), (".body.json", body_bytes), (".sig", sig))
                                           if d is not None) or "none")
        return None
    try:
        document, body = _loads(raw), _loads(body_bytes)
        fp = str(document["signature"]["key_fingerprint"])
        stored_value = base64.b64decode(document["signature"]["value"])
    except (ValueError, KeyError, TypeError) as exc:
        report.find(rel, f"{what}: cannot be read ({exc!r})")
        return None
    if not isinstance(body, dict):
        report.find(f"{stem}.body.json", f"{what}: the signed body is not a JSON object")
        return None
    public = trust.key(fp, _instant(body.get(time_key)), roles, rel, what, subject=str(body.get("station")))
    if public is None:
        return None
    if not _verify(public, sig, body_bytes):
        report.find(f"{stem}.body.json", f"{what}: the signature ({stem}.sig) does not verify with key {fp}: the "
                                         "signed bytes were changed", "a valid Ed25519 signature", "invalid")
        return None
    if stored_value != sig:
        report.find(rel, f"{what}: the signature in the readable document is not the one in {stem}.sig",
                    sig.hex()[:32] + "…", stored_value.hex()[:32] + "…")
    diff = difference(body, document.get("manifest"))
    if diff:
        report.find(rel, f"{what}: the readable document differs from the signed body at {diff[0]}", diff[1],
                    diff[2])
    return body


def check_manifests(bag: Bag, trust: Trust) -> dict[str, dict[str, Any]]:
    """Check 3: each manifest signed by a certified station key; returns {manifest .json path: signed body}."""
    bodies: dict[str, dict[str, Any]] = {}
    for rel in sorted(bag.payload):
        if not rel.startswith("data/manifests/") or not rel.endswith(".json") or rel.endswith(".body.json"):
            continue
        body = _signed_record(bag, trust, rel, "signed manifest", "signed_at", ("station",))
        bag.report.count("manifests")
        if body is None:
            continue
        bodies[rel] = body
        name = Path(rel).name
        revision = f"{body.get('sha256')}.r{(body.get('stamp') or {}).get('revision')}.json"
        if body.get("format") != "evidence-manifest/1" or name != revision:
            bag.report.find(rel, "the signed body is not this file's manifest", revision, name)
    return bodies


def check_originals(bag: Bag, bodies: dict[str, dict[str, Any]]) -> None:
    """Check 3: every original's SHA-256 is one a signed manifest names (never the readable copy's)."""
    signed = {str(body.get("sha256")): rel for rel, body in bodies.items()}
    found = {bag.computed.get(rel) for rel in bag.payload if rel.startswith(ORIGINALS)}
    for rel in sorted(r for r in bag.payload if r.startswith(ORIGINALS)):
        if rel in bag.computed and bag.computed[rel] not in signed:
            bag.report.find(rel, "no signed manifest names this file's SHA-256 (the original was changed, or "
                                 "nothing vouches for it)", "a SHA-256 named by a signed manifest",
                            bag.computed[rel])
    for sha, rel in sorted(signed.items()):
        if sha not in found:
            bag.report.find(rel, "the original this signed manifest is for is not in the package", sha, None)


@dataclass
class Anchor:
    rel: str
    body: dict[str, Any]


def check_anchors(bag: Bag, trust: Trust) -> tuple[dict[str, Anchor], Anchor | None]:
    """Check 5: every anchor signed by a certified key; the export anchor is the one export-anchor.json names."""
    report, anchors = bag.report, {}
    for rel in sorted(bag.payload):
        if rel.startswith("data/custody/anchors/") and rel.endswith(".json") and not rel.endswith(".body.json"):
            body = _signed_record(bag, trust, rel, "chain anchor", "written_at", ("station",))
            report.count("anchors")
            if body is not None and body.get("format") == "evidence-custody-anchor/1":
                anchors[Path(rel).name] = Anchor(rel, body)
            elif body is not None:
                report.find(rel, "not a custody anchor", "evidence-custody-anchor/1", body.get("format"))
    try:
        where = _loads(bag.read("data/custody/export-anchor.json") or b"null")
    except ValueError:
        where = None
    if not isinstance(where, dict):
        report.find("data/custody/export-anchor.json", "missing or not an object: the export anchor is unknown")
        return anchors, None
    name = str(where.get("record_name", ""))
    export = anchors.get(name.rsplit("/", 1)[-1])
    if export is None:
        report.find("data/custody/export-anchor.json", "the export anchor it names is not a valid signed anchor in "
                                                       "data/custody/anchors/", name, sorted(anchors))
        return anchors, None
    _check_export_anchor_file(bag, where, export)
    if bag.info.get("Chain-Anchor") != name:
        report.find("bag-info.txt", "Chain-Anchor is not the export anchor", name, bag.info.get("Chain-Anchor"))
    _check_anchor_links(bag, anchors)
    return anchors, export


def _check_export_anchor_file(bag: Bag, where: dict[str, Any], export: Anchor) -> None:
    """export-anchor.json (where WORM storage holds the export anchor) agrees with the signed anchor shipped."""
    for key, signed in (("last_event_id", export.body.get("last_event_id")),
                        ("last_hash", export.body.get("last_hash")), ("file", export.rel),
                        ("sha256", bag.computed.get(export.rel))):
        if key in where and not _same(signed, where.get(key)):
            bag.report.find("data/custody/export-anchor.json", f"{key} differs from the signed export anchor",
                            signed, where.get(key))


def _check_anchor_links(bag: Bag, anchors: dict[str, Anchor]) -> None:
    """Each anchor names the one written before it (and the SHA-256 of its stored bytes): where both are here,
    they must agree."""
    for anchor in anchors.values():
        previous = anchor.body.get("previous") or {}
        earlier = anchors.get(str(previous.get("name", "")).rsplit("/", 1)[-1])
        if earlier is not None and bag.computed.get(earlier.rel) != previous.get("sha256"):
            bag.report.find(anchor.rel, f"the anchor before it ({earlier.rel}) is not the one it signed",
                            previous.get("sha256"), bag.computed.get(earlier.rel))


# -- the custody chain --------------------------------------------------------------------------------------------


def link_hash(version: int, prev_hash: str, body: bytes) -> str:
    """catalog.event_hashes.link_hash: v1 SHA-256(prev + "\\n" + body); v2 SHA-256(prev + SHA-256(body)), hex."""
    if version == 1:
        return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()
    return digest_link(prev_hash, hashlib.sha256(body).hexdigest())


def digest_link(prev_hash: str, body_sha256: str) -> str:
    return hashlib.sha256((prev_hash + body_sha256).encode("ascii")).hexdigest()


def _event_line(report: Report, number: int, line: bytes) -> tuple[int, int, str, str] | None:
    """One events.jsonl line: its body parses to its readable fields and its hash recomputes.
    Returns (id, chain_version, prev_hash, hash) as the line states them."""
    where = f"line {number}"
    try:
        event = _loads(line)
        where = f"line {number} (event {event['id']}, {event.get('kind')})"
        body = event["body"].encode("utf-8")
        version, prev_hash, stated = event["chain_version"], str(event["prev_hash"]), str(event["hash"])
        diff = difference(_loads(body), {key: event.get(key) for key in EVENT_FIELDS})
        event_id = int(event["id"])
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        report.find(EVENTS, f"{where}: cannot be read ({exc!r})")
        return None
    if diff:
        report.find(EVENTS, f"{where}: the readable {diff[0]} is not what the hashed body says", diff[1], diff[2])
    if type(version) is not int or version not in (1, 2):  # 1.0 or true would compare equal to 1
        report.find(EVENTS, f"{where}: unknown chain version", "1 or 2", version)
    elif link_hash(version, prev_hash, body) != stated:
        report.find(EVENTS, f"{where}: its hash is not the chain version {version} hash of its prev_hash and body "
                            "(the event was changed)", link_hash(version, prev_hash, body), stated)
    return event_id, version, prev_hash, stated


def read_events(bag: Bag) -> dict[int, tuple[int, str, str]]:
    """Check 4 (events.jsonl): {id: (chain_version, prev_hash, hash)}, ids increasing."""
    events: dict[int, tuple[int, str, str]] = {}
    last = 0
    for number, line in bag.lines(EVENTS):
        parsed = _event_line(bag.report, number, line)
        if parsed is None:
            continue
        event_id, version, prev_hash, stated = parsed
        if event_id <= last:
            bag.report.find(EVENTS, f"line {number}: event ids must increase", f"> {last}", event_id)
        events[event_id], last = (version, prev_hash, stated), max(last, event_id)
    bag.report.checked["events"] = len(events)
    return events


@dataclass
class Walk:
    """Where the chain walk stands."""
    prev_hash: str | None = None
    last_id: int = 0
    version: int = 1
    first_id: int | None = None
    seen: set[int] = field(default_factory=set)
    at_ids: dict[int, str] = field(default_factory=dict)  # hashes of the rows anchors name


def _row_problems(row: dict[str, Any], events: dict[int, tuple[int, str, str]], walk: Walk) -> list[tuple[str,
                                                                                                          Any, Any]]:
    """(what, expected, found) for one chain.jsonl row: its content; the link is checked by the caller."""
    row_id, version = row.get("id"), row.get("chain_version")
    if row.get("full") is True and isinstance(row_id, int):
        walk.seen.add(row_id)
        if row_id not in events:
            return [("a full row whose event is not in events.jsonl (it was removed)", "the event", None)]
        if (version, row.get("prev_hash"), row.get("hash")) != events[row_id]:
            return [("the row differs from the event in events.jsonl", events[row_id],
                     (version, row.get("prev_hash"), row.get("hash")))]
    elif version == 2:
        body_sha = row.get("body_sha256")
        if not (isinstance(body_sha, str) and _HEX64.fullmatch(body_sha)):
            return [("a digest-only row needs body_sha256", "64 hex digits", body_sha)]
        if digest_link(str(row.get("prev_hash")), body_sha) != row.get("hash"):
            return [("its hash is not SHA-256(prev_hash + body_sha256)", digest_link(str(row.get("prev_hash")),
                                                                                     body_sha), row.get("hash"))]
    elif version == 1 and row.get("body_withheld") is True:
        return []
    else:
        return [("not a full, digest-only (version 2) or withheld (version 1) row", None, row)]
    return []


def _link(walk: Walk, row: dict[str, Any], number: int, report: Report) -> None:
    row_id, version = row.get("id"), row.get("chain_version")
    where = f"line {number} (event {row_id})"
    if not isinstance(row_id, int) or row_id <= walk.last_id:
        report.find(CHAIN, f"{where}: ids must increase along the chain", f"> {walk.last_id}", row_id)
        return
    if walk.prev_hash is not None and row.get("prev_hash") != walk.prev_hash:
        report.find(CHAIN, f"{where}: its prev_hash is not the hash of the row before it (an event was removed, "
                           "added or moved)", walk.prev_hash, row.get("prev_hash"))
    if walk.first_id is None:
        walk.first_id = row_id
        if row_id == 1 and row.get("prev_hash") != GENESIS:
            report.find(CHAIN, f"{where}: the first event follows 64 zeros", GENESIS, row.get("prev_hash"))
    if type(version) is not int or version not in (1, 2):  # 1.0 or true would pass for 1 below
        report.find(CHAIN, f"{where}: chain_version must be the integer 1 or 2", "1 or 2", version)
        version = walk.version
    if version < walk.version:
        report.find(CHAIN, f"{where}: chain versions never go down (an event rewritten with the older formula)",
                    f">= {walk.version}", version)
    if walk.last_id and row_id > walk.last_id + 1:
        report.count("id_gaps")
    walk.last_id, walk.prev_hash = row_id, str(row.get("hash"))
    walk.version = max(walk.version, version)


def walk_chain(bag: Bag, events: dict[int, tuple[int, str, str]], anchor_ids: set[int]) -> Walk:
    """Check 4 (chain.jsonl): streamed row by row, each linked to the one before it."""
    walk, report = Walk(), bag.report
    for number, line in bag.lines(CHAIN):
        try:
            row = _loads(line)
            _link(walk, row, number, report)
            problems = _row_problems(row, events, walk)
        except (ValueError, TypeError, AttributeError) as exc:
            report.find(CHAIN, f"line {number}: cannot be read ({exc!r})")
            continue
        for what, expected, found in problems:
            report.find(CHAIN, f"line {number} (event {row.get('id')}): {what}", expected, found)
        kind = "full_rows" if row.get("full") is True else f"v{row.get('chain_version')}_digest_rows" \
            if row.get("chain_version") == 2 else "v1_hash_only_rows"
        report.count(kind)
        report.count("chain_rows")
        if row.get("id") in anchor_ids:
            walk.at_ids[int(row["id"])] = str(row.get("hash"))
    return walk


def check_chain(bag: Bag, anchors: dict[str, Anchor], export: Anchor | None,
                bodies: dict[str, dict[str, Any]]) -> None:
    """Check 4: events, chain rows, the anchors' hashes, and the events each signed manifest lists."""
    report = bag.report
    events = read_events(bag)
    ids = {a.body.get("last_event_id"): a for a in anchors.values()}
    walk = walk_chain(bag, events, {i for i in ids if isinstance(i, int)})
    report.checked["chain_from"], report.checked["chain_to"] = walk.first_id, walk.last_id or None
    for event_id in sorted(set(events) - walk.seen):
        report.find(EVENTS, f"event {event_id} is not a full row of chain.jsonl" + (
            " (it is after the export anchor: not covered by it)" if event_id > walk.last_id else ""))
    for event_id, anchor in sorted((i, a) for i, a in ids.items() if i not in walk.at_ids and a is not export
                                   and isinstance(i, int)):
        report.find(anchor.rel, f"the chain does not reach this signed anchor's event {event_id}, so it cannot be "
                                "compared with it", f"an event from {walk.first_id} to {walk.last_id}", event_id)
    for event_id, anchor in sorted((i, a) for i, a in ids.items() if i in walk.at_ids):
        if walk.at_ids[event_id] != anchor.body.get("last_hash"):
            report.find(CHAIN, f"event {event_id}: its hash is not the one the signed anchor {anchor.rel} names "
                               "(history up to it was rewritten)", anchor.body.get("last_hash"), walk.at_ids[event_id])
    if export is not None and (walk.last_id, walk.prev_hash) != (export.body.get("last_event_id"),
                                                                 export.body.get("last_hash")):
        report.find(CHAIN, "the chain does not end at the export anchor's event and hash",
                    f"event {export.body.get('last_event_id')} {export.body.get('last_hash')}",
                    f"event {walk.last_id} {walk.prev_hash}")
    if report.checked.get("v1_hash_only_rows"):
        report.warn(f"{report.checked['v1_hash_only_rows']} events before chain v2 are linked by hash only: their "
                    "hash covers their whole body, which belongs to other recordings and is not in the package")
    if report.checked.get("id_gaps"):
        report.warn(f"chain.jsonl skips event ids {report.checked['id_gaps']} time(s); the prev_hash links show "
                    "no event is missing (PostgreSQL skips ids after a rolled-back transaction)")
    _check_custody_lists(report, events, bodies)


def _check_custody_lists(report: Report, events: dict[int, tuple[int, str, str]],
                         bodies: dict[str, dict[str, Any]]) -> None:
    for rel, body in sorted(bodies.items()):
        for listed in body.get("custody") or []:
            if not isinstance(listed, dict):
                listed = {"id": listed}
            listed_id = listed.get("id")
            event = events.get(listed_id) if isinstance(listed_id, int) else None
            if event is None or event[2] != listed.get("hash"):
                report.find(rel, f"custody event {listed.get('id')} ({listed.get('kind')}), listed when the "
                                 "manifest was signed, is not in events.jsonl with that hash", listed.get("hash"),
                            event[2] if event else None)


# -- RFC 3161 timestamps ------------------------------------------------------------------------------------------


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at *pos*."""
    tag, length, pos = data[pos], data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        length, pos = int.from_bytes(data[pos:pos + count], "big"), pos + count
    if pos + length > len(data):
        raise ValueError("a DER element runs past the end of the token")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found, pos = [], start
    while pos < end:
        element = _tlv(data, pos)
        found.append(element)
        pos = element[2]
    return found


def _oid(data: bytes) -> str:
    numbers, value = [], 0
    for byte in data:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            numbers.append(value)
            value = 0
    first = min(numbers[0] // 40, 2)
    return ".".join(str(n) for n in [first, numbers[0] - 40 * first, *numbers[1:]])


@dataclass(frozen=True)
class Token:
    status: int
    algorithm: str  # OID of the message imprint's hash
    imprint: bytes
    gen_time: str  # GeneralizedTime as written, e.g. 20261201103000Z
    signer: str | None  # "sha1:<hex>" or "sha256:<hex>" of the TSA's signing certificate (ESS signing-certificate)


ESS_V1, ESS_V2 = "1.2.840.113549.1.9.16.2.12", "1.2.840.113549.1.9.16.2.47"
_ESS_HASHES = {"1.3.14.3.2.26": "sha1", **HASHES}


def parse_timestamp(data: bytes) -> Token:
    """A TimeStampResp or a bare token, by a minimal DER walk (TimeStampResp > ContentInfo > SignedData >
    encapContentInfo > TSTInfo, and the signer's ESS signing-certificate attribute, which RFC 3161 2.4.1 requires:
    it names the TSA certificate by its hash whether or not the token carries the certificate)."""
    outer = _children(data, *_tlv(data, 0)[1:])
    status, token = 0, outer
    if outer[0][0] == 0x30:  # TimeStampResp: PKIStatusInfo, then the token
        status = int.from_bytes(data[slice(*_children(data, *outer[0][1:])[0][1:])], "big")
        if len(outer) < 2:
            raise ValueError(f"the response holds no token (status {status})")
        token = _children(data, *outer[1][1:])
    signed_data = _children(data, *_children(data, *token[1][1:])[0][1:])
    encapsulated = _children(data, *signed_data[2][1:])
    octets = _children(data, *encapsulated[1][1:])[0]
    tst = _children(data, *_tlv(data, octets[1])[1:])
    imprint = _children(data, *tst[2][1:])
    algorithm = _oid(data[slice(*_children(data, *imprint[0][1:])[0][1:])])
    return Token(status, algorithm, data[slice(*imprint[1][1:])], data[slice(*tst[4][1:])].decode("ascii"),
                 _ess_signer(data, signed_data[-1]))


def _ess_signer(data: bytes, signer_infos: tuple[int, int, int]) -> str | None:
    """"<hash>:<hex>" of the signing certificate the first SignerInfo's signed attributes name; None: none."""
    infos = _children(data, *signer_infos[1:])
    attributes = next((a for a in _children(data, *infos[0][1:]) if a[0] == 0xA0), None) if infos else None
    for attribute in _children(data, *attributes[1:]) if attributes else []:
        kind, values = _children(data, *attribute[1:])[:2]
        oid = _oid(data[kind[1]:kind[2]])
        if oid not in (ESS_V1, ESS_V2):
            continue
        signing_certificate = _children(data, *values[1:])[0]
        first_id = _children(data, *_children(data, *_children(data, *signing_certificate[1:])[0][1:])[0][1:])
        algorithm = "sha1" if oid == ESS_V1 else "sha256"  # ESSCertIDv2: hashAlgorithm DEFAULT sha256
        if oid == ESS_V2 and first_id[0][0] == 0x30:
            algorithm = _ESS_HASHES.get(_oid(data[slice(*_children(data, *first_id[0][1:])[0][1:])]), "unknown")
            first_id = first_id[1:]
        return f"{algorithm}:{data[first_id[0][1]:first_id[0][2]].hex()}"
    return None


def _gen_time(text: str) -> datetime | None:
    """A token's genTime (YYYYMMDDHHMMSS[.fraction]Z) as UTC; None if it is not one."""
    match = re.fullmatch(r"(\d{14})(?:[.,](\d{1,6})\d*)?Z", text)
    if match is None:
        return None
    when = datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return when.replace(microsecond=int((match.group(2) or "0").ljust(6, "0")))


def _stamped_file(bag: Bag, rel: str, export: Anchor | None) -> str | None:
    stamped = rel[:-len(".tsr")]
    if (bag.root / stamped).is_file():
        return stamped
    if rel.startswith("data/custody/") and export is not None:
        return export.rel[:-len(".json")] + ".body.json"
    return None


def _ts_verify(openssl: str, token: Path, digest: str, *trust: str) -> tuple[bool, str]:
    done = subprocess.run([openssl, "ts", "-verify", "-digest", digest, "-in", str(token), *trust],
                          capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    return done.returncode == 0 and "Verification: OK" in output, " ".join(output.split())[-300:]


def _token_signer(openssl: str, token: Path, folder: Path) -> tuple[Path, str]:
    """The certificates inside the token (PEM, in *folder*) and the first one's subject."""
    der, pem = folder / "token.der", folder / "certs.pem"
    subprocess.run([openssl, "ts", "-reply", "-in", str(token), "-token_out", "-out", str(der)],
                   capture_output=True, check=False)
    done = subprocess.run([openssl, "pkcs7", "-inform", "DER", "-in", str(der), "-print_certs", "-out", str(pem)],
                          capture_output=True, text=True, check=False)
    subject = next((line[len("subject="):].strip() for line in pem.read_text(errors="replace").splitlines()
                    if line.startswith("subject=")), "an unnamed signer") if done.returncode == 0 else "?"
    return pem, subject


def _openssl_verify(bag: Bag, rel: str, digest: str, tsa_ca: Path | None) -> None:
    """The token's signature, by `openssl ts -verify`: with --tsa-ca (the examiner's copy of the TSA's CA
    certificate) strictly; else with trust/tsa-ca.pem if shipped, else this machine's trust store, else (a TSA this
    machine does not know) against the certificate the token carries: the signature is then checked, the TSA's
    identity is left to the reader (a warning)."""
    report, token = bag.report, bag.root / rel
    openssl = shutil.which("openssl")
    if openssl is None:
        report.warn("timestamp signature not checked (no openssl): only the message imprints were compared")
        return
    if tsa_ca is not None:
        ok, output = _ts_verify(openssl, token, digest, "-CAfile", str(tsa_ca))
    elif bag.listed("trust/tsa-ca.pem") and (bag.root / "trust" / "tsa-ca.pem").is_file():
        report.warn("the timestamp authority's CA certificate came with the package (trust/tsa-ca.pem): compare it "
                    "with the TSA's published one, or give yours with --tsa-ca")
        ok, output = _ts_verify(openssl, token, digest, "-CAfile", str(bag.root / "trust" / "tsa-ca.pem"))
    else:
        ok, output = _ts_verify(openssl, token, digest)
        if not ok and "unable to get local issuer certificate" in output:
            with tempfile.TemporaryDirectory() as folder:
                certs, signer = _token_signer(openssl, token, Path(folder))
                ok, output = _ts_verify(openssl, token, digest, "-CAfile", str(certs), "-partial_chain")
            if ok:
                report.warn(f"{rel}: the timestamp's signature verifies with the certificate of {signer!r} it "
                            "carries, but that TSA is not one this machine trusts: give its CA with --tsa-ca, or "
                            "compare it out of band")
    if ok:
        report.count("timestamp_signatures")
    else:
        report.find(rel, "the timestamp token's signature does not verify (openssl ts -verify"
                    + (f" -CAfile {tsa_ca})" if tsa_ca else ")"), "Verification: OK", output)


def _named_signers(bag: Bag) -> set[str]:
    """The TSA signing certificates the signed export-anchor.json names (covered by the package signature)."""
    try:
        where = _loads(bag.read("data/custody/export-anchor.json") or b"null")
    except ValueError:
        return set()
    named = where.get("timestamp_signers") if isinstance(where, dict) else None
    return {str(n) for n in named} if isinstance(named, list) else set()


def _signer_key(bag: Bag, stamped: str) -> str | None:
    """The key that signed what *stamped* holds: an anchor's (<stem>.json), or the export key (the package)."""
    if stamped == "tagmanifest-sha256.txt":  # the package token stamps the tag manifest the export key signed
        return bag.info.get("Export-Key-Fingerprint", "").lower() or None
    try:
        document = _loads(bag.read(stamped[:-len(".body.json")] + ".json") or b"null")
        return str(document["signature"]["key_fingerprint"])
    except (ValueError, KeyError, TypeError):
        return None


def _check_token_facts(bag: Bag, trust: Trust, rel: str, stamped: str, token: Token, named: set[str]) -> None:
    """The TSA is one the signed package names, and no key was revoked before the token's (trusted) time."""
    report = bag.report
    if token.signer not in named:
        report.find(rel, "the timestamp is by a TSA the signed package does not name (export-anchor.json "
                         "timestamp_signers): it was added or swapped after export", sorted(named) or "no TSA",
                    token.signer)
    when, fp = _gen_time(token.gen_time), _signer_key(bag, stamped)
    if when is None:
        report.find(rel, "the timestamp's time is not a GeneralizedTime", "YYYYMMDDHHMMSSZ", token.gen_time)
    elif fp is not None and trust.root is not None:
        trust.check_changes(fp, when, rel, f"what {stamped} holds", trusted_time=True)


def check_timestamps(bag: Bag, trust: Trust, export: Anchor | None, tsa_ca: Path | None) -> None:
    """Check 6: each token's message imprint is the hash of the bytes it stamps; its TSA is the one the signed
    package names; its signature via openssl; the key that signed the stamped bytes not revoked by then."""
    report, named = bag.report, _named_signers(bag)
    tokens = sorted(r for r in bag.payload if r.endswith(".tsr"))
    tokens += [TSR_NAME] if (bag.root / TSR_NAME).is_file() else []
    if named and TSR_NAME not in tokens:
        report.warn(f"the package names a timestamp authority (its export anchor is timestamped) but has no "
                    f"{TSR_NAME}: it was removed after export, or the TSA did not answer at that moment (the export's "
                    "result says which); the package's own time is then the archive's clock")
    for rel in tokens:
        stamped = _stamped_file(bag, rel, export)
        try:
            token = parse_timestamp((bag.root / rel).read_bytes())
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            report.find(rel, f"not an RFC 3161 timestamp token ({exc!r})")
            continue
        report.count("timestamps")
        if stamped is None or token.status not in (0, 1) or token.algorithm not in HASHES:
            report.find(rel, "a timestamp without a granted status, a known hash or a file it stamps",
                        "status 0/1, SHA-2, a stamped file", f"status {token.status}, {token.algorithm}, {stamped}")
            continue
        digest = hashlib.new(HASHES[token.algorithm], (bag.root / stamped).read_bytes()).hexdigest()
        if token.imprint.hex() != digest:
            report.find(rel, f"the timestamp is not over {stamped} (another file's token?)", digest,
                        token.imprint.hex())
            continue
        report.checked.setdefault("timestamp_times", {})[rel] = token.gen_time
        _check_token_facts(bag, trust, rel, stamped, token, named)
        _openssl_verify(bag, rel, digest, tsa_ca)


# -- readable files: items.json, report.html ----------------------------------------------------------------------


def _revision(body: dict[str, Any]) -> int:
    stamp = body.get("stamp")
    revision = stamp.get("revision") if isinstance(stamp, dict) else None
    return revision if type(revision) is int else 0


def _newest(bag: Bag, item: dict[str, Any], bodies: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The verified manifest with the highest signed revision among all shipped for the item's SHA-256 (never the
    readable list's numbers, which the signature does not cover); a listed revision that is not the signed one is
    a finding."""
    shas = set()
    for listed in item.get("manifests") or []:
        body = bodies.get(str(listed.get("signed"))) if isinstance(listed, dict) else None
        if body is None:
            continue
        shas.add(body.get("sha256"))
        if listed.get("revision") != _revision(body):
            bag.report.find("data/items.json", f"item {item.get('recording_id')}: {listed.get('signed')} is listed "
                                               "as another revision than it signs", _revision(body),
                            listed.get("revision"))
    mine = [(rel, body) for rel, body in bodies.items() if body.get("sha256") in (shas or {item.get("sha256")})]
    return max(mine, key=lambda found: _revision(found[1])) if mine else None


def check_items(bag: Bag, items: Any, bodies: dict[str, dict[str, Any]], root_fingerprint: str | None) -> None:
    """Check 7: each item's readable facts are those of its newest signed manifest; its file hashes to it."""
    report, rel = bag.report, "data/items.json"
    if not isinstance(items, dict) or items.get("format") != "evidence-package/2":
        report.find(rel, "not an evidence-package/2 items.json", "evidence-package/2",
                    items.get("format") if isinstance(items, dict) else items)
        return
    for key, verified in (("root_key_fingerprint", root_fingerprint),
                          ("export_key_fingerprint", bag.info.get("Export-Key-Fingerprint")),
                          ("chain_anchor", bag.info.get("Chain-Anchor"))):
        if key in items and items[key] != verified:
            report.find(rel, f"{key} is not the package's", verified, items[key])
    listed: dict[str, int] = {}
    for item in items.get("items") or []:
        report.count("items")
        if not isinstance(item, dict):
            report.find(rel, "an item that is not an object", "an object", item)
            continue
        listed[str(item.get("sha256"))] = listed.get(str(item.get("sha256")), 0) + 1
        _check_item(bag, item, bodies)
    for sha in sorted({str(b.get("sha256")) for b in bodies.values()}):
        if listed.get(sha, 0) != 1:
            report.find(rel, "a signed item of the package is not listed once in items.json", 1, listed.get(sha, 0))


def _check_item(bag: Bag, item: dict[str, Any], bodies: dict[str, dict[str, Any]]) -> None:
    """One item: every fact a manifest carries present and the signed one; its file hashes to the signed SHA-256;
    an item no verified manifest vouches for must be a disposed one (no file, no manifests)."""
    rel, who = "data/items.json", f"item {item.get('recording_id')}"
    newest = _newest(bag, item, bodies)
    if newest is None:
        if item.get("state") != "disposed" or item.get("file") or item.get("manifests"):
            bag.report.find(rel, f"{who}: no verified manifest vouches for it (only a disposed item has none)",
                            "a signed manifest", item.get("sha256"))
        return
    manifest, body = newest
    for readable_path, signed_path in ITEM_FACTS:
        has, value = _dig(item, readable_path)
        signed = _dig(body, signed_path)[1]
        if not has:
            bag.report.find(rel, f"{who}: {readable_path} is missing (the signed {signed_path} of {manifest})", signed,
                            None)
        elif not _same(signed, value):
            bag.report.find(rel, f"{who}: {readable_path} is not the signed {signed_path} of {manifest}", signed,
                            value)
    file = str(item.get("file") or "")
    if bag.computed.get(file) != body.get("sha256"):
        bag.report.find(rel, f"{who}: its file {file or '(none)'} does not hash to the signed SHA-256 of {manifest}",
                        body.get("sha256"), bag.computed.get(file))


_UTC_SHOWN = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) UTC(?!\+|-)")
_LOCAL_SHOWN = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) \(UTC([+-])(\d{2}):(\d{2})\)")
#: How the report words a place's source and a time's (catalog.report_values): "<words> (<source>)".
PLACE_WORDS = {
    "sidecar": ("GPS 轨迹文件", "GPS sidecar file"), "exif": ("照片 EXIF GPS", "photo EXIF GPS"),
    "container": ("媒体文件内的 GPS 标记", "GPS tag in the media file"),
    "station": ("采集站默认位置（非现场定位）", "station's default place (not measured at the scene)"),
    "manual": ("人工录入", "entered by hand"),
}
TIME_WORDS = {
    "sidecar": ("GPS 轨迹文件中的卫星时间", "satellite time in the GPS sidecar"),
    "device_time": ("设备时钟（轨迹文件记录）", "device clock (as the sidecar records it)"),
    "container": ("媒体文件内的创建时间", "creation time in the media file"),
    "exif": ("照片 EXIF 拍摄时间", "photo EXIF capture time"), "manual": ("人工录入", "entered by hand"),
    "filename": ("文件名中的时间", "time in the file name"), "file_mtime": ("文件修改时间", "file modification time"),
    "ingest_time": ("入库时间（设备未提供时间）", "ingest time (the device gave none)"),
    "document date": ("文书日期", "the document's date"),
}
#: What report.html is made of (catalog/templates/court_report.html): anything else could run, load, embed or
#: hide, so that a reader sees other facts than the cells say; it is a finding, never interpreted.
REPORT_TAGS = frozenset({"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "div", "ul", "li",
                         "table", "tr", "th", "td", "br", "a"})
REPORT_ATTRIBUTES = frozenset({"class", "id", "data-field", "lang", "charset", "href"})
REPORT_CLASSES = frozenset({"mono", "ok", "bad", "note"})
#: SHA-256 of the report's stylesheet (its <style> text, whitespace runs as one space), as each release writes it:
#: a stylesheet can hide a cell or draw other text over it, so only the archive's own is accepted.
REPORT_STYLES = frozenset({"5c53825e95f46b00e0c16309da244fb35a66268b6859f99f92c56bf2fe317f84"})
#: An item's fact table, row by row (data-field of each value cell), as catalog.court_report writes it; rows in
#: OPTIONAL_ROWS appear only when there is something to say. A disposed item's table is DISPOSED_ROWS.
ITEM_ROWS = ("file", "original_name", "media_kind", "sha256", "size", "case_number", "purpose", "collector",
             "important", "captured_start", "captured_end", "time_source", "raw_device_time", "zone_assumed",
             "clock_offset", "place", "acquired", "station", "device", "sightings", "integrity", "retain_until",
             "retention_rule", "legal_hold", "hold_reasons", "retention_after", "key_fingerprint")
OPTIONAL_ROWS = frozenset({"hold_reasons", "retention_after"})
DISPOSED_ROWS = ("sha256", "status", "disposed_at")
#: Each row's label (zh, en), as catalog.report_values words it: a fact under another label is another fact.
ITEM_LABELS = {
    "file": ("文件", "File"), "original_name": ("原始文件名", "Original name"), "media_kind": ("类型", "Kind"),
    "sha256": ("SHA-256", "SHA-256"), "size": ("大小（字节）", "Size (bytes)"),
    "case_number": ("案件编号", "Case number"),
    "purpose": ("证明对象", "Purpose"), "collector": ("采集人", "Collector"), "important": ("重要标记", "Important"),
    "captured_start": ("采集开始时间", "Capture start"), "captured_end": ("采集结束时间", "Capture end"),
    "time_source": ("时间来源", "Time source"), "raw_device_time": ("设备原始时间", "Raw device time"),
    "zone_assumed": ("假定时区", "Zone assumed"), "clock_offset": ("设备时钟偏差（秒）", "Device clock offset (s)"),
    "place": ("采集地点", "Place"), "acquired": ("入库（复制）时间", "Acquired (copied)"),
    "station": ("采集站", "Station"), "device": ("采集设备", "Device"), "sightings": ("设备上的位置", "Seen on device"),
    "integrity": ("完整性", "Integrity"), "retain_until": ("保存至", "Retained until"),
    "retention_rule": ("保存规则", "Rule"), "legal_hold": ("诉讼保全", "Legal hold"),
    "hold_reasons": ("保全理由", "Hold reasons"),
    "retention_after": ("签名之后的变更（保管链事件）", "Changes after signing (custody events)"),
    "key_fingerprint": ("签名密钥指纹", "Signed by key"), "status": ("状态", "Status"),
    "disposed_at": ("销毁时间", "Disposed at"),
}
_YES, _NO = frozenset({"是", "yes", "Yes"}), frozenset({"否", "no", "No"})


@dataclass
class _Cell:
    tag: str  # th | td
    field: str | None  # data-field
    text: str = ""


class _ReportPage(HTMLParser):
    """report.html as tables of rows of cells (the text of each th/td; a <br> is a line break), its stylesheets
    and language, and everything in it that the archive's report never holds (`problems`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[_Cell]]] = []
        self.styles: list[str] = []
        self.lang = ""
        self.problems: list[str] = []
        self._cell: _Cell | None = None
        self._depth = 0  # open tables
        self._style = False
        self._where = ""  # "head" or "title" while in them, "row" in a <tr> (browsers and html.parser may differ
        self._seen: dict[str, int] = {}  # elsewhere: the report has one html, head, body and title)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)
        self._check_place(tag)
        self._style = tag == "style"
        if tag == "style":
            self.styles.append("")
        elif tag == "html":
            self.lang = dict(attrs).get("lang") or ""
        elif tag == "table":
            self._depth += 1
            if self._depth > 1:
                self.problems.append("a table inside a table")
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("th", "td") and self.tables and self.tables[-1]:
            self._cell = _Cell(tag, dict(attrs).get("data-field"))
            self.tables[-1][-1].append(self._cell)
        elif tag == "br":
            self.handle_data("\n")

    def _check_place(self, tag: str) -> None:
        """Where html.parser and a browser could read a page differently: anything inside <title> (text to a
        browser), a second html/head/body/title, a title outside head, a row outside a table, a cell outside a row."""
        self._seen[tag] = self._seen.get(tag, 0) + 1
        if self._where == "title" or (tag in ("html", "head", "body", "title") and self._seen[tag] > 1) or (
                tag == "title" and self._where != "head") or (tag == "tr" and not self._depth) or (
                tag in ("th", "td") and self._where != "row"):
            self.problems.append(f"<{tag}> where the report never has it")
        if tag in ("head", "title"):
            self._where = tag
        elif tag == "tr":
            self._where = "row"

    def _check(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in REPORT_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            text = (value or "").strip().lower()
            if name not in REPORT_ATTRIBUTES or (name == "class" and not set(text.split()) <= REPORT_CLASSES) or (
                    name == "href" and (tag != "a" or not text.startswith(("http://", "https://")))) or (
                    name == "charset" and tag != "meta"):
                self.problems.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag: str) -> None:
        self._style = False
        if tag in ("th", "td", "tr", "table"):
            self._cell = None
        if tag in ("tr", "table", "head") or (tag == "title" and self._where == "title"):
            self._where = "head" if tag == "title" else ""
        if tag == "table":
            self._depth = max(self._depth - 1, 0)

    def handle_data(self, data: str) -> None:
        if self._style and self.styles:
            self.styles[-1] += data
        if self._cell is not None:
            self._cell.text += data
        elif self._depth and data.strip():
            self.problems.append(f"text in a table outside its cells ({data.strip()[:30]!r})")

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"a comment <!--{data[:30]}-->")

    def handle_decl(self, decl: str) -> None:
        if decl.lower() != "doctype html":
            self.problems.append(f"<!{decl[:30]}>")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"<?{data[:30]}>")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"<![{data[:30]}]>")


def _plain(value: Any) -> str:
    return "—" if value in (None, "", [], {}) else str(value)


def _shown_time(signed: Any, text: str) -> bool:
    """A time cell shows the signed instant ("… YYYY-MM-DD HH:MM:SS UTC", to the second; a time without a zone or a
    date as written) or "—" for none."""
    if signed in (None, ""):
        return text == "—"
    try:
        at = datetime.fromisoformat(str(signed))
    except ValueError:
        return text == str(signed)
    if len(str(signed)) <= 10 or at.tzinfo is None:
        return (str(signed) if len(str(signed)) <= 10 else at.strftime("%Y-%m-%d %H:%M:%S")) in text
    shown, local = _UTC_SHOWN.search(text), _LOCAL_SHOWN.search(text)
    if shown is None or local is None or shown.group(1) != at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"):
        return False
    sign = -1 if local.group(2) == "-" else 1  # the local line is the same instant at the offset it states
    offset = timedelta(hours=int(local.group(3)), minutes=int(local.group(4))) * sign
    utc = at.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    return datetime.strptime(local.group(1), "%Y-%m-%d %H:%M:%S") - offset == utc


def _shown_plain(signed: Any, text: str) -> bool:
    """A cell shows a plain value as written (spaces collapsed, as in the cell's text); true/false as yes/no."""
    if isinstance(signed, bool):
        return _shown_yes_no(signed, text)
    return text == " ".join(_plain(signed).split())


def _shown_yes_no(signed: Any, text: str) -> bool:
    return text == "—" if signed is None else text in (_YES if signed else _NO)


def _shown_place(signed: Any, text: str) -> bool:
    """"北纬 39.904200°，东经 116.407400° (来源: …(gps))" or its English; "未记录"/"not recorded" for none."""
    if not isinstance(signed, dict) or signed.get("lat") is None or signed.get("lon") is None:
        return text in ("未记录", "not recorded")
    lat, lon = float(signed["lat"]), float(signed["lon"])
    words = (("北纬" if lat >= 0 else "南纬", "东经" if lon >= 0 else "西经"),
             ("° N" if lat >= 0 else "° S", "° E" if lon >= 0 else "° W"))
    zh = f"{words[0][0]} {abs(lat):.6f}°，{words[0][1]} {abs(lon):.6f}°"
    en = f"{abs(lat):.6f}{words[1][0]}, {abs(lon):.6f}{words[1][1]}"
    source = _source_words(signed.get("source"), PLACE_WORDS)
    return text in {f"{zh} (来源: {word})" for word in source} | {f"{en} (source: {word})" for word in source}


def _source_words(signed: Any, vocabulary: dict[str, tuple[str, str]]) -> set[str]:
    """Every way the report can word *signed* as a source (catalog.report_values.Values.source)."""
    if not signed:
        return {"—"}
    words = vocabulary.get(str(signed))
    return {f"{w} ({signed})" for w in words} if words else {str(signed)}


def _shown_source(signed: Any, text: str) -> bool:
    return text in _source_words(signed, TIME_WORDS)


def _acquired_at(body: dict[str, Any]) -> Any:
    for entry in body.get("custody") or []:
        if isinstance(entry, dict) and entry.get("kind") in ("copied", "document_attached", "redacted"):
            return entry.get("at")
    return None


def _report_checks(body: dict[str, Any]) -> dict[str, tuple[Any, Callable[[Any, str], bool]]]:
    """Per fact cell of an item: (the signed value, whether the cell's text shows it)."""
    stamp, capture = body.get("stamp") or {}, body.get("capture") or {}
    media, officer = body.get("media") or {}, body.get("officer") or {}
    integrity = body.get("integrity") or {}
    sightings = [f"{s.get('device_serial')}: {s.get('device_path')}" for s in body.get("sightings") or []
                 if isinstance(s, dict)]
    equal = _shown_plain
    return {
        "sha256": (body.get("sha256"), equal), "original_name": (body.get("original_name"), equal),
        "size": (body.get("size_bytes"), equal), "case_number": (stamp.get("case_number"), equal),
        "purpose": (stamp.get("purpose"), equal),
        "collector": (stamp.get("collector"), lambda value, text: text in (
            " ".join(_plain(value).split()), " ".join(f"{value} {officer.get('name')}".split()))),
        "media_kind": (" / ".join(str(x) for x in (media.get("kind"), media.get("container")) if x), equal),
        "important": (stamp.get("important"), _shown_yes_no),
        "captured_start": (stamp.get("captured_start") or capture.get("start"), _shown_time),
        "captured_end": (capture.get("end"), _shown_time), "time_source": (capture.get("time_source"), _shown_source),
        "raw_device_time": (capture.get("raw_device_time"), equal),
        "zone_assumed": (capture.get("zone_assumed"), equal),
        "clock_offset": (capture.get("clock_offset_s"), equal), "place": (stamp.get("place"), _shown_place),
        "acquired": (_acquired_at(body), _shown_time), "station": (body.get("station"), equal),
        "device": (body.get("device_serial"), equal),
        "sightings": (sightings, lambda value, text: text == (" ".join(" ".join(value).split()) or "—")),
        "integrity": (" — ".join(str(x) for x in (integrity.get("status"), integrity.get("detail")) if x), equal),
        "retain_until": (body.get("retain_until"), _shown_time),
    }


def _check_report_item(bag: Bag, cells: dict[str, str], body: dict[str, Any]) -> None:
    for field_name, (value, shown) in _report_checks(body).items():
        text = cells.get(field_name)
        if text is not None and not shown(value, text):
            bag.report.find("data/report.html", f"item {body.get('sha256')}: the report's {field_name} is not the "
                                                "signed value", value, text)
    file = cells.get("file")
    if file is not None and bag.computed.get(file) != body.get("sha256"):
        bag.report.find("data/report.html", f"item {body.get('sha256')}: the report names file {file}, which does "
                                            "not hash to the signed SHA-256", body.get("sha256"),
                        bag.computed.get(file))


def _newest_bodies(bodies: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    newest: dict[str, dict[str, Any]] = {}
    for body in sorted(bodies.values(), key=_revision):
        newest[str(body.get("sha256"))] = body
    return newest


def _item_rows(table: list[list[_Cell]], language: int) -> tuple[dict[str, str], list[str], list[str]]:
    """An item table's {field: text}, its label and value texts in order, and why it is not the archive's: a row
    that is not one label and one value cell, rows missing, added, doubled or out of order, another label."""
    cells: dict[str, str] = {}
    texts: list[str] = []
    problems: list[str] = []
    order: list[str] = []
    for number, row in enumerate(table, 1):
        if [c.tag for c in row] != ["th", "td"] or row[0].field is not None or row[1].field is None:
            problems.append(f"row {number} is not one label and one fact cell with data-field")
            continue
        label, cell = row
        field_name = str(cell.field)
        order.append(field_name)
        texts += [label.text, cell.text]
        cells[field_name] = " ".join(cell.text.split())
        expected = ITEM_LABELS.get(field_name, ("?", "?"))[language]
        if " ".join(label.text.split()) != expected:
            problems.append(f"the {field_name} row is labelled {' '.join(label.text.split())!r}, not {expected!r}")
    wanted = list(DISPOSED_ROWS) if "status" in order else [f for f in ITEM_ROWS
                                                            if f not in OPTIONAL_ROWS or f in order]
    if order != wanted:
        missing, extra = [f for f in wanted if f not in order], [f for f in order if f not in wanted]
        problems.append(f"its rows are not the report's (missing {missing or 'none'}, extra {extra or 'none'}"
                        + (", out of order or doubled)" if not missing and not extra else ")"))
    return cells, texts, problems


def _report_language(page: _ReportPage, bag: Bag) -> int:
    language = {"zh-cn": 0, "zh": 0, "en": 1}.get(page.lang.lower())
    if language is None:
        bag.report.find("data/report.html", "the report's language is neither Chinese nor English", "zh-CN or en",
                        page.lang)
    return language or 0


def _check_report_page(bag: Bag, page: _ReportPage) -> None:
    rel = "data/report.html"
    for problem in sorted(set(page.problems)):
        bag.report.find(rel, "the report holds what the archive's report never does (it could run, load, embed or "
                             "hide)", "plain text and tables", problem)
    styles = [hashlib.sha256(" ".join(style.split()).encode("utf-8")).hexdigest() for style in page.styles]
    if len(styles) != 1 or styles[0] not in REPORT_STYLES:
        bag.report.find(rel, "the report's stylesheet is not the archive's (a style can hide a fact or draw another "
                             "over it)", "one <style> of " + ", ".join(sorted(REPORT_STYLES)), styles or None)


def _signers(bag: Bag, bodies: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """{SHA-256: the fingerprints of the keys that signed its verified manifests, sorted}."""
    found: dict[str, set[str]] = {}
    for rel, body in bodies.items():
        document = _loads(bag.read(rel) or b"{}")
        found.setdefault(str(body.get("sha256")), set()).add(str(document["signature"]["key_fingerprint"]))
    return {sha: sorted(fps) for sha, fps in found.items()}


#: Labels only an item's fact table has (the case table also says 案件编号 and 状态): a table showing them is one.
_ITEM_ONLY_LABELS = frozenset(" ".join(label.split()) for name, labels in ITEM_LABELS.items()
                              if name not in ("case_number", "status") for label in labels)


def check_report(bag: Bag, bodies: dict[str, dict[str, Any]], root_fingerprint: str | None) -> None:
    """Check 7: report.html is the archive's kind of page (its elements, attributes and stylesheet only); each
    signed item has exactly one fact table, with the report's rows and labels, each cell the signed value, and no
    other table shows item facts; report.pdf shows the same tables."""
    rel = "data/report.html"
    data = bag.read(rel)
    newest = _newest_bodies(bodies)
    if data is None:
        bag.report.find(rel, "the package has no report.html (every export writes one; report.pdf is checked "
                             "against it)", "data/report.html", None)
        check_report_pdf(bag, newest, {})
        return
    page = _ReportPage()
    page.feed(data.decode("utf-8", errors="replace"))
    page.close()
    _check_report_page(bag, page)
    shown = _check_report_tables(bag, page, newest, _signers(bag, bodies), root_fingerprint)
    for sha in sorted(set(newest) - set(shown)):
        bag.report.find(rel, "the report has no fact table for a signed item", sha, None)
    check_report_pdf(bag, newest, shown)


def _check_report_tables(bag: Bag, page: _ReportPage, newest: dict[str, dict[str, Any]],
                         signers: dict[str, list[str]], root_fingerprint: str | None) -> dict[str, list[str]]:
    """Each table of the page: item fact tables checked cell by cell; {SHA-256: its label and value texts}."""
    rel, language = "data/report.html", _report_language(page, bag)
    shown: dict[str, list[str]] = {}
    for table in page.tables:
        root_shown = [row[-1].text for row in table if row and row[-1].field == "root_fingerprint"]
        if root_shown and root_fingerprint is not None and root_fingerprint not in root_shown[0]:
            bag.report.find(rel, "the report names another agency root", root_fingerprint, root_shown[0])
        if not any(c.field == "sha256" for row in table for c in row):
            labels = {" ".join(row[0].text.split()) for row in table if row and row[0].tag == "th"}
            if labels & _ITEM_ONLY_LABELS:
                bag.report.find(rel, "a table of item facts that is no item's fact table (no data-field sha256)",
                                None, sorted(labels & _ITEM_ONLY_LABELS)[:3])
            continue
        cells, texts, problems = _item_rows(table, language)
        sha = cells.get("sha256", "")
        if sha in newest and "status" in cells:
            problems.append("a signed item shown as a disposed one (its facts left out)")
        for problem in problems:
            bag.report.find(rel, f"item {sha}: its fact table is not the report's: {problem}")
        if sha in shown:
            bag.report.find(rel, f"item {sha}: a second fact table for it (which one would a reader believe?)")
        shown[sha] = texts
        bag.report.count("report_cells", len(cells))
        if sha in newest:
            _check_report_item(bag, cells, newest[sha])
            if cells.get("key_fingerprint") is not None and cells["key_fingerprint"] != " ".join(signers.get(sha, [])):
                bag.report.find(rel, f"item {sha}: the report's signing keys are not those of its manifests",
                                " ".join(signers.get(sha, [])), cells["key_fingerprint"])
    return shown


# -- report.pdf: its text layer, read with the standard library ----------------------------------------------------
# fpdf2 writes text as 2-byte glyph ids in literal strings (`(…) Tj`) after a font selection (`/F1 9.00 Tf`) and, for
# every embedded TrueType font, a ToUnicode CMap of `bfchar` pairs: mapping each font's ids back through its map
# gives the text a reader's copy-and-paste or search gives. Enough for the PDFs the archive writes; anything else
# shows no text and fails the comparison.

PDF_STREAM_BYTES = 64 * 1024 * 1024
# (/OpenAction alone is allowed: fpdf2 opens the first page with it; what it could run is named here.)
_PDF_ACTIVE = re.compile(rb"/(JavaScript|JS|Launch|AA|EmbeddedFiles?|RichMedia|SubmitForm|ImportData|GoToR|GoToE|"
                         rb"Sound|Movie|XFA|Annots|AcroForm|XObject|ObjStm|XRefStm)\b")
_OBJECT_START = re.compile(rb"(\d+) 0 obj")
_STREAM = re.compile(rb"stream\r?\n(.*)\r?\nendstream", re.S)
_FONT_REF = re.compile(rb"/(F\d+) (\d+) 0 R")
_TO_UNICODE = re.compile(rb"/ToUnicode (\d+) 0 R")
_TEXT_OP = re.compile(rb"/(F\d+) [\d.]+ Tf|\(")
_BFCHAR = re.compile(rb"<([0-9A-Fa-f]{4})>\s*<([0-9A-Fa-f]+)>")
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}


def _objects(pdf: bytes) -> dict[int, bytes]:
    """Each `N 0 obj … endobj`: its dictionary text, with its stream decompressed after it. One pass: each search
    starts where the last object ended, and a start without an end stops the scan (no quadratic rescans)."""
    found, pos = {}, 0
    while (start := _OBJECT_START.search(pdf, pos)) is not None:
        end = pdf.find(b"endobj", start.end())
        if end < 0:
            break
        body, pos = pdf[start.end():end], end + len(b"endobj")
        stream_at = body.find(b"stream")
        stream = _STREAM.match(body, stream_at) if stream_at >= 0 else None
        if stream is not None:
            try:  # at most PDF_STREAM_BYTES: a stream that inflates beyond is not one this report holds
                data = zlib.decompressobj().decompress(stream.group(1), PDF_STREAM_BYTES)
            except zlib.error:
                data = stream.group(1)
            body = body[:stream.start()] + data
        found[int(start.group(1))] = body
    return found


def _literal(content: bytes, start: int) -> tuple[bytes, int]:
    """The literal string opening at content[start] ("("), escapes resolved, and the index after it."""
    out, depth, i = bytearray(), 1, start + 1
    while depth:
        ch = content[i]
        if ch == 0x5C:  # backslash
            nxt = content[i + 1]
            digits = re.match(rb"[0-7]{1,3}", content[i + 1:i + 4])
            if digits is not None:
                out.append(int(digits.group(), 8) & 0xFF)
                i += 1 + len(digits.group())
            else:
                out += _ESCAPES.get(nxt, bytes([nxt]))
                i += 2
            continue
        depth += ch == 0x28
        depth -= ch == 0x29
        if depth:
            out.append(ch)
        i += 1
    return bytes(out), i


@dataclass(frozen=True)
class _Font:
    text: dict[int, str]  # glyph id -> the text it stands for (ToUnicode)
    widths: dict[int, float]  # glyph id -> advance, thousandths of the font size (/W)
    default: float  # /DW


def _widths(cid_font: bytes) -> tuple[dict[int, float], float]:
    """A CIDFont's /W (`c [w1 w2 …]` and `c_first c_last w`) and /DW."""
    found: dict[int, float] = {}
    listed = re.search(rb"/W\s*\[(.*)\]", cid_font, re.S)
    tokens = re.findall(rb"\[|\]|[-+]?[\d.]+", listed.group(1)) if listed else []
    i = 0
    while i < len(tokens):
        if i + 1 < len(tokens) and tokens[i + 1] == b"[":
            first, i = int(float(tokens[i])), i + 2
            while i < len(tokens) and tokens[i] != b"]":
                found[first] = float(tokens[i])
                first, i = first + 1, i + 1
            i += 1
        elif i + 2 < len(tokens) and b"[" not in tokens[i:i + 3] and b"]" not in tokens[i:i + 3]:
            for gid in range(int(float(tokens[i])), min(int(float(tokens[i + 1])), int(float(tokens[i])) + 65536) + 1):
                found[gid] = float(tokens[i + 2])
            i += 3
        else:
            i += 1
    default = re.search(rb"/DW\s+([\d.]+)", cid_font)
    return found, float(default.group(1)) if default else 1000.0


def _fonts(objects: dict[int, bytes]) -> dict[bytes, _Font]:
    """Font resource name (b"F1") → its glyph ids' text (ToUnicode CMap) and widths (its CIDFont's /W)."""
    fonts: dict[bytes, _Font] = {}
    for name, ref in _FONT_REF.findall(b"".join(objects.values())):
        font = objects.get(int(ref), b"")
        unicode_ref, descendant = _TO_UNICODE.search(font), re.search(rb"/DescendantFonts\s*\[(\d+) 0 R", font)
        if unicode_ref is None:
            continue
        text = {int(code, 16): bytes.fromhex(uni.decode()).decode("utf-16-be")
                for code, uni in _BFCHAR.findall(objects.get(int(unicode_ref.group(1)), b""))}
        widths, default = _widths(objects.get(int(descendant.group(1)), b"")) if descendant else ({}, 1000.0)
        fonts[name] = _Font(text, widths, default)
    return fonts


def _cmaps(objects: dict[int, bytes]) -> dict[bytes, dict[int, str]]:
    """Font resource name (b"F1") → its glyph id → text map, from the fonts' ToUnicode CMaps."""
    return {name: font.text for name, font in _fonts(objects).items()}


_CONTENT_TOKEN = re.compile(rb"\s*(?:(\()|(<[0-9A-Fa-f\s]*>)|(/[^\s/\[\]()<>{}%]*)|([-+]?(?:\d+\.?\d*|\.\d+))|"
                            rb"(\[)|(\])|([A-Za-z'\"*]+)|(%[^\r\n]*)|(\S))")
#: The operators fpdf2 draws the report with. Anything else (text render modes, clipping, images, forms, text
#: matrices, spacing) could make what a reader sees differ from the text layer, so it is a finding.
_DRAWING = frozenset({b"q", b"Q", b"BT", b"ET", b"g", b"rg", b"G", b"RG", b"re", b"S", b"B", b"f", b"n", b"Tf",
                      b"Tj", b"TJ", b"J", b"j", b"w", b"Td"})
_PAINT = frozenset({b"f", b"B"})
PAGE_BOX = (0.0, 0.0, 595.28, 841.89)  # A4, points: where fpdf2 draws the report
MIN_FONT = 4.0  # points: smaller text is not text a reader sees


@dataclass
class _State:
    """What q saves and Q restores: colours, line width, the font and its size."""
    fill: tuple[float, ...] = (0.0,)
    stroke: tuple[float, ...] = (0.0,)
    width: float = 1.0
    font: _Font | None = None
    size: float = 0.0


def _light(colour: tuple[float, ...]) -> bool:
    """A colour too light to read on white paper (gray or RGB; relative luminance ≥ 0.7)."""
    if len(colour) == 3:
        return 0.2126 * colour[0] + 0.7152 * colour[1] + 0.0722 * colour[2] >= 0.7
    return bool(colour) and colour[0] >= 0.7


@dataclass
class _Page:
    """What one page's content stream draws: its text, in order, and every way it could mislead."""
    fonts: dict[bytes, _Font]
    runs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    state: _State = field(default_factory=_State)
    saved: list[_State] = field(default_factory=list)
    at: tuple[float, float] = (0.0, 0.0)
    shown: list[tuple[float, float, float, float]] = field(default_factory=list)  # each text run's box
    path: list[tuple[float, float, float, float]] = field(default_factory=list)

    def operate(self, op: bytes, args: list[Any]) -> None:
        numbers = [a for a in args if isinstance(a, float)]
        if op not in _DRAWING:
            self.problems.append(f"operator {op.decode(errors='replace')!r}")
        elif op in (b"Tj", b"TJ"):
            self._show(args[-1] if args else b"")
        elif op in (b"g", b"rg", b"G", b"RG"):
            setattr(self.state, "fill" if op.islower() else "stroke", tuple(numbers))
        elif op == b"w" and numbers:
            self.state.width = numbers[0]
        elif op == b"q":
            self.saved.append(replace(self.state))
        elif op == b"Q" and self.saved:
            self.state = self.saved.pop()
        elif op == b"Tf" and len(args) == 2:
            self._font(bytes(args[0]).lstrip(b"/"), float(args[1]))
        elif op == b"BT":
            self.at = (0.0, 0.0)
        elif op == b"Td" and len(numbers) == 2:
            self.at = (self.at[0] + numbers[0], self.at[1] + numbers[1])
        elif op == b"re" and len(numbers) == 4:
            x, y, w, h = numbers
            self.path.append((min(x, x + w), min(y, y + h), max(x, x + w), max(y, y + h)))
        elif op in _PAINT or op in (b"S", b"n"):
            self._paint(op)

    def _font(self, name: bytes, size: float) -> None:
        self.state.font, self.state.size = self.fonts.get(name), size
        if self.state.font is None:
            self.problems.append(f"text in a font without a ToUnicode map ({name.decode(errors='replace')})")

    def _show(self, operand: Any) -> None:
        parts = operand if isinstance(operand, list) else [operand]
        if any(isinstance(part, str) for part in parts):
            self.problems.append("a hex string (fpdf2 writes literal strings)")
        font, size, x, y = self.state.font or _Font({}, {}, 1000.0), self.state.size, *self.at
        text, advance = "", 0.0
        for part in parts:
            if isinstance(part, float):  # TJ: a shift back (or forward) in thousandths of the size
                advance -= part
            elif isinstance(part, bytes):
                for k in range(0, len(part) - 1, 2):
                    gid = int.from_bytes(part[k:k + 2], "big")
                    if gid not in font.text:
                        self.problems.append(f"a glyph with no text (id {gid}) in a string it shows")
                    text += font.text.get(gid, "")
                    advance += font.widths.get(gid, font.default)
        end = x + advance * size / 1000
        box = (min(x, end), y - 0.25 * size, max(x, end), y + size)
        if text.strip() and (_light(self.state.fill) or size < MIN_FONT or box[0] < PAGE_BOX[0] or
                             box[2] > PAGE_BOX[2] or not PAGE_BOX[1] <= y <= PAGE_BOX[3]):
            self.problems.append(f"text a reader does not see ({text[:40]!r}: colour {self.state.fill}, size "
                                 f"{size}, from {x:.1f},{y:.1f} to {end:.1f})")
        self.shown.append(box)
        self.runs.append(text)

    def _paint(self, op: bytes) -> None:
        if op == b"S" and (_light(self.state.stroke) or self.state.width > 3):
            self.problems.append(f"a stroke that could paint over text (colour {self.state.stroke}, width "
                                 f"{self.state.width})")
        for left, bottom, right, top in self.path if op != b"n" else []:
            covered = [b for b in self.shown if b[0] < right and left < b[2] and b[1] < top and bottom < b[3]
                       and (op != b"S" or _light(self.state.stroke) or self.state.width > 3)]
            if covered:
                self.problems.append(f"a filled area painted over text already drawn (at {covered[0][0]:.1f},"
                                     f"{covered[0][1]:.1f})")
        self.path = []


def _content_tokens(content: bytes) -> Iterator[tuple[str, Any]]:
    """(kind, value) of each token of a content stream: "op", "num", "name", "str" (bytes), "hex" (str), "[" / "]"."""
    i = 0
    while i < len(content):
        match = _CONTENT_TOKEN.match(content, i)
        if match is None or match.end() == i:
            return
        i = match.end()
        if match.group(1):
            raw, i = _literal(content, match.start(1))
            yield "str", raw
        elif match.group(2):
            yield "hex", match.group(2).decode()
        elif match.group(3):
            yield "name", match.group(3)
        elif match.group(4):
            yield "num", float(match.group(4))
        elif match.group(5) or match.group(6):
            yield ("[" if match.group(5) else "]"), None
        elif match.group(7):
            yield "op", match.group(7)
        elif match.group(9):
            yield "other", match.group(9)


def _draw(page: _Page, content: bytes) -> None:
    args: list[Any] = []
    array: list[Any] | None = None
    for kind, value in _content_tokens(content):
        if kind == "[":
            array = []
        elif kind == "]":
            args.append(array or [])
            array = None
        elif kind == "op":
            page.operate(value, args)
            args = []
        elif kind in ("str", "hex", "num", "name"):
            (array if array is not None else args).append(value)
        elif kind == "other":
            page.problems.append(f"unexpected {value!r} in the content stream")


def _ref(body: bytes, key: bytes) -> int | None:
    found = re.search(rb"/" + key + rb"\s+(\d+) 0 R", body)
    return int(found.group(1)) if found else None


def _page_contents(pdf: bytes, objects: dict[int, bytes]) -> list[bytes]:
    """The content streams of the pages, in page order, as a viewer finds them: the trailer's /Root catalogue, its
    /Pages tree, each page's /Contents."""
    trailer = pdf[pdf.rfind(b"trailer"):] if b"trailer" in pdf else b""
    catalogue = objects.get(_ref(trailer, b"Root") or -1, b"")
    contents: list[bytes] = []
    pending, seen = [_ref(catalogue, b"Pages")], set()
    while pending:
        number = pending.pop(0)
        if number is None or number in seen or number not in objects:
            continue
        seen.add(number)
        node = objects[number]
        kids = re.search(rb"/Kids\s*\[([^\]]*)\]", node)
        if kids is not None:
            pending[:0] = [int(n) for n in re.findall(rb"(\d+) 0 R", kids.group(1))]
            continue
        refs = re.search(rb"/Contents\s*(\[[^\]]*\]|\d+ 0 R)", node)
        contents += [objects.get(int(n), b"") for n in re.findall(rb"(\d+) 0 R", refs.group(1))] if refs else []
    return contents


def pdf_pages(pdf: bytes) -> list[_Page]:
    """Each page of a PDF fpdf2 wrote as a viewer draws it: its text runs, in order, and what could mislead."""
    objects = _objects(pdf)
    fonts = _fonts(objects)
    pages = []
    for content in _page_contents(pdf, objects):
        page = _Page(fonts)
        _draw(page, content[content.find(b">>") + 2:] if content.lstrip().startswith(b"<<") else content)
        pages.append(page)
    return pages


def pdf_text(pdf: bytes) -> str:
    """All text the PDF's pages show, in drawing order, joined without separators (a wrapped hash reads whole)."""
    return "".join(run for page in pdf_pages(pdf) for run in page.runs)


_DIRECT_LENGTH = re.compile(rb"/Length\s+(\d+)(?!\s+\d+\s+R)")
_STREAM_KEYWORD = re.compile(rb"\s*stream(\r\n|\n)")
_END_STREAM = re.compile(rb"(\r\n|\n|\r)?endstream")
_DICTIONARY_OPENS = re.compile(rb"\s*<<")
_LINE_END = re.compile(rb"[\r\n]")


def _dictionary_end(pdf: bytes, start: int) -> tuple[int, int | None]:
    """Where the dictionary opening at pdf[start] ("<<") closes, and its own direct /Length (None without one).
    A small lexer: string literals, hex strings and comments are skipped whole, so that ">>", "stream" or /Length
    written inside a string do not end the dictionary or size a stream."""
    depth, i, length = 0, start, None
    while i < len(pdf):
        two = pdf[i:i + 2]
        if two == b"<<":
            depth, i = depth + 1, i + 2
        elif two == b">>":
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i, length
        elif pdf[i] == 0x28:  # (
            i = _literal(pdf, i)[1]
        elif pdf[i] == 0x3C:  # <, a hex string
            i = pdf.index(b">", i) + 1
        elif pdf[i] == 0x25:  # %, a comment to the end of its line
            line_end = _LINE_END.search(pdf, i)
            i = line_end.end() if line_end is not None else len(pdf)
        else:
            sized = _DIRECT_LENGTH.match(pdf, i) if depth == 1 else None
            if sized is not None:
                length, i = int(sized.group(1)), sized.end()
            else:
                i += 1
    raise ValueError("a dictionary that does not close")


def pdf_without_stream_data(pdf: bytes) -> bytes:
    """The PDF with each object's stream data cut out, everything else kept: the text where actions, scripts and
    embedded files are declared. Stream data (compressed pages, embedded font programs) is arbitrary bytes in
    which "/JS" or "/AA" occur by chance (about one report in a hundred); a stream is cut only where its
    dictionary closes, names its own direct /Length and "endstream" follows that many bytes, else it is kept
    (read as dictionary text: a false alarm on a malformed PDF rather than a script hidden behind a fake length)."""
    kept, pos = [], 0
    while (start := _OBJECT_START.search(pdf, pos)) is not None:
        opening = _DICTIONARY_OPENS.match(pdf, start.end())
        if opening is None:
            kept.append(pdf[pos:start.end()])
            pos = start.end()
            continue
        try:
            end, length = _dictionary_end(pdf, opening.end() - 2)
        except (IndexError, ValueError):
            break
        stream = _STREAM_KEYWORD.match(pdf, end)
        if stream is None or length is None or _END_STREAM.match(pdf, stream.end() + length) is None:
            kept.append(pdf[pos:end])
            pos = end
            continue
        kept.append(pdf[pos:stream.end()])
        pos = stream.end() + length
    kept.append(pdf[pos:])
    return b"".join(kept)


def pdf_active_names(pdf: bytes) -> list[str]:
    """The names of actions, scripts, embedded files and other active content a PDF declares, sorted, once each."""
    return sorted({m.decode() for m in _PDF_ACTIVE.findall(_unescaped(pdf_without_stream_data(pdf)))})


def _unescaped(body: bytes) -> bytes:
    """PDF names with #xx escapes written out (/Annot#73 is /Annots)."""
    return re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), body)


def _unspaced(text: str) -> str:
    return "".join(text.split())


def check_report_pdf(bag: Bag, newest: dict[str, dict[str, Any]], tables: dict[str, list[str]]) -> None:
    """Check 7: report.pdf is one written document (no later incremental update), holds nothing that runs or
    embeds, and shows each item's fact table exactly as report.html does (label, value, label, value… in its text,
    spaces aside), whose cells were compared with the signed manifests above: what a court files says the same."""
    rel = "data/report.pdf"
    data = bag.read(rel) if bag.listed(rel) else None
    if data is None:
        bag.report.warn("the package has no report.pdf: the export could not make one (its result's notes say why, "
                        "e.g. no font for a character) or it was removed; report.html is the report")
        return
    if data.count(b"%%EOF") != 1:
        bag.report.find(rel, "the PDF was changed after it was written (an incremental update appends to it)",
                        "one %%EOF", f"{data.count(b'%%EOF')}")
    if active := pdf_active_names(data):
        bag.report.find(rel, "the PDF holds actions, scripts or embedded files", "none", ", ".join(active))
    numbers = _OBJECT_START.findall(data)
    if len(numbers) != len(set(numbers)) or re.search(rb"\d+ [1-9]\d* obj", data):
        bag.report.find(rel, "the PDF defines an object twice or in another generation (a viewer and this check "
                             "could read different ones)")
    pages = pdf_pages(data)
    for number, page in enumerate(pages, 1):
        kinds: dict[str, str] = {}  # each kind of problem once per page, with its first example
        for problem in page.problems:
            kinds.setdefault(problem.split(" (")[0], problem)
        for problem in kinds.values():
            bag.report.find(rel, f"page {number} draws something a text check cannot vouch for: {problem}")
    text = _unspaced("".join(run for page in pages for run in page.runs))
    bag.report.checked["report_pdf_characters"] = len(text)
    for sha in sorted(newest):
        cells = tables.get(sha)
        if cells is None:
            continue  # report.html does not show it: named above
        shown = [_unspaced(cell) for cell in cells]
        if "".join(shown) in text:
            bag.report.count("report_pdf_items")
            continue
        first = next(i for i in range(len(shown)) if "".join(shown[:i + 1]) not in text)
        row = max(first - first % 2, 0)
        bag.report.find(rel, f"item {sha}: the PDF's fact table is not report.html's from row {row // 2 + 1} "
                             f"({cells[row].strip() if row < len(cells) else '?'})",
                        " ".join(" ".join(cells[row:row + 2]).split()), None)


# -- running ------------------------------------------------------------------------------------------------------


#: What a malformed file can raise in a check (a parser's assertion, int() of an infinite number, a nesting too deep)
_MALFORMED = (ValueError, LookupError, TypeError, AttributeError, ArithmeticError, OSError, RecursionError,
              AssertionError)
T = TypeVar("T")


def _guarded(report: Report, step: str, default: T, check: Callable[..., T], *args: Any) -> T:
    """One check; files too malformed to check are a finding, never a crash that would hide the other checks."""
    try:
        return check(*args)
    except _MALFORMED as exc:
        report.find(step, f"could not be checked to the end: a file it reads is malformed ({exc!r})")
        return default


def _items(bag: Bag) -> Any:
    return _loads(bag.read("data/items.json") or b"null")


def verify(root: Path, trusted: str | None, tsa_ca: Path | None = None) -> Report:
    """Every check, in order; findings and warnings in the report."""
    report = Report()
    bag = Bag(root, report)
    _guarded(report, "the bag", None, check_bag, bag)
    items = _guarded(report, "data/items.json", None, _items, bag)
    exported_at = _instant(items.get("exported_at")) if isinstance(items, dict) else None
    trust = _guarded(report, "trust/", Trust(report, bag), load_trust, bag, report, trusted)
    _guarded(report, SIG_NAME, None, check_package_signature, bag, trust, exported_at, trusted)
    no_bodies: dict[str, dict[str, Any]] = {}
    bodies = _guarded(report, "data/manifests/", no_bodies, check_manifests, bag, trust)
    _guarded(report, "data/manifests/", None, check_originals, bag, bodies)
    no_anchors: tuple[dict[str, Anchor], Anchor | None] = ({}, None)
    anchors, export = _guarded(report, "data/custody/anchors/", no_anchors, check_anchors, bag, trust)
    _guarded(report, "data/custody/", None, check_chain, bag, anchors, export, bodies)
    _guarded(report, "data/custody/", None, bag.finish)
    _guarded(report, "timestamps", None, check_timestamps, bag, trust, export, tsa_ca)
    _guarded(report, "data/items.json", None, check_items, bag, items, bodies, trust.root_fingerprint)
    _guarded(report, "data/report.html", None, check_report, bag, bodies, trust.root_fingerprint)
    if trusted is None:
        which = (f"the root fingerprint {trust.root_fingerprint}" if trust.root_fingerprint else
                 f"the export key fingerprint {report.checked.get('export_key_fingerprint')}")
        report.warn(f"no --trust given: compare {which} out of band (with the agency's published one) before "
                    "relying on this result")
    report.checked["trust"] = "not given" if trusted is None else "compared"
    return report


def _summary(checked: dict[str, Any]) -> list[str]:
    """What was checked, in words (the same numbers as --json's "checked")."""
    get = checked.get
    stamps = get("timestamp_times") or {}
    return [
        f"  bag: {get('files_hashed', 0)} files, {get('bytes_hashed', 0):,} bytes hashed (SHA-256), "
        f"{get('payload_files', 0)} payload files",
        f"  package signature: {'verified' if get('package_signature') else 'NOT verified'}",
        f"  certificates chaining to the root: {get('certificates', 0)}; root key statements (revocations, "
        f"retirements): {get('key_statements', 0)}",
        f"  signed manifests: {get('manifests', 0)}; items: {get('items', 0)}; report cells compared: "
        f"{get('report_cells', 0)}",
        f"  custody chain: events {get('chain_from')} to {get('chain_to')}, {get('chain_rows', 0)} rows: "
        f"{get('full_rows', 0)} in full ({get('events', 0)} event bodies), {get('v2_digest_rows', 0)} digest-only, "
        f"{get('v1_hash_only_rows', 0)} linked by hash only",
        f"  signed chain anchors: {get('anchors', 0)}",
        f"  timestamps: {get('timestamps', 0)} (signatures checked: {get('timestamp_signatures', 0)})"
        + "".join(f"; {name} at {when}" for name, when in sorted(stamps.items())),
        f"  trusted root: {'compared with --trust' if get('trust') == 'compared' else 'not compared (no --trust)'}",
    ]


def _text(report: Report, root: Path) -> str:
    checked = report.checked
    lines = [f"Evidence package {root}", f"verify.py {VERSION} (Python {sys.version.split()[0]})", "",
             f"Root key fingerprint:   {checked.get('root_fingerprint') or 'none (the archive has no agency root)'}",
             f"Export key fingerprint: {checked.get('export_key_fingerprint') or 'none'}", "", "Checked:",
             *_summary(checked)]
    if report.warnings:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in report.warnings]
    if report.findings:
        lines += ["", f"Findings ({len(report.findings)}):"]
        for f in report.findings:
            detail = "" if f["expected"] is None and f["found"] is None else \
                f" (expected {f['expected'] or '-'}, found {f['found'] or '-'})"
            lines.append(f"  - {f['file']}: {f['what']}{detail}")
    if report.findings:
        lines += ["", f"RESULT: FAILED, {len(report.findings)} finding(s)"]
    elif checked.get("trust") != "compared":
        lines += ["", "RESULT: OK, nothing wrong was found INSIDE the package, but WHOSE package it is was NOT "
                      "checked: anyone can make a package that passes under a root of their own. Run again with "
                      "--trust and the agency root's fingerprint obtained out of band."]
    else:
        lines += ["", "RESULT: OK, nothing wrong was found"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify.py", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trust", metavar="ROOT_FINGERPRINT",
                        help="the agency root key's fingerprint (64 hex digits) as you know it from the agency")
    parser.add_argument("--tsa-ca", metavar="PEM", type=Path,
                        help="the timestamp authority's CA certificate as you know it: tokens must chain to it")
    parser.add_argument("--json", action="store_true", help="print {ok, findings, warnings, checked} as JSON")
    parser.add_argument("bag", metavar="PACKAGE_FOLDER", type=Path)
    args = parser.parse_args(argv)
    trusted = re.sub(r"[\s:]", "", args.trust).lower() if args.trust else None
    if trusted is not None and not _HEX64.fullmatch(trusted):
        parser.error(f"--trust takes the 64 hex digits of a SHA-256 fingerprint, not {args.trust!r}")
    if not (args.bag / "bagit.txt").is_file():
        parser.error(f"{args.bag} is not an unpacked BagIt package (no bagit.txt; unzip a .zip package first)")
    if args.tsa_ca is not None and not args.tsa_ca.is_file():
        parser.error(f"--tsa-ca {args.tsa_ca}: no such file")
    if args.tsa_ca is not None and shutil.which("openssl") is None:
        parser.error("--tsa-ca needs openssl (`openssl ts -verify` checks the timestamps' signatures against it); "
                     "install it or leave --tsa-ca out")
    report = verify(args.bag, trusted, args.tsa_ca)
    if args.json:
        print(json.dumps({"ok": not report.findings, "findings": report.findings, "warnings": report.warnings,
                          "checked": report.checked}, ensure_ascii=False, indent=1))
    else:
        print(_text(report, args.bag))
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
