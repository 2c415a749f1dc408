"""Independent verification: stored bytes, catalogue, signed manifests, custody chain and its WORM anchors.

Nothing here trusts one source alone. Each stored object is re-read and
re-hashed; the catalogue row must have been made by a custody event and is
compared with what its events set (catalog.replay), with its stamp revisions
and with the signed manifests in WORM storage (signatures checked against the
trusted station keys): every signed stamp fact and every signed sighting; the
custody chain is walked link by link and compared with the signed anchors in
the store. Every problem names the values that show it. Rows are read 64 at a
time, with one query per table (revisions, sightings, events, links) a batch.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func
from sqlmodel import Session, col, select

from catalog.anchors import chain_end_problems, check_anchors, read_anchors
from catalog.custody import GENESIS_HASH, stored_event_hash
from catalog.manifests import read_manifests, signed_retain_until, trusted_fingerprints
from catalog.models import (
    Case,
    CaseLink,
    CustodyEvent,
    Disposal,
    Recording,
    RecordingState,
    Sighting,
    StampRevision,
)
from catalog.replay import (
    LIFECYCLE_KINDS,
    RecordingReplay,
    case_findings,
    chain_decision,
    chain_findings,
    link_findings,
    load_case_replays,
    load_link_rows,
    load_replays,
    origin_findings,
    row_findings,
)
from catalog.retention import RetentionPolicy
from catalog.signing import SignatureInvalid, verify_document
from storage import EvidenceStore, ObjectMissing, StorageError, StoredObject
from storage.hashing import hash_stream

__all__ = ["Problem", "VerifyReport", "case_problems", "check_chain", "check_disposed", "check_lock",
           "check_lock_against_chain", "check_recording_record", "check_sightings", "missing_rows", "record_problems",
           "rehash", "replay_problems", "select_recordings", "verify_archive"]

_IN_STORE = (RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value)


@dataclass(frozen=True)
class Problem:
    kind: str  # object | seal | retention | catalog | manifest | signature | key | chain | anchor
    subject: str  # what it is about: "recording 12 (clip.mp4)", "event 45", an anchor's name
    detail: str  # what was expected and what was found
    recording_id: int | None = None

    def __str__(self) -> str:
        return f"[{self.kind}] {self.subject}: {self.detail}"


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
    who = _subject(recording)
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


def _subject(recording: Recording) -> str:
    return f"recording {recording.id} ({recording.original_name})"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _instant(value: Any) -> datetime | None:
    """A time as an instant (a datetime, or the ISO text a manifest holds; None when it is neither)."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


def _same_time(held: datetime | None, signed: Any) -> bool:
    return (held is None and signed is None) or (held is not None and _instant(signed) == _instant(held))


