"""Every key the archive knows, as `evidence keys list --json` prints it: the agency root, each station key and the
export key, with its fingerprint (SHA-256 of the raw public key), validity, certifier and standing, and every
problem catalog.key_trust / catalog.cert_trust found. Read-only."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.cert_trust import RETIRED, REVOKED, Certification
from catalog.certificates import ROLE_EXPORT, ROLE_STATION
from catalog.key_models import KeyCertificate
from catalog.key_trust import load_key_trust
from catalog.models import StationKey
from storage import EvidenceStore

__all__ = ["list_keys"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _root(found: Certification) -> dict[str, Any] | None:
    if found.root_event is None:
        return None
    root = found.root
    return {"fingerprint": found.root_event.fingerprint, "name": found.root_event.name,
            "serial": root.serial if root else None, "not_before": _iso(root.not_before) if root else None,
            "not_after": _iso(root.not_after) if root else None, "trusted": root is not None,
            "problem": found.root_problem or None}


def _status(found: Certification, fp: str, *, why_not: str | None, retired: bool, now: datetime) -> str:
    """revoked, retired, uncertified (a root, but no valid certificate from it), untrusted (*why_not*), registered
    (no root), certified, expired or not yet valid."""
    actions = {c.action for c in found.changes.get(fp, []) if c.at <= now}
    if REVOKED in actions:
        return "revoked"
    if RETIRED in actions or retired:
        return "retired"
    standing = found.keys.get(fp)
    if found.active and standing is None:
        return "uncertified"
    if why_not is not None:
        return "untrusted"
    if standing is None:
        return "registered"
    if any(c.valid_at(now) for c in standing.certificates):
        return "certified"
    return "expired" if all(now > c.not_after for c in standing.certificates) else "not yet valid"


def _certificates(found: Certification, fp: str) -> dict[str, Any]:
    standing = found.keys.get(fp)
    certificates = sorted(standing.certificates, key=lambda c: c.not_after) if standing else []
    latest = certificates[-1] if certificates else None
    revoked = next((c for c in found.changes.get(fp, []) if c.action == REVOKED), None)
    return {"certifier": found.root.fingerprint if latest and found.root else None,
            "not_before": _iso(latest.not_before) if latest else None,
            "not_after": _iso(latest.not_after) if latest else None,
            "certificates": [{"serial": c.serial, "not_before": _iso(c.not_before), "not_after": _iso(c.not_after)}
                             for c in certificates],
            "revoked_at": _iso(revoked.at) if revoked else None,
            "revocation_reason": revoked.reason if revoked else None}


def list_keys(session: Session, store: EvidenceStore | None, *, now: datetime) -> dict[str, Any]:
    """`{"root": {...} | null, "keys": [...], "problems": [...]}` (see the module's docstring)."""
    trust = load_key_trust(session, store)
    found = trust.certification or Certification()
    keys = []
    for row in session.exec(select(StationKey).order_by(col(StationKey.id))):
        why_not = None if row.fingerprint in trust.trusted else trust.trusted.untrusted.get(row.fingerprint, "?")
        keys.append({"fingerprint": row.fingerprint, "role": ROLE_STATION, "station": row.station_code,
                     "subject": row.station_code, "registered_at": _iso(row.created_at),
                     "retired_at": _iso(row.retired_at),
                     "status": _status(found, row.fingerprint, why_not=why_not, retired=row.retired_at is not None,
                                       now=now),
                     "trusted": why_not is None, "why_not": why_not,
                     **_certificates(found, row.fingerprint)})
    exports = {s.fingerprint for s in found.keys.values() if s.role == ROLE_EXPORT}
    exports |= set(session.exec(select(KeyCertificate.fingerprint).where(KeyCertificate.role == ROLE_EXPORT)))
    for fp in sorted(exports):
        why = found.why_not(fp, role=ROLE_EXPORT, subject="export")
        keys.append({"fingerprint": fp, "role": ROLE_EXPORT, "station": None, "subject": "export",
                     "registered_at": None, "retired_at": None,
                     "status": _status(found, fp, why_not=why, retired=False, now=now),
                     "trusted": why is None, "why_not": why, **_certificates(found, fp)})
    return {"root": _root(found), "keys": keys,
            "problems": [{"subject": subject, "detail": detail} for subject, detail in trust.problems]}
