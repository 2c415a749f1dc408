"""Independent verification: stored bytes, catalogue, signed manifests, custody chain and its WORM anchors.

Nothing here trusts one source alone. Each stored object is re-read and
re-hashed; the catalogue row must have been made by a custody event and is
compared with what its events set (catalog.replay, catalog.findings), with
its stamp revisions and with the signed manifests in WORM storage (signatures
checked against the trusted station keys): every signed stamp fact and every
signed sighting (catalog.verify_records); the custody chain is walked link by
link and compared with the signed anchors in the store. Every problem names
the values that show it. Rows are read 64 at a time, with one query per table
(revisions, sightings, events, links) a batch.
"""
from __future__ import annotations

import json
import random
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, func
from sqlmodel import Session, col, select

from catalog.anchors import chain_end_problems, check_anchors, read_anchors
from catalog.case_models import Case, CaseGrant, CaseLink, Disposal, DisposalBatch
from catalog.classification import grant_findings
from catalog.custody import stream_events
from catalog.errors import PolicyInvalid
from catalog.event_hashes import GENESIS_HASH, stored_event_hash, version_problem
from catalog.findings import chain_differences, linked_cases, load_recording_chain
from catalog.integrity import integrity_history
from catalog.manifests import trusted_fingerprints
from catalog.models import IN_ARCHIVE, CustodyEvent, DerivedMedia, IntegrityCheck, Recording, RecordingState
from catalog.policy_adoption import adopted_policy
from catalog.replay import LIFECYCLE_KINDS, CaseReplay, RecordingReplay, load_case_replays, load_link_rows, load_replays
from catalog.replay_compare import case_findings, chain_decision, chain_findings
from catalog.retention import RetentionPolicy
from catalog.signing import SignatureInvalid, signed_bytes, verify_document
from catalog.timestamping import token_name, token_problem, token_signature_problem
from catalog.types import utcnow
from catalog.verify_actions import action_findings
from catalog.verify_disposals import batch_findings, tombstone_findings
from catalog.verify_integrity import integrity_findings
from catalog.verify_records import (
    Problem,
    RecordRows,
    check_recording_record,
    check_sightings,
    record_problems,
    recording_subject,
)
from catalog.verify_registry import registry_problems
from storage import EvidenceStore, ObjectMissing, StorageError, StoredObject
from storage.hashing import hash_stream

__all__ = [
    "Problem",
    "VerifyReport",
    "case_problems",
    "check_chain",
    "check_disposed",
    "check_lock",
    "check_lock_against_chain",
    "check_recording_record",
    "check_sightings",
    "grant_problems",
    "missing_rows",
    "object_problems",
    "record_problems",
    "rehash",
    "replay_problems",
    "select_recordings",
    "verify_archive",
]


@dataclass
class VerifyReport:
    recordings: int = 0
    bytes_read: int = 0
    manifests: int = 0
    events: int = 0
    anchors: int = 0
    skipped: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    verified_ids: list[int] = field(default_factory=list)  # recordings that passed every check

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "recordings": self.recordings, "bytes_read": self.bytes_read,
                "manifests": self.manifests, "events": self.events, "anchors": self.anchors,
                "skipped": self.skipped, "problems": [asdict(p) for p in self.problems]}


def rehash(store: EvidenceStore, sha256: str) -> tuple[str, int]:
    """SHA-256 and size of the bytes the store holds under *sha256*'s key: one streaming read, with the next
    chunk read while the last is hashed (both release the GIL), so the slower of the two sets the pace
    (storage.hashing.hash_stream with read-ahead: reused buffers, no allocation per chunk)."""
    with store.open(sha256) as body:
        return hash_stream(body, read_ahead=True)


def _read_back(store: EvidenceStore, sha256: str) -> tuple[str, int, StoredObject]:
    found, size = rehash(store, sha256)
    return found, size, store.head(sha256)