def check_recording_record(recording: Recording, revisions: list[StampRevision], manifests: dict[int, Any],
                           events: dict[int, str], sightings: list[Sighting] | None = None,
                           places: Mapping[tuple[str, str], int] | None = None) -> list[Problem]:
    """Compare a row that is in the store with its stamp revisions, its signed manifests, the custody events they
    list and (given *sightings*) the sightings they list.

    *manifests*: revision -> verified manifest body (or an exception text); *events*: event id -> hash;
    *sightings*: the recording's sighting rows; *places*: (device serial, device path) -> the `copied`/`sighted`
    event that names it (`RecordingReplay.places`). A stored row with no stamp revision has no signed manifest:
    nothing vouches for it. Pure.
    """
    problems: list[Problem] = []
    who = _subject(recording)
    numbers = [r.revision for r in revisions]
    if recording.stamp_revision < 1:
        problems.append(Problem("manifest", who, f"in the store, but it has no stamp revision (stamp_revision "
                                                 f"{recording.stamp_revision}, revisions {numbers}) and so no signed "
                                                 "manifest: every stored recording is stamped and sealed when it is "
                                                 "archived, so nothing vouches for this row (inserted or edited "
                                                 "behind the application's back)"))
    elif numbers != list(range(1, recording.stamp_revision + 1)):
        problems.append(Problem("catalog", who, f"stamp revisions {numbers} do not run 1..{recording.stamp_revision}"))
    current = next((r for r in revisions if r.revision == recording.stamp_revision), None)
    if current is not None:
        pairs = {"case_number": (recording.case_number, current.case_number),
                 "captured_start": (_iso(recording.captured_start), _iso(current.captured_start)),
                 "lat": (recording.lat, current.lat), "lon": (recording.lon, current.lon),
                 "collector": (recording.officer_number, current.collector),
                 "purpose": (recording.purpose, current.purpose), "important": (recording.important, current.important)}
        for name, (row, rev) in pairs.items():
            if row != rev:
                problems.append(Problem("catalog", who, f"{name} is {row!r} in the recording row but {rev!r} in "
                                                        f"stamp revision {current.revision}"))
    for revision in revisions:
        body = manifests.get(revision.revision)
        where = f"{who}, manifest r{revision.revision}"
        if isinstance(body, str):
            kind = "signature" if body.startswith("signature") else "manifest"
            problems.append(Problem(kind, where, body))
            continue
        if body is None:
            continue
        facts = {"sha256": (recording.sha256, body.get("sha256")),
                 "size_bytes": (recording.size_bytes, body.get("size_bytes")),
                 "original_name": (recording.original_name, body.get("original_name")),
                 "device_serial": (recording.device_serial, body.get("device_serial")),
                 "station": (recording.station_code, body.get("station"))}
        stamp = body.get("stamp") or {}
        place = stamp.get("place") or {}
        facts.update({
            "stamp.case_number": (revision.case_number, stamp.get("case_number")),
            "stamp.lat": (revision.lat, place.get("lat")), "stamp.lon": (revision.lon, place.get("lon")),
            "stamp.collector": (revision.collector, stamp.get("collector")),
            "stamp.purpose": (revision.purpose, stamp.get("purpose")),
            "stamp.important": (revision.important, stamp.get("important")),
            "stamp.changed_by": (revision.changed_by, stamp.get("changed_by")),
            "stamp.reason": (revision.reason, stamp.get("reason")),
            "stamp.changes": (revision.changes, stamp.get("changes")),
        })
        if stamp.get("place"):  # the place's source is signed with the place (none without a position)
            facts["stamp.place.source"] = (revision.place_source, place.get("source"))
        for name, (catalogue, signed) in facts.items():
            if catalogue != signed:
                problems.append(Problem("catalog", where, f"{name}: the catalogue says {catalogue!r}, the signed "
                                                          f"manifest says {signed!r}"))
        for name, held in (("stamp.captured_start", revision.captured_start),
                           ("stamp.changed_at", revision.changed_at)):
            signed = stamp.get(name.split(".", 1)[1])
            if not _same_time(held, signed):
                problems.append(Problem("catalog", where, f"{name}: the catalogue says {_iso(held)!r}, the signed "
                                                          f"manifest says {signed!r}"))
        signed_until = signed_retain_until(body)
        if signed_until is not None and (recording.retain_until is None or recording.retain_until < signed_until):
            problems.append(Problem("catalog", where, f"retain_until: the catalogue says {_iso(recording.retain_until)}"
                                                      f", earlier than the {signed_until.isoformat()} signed in this "
                                                      "manifest (retention only grows: the row was edited)"))
        for listed in body.get("custody", []):
            found = events.get(listed.get("id"))
            if found != listed.get("hash"):
                problems.append(Problem("chain", where, f"the manifest lists custody event {listed.get('id')} "
                                                        f"({listed.get('kind')}) with hash "
                                                        f"{str(listed.get('hash'))[:16]}…; the catalogue has "
                                                        + (f"{found[:16]}…" if found else "no such event")))
    if sightings is not None:
        problems.extend(check_sightings(recording, sightings, manifests, places or {}))
    return [replace(p, recording_id=recording.id) for p in problems]


