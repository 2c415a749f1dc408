"""Which of the agency root's certificates count, and what a key may sign when (issue 16).

Once the custody chain holds a `root_key_created` event, a station key is trusted only with a valid certificate
from that root (catalog.key_trust asks `Certification.why_not`); archives without a root work as before.

* The root counts when the chain's `root_key_created` event names it and its self-signed certificate is in WORM
  storage (`trust/root-<fp>.pem`; with the store not read, the catalogue's root row). One root per archive: a
  second `root_key_created` event is named, never trusted.
* A key certificate counts when it chains to that root: the root's signature is the proof (the root key is kept
  offline), so a certificate row inserted behind the application's back, or a record placed in `trust/certs/`
  that another key signed, counts for nothing and is named. With the store read, the certificates are the WORM
  copies; the catalogue's rows are only compared with them.
* A revocation or retirement (rotation) counts when the root signed its statement (`trust/revocations/<fp>.json`,
  `trust/retirements/<fp>.json`) or the chain records it (`key_revoked`, `key_rotated`): either can only take
  trust away.
* `use_problems`: what a key signed outside its certificates' validity, at or after its revocation or retirement
  (by time, and by position in the chain, which a backdated time cannot move).

`judge_certification` and `use_problems` are pure; `load_certification` and `load_key_uses` read.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlmodel import Session, col, or_, select

from catalog.certificates import (
    ROLE_ROOT,
    CertificateInvalid,
    KeyCertificateFacts,
    check_certificate,
    check_root,
    from_pem,
)
from catalog.custody import CustodyKind
from catalog.key_models import KeyCertificate
from catalog.models import CustodyAnchor, CustodyEvent
from catalog.signing import SignatureInvalid, verify_document
from storage import EvidenceStore, StorageError

__all__ = ["CERT_PREFIX", "RETIRED", "REVOKED", "STATEMENT_FORMAT", "TRUST_PREFIX", "TRUST_RETENTION", "CertRow",
           "Certification", "KeyStanding", "KeyUse", "RootEvent", "StatusChange", "TrustEvidence", "cert_record_name",
           "judge_certification", "load_certification", "load_key_uses", "root_record_name",
           "statement_record_name", "use_problems"]

#: WORM records of the root and its certificates live here, not under `keys/` (catalog.key_trust reads every
#: record there as a station key record).
TRUST_PREFIX = "trust/"
CERT_PREFIX = "trust/certs/"
STATEMENT_FORMAT = "evidence-key-statement/1"
REVOKED, RETIRED = "revoked", "retired"
#: Kept for good, like key records: every signature ever made depends on them.
TRUST_RETENTION = relativedelta(years=100)
_STATEMENT_FOLDER = {REVOKED: "revocations", RETIRED: "retirements"}
_TRUST_KINDS = (CustodyKind.ROOT_KEY_CREATED, CustodyKind.KEY_CERTIFIED, CustodyKind.KEY_REVOKED,
                CustodyKind.KEY_ROTATED)


def root_record_name(fp: str) -> str:
    return f"{TRUST_PREFIX}root-{fp}.pem"


def cert_record_name(fp: str, serial: str) -> str:
    return f"{CERT_PREFIX}{fp}-{serial}.pem"


def statement_record_name(action: str, fp: str) -> str:
    return f"{TRUST_PREFIX}{_STATEMENT_FOLDER[action]}/{fp}.json"


@dataclass(frozen=True)
class RootEvent:
    """A `root_key_created` custody event."""
    event_id: int
    fingerprint: str
    name: str


@dataclass(frozen=True)
class StatusChange:
    """A key revoked or retired from *at* on (and, when the chain recorded it, from event *event_id* on)."""
    fingerprint: str
    action: str  # REVOKED | RETIRED
    at: datetime
    reason: str
    source: str  # the statement's record name, or "event N"
    event_id: int | None = None


@dataclass(frozen=True)
class CertRow:
    """A `key_certificate` row as the catalogue holds it."""
    row_id: int
    fingerprint: str
    role: str
    serial: str
    certificate_pem: str
    record_name: str
    revoked_at: datetime | None


@dataclass
class TrustEvidence:
    """Everything `judge_certification` weighs, as read from the chain, the catalogue and (if read) the store."""
    roots: list[RootEvent] = field(default_factory=list)
    certified_serials: set[str] = field(default_factory=set)  # serials the chain's key_certified events name
    changes: list[StatusChange] = field(default_factory=list)  # from key_revoked / key_rotated events
    rows: list[CertRow] = field(default_factory=list)
    records: dict[str, bytes] | None = None  # name -> bytes under trust/; None: the store was not read


@dataclass
class KeyStanding:
    """A key with at least one valid certificate from the root."""
    fingerprint: str
    role: str
    subject: str
    certificates: list[KeyCertificateFacts] = field(default_factory=list)


@dataclass
class Certification:
    active: bool = False  # the chain has a root: station keys need its certificate
    root_event: RootEvent | None = None  # the chain's root_key_created event (the first, if forged others follow)
    root: KeyCertificateFacts | None = None  # the trusted root (None: none, or it cannot be trusted)
    root_problem: str = ""  # why the chain's root is not trusted
    keys: dict[str, KeyStanding] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # key fingerprint -> why its certificates do not count
    changes: dict[str, list[StatusChange]] = field(default_factory=dict)  # key fingerprint -> revocations/retirements
    problems: list[tuple[str, str]] = field(default_factory=list)  # (subject, what is wrong and why)

    def why_not(self, fp: str, *, role: str, subject: str) -> str | None:
        """Why key *fp* of *role* for *subject* (a station code, or "export") has no valid certificate; None when
        it has one, or when no root is registered (nothing is required then)."""
        if not self.active:
            return None
        if self.root is None:
            return f"the agency root cannot be trusted ({self.root_problem})"
        standing = self.keys.get(fp)
        if standing is None:
            return self.refused.get(fp) or (f"the agency root {self.root.fingerprint[:16]}… has issued no certificate "
                                             f"for it (`evidence keys certify`)")
        if standing.role != role or standing.subject != subject:
            return (f"its certificate is for the {standing.role} key {standing.subject!r}, not the {role} key "
                    f"{subject!r}")
        return None

    def status(self, fp: str, at: datetime, position: tuple[int, int] | None = None) -> str | None:
        """Why a signature by key *fp* made at *at* (appended at chain *position*, see KeyUse) is not covered by
        its certificates (None: it is): the key revoked or retired by then (by time, else by the chain's order,
        which a backdated time cannot move), or no certificate of it valid then."""
        for change in self.changes.get(fp, []):
            if at >= change.at:
                return f"the key was {change.action} at {change.at.isoformat()} ({change.source}: {change.reason})"
        for change in self.changes.get(fp, []):
            if position is not None and change.event_id is not None and position > (change.event_id, 0):
                return f"it was recorded after {change.source}, which says the key was {change.action} " \
                       f"({change.reason})"
        standing = self.keys.get(fp)
        if standing is None or any(c.valid_at(at) for c in standing.certificates):
            return None
        spans = ", ".join(f"{c.not_before.isoformat()} to {c.not_after.isoformat()}" for c in standing.certificates)
        return f"no certificate of the key was valid then (valid {spans})"


def _root_of(evidence: TrustEvidence, found: Certification) -> None:
    """Find the chain's root among the root certificates (WORM records, or the catalogue's root row)."""
    event = found.root_event = evidence.roots[0]
    for other in evidence.roots[1:]:
        if other.fingerprint != event.fingerprint:
            found.problems.append((f"agency root {other.fingerprint}", f"not trusted: a second root_key_created "
                                   f"event (event {other.event_id}) names it; the archive's root is "
                                   f"{event.fingerprint} (event {event.event_id}) and there is only one"))
    sources = ({n: d for n, d in evidence.records.items() if n.startswith(f"{TRUST_PREFIX}root-")}
               if evidence.records is not None else
               {f"catalogue row {r.row_id}": r.certificate_pem.encode() for r in evidence.rows if r.role == ROLE_ROOT})
    for name, data in sorted(sources.items()):
        try:
            certificate = from_pem(data)
        except CertificateInvalid as exc:
            found.problems.append((name, f"the root certificate cannot be trusted: {exc}"))
            continue
        findings = check_root(certificate, trusted_fingerprint=event.fingerprint)
        if findings:
            found.problems.append((name, "the root certificate cannot be trusted: " + "; ".join(findings)))
        elif found.root is None:
            found.root = KeyCertificateFacts(certificate)
    if found.root is None:
        where = (f"WORM storage holds no valid self-signed certificate for it ({root_record_name(event.fingerprint)})"
                 if evidence.records is not None else "the catalogue holds no valid root certificate for it")
        found.root_problem = f"root {event.fingerprint} ({event.name!r}, event {event.event_id}): {where}"
        found.problems.append((f"agency root {event.fingerprint}", f"not trusted: {where}; no station key counts "
                                                                   "as certified"))


def _certificate_sources(evidence: TrustEvidence) -> dict[str, bytes]:
    if evidence.records is not None:
        return {n: d for n, d in evidence.records.items() if n.startswith(CERT_PREFIX)}
    return {f"catalogue row {r.row_id}": r.certificate_pem.encode() for r in evidence.rows if r.role != ROLE_ROOT}


def _judge_certificates(evidence: TrustEvidence, found: Certification) -> set[str]:
    """Add every certificate that chains to the root to `found.keys` (the rest to problems); their serials."""
    assert found.root is not None
    valid: set[str] = set()
    for name, data in sorted(_certificate_sources(evidence).items()):
        try:
            certificate = from_pem(data)
            facts = KeyCertificateFacts(certificate)
        except CertificateInvalid as exc:
            found.problems.append((name, f"the certificate cannot be trusted: {exc}"))
            continue
        findings = check_certificate(certificate, found.root.certificate)
        if findings:
            why = "; ".join(findings)
            found.problems.append((name, f"the certificate of key {facts.fingerprint} ({facts.subject!r}) cannot "
                                         f"be trusted: {why}"))
            found.refused.setdefault(facts.fingerprint, f"its certificate {name} cannot be trusted: {why}")
            continue
        standing = found.keys.setdefault(facts.fingerprint, KeyStanding(facts.fingerprint, str(facts.role),
                                                                        facts.subject))
        if (standing.role, standing.subject) != (facts.role, facts.subject):
            found.problems.append((name, f"the root certified key {facts.fingerprint} as the {facts.role} key "
                                         f"{facts.subject!r} and as the {standing.role} key {standing.subject!r}"))
        standing.certificates.append(facts)
        valid.add(facts.serial)
    return valid


def _parse_statement(name: str, data: bytes, root_fp: str) -> StatusChange:
    """A revocation or retirement the root signed, or ValueError/SignatureInvalid/KeyError saying why not."""
    document = json.loads(data)
    body = verify_document(document)
    if document["signature"]["key_fingerprint"] != root_fp:
        raise ValueError(f"it is signed by key {document['signature']['key_fingerprint']}, not by the agency root")
    if body.get("format") != STATEMENT_FORMAT or body.get("action") not in _STATEMENT_FOLDER:
        raise ValueError(f"format {body.get('format')!r} / action {body.get('action')!r} is not a key statement")
    if name != statement_record_name(body["action"], body["fingerprint"]):
        raise ValueError(f"it is about key {body['fingerprint']} but is stored as {name}")
    return StatusChange(fingerprint=str(body["fingerprint"]), action=str(body["action"]),
                        at=datetime.fromisoformat(body["at"]), reason=str(body.get("reason", "")), source=name)


def _judge_statements(evidence: TrustEvidence, found: Certification) -> None:
    """Every revocation and retirement that counts, by key; the root-signed statements and the chain compared."""
    assert found.root is not None
    statements = []
    for name, data in sorted((evidence.records or {}).items()):
        if name.startswith(tuple(f"{TRUST_PREFIX}{folder}/" for folder in _STATEMENT_FOLDER.values())):
            try:
                statements.append(_parse_statement(name, data, found.root.fingerprint))
            except (SignatureInvalid, ValueError, KeyError, TypeError) as exc:
                found.problems.append((name, f"the key statement cannot be trusted: {exc}"))
    signed = {(s.fingerprint, s.action) for s in statements}
    for change in evidence.changes:
        if evidence.records is not None and (change.fingerprint, change.action) not in signed:
            found.problems.append((f"key {change.fingerprint}", f"the chain says it was {change.action} "
                                   f"({change.source}), but WORM storage holds no statement the root signed "
                                   f"({statement_record_name(change.action, change.fingerprint)})"))
    for change in [*statements, *evidence.changes]:
        found.changes.setdefault(change.fingerprint, []).append(change)
    for changes in found.changes.values():
        changes.sort(key=lambda c: c.at)


def _row_disagreements(evidence: TrustEvidence, found: Certification, valid: set[str]) -> None:
    """Catalogue rows, chain events and certificates that do not match (each named)."""
    revoked = {fp for fp, changes in found.changes.items() if any(c.action == REVOKED for c in changes)}
    assert found.root is not None
    for row in evidence.rows:
        if row.role == ROLE_ROOT and row.fingerprint != found.root.fingerprint:
            found.problems.append((f"certificate row {row.row_id}", f"not trusted: it says root {row.fingerprint}, "
                                   f"the chain's root is {found.root.fingerprint} (the row was edited?)"))
        subject = f"certificate row {row.row_id} (key {row.fingerprint}, serial {row.serial})"
        if row.role != ROLE_ROOT and row.serial not in valid:
            found.problems.append((subject, "not trusted: no certificate with this serial chains to the agency "
                                            "root (the row was inserted or edited behind the application's back?)"))
        if row.role != ROLE_ROOT and row.serial not in evidence.certified_serials:
            found.problems.append((subject, "no key_certified event in the custody chain names it"))
        if row.revoked_at is not None and row.fingerprint not in revoked:
            found.problems.append((subject, "the row says revoked, but neither the root nor the chain revoked it"))
        if row.revoked_at is None and row.fingerprint in revoked:
            found.problems.append((subject, "the key was revoked, but the row says it is not (the row was edited)"))
    for serial in sorted(valid - evidence.certified_serials):
        found.problems.append((f"certificate {serial}", "no key_certified event in the custody chain names it"))


def judge_certification(evidence: TrustEvidence) -> Certification:
    """Decide the root, the valid certificates and the revocations from *evidence*, naming every disagreement."""
    found = Certification(active=bool(evidence.roots))
    if not found.active:
        stray = [n for n in (evidence.records or {})] + [f"certificate row {r.row_id}" for r in evidence.rows]
        found.problems += [(name, "not trusted: the custody chain records no agency root (root_key_created), so "
                                  "nothing under trust/ or in key_certificate counts (placed behind the "
                                  "application's back?)") for name in stray]
        return found
    _root_of(evidence, found)
    if found.root is None:
        return found
    valid = _judge_certificates(evidence, found)
    _judge_statements(evidence, found)
    _row_disagreements(evidence, found, valid)
    return found


@dataclass(frozen=True)
class KeyUse:
    """Something a key signed: *what*, at the time *at* it claims, and where it stands in the chain."""
    fingerprint: str
    what: str
    at: datetime
    position: tuple[int, int]  # (event id, 0) for an event; (last event id, 1) for an anchor written after it


def use_problems(found: Certification, uses: Iterable[KeyUse]) -> list[tuple[str, str]]:
    """(subject, detail) for each use of a key outside its certificates or after its revocation/retirement: by the
    time it claims, and by its place in the chain (after the event that revoked or retired the key). Pure."""
    problems = []
    for use in uses:
        why = found.status(use.fingerprint, use.at, use.position)
        if why is not None:
            problems.append((f"key {use.fingerprint}", f"{use.what}, signed at {use.at.isoformat()}, is not "
                                                       f"covered by the key's certificate: {why}"))
    return problems


# -- reading ------------------------------------------------------------------------------------------------------


def _details(event: CustodyEvent) -> dict[str, Any]:
    return event.details if isinstance(event.details, dict) else {}


def _chain_evidence(session: Session, evidence: TrustEvidence) -> None:
    events = session.exec(select(CustodyEvent).where(col(CustodyEvent.kind).in_([k.value for k in _TRUST_KINDS]))
                          .order_by(col(CustodyEvent.id)))
    for event in events:
        details, event_id = _details(event), int(event.id or 0)
        fp = str(details.get("fingerprint") or "")
        if event.kind == CustodyKind.ROOT_KEY_CREATED.value and fp:
            evidence.roots.append(RootEvent(event_id=event_id, fingerprint=fp, name=str(details.get("name", ""))))
        elif event.kind == CustodyKind.KEY_CERTIFIED.value:
            evidence.certified_serials.add(str(details.get("serial")))
        elif fp and event.at is not None:
            action = REVOKED if event.kind == CustodyKind.KEY_REVOKED.value else RETIRED
            try:
                at = datetime.fromisoformat(str(details.get("effective_at")))
            except ValueError:
                at = event.at
            if at.tzinfo is None:  # not written by this application: its own time is all there is
                at = event.at
            evidence.changes.append(StatusChange(fingerprint=fp, action=action, at=min(at, event.at),
                                                 reason=str(details.get("reason", "")), source=f"event {event_id}",
                                                 event_id=event_id))


def _read_records(store: EvidenceStore) -> tuple[dict[str, bytes], list[tuple[str, str]]]:
    records, problems = {}, []
    for name in store.list_records(TRUST_PREFIX):
        try:
            records[name] = store.get_record(name)
        except StorageError as exc:
            problems.append((name, f"the trust record cannot be read: {exc}"))
    return records, problems


def load_certification(session: Session, store: EvidenceStore | None) -> Certification:
    """Judge the root and its certificates from the chain, the catalogue and (given *store*) WORM storage."""
    evidence = TrustEvidence()
    _chain_evidence(session, evidence)
    evidence.rows = [CertRow(row_id=int(r.id or 0), fingerprint=r.fingerprint, role=r.role, serial=r.serial,
                             certificate_pem=r.certificate_pem, record_name=r.record_name, revoked_at=r.revoked_at)
                     for r in session.exec(select(KeyCertificate).order_by(col(KeyCertificate.id)))]
    read_problems: list[tuple[str, str]] = []
    if store is not None:
        evidence.records, read_problems = _read_records(store)
    found = judge_certification(evidence)
    found.problems = read_problems + found.problems
    return found


def _cutoffs(found: Certification) -> tuple[datetime, int | None] | None:
    """The earliest time, and the earliest chain event, after which some key may sign no more (None: no such)."""
    changes = [c for cs in found.changes.values() for c in cs]
    times = [c.at for c in changes] + [max(c.not_after for c in s.certificates) for s in found.keys.values()
                                       if s.certificates]
    if not times:
        return None
    return min(times), min((c.event_id for c in changes if c.event_id is not None), default=None)


def _signed_events(session: Session, fps: list[str], since: datetime, after_event: int | None) -> list[KeyUse]:
    when = col(CustodyEvent.at) > since
    if after_event is not None:
        when = or_(when, col(CustodyEvent.id) > after_event)
    signed_by = col(CustodyEvent.details)["key_fingerprint"].as_string()
    uses = []
    for event in session.exec(select(CustodyEvent).where(
            col(CustodyEvent.kind).in_([CustodyKind.MANIFESTED.value, CustodyKind.DISPOSAL_RECORDED.value]),
            signed_by.in_(fps), when).order_by(col(CustodyEvent.id))):
        details = _details(event)
        what = (f"manifest r{details.get('revision')} of recording {event.recording_id} (event {event.id})"
                if event.kind == CustodyKind.MANIFESTED.value else f"disposal record (event {event.id})")
        assert event.at is not None
        uses.append(KeyUse(str(details["key_fingerprint"]), what, event.at, (int(event.id or 0), 0)))
    return uses


def _signed_anchors(session: Session, fps: list[str], since: datetime, after_event: int | None) -> list[KeyUse]:
    when = col(CustodyAnchor.written_at) > since
    if after_event is not None:
        when = or_(when, col(CustodyAnchor.last_event_id) >= after_event)
    uses = []
    for anchor in session.exec(select(CustodyAnchor).where(col(CustodyAnchor.key_fingerprint).in_(fps), when)
                               .order_by(col(CustodyAnchor.id))):
        assert anchor.written_at is not None
        uses.append(KeyUse(anchor.key_fingerprint, f"anchor {anchor.record_name}", anchor.written_at,
                           (anchor.last_event_id, 1)))
    return uses


def load_key_uses(session: Session, found: Certification) -> list[KeyUse]:
    """What keys signed after the earliest moment one of them may no longer (revoked, retired, a certificate
    ended): manifests and disposal records (their custody events) and anchors (their catalogue rows)."""
    cutoff = _cutoffs(found)
    if cutoff is None:
        return []
    fps = sorted(set(found.changes) | set(found.keys))
    return _signed_events(session, fps, *cutoff) + _signed_anchors(session, fps, *cutoff)