def check_lock(recording: Recording, stored: StoredObject) -> list[Problem]:
    """The store must protect at least what the catalogue says: a lock that ends sooner, or a legal hold the store
    does not have, would let the object go early (edited behind the application's back, or never applied). Pure."""
    problems = []
    who = recording_subject(recording)
    if recording.retain_until is not None and stored.retain_until < recording.retain_until:
        problems.append(Problem("retention", who, f"the store locks {stored.key} until "
                                                  f"{stored.retain_until.isoformat()}, the catalogue says "
                                                  f"{recording.retain_until.isoformat()} ({recording.retention_rule}); "
                                                  "`evidence retention apply --check-store` repairs it",
                                recording.id))
    if recording.legal_hold and not stored.legal_hold:
        problems.append(Problem("retention", who, f"the catalogue holds {stored.key} under legal hold, the store "
                                                  "does not; `evidence retention apply --check-store` repairs it",
                                recording.id))
    problems.extend(Problem("seal", who, f"{found} (someone changed the store's protection behind its back; "
                                         "the bytes are checked by hash)", recording.id)
                    for found in stored.seal_problems)
    return problems



    return problems


def select_recordings(session: Session, *, ids: list[int] | None = None, sample: int | None = None,
                      rolling: bool = False, seed: int | None = None, now: datetime | None = None) -> list[int]:
    """Which recordings to verify: the given ids, a random sample of those in the store, the *sample* least recently
    checked (*rolling*: a check dated after *now* counts as none, first in line — a review hid an altered object
    from every fixity run by setting its `fixity_checked_at` to 9999), or all (every row, whatever its state)."""
    if ids:
        return sorted(set(ids))
    if sample is None and not rolling:  # all: every row whatever its state (a row hidden as staged or disposed too)
        return [rid for rid in session.exec(select(Recording.id).order_by(col(Recording.id))) if rid is not None]
    query = select(Recording.id).where(col(Recording.state).in_(IN_ARCHIVE))
    if rolling and sample:
        checked = case((col(Recording.fixity_checked_at) <= (now or utcnow()), 1), else_=0)  # NULL: not checked
        query = query.order_by(checked, col(Recording.fixity_checked_at), col(Recording.id)).limit(sample)
        return [rid for rid in session.exec(query) if rid is not None]
    every = [rid for rid in session.exec(query.order_by(col(Recording.id))) if rid is not None]
    if sample is not None and sample < len(every):
        return sorted(random.Random(seed).sample(every, sample))
    return every


def _replay_findings(recording: Recording, replay: RecordingReplay, links: list[tuple[str, CaseLink]],
                     cases: Any, policy: RetentionPolicy | None) -> list[Problem]:
    who = recording_subject(recording)
    problems = [Problem(kind, who, text, recording.id) for kind, text in chain_differences(recording, replay, links)]
    if policy is not None and recording.state != RecordingState.DISPOSED.value:
        problems += [Problem("retention", who, text, recording.id)
                     for text in chain_findings(recording, replay, cases, policy)]
    return problems


def replay_problems(session: Session, recording: Recording, replay: RecordingReplay,
                    links: list[tuple[str, CaseLink]], cases: Any, policy: RetentionPolicy | None) -> list[Problem]:
    """Where the row (and its case links) differ from what its custody events say and, given *policy*, where it is
    behind what the rules give the chain's facts. A difference is read again once, row and events together, so a
    change committed while verify ran is not reported."""
    problems = _replay_findings(recording, replay, links, cases, policy)
    if problems and recording.id is not None:
        session.refresh(recording)
        again = load_recording_chain(session, recording.id)
        problems = _replay_findings(recording, again.replay, again.links, cases, policy)
    return problems