def check_sightings(recording: Recording, sightings: list[Sighting], manifests: dict[int, Any],
                    places: Mapping[tuple[str, str], int]) -> list[Problem]:
    """Where the recording was found: every sighting a signed manifest lists (each lists those of its signing time,
    so older revisions list fewer) must still be in the catalogue as signed; a sighting no manifest lists (found
    after the last signing) must be named by a `copied` or `sighted` custody event. Pure."""
    who = _subject(recording)
    held = {(s.device_serial, s.device_path): s for s in sightings}
    signed: dict[tuple[str, str], tuple[Any, list[int]]] = {}
    for number in sorted(manifests):
        body = manifests[number]
        if not isinstance(body, dict):
            continue
        for item in body.get("sightings") or []:
            if isinstance(item, dict):
                where = (str(item.get("device_serial")), str(item.get("device_path")))
                signed.setdefault(where, (item.get("seen_at"), []))[1].append(number)
    problems = []
    for (serial, path), (seen_at, numbers) in signed.items():
        revs = ", ".join(f"r{n}" for n in numbers)
        row = held.get((serial, path))
        if row is None:
            problems.append(Problem("catalog", who, f"sighting on device {serial} at {path!r} (seen {seen_at}), "
                                                    f"signed in manifest {revs}: the catalogue has no such sighting "
                                                    "(edited or deleted behind the application's back)"))
        elif not _same_time(row.seen_at, seen_at):
            problems.append(Problem("catalog", who, f"sighting {row.id} on device {serial} at {path!r}: seen_at: the "
                                                    f"catalogue says {_iso(row.seen_at)}, the signed manifest {revs} "
                                                    f"says {seen_at}"))
    for (serial, path), row in held.items():
        if (serial, path) not in signed and (serial, path) not in places:
            problems.append(Problem("catalog", who, f"sighting {row.id} on device {serial} at {path!r} (seen "
                                                    f"{_iso(row.seen_at)}): no signed manifest lists it and no "
                                                    "`copied` or `sighted` custody event names it (added or edited "
                                                    "behind the application's back)"))
    return problems


def select_recordings(session: Session, *, ids: list[int] | None = None, sample: int | None = None,
                      rolling: bool = False, seed: int | None = None) -> list[int]:
    """Which recordings to verify: the given ids, a random sample of those in the store, the *sample* least recently
    checked (*rolling*), or all (every row, whatever its state)."""
    if ids:
        return sorted(set(ids))
    if sample is None and not rolling:  # all: every row whatever its state (a row hidden as staged or disposed too)
        return [rid for rid in session.exec(select(Recording.id).order_by(col(Recording.id))) if rid is not None]
    query = select(Recording.id).where(col(Recording.state).in_(_IN_STORE))
    if rolling and sample:
        query = query.order_by(col(Recording.fixity_checked_at).is_not(None), col(Recording.fixity_checked_at),
                               col(Recording.id)).limit(sample)
        return [rid for rid in session.exec(query) if rid is not None]
    every = [rid for rid in session.exec(query.order_by(col(Recording.id))) if rid is not None]
    if sample is not None and sample < len(every):
        return sorted(random.Random(seed).sample(every, sample))
    return every


def _replay_findings(recording: Recording, replay: RecordingReplay, links: list[tuple[str, CaseLink]],
                     cases: Any, policy: RetentionPolicy | None) -> list[Problem]:
    who = _subject(recording)
    problems = [Problem("catalog", who, text, recording.id) for text in origin_findings(recording, replay)]
    problems += [Problem("retention" if text.startswith(("retain_until", "legal_hold")) else "catalog", who, text,
                         recording.id) for text in row_findings(recording, replay)]
    problems += [Problem("case", who, text, recording.id) for text in link_findings(replay, links)]
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
        replay = load_replays(session, [recording.id])[0][recording.id]
        problems = _replay_findings(recording, replay, load_link_rows(session, [recording.id])[recording.id], cases,
                                    policy)
    return problems


def check_lock_against_chain(recording: Recording, stored: StoredObject, replay: RecordingReplay, cases: Any,
                             policy: RetentionPolicy | None) -> list[Problem]:
    """The store must lock the object at least as long as the custody chain (and the rules applied to it) say, and
    hold it when they hold it: a retention record edited in the store together with the row shows here. Pure."""
    problems = []
    who = _subject(recording)
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


