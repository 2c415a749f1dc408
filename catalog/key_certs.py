"""The agency root and the keys it certifies: one function per operation (`evidence keys …`; the web and the
export use the same ones).

Each operation leaves three traces that must agree: a custody event (`root_key_created`, `key_certified`,
`key_revoked`, `key_rotated`, naming the fingerprints), a WORM record under `trust/` (the certificate as PEM,
or a revocation/retirement statement the root signed) and the catalogue's `key_certificate` row. What counts
is decided by catalog.cert_trust, never by the row alone. The root's private key is only ever given to these
functions (read from its file by the caller) and never stored by them.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlmodel import Session, col, select

from catalog.cert_trust import (
    RETIRED,
    REVOKED,
    STATEMENT_FORMAT,
    TRUST_RETENTION,
    Certification,
    cert_record_name,
    load_certification,
    root_record_name,
    statement_record_name,
)
from catalog.certificates import (
    EXPORT_SUBJECT,
    ROLE_EXPORT,
    ROLE_ROOT,
    ROLE_STATION,
    ROOT_YEARS,
    KeyCertificateFacts,
    build_root_certificate,
    default_not_after,
    issue_certificate,
    key_fingerprint,
    to_pem,
)
from catalog.custody import CustodyKind, append_event
from catalog.errors import CatalogError
from catalog.key_models import KeyCertificate
from catalog.key_trust import load_key_trust
from catalog.models import StationKey
from catalog.signing import public_key_b64, sign_document
from storage import EvidenceStore, ObjectExists

__all__ = ["EXPORT_SUBJECT", "KEY_DAYS", "KeysRefused", "Revocation", "certify_export_key", "certify_station",
           "current_root", "init_root", "record_retirement", "revoke_key", "statement_body"]

#: How long a station or export key certificate is valid unless told otherwise (about five years).
KEY_DAYS = 1826
#: The common name of the export key's certificate.


class KeysRefused(CatalogError):
    """A key operation cannot be done as asked (no root, the wrong root key, an unknown or revoked key…)."""


def _put(store: EvidenceStore, name: str, data: bytes, now: datetime) -> None:
    """Write a trust record once; the same bytes already there are fine (a retried operation), other bytes not."""
    try:
        store.put_record(name, data, retain_until=now + TRUST_RETENTION)
    except ObjectExists:
        if store.get_record(name) != data:
            raise KeysRefused(f"WORM storage already holds a different {name}: it is never rewritten; "
                              "`evidence verify` says what it is") from None


def _record_certificate(session: Session, store: EvidenceStore, certificate: x509.Certificate, *, by: str,
                        now: datetime, kind: CustodyKind, extra: dict[str, Any] | None = None) -> KeyCertificate:
    """The certificate's WORM record, its catalogue row and its custody event (*kind*)."""
    facts = KeyCertificateFacts(certificate)
    pem = to_pem(certificate)
    role = facts.role or ROLE_ROOT
    name = root_record_name(facts.fingerprint) if role == ROLE_ROOT else cert_record_name(facts.fingerprint,
                                                                                           facts.serial)
    row = KeyCertificate(fingerprint=facts.fingerprint, role=role, subject=facts.subject, serial=facts.serial,
                         issuer_fingerprint=facts.issuer_fingerprint or facts.fingerprint,
                         not_before=facts.not_before, not_after=facts.not_after, certificate_pem=pem,
                         record_name=name, created_at=now)
    session.add(row)
    append_event(session, kind, actor=by, details={
        "fingerprint": facts.fingerprint, "role": role, "subject": facts.subject, "serial": facts.serial,
        "issuer": row.issuer_fingerprint, "not_before": facts.not_before.isoformat(),
        "not_after": facts.not_after.isoformat(), "record": name,
        "certificate_sha256": hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
        **(extra or {})})
    session.flush()
    _put(store, name, pem.encode(), now)
    return row


def init_root(session: Session, store: EvidenceStore, key: Ed25519PrivateKey, *, name: str, by: str, now: datetime,
              years: int = ROOT_YEARS) -> KeyCertificate:
    """Make *key* the archive's agency root: its self-signed certificate (CN *name*) in WORM storage, the
    catalogue and a `root_key_created` event. One root per archive: a second is refused (KeysRefused)."""
    found = load_certification(session, store)
    existing = session.exec(select(KeyCertificate).where(KeyCertificate.role == ROLE_ROOT)).first()
    if found.active or existing is not None:
        fp = found.root.fingerprint if found.root else existing.fingerprint if existing else "?"
        raise KeysRefused(f"this archive already has an agency root ({fp}); there is one root per archive and it "
                          "is never replaced")
    certificate = build_root_certificate(key, name=name, now=now, years=years)
    return _record_certificate(session, store, certificate, by=by, now=now, kind=CustodyKind.ROOT_KEY_CREATED,
                               extra={"name": name, "public_key": public_key_b64(key)})