def check_lock_against_chain(recording: Recording, stored: StoredObject, replay: RecordingReplay, cases: Any,
                             policy: RetentionPolicy | None) -> list[Problem]:
    """The store must lock the object at least as long as the custody chain (and the rules applied to it) say, and
    hold it when they hold it: a retention record edited in the store together with the row shows here. Pure."""
    problems = []
    who = recording_subject(recording)
    until = replay.values.get("retain_until")
    rule = "recorded in the custody chain"
    hold = bool(replay.values.get("legal_hold"))
    decision = chain_decision(replay, cases, policy) if policy is not None else None
    if decision is not None:
        if not isinstance(until, datetime) or decision.retain_until > until:
            until, rule = decision.retain_until, f"the rules applied to the custody chain: {decision.rule}"
        hold = hold or decision.legal_hold
    if isinstance(until, datetime) and stored.retain_until < until:
        problems.append(Problem("retention", who, f"the store locks {stored.key} until "
                                                  f"{stored.retain_until.isoformat()}, but it must be kept until "
                                                  f"{until.isoformat()} ({rule}); the store's retention was "
                                                  "shortened or never applied", recording.id))
    if hold and not stored.legal_hold:
        problems.append(Problem("retention", who, f"the custody chain holds {stored.key} under legal hold, the store "
                                                  "does not", recording.id))
    return problems


def _token_problem(store: EvidenceStore, name: str, signed: bytes, tsa_ca: str) -> str | None:
    """Why the RFC 3161 token stored beside record *name*, if any, does not stamp its *signed* bytes (with
    *tsa_ca*, EVIDENCE_TSA_CA: or is not signed by that TSA)."""
    try:
        token = store.get_record(token_name(name))
    except ObjectMissing:
        return None
    problem = token_problem(signed, token)
    if problem is None and tsa_ca:
        problem = token_signature_problem(token, signed, tsa_ca)
    return None if problem is None else f"its RFC 3161 token {token_name(name)} does not stamp it: {problem}"


def _disposal_record(store: EvidenceStore, batch_id: int, keys: set[str],
                     cache: dict[int, dict[str, Any] | str], tsa_ca: str = "") -> dict[str, Any] | str:
    if batch_id not in cache:
        name = f"disposals/batch-{batch_id:06d}.json"
        try:
            document = json.loads(store.get_record(name))
            cache[batch_id] = verify_document(document, trusted_fingerprints=keys)
            problem = _token_problem(store, name, signed_bytes(document), tsa_ca)
            if problem is not None:
                cache[batch_id] = f"the disposal record {name}: {problem}"
        except ObjectMissing:
            cache[batch_id] = f"the store holds no signed disposal record {name}"
        except SignatureInvalid as exc:
            cache[batch_id] = f"the disposal record {name}: {exc}"
        except (StorageError, ValueError, KeyError) as exc:
            cache[batch_id] = f"the disposal record {name} cannot be read: {exc}"
    return cache[batch_id]


def check_disposed(session: Session, store: EvidenceStore, recording: Recording, replay: RecordingReplay,
                   keys: set[str], cache: dict[int, dict[str, Any] | str], tsa_ca: str = "",
                   batches_checked: set[int] | None = None) -> list[Problem]:
    """A row marked disposed needs all three: a tombstone, a `disposed` custody event and a signed disposal record
    in WORM storage listing it as disposed. Otherwise the row was hidden from the checks of what the store holds.
    The tombstone must say what its event and the signed record say, and its batch row what the record says (once
    per batch: *batches_checked* holds those compared already)."""
    who = recording_subject(recording)
    problems = []
    tombstone = session.exec(select(Disposal).where(Disposal.recording_id == recording.id)).first()
    if tombstone is None:
        problems.append("marked disposed but has no tombstone")
    elif tombstone.sha256 != recording.sha256:
        problems.append(f"its tombstone names sha256 {tombstone.sha256}, the row {recording.sha256}")
    if "disposed" not in replay.kinds:
        problems.append("marked disposed but the custody chain has no `disposed` event for it")
    batch_id = tombstone.batch_id if tombstone is not None else replay.disposed_batch
    signed_item: dict[str, Any] | None = None
    batch_problems: list[Problem] = []
    if batch_id is None:
        problems.append("no disposal batch names it, so no signed disposal record can vouch for it")
    else:
        record = _disposal_record(store, batch_id, keys, cache, tsa_ca)
        if isinstance(record, str):
            problems.append(record)
        else:
            signed_item = next((item for item in record.get("items", []) if item.get("recording_id") == recording.id
                                and item.get("sha256") == recording.sha256 and item.get("result") == "disposed"),
                               None)
            if signed_item is None:
                problems.append(f"the signed disposal record of batch {batch_id} does not list it as disposed")
            if batches_checked is not None and batch_id not in batches_checked:
                batches_checked.add(batch_id)
                batch = session.get(DisposalBatch, batch_id)
                batch_problems = [Problem("catalog", f"disposal batch {batch_id}", text)
                                  for text in (["the batch row is missing"] if batch is None
                                               else batch_findings(batch, record))]
    if tombstone is not None:
        problems += tombstone_findings(tombstone, replay.disposed_details, signed_item)
    return [Problem("catalog", who, text, recording.id) for text in problems] + batch_problems