def _disposal_record(store: EvidenceStore, batch_id: int, keys: set[str],
                     cache: dict[int, dict[str, Any] | str]) -> dict[str, Any] | str:
    if batch_id not in cache:
        name = f"disposals/batch-{batch_id:06d}.json"
        try:
            cache[batch_id] = verify_document(json.loads(store.get_record(name)), trusted_fingerprints=keys)
        except ObjectMissing:
            cache[batch_id] = f"the store holds no signed disposal record {name}"
        except SignatureInvalid as exc:
            cache[batch_id] = f"the disposal record {name}: {exc}"
        except (StorageError, ValueError, KeyError) as exc:
            cache[batch_id] = f"the disposal record {name} cannot be read: {exc}"
    return cache[batch_id]


def check_disposed(session: Session, store: EvidenceStore, recording: Recording, replay: RecordingReplay,
                   keys: set[str], cache: dict[int, dict[str, Any] | str]) -> list[Problem]:
    """A row marked disposed needs all three: a tombstone, a `disposed` custody event and a signed disposal record
    in WORM storage listing it as disposed. Otherwise the row was hidden from the checks of what the store holds."""
    who = _subject(recording)
    problems = []
    tombstone = session.exec(select(Disposal).where(Disposal.recording_id == recording.id)).first()
    if tombstone is None:
        problems.append("marked disposed but has no tombstone")
    elif tombstone.sha256 != recording.sha256:
        problems.append(f"its tombstone names sha256 {tombstone.sha256}, the row {recording.sha256}")
    if "disposed" not in replay.kinds:
        problems.append("marked disposed but the custody chain has no `disposed` event for it")
    batch_id = tombstone.batch_id if tombstone is not None else replay.disposed_batch
    if batch_id is None:
        problems.append("no disposal batch names it, so no signed disposal record can vouch for it")
    else:
        record = _disposal_record(store, batch_id, keys, cache)
        if isinstance(record, str):
            problems.append(record)
        elif not any(item.get("recording_id") == recording.id and item.get("sha256") == recording.sha256
                     and item.get("result") == "disposed" for item in record.get("items", [])):
            problems.append(f"the signed disposal record of batch {batch_id} does not list it as disposed")
    return [Problem("catalog", who, text, recording.id) for text in problems]


def case_problems(session: Session, cases: Any, numbers: set[str] | None) -> list[Problem]:
    """Case rows compared with the case events (*numbers*: only those cases; None: all)."""
    query = select(Case)
    if numbers is not None:
        if not numbers:
            return []
        query = query.where(col(Case.number).in_(sorted(numbers)))
    return [Problem("case", f"case {number}", text) for number, text in case_findings(cases, session.exec(query),
                                                                                         numbers)]


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


@dataclass
class _Rows:
    """What a batch of recordings is compared with, one query per table for the batch: stamp revisions, sightings
    and (id -> hash) custody events. Sightings are read before events, so a sighting committed with its `sighted`
    event while verify runs is never seen without it."""

    revisions: dict[int, list[StampRevision]]
    sightings: dict[int, list[Sighting]]
    events: dict[int, dict[int, str]]

    @classmethod
    def load(cls, session: Session, ids: list[int]) -> _Rows:
        revisions: dict[int, list[StampRevision]] = {rid: [] for rid in ids}
        sightings: dict[int, list[Sighting]] = {rid: [] for rid in ids}
        events: dict[int, dict[int, str]] = {rid: {} for rid in ids}
        if ids:
            for revision in session.exec(select(StampRevision).where(col(StampRevision.recording_id).in_(ids))
                                         .order_by(col(StampRevision.recording_id), col(StampRevision.revision))):
                revisions[revision.recording_id].append(revision)
            for sighting in session.exec(select(Sighting).where(col(Sighting.recording_id).in_(ids))
                                         .order_by(col(Sighting.id))):
                sightings[sighting.recording_id].append(sighting)
            for rid, eid, digest in session.exec(select(CustodyEvent.recording_id, CustodyEvent.id, CustodyEvent.hash)
                                                 .where(col(CustodyEvent.recording_id).in_(ids))):
                if rid is not None and eid is not None:
                    events[rid][eid] = digest
        return cls(revisions, sightings, events)

    def pop(self, recording_id: int) -> tuple[list[StampRevision], list[Sighting], dict[int, str]]:
        return (self.revisions.pop(recording_id, []), self.sightings.pop(recording_id, []),
                self.events.pop(recording_id, {}))

    def update(self, other: _Rows) -> None:
        self.revisions.update(other.revisions)
        self.sightings.update(other.sightings)
        self.events.update(other.events)


