"""The two keys a package needs, checked before anything is written: the export key (it signs the bag's
tagmanifest-sha256.txt) and the station key that signs the fresh export anchor.

With an agency root (docs/keys.md) both must hold a valid, unrevoked certificate from it for their role, or the
package would not verify for an examiner: the export is refused, naming the key and the command that fixes it.
An archive without a root keeps exporting: its export key is made on first use (0600, like a station key) and
registered and published as a station key of the pseudo-station `export`, and the package says plainly that no
agency root certifies its keys.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from catalog.cert_trust import Certification, load_certification
from catalog.certificates import ROLE_EXPORT, ROLE_STATION, key_fingerprint
from catalog.errors import ExportFailed
from catalog.key_certs import EXPORT_SUBJECT
from catalog.key_files import KeyFileError, read_private_key
from catalog.manifests import ensure_station_key
from catalog.said import say
from catalog.signing import load_or_create_key
from storage import EvidenceStore

__all__ = ["PackageKeys", "PackageSigning", "package_keys"]


@dataclass(frozen=True)
class PackageSigning:
    """What the caller (the CLI, the web app) gives an export to sign with, from the deployment's settings."""
    station: str  # the station code whose key signs the export anchor (EVIDENCE_STATION)
    station_key: Ed25519PrivateKey | None  # that key (EVIDENCE_STATION_KEY); None: the caller has none
    export_key_path: Path | None  # EVIDENCE_EXPORT_KEY; None: not configured
    settings: Any = None  # the deployment's Settings, for catalog.timestamping (EVIDENCE_TSA_URL); None: no stamps


@dataclass(frozen=True)
class PackageKeys:
    """The keys an export signs with, checked, and the archive's certification they were checked against."""
    station: str
    station_key: Ed25519PrivateKey
    export_key: Ed25519PrivateKey
    export_fingerprint: str
    certification: Certification

    @property
    def root_fingerprint(self) -> str | None:
        """The agency root's fingerprint; None: the archive has no root, nothing certifies the keys."""
        return self.certification.root.fingerprint if self.certification.root is not None else None


def _refusal(found: Certification, fp: str, *, role: str, subject: str, now: datetime) -> str | None:
    return found.why_not(fp, role=role, subject=subject) or found.status(fp, now)


def _certified_export_key(found: Certification, path: Path, now: datetime) -> Ed25519PrivateKey:
    if not path.exists():
        raise ExportFailed(say("no export key at {path} (EVIDENCE_EXPORT_KEY): this archive has an agency root, so "
                               "every package is signed with the export key the root certified; an administrator "
                               "creates it with `evidence keys export-key init --root-key PATH-TO-ROOT-KEY`. Nothing "
                               "was written", path=path))
    try:
        key = read_private_key(path)
    except KeyFileError as exc:
        raise ExportFailed(say("the export key cannot be read: {fault}. Nothing was written", fault=str(exc))) from exc
    fp = key_fingerprint(key.public_key())
    why = _refusal(found, fp, role=ROLE_EXPORT, subject=EXPORT_SUBJECT, now=now)
    if why is not None:
        raise ExportFailed(say("the export key {fp} ({path}) cannot sign a package: {why}; an administrator "
                               "certifies it with `evidence keys certify --export --root-key PATH-TO-ROOT-KEY` (or "
                               "makes a new one with `evidence keys export-key init`). Nothing was written", fp=fp,
                               path=path, why=why))
    return key


def package_keys(session: Session, store: EvidenceStore, signing: PackageSigning, *, by: str,
                 now: datetime) -> PackageKeys:
    """The checked keys for an export, or ExportFailed saying which key, why, and what fixes it. In an archive
    without a root this may create the export key file and register it (a custody event, a WORM key record)."""
    if signing.station_key is None:
        raise ExportFailed(say("no station key to sign the export anchor with (station {station}, "
                               "EVIDENCE_STATION_KEY); nothing was written", station=repr(signing.station)))
    if signing.export_key_path is None:
        raise ExportFailed(say("no export key is configured (EVIDENCE_EXPORT_KEY); nothing was written"))
    found = load_certification(session, store)
    if not found.active:
        try:
            export_key = load_or_create_key(signing.export_key_path)
        except (OSError, ValueError, TypeError) as exc:
            raise ExportFailed(say("the export key {path} (EVIDENCE_EXPORT_KEY) cannot be made or read: {fault}. "
                                   "Nothing was written", path=signing.export_key_path, fault=str(exc))) from exc
        ensure_station_key(session, EXPORT_SUBJECT, export_key, actor=by, store=store,
                           station_name="export key (signs evidence packages)")
    else:
        if found.root is None:
            raise ExportFailed(say("the agency root cannot be trusted ({problem}): no package can be signed that an "
                                   "examiner could check; run `evidence verify --all`. Nothing was written",
                                   problem=found.root_problem))
        export_key = _certified_export_key(found, signing.export_key_path, now)
        station_fp = key_fingerprint(signing.station_key.public_key())
        why = _refusal(found, station_fp, role=ROLE_STATION, subject=signing.station, now=now)
        if why is not None:
            raise ExportFailed(say("the key {fp} of station {station}, which signs the export anchor, cannot be "
                                   "used: {why}; an administrator certifies it with `evidence keys certify --station "
                                   "{code} --root-key PATH-TO-ROOT-KEY`. Nothing was written", fp=station_fp,
                                   station=repr(signing.station), why=why, code=signing.station))
    return PackageKeys(station=signing.station, station_key=signing.station_key, export_key=export_key,
                       export_fingerprint=key_fingerprint(export_key.public_key()), certification=found)