def integrity_problems(session: Session, recording: Recording, replay: RecordingReplay,
                       rows: list[IntegrityCheck]) -> list[Problem]:
    """The recording's integrity history (*rows*) against the chain's verdicts (catalog.verify_integrity); a
    difference is read again once, chain and rows together, so a decode check committed while verify ran is not
    reported."""
    assert recording.id is not None
    found = integrity_findings(rows, replay)
    if found:
        replay = load_replays(session, [recording.id])[0][recording.id]
        found = integrity_findings(integrity_history(session, recording.id), replay)
    return [Problem("catalog", recording_subject(recording), text, recording.id) for text in found]


def derived_problems(store: EvidenceStore, recording: Recording, rows: list[DerivedMedia]) -> list[Problem]:
    """Each derived file (thumbnail, proxy) re-hashed against its row: never evidence, but what officers and clerks
    play and see (a review copied another recording's proxy and thumbnail over this one's: the page played the
    other recording, and every check passed)."""
    problems = []
    for made in rows:
        what = f"its {made.kind} ({made.key})"
        if made.derived_from_sha256 != recording.sha256:
            problems.append(f"{what} says it was made from {made.derived_from_sha256}, not from this recording")
            continue
        try:
            with store.open_derived(recording.sha256, made.key.rsplit("/", 1)[-1]) as fh:
                digest = hash_stream(fh)
        except ObjectMissing:
            problems.append(f"{what} is missing from the store, though its row says it was made")
            continue
        except (StorageError, OSError, ValueError) as exc:
            problems.append(f"{what} cannot be read: {exc}")
            continue
        if (digest.sha256, digest.size_bytes) != (made.sha256, made.size_bytes):
            problems.append(f"{what} holds {digest.size_bytes} bytes with sha256 {digest.sha256}, its row says "
                            f"{made.size_bytes} bytes with sha256 {made.sha256}: the file was replaced behind the "
                            "application's back; viewers would see other content")
    return [Problem("derived", recording_subject(recording), text, recording.id) for text in problems]


def case_problems(session: Session, cases: Any, numbers: set[str] | None) -> list[Problem]:
    """Case rows compared with the case events (*numbers*: only those cases; None: all). The events were read when
    verify began, the rows now: a case that differs is read again, events and row together, so a case opened,
    closed or reopened while verify ran is not reported (it was: found by a review)."""
    query = select(Case)
    if numbers is not None:
        if not numbers:
            return []
        query = query.where(col(Case.number).in_(sorted(numbers)))
    found = case_findings(cases, session.exec(query), numbers)
    if found:
        again = {number for number, _text in found}
        rows = session.exec(select(Case).where(col(Case.number).in_(sorted(again)))
                            .execution_options(populate_existing=True))
        found = case_findings(load_case_replays(session), list(rows), again)
    return [Problem("case", f"case {number}", text) for number, text in found]