def record_problems(session: Session, store: EvidenceStore, recording: Recording, rows: _Rows,
                    replay: RecordingReplay, keys: set[str]) -> tuple[list[Problem], int]:
    """`check_recording_record` on a stored row, with its signed manifests read from *store*; a difference is read
    again once (row, revisions, sightings, events and manifests together), so a re-stamp or a sighting committed
    while verify ran is not reported. Returns the problems and how many manifests were read."""
    assert recording.id is not None
    revisions, sightings, events = rows.pop(recording.id)
    manifests = read_manifests(store, recording, trusted=keys)
    problems = check_recording_record(recording, revisions, manifests, events, sightings, replay.places)
    if problems:
        session.refresh(recording)
        revisions, sightings, events = _Rows.load(session, [recording.id]).pop(recording.id)
        replay = load_replays(session, [recording.id])[0][recording.id]
        manifests = read_manifests(store, recording, trusted=keys)
        problems = check_recording_record(recording, revisions, manifests, events, sightings, replay.places)
    return problems, len(manifests)


def verify_archive(session: Session, store: EvidenceStore, recording_ids: list[int], *, chain: bool = True,
                   trusted: set[str] | None = None, workers: int = 4, everything: bool = False,
                   policy: RetentionPolicy | None = None) -> VerifyReport:
    """Re-hash and cross-check *recording_ids*; with *chain* also walk the custody chain and its anchors.

    Each recording's row is also compared with what its custody events say (`catalog.replay`) and, given
    *policy*, with what the retention rules give the chain's facts; the cases it serves are compared with the
    case events. With *everything* (`verify --all`) every case is compared, and recording ids that the chain names
    but the catalogue no longer has are listed."""
    report = VerifyReport()
    keys = trusted if trusted is not None else trusted_fingerprints(session, store)
    cases_said = load_case_replays(session)
    cases_named: set[str] = set()
    records: dict[int, dict[str, Any] | str] = {}
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="verify") as pool:
        window: list[tuple[Recording, Future[tuple[str, int, StoredObject]] | None]] = []
        replays: dict[int, RecordingReplay] = {}
        links: dict[int, list[tuple[str, CaseLink]]] = {}
        rows_of = _Rows({}, {}, {})

        def settle(recording: Recording, future: Future[tuple[str, int, StoredObject]] | None) -> None:
            report.recordings += 1
            before = len(report.problems)
            who = _subject(recording)
            assert recording.id is not None
            replay = replays.pop(recording.id, None) or RecordingReplay(recording.id)
            found_links = links.pop(recording.id, [])
            cases_named.update(link.case for link in replay.links)
            cases_named.update(number for number, _link in found_links)
            report.problems.extend(replay_problems(session, recording, replay, found_links, cases_said, policy))
            if recording.state == RecordingState.DISPOSED.value:
                rows_of.pop(recording.id)
                report.problems.extend(check_disposed(session, store, recording, replay, keys, records))
                return
            if future is None:
                rows_of.pop(recording.id)
                report.skipped.append(f"{who}: {recording.state}, not in the store yet")
                return
            try:
                found, size, stored = future.result()
            except ObjectMissing:
                report.problems.append(Problem("object", who, f"the catalogue says sha256 {recording.sha256}, "
                                                              "but the store holds no object under that hash",
                                               recording.id))
            except StorageError as exc:
                report.problems.append(Problem("object", who, f"cannot be read back: {exc}", recording.id))
            else:
                report.bytes_read += size
                if found != recording.sha256:
                    report.problems.append(Problem("object", who, f"stored bytes hash to {found}, expected "
                                                                  f"{recording.sha256}", recording.id))
                if size != recording.size_bytes:
                    report.problems.append(Problem("object", who, f"stored object is {size} bytes, the catalogue "
                                                                  f"says {recording.size_bytes}", recording.id))
                report.problems.extend(check_lock(recording, stored))
                report.problems.extend(check_lock_against_chain(recording, stored, replay, cases_said, policy))
            found_problems, read = record_problems(session, store, recording, rows_of, replay, keys)
            report.manifests += read
            report.problems.extend(found_problems)
            if len(report.problems) == before:
                report.verified_ids.append(recording.id)

        for start in range(0, len(recording_ids), 64):
            rows = list(session.exec(select(Recording).where(col(Recording.id).in_(recording_ids[start:start + 64]))
                                     .order_by(col(Recording.id))))
            batch_ids = [r.id for r in rows if r.id is not None]
            rows_of.update(_Rows.load(session, batch_ids))  # sightings before the events that warrant them
            replays.update(load_replays(session, batch_ids)[0])
            links.update(load_link_rows(session, batch_ids))
            for recording in rows:
                assert recording.id is not None
                said = replays[recording.id].values.get("state")
                # A row set to `staged` whose chain says archived is still read back from the store.
                in_store = recording.state in _IN_STORE or (recording.state != RecordingState.DISPOSED.value
                                                            and said in _IN_STORE)
                window.append((recording, pool.submit(_read_back, store, recording.sha256) if in_store else None))
                while len(window) > workers * 2:
                    settle(*window.pop(0))
        for item in window:
            settle(*item)
    report.problems.extend(case_problems(session, cases_said, None if everything else cases_named))
    if everything:
        report.problems.extend(missing_rows(session))
    if chain:
        problems, report.events, report.anchors = check_chain(session, store, trusted=keys)
        report.problems.extend(problems)
    return report