def current_root(session: Session, store: EvidenceStore | None,
                 root_key: Ed25519PrivateKey | None = None) -> tuple[Certification, KeyCertificateFacts]:
    """The archive's trusted root (and, given *root_key*, proof that it is that root's key), else KeysRefused."""
    found = load_certification(session, store)
    if not found.active:
        raise KeysRefused("this archive has no agency root yet: create it with `evidence keys init-root`")
    if found.root is None:
        raise KeysRefused(f"the agency root cannot be trusted: {found.root_problem}")
    if root_key is not None and key_fingerprint(root_key.public_key()) != found.root.fingerprint:
        raise KeysRefused(f"the key given is {key_fingerprint(root_key.public_key())}, not this archive's agency "
                          f"root {found.root.fingerprint} ({found.root.subject!r})")
    return found, found.root


def _issue(session: Session, store: EvidenceStore, root_key: Ed25519PrivateKey, root: KeyCertificateFacts,
           public: Ed25519PublicKey, *, role: str, subject: str, not_before: datetime, by: str, now: datetime,
           days: int) -> KeyCertificate:
    certificate = issue_certificate(root_key, root.certificate, public, role=role, subject=subject,
                                    not_before=min(not_before, now), not_after=default_not_after(now, days))
    return _record_certificate(session, store, certificate, by=by, now=now, kind=CustodyKind.KEY_CERTIFIED)


def _refuse_revoked(found: Certification, fp: str) -> None:
    changes = found.changes.get(fp, [])
    if changes:
        raise KeysRefused(f"key {fp} was {changes[0].action} at {changes[0].at.isoformat()} ({changes[0].source}): "
                          "it is never certified again")


def _valid_now(found: Certification, fp: str, now: datetime) -> datetime | None:
    """Until when key *fp* has a certificate valid now (None: none)."""
    standing = found.keys.get(fp)
    ends = [c.not_after for c in standing.certificates if c.valid_at(now)] if standing else []
    return max(ends) if ends else None


def certify_station(session: Session, store: EvidenceStore, root_key: Ed25519PrivateKey, station: str, *, by: str,
                    now: datetime, days: int = KEY_DAYS, renew: bool = False,
                    only: str | None = None) -> list[KeyCertificate]:
    """Certify every current key of *station* (not retired; with *only*, just the key with that fingerprint) that
    has no valid certificate yet (with *renew*: also those that have one). Only a key the archive already trusts
    (its `key_registered` event and WORM key record) is certified: a key row inserted behind the application's
    back is refused, naming why."""
    found, root = current_root(session, store, root_key)
    keys = [k for k in session.exec(select(StationKey).where(StationKey.station_code == station,
                                                             col(StationKey.retired_at).is_(None))
                                    .order_by(col(StationKey.id))) if only in (None, k.fingerprint)]
    if not keys:
        raise KeysRefused(f"station {station!r} has no current signing key in the catalogue (a station registers "
                          "its key when it first ingests)")
    trust = load_key_trust(session, store, certificates=False)
    issued = []
    for row in keys:
        if row.fingerprint not in trust.trusted:
            raise KeysRefused(f"station key {row.fingerprint} of {station!r} is not trusted, so it is not certified: "
                              f"{trust.trusted.untrusted.get(row.fingerprint, 'unknown key')}")
        _refuse_revoked(found, row.fingerprint)
        until = _valid_now(found, row.fingerprint, now)
        if until is not None and not renew:
            continue
        assert row.created_at is not None
        first = row.fingerprint not in found.keys  # the first certificate vouches for the key since it was registered
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(row.public_key))
        issued.append(_issue(session, store, root_key, root, public, role=ROLE_STATION, subject=station,
                             not_before=row.created_at if first else now, by=by, now=now, days=days))
    if not issued:
        raise KeysRefused(f"every current key of station {station!r} already has a valid certificate "
                          f"({', '.join(k.fingerprint[:16] + '…' for k in keys)}); use --renew to issue another")
    return issued


def certify_export_key(session: Session, store: EvidenceStore, root_key: Ed25519PrivateKey,
                       public: Ed25519PublicKey, *, by: str, now: datetime, days: int = KEY_DAYS,
                       renew: bool = False) -> KeyCertificate:
    """Certify the export key (the key evidence packages are signed with)."""
    found, root = current_root(session, store, root_key)
    fp = key_fingerprint(public)
    _refuse_revoked(found, fp)
    until = _valid_now(found, fp, now)
    if until is not None and not renew:
        raise KeysRefused(f"the export key {fp} already has a certificate valid until {until.isoformat()}; use "
                          "--renew to issue another")
    return _issue(session, store, root_key, root, public, role=ROLE_EXPORT, subject=EXPORT_SUBJECT, not_before=now,
                  by=by, now=now, days=days)