def grant_problems(session: Session, numbers: set[str] | None) -> list[Problem]:
    """Access grant rows compared with the `access_granted`/`access_revoked` events (catalog.classification
    .grant_findings; such a row opens nothing meanwhile); *numbers*: only grants on those cases."""
    found = grant_findings(session)
    if numbers is not None:
        cases = {g.id: n for g, n in session.exec(select(CaseGrant, Case.number).join(
            Case, col(Case.id) == col(CaseGrant.case_id)))}
        found = [(grant, text) for grant, text in found if cases.get(grant) in numbers]
    return [Problem("case", f"access grant {grant}", text) for grant, text in found]


def missing_rows(session: Session, *, limit: int = 1000) -> list[Problem]:
    """Recording ids the custody chain names (ingest, archive, stamps, retention, disposal) whose catalogue row is
    gone: one query, grouped in the database."""
    gone = ~exists().where(col(Recording.id) == col(CustodyEvent.recording_id))
    query = (select(CustodyEvent.recording_id, func.count(), func.min(CustodyEvent.id), func.max(CustodyEvent.id))
             .where(col(CustodyEvent.recording_id).is_not(None), col(CustodyEvent.kind).in_(LIFECYCLE_KINDS), gone)
             .group_by(col(CustodyEvent.recording_id)).order_by(col(CustodyEvent.recording_id)).limit(limit + 1))
    rows = list(session.exec(query))
    problems = [Problem("catalog", f"recording {rid}", f"the custody chain has {count} event(s) for it (events {first} "
                                                       f"to {last}) but the catalogue has no row: deleted behind the "
                                                       "application's back", rid)
                for rid, count, first, last in rows[:limit]]
    if len(rows) > limit:
        problems.append(Problem("catalog", "recordings", f"more than {limit} recordings named in the custody chain "
                                                         f"have no catalogue row; only the first {limit} are listed"))
    return problems


def object_problems(recording: Recording, found: str, size: int) -> list[Problem]:
    """The bytes read back must hash to the catalogue's sha256 and be as long as it says. Pure."""
    who = recording_subject(recording)
    problems = []
    if found != recording.sha256:
        problems.append(Problem("object", who, f"stored bytes hash to {found}, expected {recording.sha256}",
                                recording.id))
    if size != recording.size_bytes:
        problems.append(Problem("object", who, f"stored object is {size} bytes, the catalogue says "
                                               f"{recording.size_bytes}", recording.id))
    return problems


def _is_read_back(recording: Recording, replay: RecordingReplay) -> bool:
    """Whether the store must hold the recording: by its row or, for a row that is not disposed, by its chain (a row
    set to `staged` whose chain says archived is still read back from the store). Pure."""
    said = replay.values.get("state")
    return recording.state in IN_ARCHIVE or (recording.state != RecordingState.DISPOSED.value and said in IN_ARCHIVE)