def _walk(session: Session, batch: int) -> Iterator[CustodyEvent]:
    """Every event in id order, *batch* rows at a time, in a session of its own (memory stays flat)."""
    last = 0
    with Session(session.get_bind()) as walker:
        while True:
            rows = list(walker.exec(select(CustodyEvent).where(col(CustodyEvent.id) > last)
                                    .order_by(col(CustodyEvent.id)).limit(batch)))
            if not rows:
                return
            last = rows[-1].id or last
            yield from rows
            walker.expunge_all()


def check_chain(session: Session, store: EvidenceStore, *, trusted: set[str] | None,
                batch: int = 5000) -> tuple[list[Problem], int, int]:
    """Walk the chain link by link (streaming) and compare it with the signed anchors in the store."""
    anchors, anchor_problems = read_anchors(store, trusted=trusted)
    problems = [Problem("anchor", name, detail) for name, detail in anchor_problems]
    wanted = {a.last_event_id for a in anchors}
    hashes: dict[int, str] = {}
    prev, count, last_id = GENESIS_HASH, 0, None
    previous_id = 0
    for event in _walk(session, batch):
        assert event.id is not None and event.at is not None
        count += 1
        if event.id in wanted:
            hashes[event.id] = event.hash
        if event.prev_hash != prev:
            problems.append(Problem("chain", f"event {event.id} ({event.kind})",
                                    f"prev_hash {event.prev_hash[:16]}… does not follow event {previous_id}'s hash "
                                    f"{prev[:16]}… (an event before it was deleted, inserted or reordered)"))
        expected = stored_event_hash(event)
        if expected != event.hash:
            problems.append(Problem("chain", f"event {event.id} ({event.kind})",
                                    f"content does not match its hash: stored {event.hash[:16]}…, computed "
                                    f"{expected[:16]}… (the row was edited)"))
        prev, previous_id, last_id = event.hash, event.id, event.id
    problems.extend(Problem("anchor", name, detail) for name, detail in check_anchors(anchors, hashes, last_id))
    # The head row, anchors gone from the store, untrusted station keys (catalog.anchors / catalog.key_trust).
    problems.extend(Problem(*found) for found in chain_end_problems(session, store, anchors, anchor_problems,
                                                                    last_event_id=last_id, last_hash=prev))
    return problems, count, len(anchors)