def statement_body(action: str, fp: str, *, role: str, subject: str, at: datetime, reason: str, by: str,
                   root_fp: str, now: datetime, replaced_by: str | None = None) -> dict[str, Any]:
    """What the root signs when it revokes or retires a key (no I/O)."""
    body: dict[str, Any] = {"format": STATEMENT_FORMAT, "action": action, "fingerprint": fp, "role": role,
                            "subject": subject, "at": at.isoformat(), "reason": reason, "by": by,
                            "root_fingerprint": root_fp, "written_at": now.isoformat()}
    if replaced_by is not None:
        body["replaced_by"] = replaced_by
    return body


def _put_statement(store: EvidenceStore, root_key: Ed25519PrivateKey, body: dict[str, Any], now: datetime) -> str:
    name = statement_record_name(body["action"], body["fingerprint"])
    document = sign_document(body, root_key)
    _put(store, name, json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode(), now)
    return name


@dataclass(frozen=True)
class Revocation:
    fingerprint: str
    role: str
    subject: str
    effective_at: datetime
    record: str


def _known_key(session: Session, ref: str) -> tuple[str, str, str]:
    """(fingerprint, role, subject) of the one station or certified key whose fingerprint starts with *ref*."""
    ref = ref.strip().lower()
    if len(ref) < 8:
        raise KeysRefused(f"fingerprint {ref!r} is too short: give at least 8 hex digits")
    found: dict[str, tuple[str, str]] = {}
    for station_key in session.exec(select(StationKey).where(col(StationKey.fingerprint).startswith(ref))):
        found[station_key.fingerprint] = (ROLE_STATION, station_key.station_code)
    for cert in session.exec(select(KeyCertificate).where(col(KeyCertificate.fingerprint).startswith(ref))):
        found.setdefault(cert.fingerprint, (cert.role, cert.subject))
    if len(found) != 1:
        raise KeysRefused(f"no key's fingerprint starts with {ref!r}" if not found else
                          f"{len(found)} keys' fingerprints start with {ref!r}: give more digits")
    (fp, (role, subject)), = found.items()
    return fp, role, subject


def revoke_key(session: Session, store: EvidenceStore, root_key: Ed25519PrivateKey, ref: str, *, reason: str,
               by: str, now: datetime, since: datetime | None = None) -> Revocation:
    """Revoke a station or export key from *since* (default now) on: what it signs from then is named by
    `evidence verify`; what it signed before keeps its certificate. Recorded as a statement the root signs (WORM),
    a `key_revoked` event and the key's certificate rows."""
    found, root = current_root(session, store, root_key)
    fp, role, subject = _known_key(session, ref)
    if role == ROLE_ROOT:
        raise KeysRefused("the agency root cannot be revoked by itself; there is one root per archive")
    if not reason.strip():
        raise KeysRefused("a revocation needs a reason (--reason)")
    revoked = [c for c in found.changes.get(fp, []) if c.action == REVOKED]
    if revoked:
        raise KeysRefused(f"key {fp} was already revoked at {revoked[0].at.isoformat()} ({revoked[0].source})")
    effective = since or now
    if effective > now:
        raise KeysRefused(f"a revocation cannot take effect in the future ({effective.isoformat()})")
    name = _put_statement(store, root_key, statement_body(REVOKED, fp, role=role, subject=subject, at=effective,
                                                          reason=reason, by=by, root_fp=root.fingerprint, now=now),
                          now)
    for cert in session.exec(select(KeyCertificate).where(KeyCertificate.fingerprint == fp)):
        cert.revoked_at, cert.revocation_reason = effective, reason
        session.add(cert)
    append_event(session, CustodyKind.KEY_REVOKED, actor=by, details={
        "fingerprint": fp, "role": role, "subject": subject, "effective_at": effective.isoformat(),
        "reason": reason, "record": name, "root": root.fingerprint})
    return Revocation(fingerprint=fp, role=role, subject=subject, effective_at=effective, record=name)


def record_retirement(session: Session, store: EvidenceStore, root_key: Ed25519PrivateKey, old: StationKey, *,
                      new_fingerprint: str, by: str, now: datetime) -> str:
    """Retire station key *old* in favour of *new_fingerprint* (a rotation): the root's statement in WORM storage,
    the row's retired_at and a `key_rotated` event. Returns the statement's record name."""
    _, root = current_root(session, store, root_key)
    name = _put_statement(store, root_key, statement_body(
        RETIRED, old.fingerprint, role=ROLE_STATION, subject=old.station_code, at=now, reason="rotated",
        by=by, root_fp=root.fingerprint, now=now, replaced_by=new_fingerprint), now)
    old.retired_at = now
    session.add(old)
    append_event(session, CustodyKind.KEY_ROTATED, actor=by, details={
        "station": old.station_code, "fingerprint": old.fingerprint, "new_fingerprint": new_fingerprint,
        "effective_at": now.isoformat(), "reason": "rotated", "record": name, "root": root.fingerprint})
    return name