@dataclass
class _Pass:
    """One verify run over recordings: what is read ahead for the batch in hand, and the report it fills."""

    session: Session
    store: EvidenceStore
    keys: set[str]
    cases_said: dict[str, CaseReplay]
    policy: RetentionPolicy | None
    tsa_ca: str = ""  # EVIDENCE_TSA_CA: stored tokens' signatures are checked against it
    report: VerifyReport = field(default_factory=VerifyReport)
    cases_named: set[str] = field(default_factory=set)
    disposal_records: dict[int, dict[str, Any] | str] = field(default_factory=dict)
    batches_checked: set[int] = field(default_factory=set)  # disposal batches whose row was compared with its record
    replays: dict[int, RecordingReplay] = field(default_factory=dict)
    links: dict[int, list[tuple[str, CaseLink]]] = field(default_factory=dict)
    rows: RecordRows = field(default_factory=lambda: RecordRows({}, {}, {}))
    integrity: dict[int, list[IntegrityCheck]] = field(default_factory=dict)  # integrity rows of the batch in hand
    derived: dict[int, list[DerivedMedia]] = field(default_factory=dict)  # derived media rows of the batch in hand

    def load(self, ids: list[int]) -> list[tuple[Recording, bool]]:
        """The batch's rows in id order, each with whether it is read back; what they are compared with is read
        ahead (sightings before the events that warrant them)."""
        found = list(self.session.exec(select(Recording).where(col(Recording.id).in_(ids)).order_by(col(Recording.id))))
        batch_ids = [r.id for r in found if r.id is not None]
        self.rows.update(RecordRows.load(self.session, batch_ids))
        self.replays.update(load_replays(self.session, batch_ids)[0])
        for check in self.session.exec(select(IntegrityCheck).where(col(IntegrityCheck.recording_id).in_(batch_ids))
                                       .order_by(col(IntegrityCheck.revision))):
            self.integrity.setdefault(check.recording_id, []).append(check)
        for made in self.session.exec(select(DerivedMedia).where(col(DerivedMedia.recording_id).in_(batch_ids))):
            self.derived.setdefault(made.recording_id, []).append(made)
        self.links.update(load_link_rows(self.session, batch_ids))
        return [(r, _is_read_back(r, self.replays[r.id])) for r in found if r.id is not None]

    def settle(self, recording: Recording, future: Future[tuple[str, int, StoredObject]] | None) -> None:
        """Every check of one recording, its read-back (if any) done; a recording that passes them all is verified."""
        assert recording.id is not None
        self.report.recordings += 1
        replay = self.replays.pop(recording.id, None) or RecordingReplay(recording.id)
        links = self.links.pop(recording.id, [])
        self.cases_named |= linked_cases(replay, links)
        problems = replay_problems(self.session, recording, replay, links, self.cases_said, self.policy)
        problems += integrity_problems(self.session, recording, replay, self.integrity.pop(recording.id, []))
        if recording.state == RecordingState.DISPOSED.value:
            self.rows.pop(recording.id)
            problems += check_disposed(self.session, self.store, recording, replay, self.keys, self.disposal_records,
                                       self.tsa_ca, self.batches_checked)
        elif future is None:
            self.rows.pop(recording.id)
            self.report.skipped.append(f"{recording_subject(recording)}: {recording.state}, not in the store yet")
        else:
            problems += self._stored_problems(recording, future, replay)
            if not problems:
                self.report.verified_ids.append(recording.id)
        self.report.problems.extend(problems)

    def _stored_problems(self, recording: Recording, future: Future[tuple[str, int, StoredObject]],
                         replay: RecordingReplay) -> list[Problem]:
        problems = self._read_back_problems(recording, future, replay)
        found, read = record_problems(self.session, self.store, recording, self.rows, replay, self.keys)
        self.report.manifests += read
        return problems + found + derived_problems(self.store, recording, self.derived.pop(recording.id or 0, []))

    def _read_back_problems(self, recording: Recording, future: Future[tuple[str, int, StoredObject]],
                            replay: RecordingReplay) -> list[Problem]:
        who = recording_subject(recording)
        try:
            found, size, stored = future.result()
        except ObjectMissing:
            return [Problem("object", who, f"the catalogue says sha256 {recording.sha256}, but the store holds no "
                                           "object under that hash", recording.id)]
        except StorageError as exc:
            return [Problem("object", who, f"cannot be read back: {exc}", recording.id)]
        self.report.bytes_read += size
        return (object_problems(recording, found, size) + check_lock(recording, stored)
                + check_lock_against_chain(recording, stored, replay, self.cases_said, self.policy))


def verify_archive(session: Session, store: EvidenceStore, recording_ids: list[int], *, chain: bool = True,
                   trusted: set[str] | None = None, workers: int = 4, everything: bool = False,
                   policy: RetentionPolicy | None = None, tsa_ca: str = "") -> VerifyReport:
    """Re-hash and cross-check *recording_ids*; with *chain* also walk the custody chain and its anchors.

    Each recording's row is also compared with what its custody events say (`catalog.replay`) and with what the
    retention rules give the chain's facts: under the policy the chain adopted (catalog.policy_adoption), whatever
    the caller's environment says; *policy* only where none was adopted. The cases it serves are compared with the
    case events. With *everything* (`verify --all`) every case is compared, and recording ids that the chain names
    but the catalogue no longer has are listed."""
    policy_problems: list[Problem] = []
    try:
        adopted = adopted_policy(session)
    except PolicyInvalid as exc:  # an adoption event edited: named, and the caller's policy judges meanwhile
        adopted = None
        policy_problems.append(Problem("policy", "adopted retention policy", str(exc)))
    if adopted is not None:
        policy = adopted.terms.policy()
    keys = trusted if trusted is not None else trusted_fingerprints(session, store)
    run = _Pass(session, store, keys, load_case_replays(session), policy, tsa_ca)
    run.report.problems.extend(policy_problems)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="verify") as pool:
        window: list[tuple[Recording, Future[tuple[str, int, StoredObject]] | None]] = []
        for start in range(0, len(recording_ids), 64):
            for recording, read_back in run.load(recording_ids[start:start + 64]):
                window.append((recording, pool.submit(_read_back, store, recording.sha256) if read_back else None))
                while len(window) > workers * 2:
                    run.settle(*window.pop(0))
        for item in window:
            run.settle(*item)
    report = run.report
    report.problems.extend(case_problems(session, run.cases_said, None if everything else run.cases_named))
    report.problems.extend(grant_problems(session, None if everything else run.cases_named))
    report.problems.extend(Problem("case", subject, text) for subject, text in
                           action_findings(session, None if everything else run.cases_named))
    if everything:
        report.problems.extend(missing_rows(session))
        report.problems.extend(Problem(*found) for found in registry_problems(session))
    if chain:
        problems, report.events, report.anchors = check_chain(session, store, trusted=keys, tsa_ca=tsa_ca)
        report.problems.extend(problems)
    return report


def check_chain(session: Session, store: EvidenceStore, *, trusted: set[str] | None, batch: int = 5000,
                tsa_ca: str = "") -> tuple[list[Problem], int, int]:
    """Walk the chain link by link (streaming; each link by its own version's formula, versions never going down)
    and compare it with the signed anchors in the store."""
    anchors, anchor_problems = read_anchors(store, trusted=trusted, tsa_ca=tsa_ca)
    problems = [Problem("anchor", name, detail) for name, detail in anchor_problems]
    wanted = {a.last_event_id for a in anchors}
    hashes: dict[int, str] = {}
    prev, count, last_id = GENESIS_HASH, 0, None
    previous_id, version = 0, 1
    for event in stream_events(session, batch=batch):
        assert event.id is not None and event.at is not None
        count += 1
        if event.id in wanted:
            hashes[event.id] = event.hash
        if event.prev_hash != prev:
            problems.append(Problem("chain", f"event {event.id} ({event.kind})",
                                    f"prev_hash {event.prev_hash[:16]}… does not follow event {previous_id}'s hash "
                                    f"{prev[:16]}… (an event before it was deleted, inserted or reordered)"))
        wrong_version = version_problem(version, event.chain_version)
        if wrong_version:
            problems.append(Problem("chain", f"event {event.id} ({event.kind})", wrong_version))
        expected = stored_event_hash(event)
        if expected != event.hash:
            problems.append(Problem("chain", f"event {event.id} ({event.kind})",
                                    f"content does not match its hash: stored {event.hash[:16]}…, computed "
                                    f"{expected[:16]}… (the row was edited)"))
        prev, previous_id, last_id = event.hash, event.id, event.id
        version = version if wrong_version else event.chain_version
    problems.extend(Problem("anchor", name, detail) for name, detail in check_anchors(anchors, hashes, last_id))
    # The head row, anchors gone from the store, untrusted station keys (catalog.anchors / catalog.key_trust).
    problems.extend(Problem(*found) for found in chain_end_problems(session, store, anchors, anchor_problems,
                                                                    last_event_id=last_id, last_hash=prev))
    return problems, count, len(anchors)
