"""Independent verification: stored bytes, catalogue, signed manifests, custody chain and its WORM anchors.

Nothing here trusts one source alone. Each stored object is re-read and
re-hashed; the catalogue row is compared with its stamp revisions and with
the signed manifests in WORM storage (signatures checked against the
registered station keys); the custody chain is walked link by link and
compared with the signed anchors in the store. Every problem names the
values that show it.
"""
from __future__ import annotations

import hashlib
import queue
import random
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.anchors import check_anchors, read_anchors
from catalog.custody import GENESIS_HASH, event_hash
from catalog.manifests import read_manifests, signed_retain_until, trusted_fingerprints
from catalog.models import CustodyEvent, CustodyHead, Disposal, Recording, RecordingState, StampRevision
from storage import EvidenceStore, ObjectMissing, StorageError, StoredObject

__all__ = ["Problem", "VerifyReport", "check_chain", "check_lock", "check_recording_record", "rehash",
           "select_recordings", "verify_archive"]

READ_CHUNK = 8 * 1024 * 1024
_IN_STORE = (RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value)


@dataclass(frozen=True)
class Problem:
    kind: str  # object | retention | catalog | manifest | signature | chain | anchor
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
    chunk read while the last is hashed (both release the GIL), so the slower of the two sets the pace.
    Three reused buffers carry the bytes (`readinto` where the stream has it): no allocation per chunk."""
    digest = hashlib.sha256()
    size = 0
    buffers = [bytearray(READ_CHUNK) for _ in range(3)]
    free: queue.Queue[int] = queue.Queue()
    for index in range(len(buffers)):
        free.put(index)
    filled: queue.Queue[tuple[int, int] | BaseException | None] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        try:
            with store.open(sha256) as body:
                into = getattr(body, "readinto", None)
                while not stop.is_set():
                    index = free.get()
                    if into is not None:
                        count = into(memoryview(buffers[index]))
                    else:
                        chunk = body.read(READ_CHUNK)
                        count = len(chunk)
                        buffers[index][:count] = chunk
                    if not count:
                        break
                    filled.put((index, count))
            filled.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the hashing thread, which raises it
            filled.put(exc)

    reader = threading.Thread(target=read, name="rehash-read", daemon=True)
    reader.start()
    try:
        while (item := filled.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            index, count = item
            digest.update(memoryview(buffers[index])[:count])
            size += count
            free.put(index)
    finally:
        stop.set()
        free.put(0)  # wake a reader waiting for a buffer so it can see the stop
        reader.join(timeout=5)
    return digest.hexdigest(), size


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
    return problems


def _subject(recording: Recording) -> str:
    return f"recording {recording.id} ({recording.original_name})"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def check_recording_record(recording: Recording, revisions: list[StampRevision], manifests: dict[int, Any],
                           events: dict[int, str]) -> list[Problem]:
    """Compare a catalogue row with its stamp revisions, its signed manifests and the custody events they list.

    *manifests*: revision -> verified manifest body (or an exception text); *events*: event id -> hash. Pure.
    """
    problems: list[Problem] = []
    who = _subject(recording)
    numbers = [r.revision for r in revisions]
    if numbers != list(range(1, recording.stamp_revision + 1)):
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
        stamp = body.get("stamp", {})
        place = stamp.get("place") or {}
        facts.update({
            "stamp.case_number": (revision.case_number, stamp.get("case_number")),
            "stamp.captured_start": (_iso(revision.captured_start), stamp.get("captured_start")),
            "stamp.lat": (revision.lat, place.get("lat")), "stamp.lon": (revision.lon, place.get("lon")),
            "stamp.collector": (revision.collector, stamp.get("collector")),
            "stamp.purpose": (revision.purpose, stamp.get("purpose")),
            "stamp.important": (revision.important, stamp.get("important")),
            "stamp.changed_by": (revision.changed_by, stamp.get("changed_by")),
        })
        for name, (catalogue, signed) in facts.items():
            if catalogue != signed:
                problems.append(Problem("catalog", where, f"{name}: the catalogue says {catalogue!r}, the signed "
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
    return [replace(p, recording_id=recording.id) for p in problems]


def select_recordings(session: Session, *, ids: list[int] | None = None, sample: int | None = None,
                      rolling: bool = False, seed: int | None = None) -> list[int]:
    """Which recordings to verify: the given ids, a random sample, the *sample* least recently checked
    (*rolling*), or all."""
    if ids:
        return sorted(set(ids))
    query = select(Recording.id).where(col(Recording.state).in_(_IN_STORE))
    if rolling and sample:
        query = query.order_by(col(Recording.fixity_checked_at).is_not(None), col(Recording.fixity_checked_at),
                               col(Recording.id)).limit(sample)
        return [rid for rid in session.exec(query) if rid is not None]
    every = [rid for rid in session.exec(query.order_by(col(Recording.id))) if rid is not None]
    if sample is not None and sample < len(every):
        return sorted(random.Random(seed).sample(every, sample))
    return every


def _events_for(session: Session, recording_id: int) -> dict[int, str]:
    rows = session.exec(select(CustodyEvent.id, CustodyEvent.hash).where(CustodyEvent.recording_id == recording_id))
    return {eid: digest for eid, digest in rows if eid is not None}


def verify_archive(session: Session, store: EvidenceStore, recording_ids: list[int], *, chain: bool = True,
                   trusted: set[str] | None = None, workers: int = 4) -> VerifyReport:
    """Re-hash and cross-check *recording_ids*; with *chain* also walk the custody chain and its anchors."""
    report = VerifyReport()
    keys = trusted if trusted is not None else trusted_fingerprints(session)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="verify") as pool:
        window: list[tuple[Recording, Future[tuple[str, int, StoredObject]] | None]] = []

        def settle(recording: Recording, future: Future[tuple[str, int, StoredObject]] | None) -> None:
            report.recordings += 1
            before = len(report.problems)
            who = _subject(recording)
            if recording.state == RecordingState.DISPOSED.value:
                if session.exec(select(Disposal.id).where(Disposal.recording_id == recording.id)).first() is None:
                    report.problems.append(Problem("catalog", who, "marked disposed but has no tombstone",
                                                   recording.id))
                return
            if future is None:
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
            assert recording.id is not None
            revisions = list(session.exec(select(StampRevision).where(StampRevision.recording_id == recording.id)
                                          .order_by(col(StampRevision.revision))))
            manifests = read_manifests(store, recording, trusted=keys)
            report.manifests += len(manifests)
            report.problems.extend(check_recording_record(recording, revisions, manifests,
                                                          _events_for(session, recording.id)))
            if len(report.problems) == before:
                report.verified_ids.append(recording.id)

        for start in range(0, len(recording_ids), 64):
            rows = list(session.exec(select(Recording).where(col(Recording.id).in_(recording_ids[start:start + 64]))
                                     .order_by(col(Recording.id))))
            for recording in rows:
                in_store = recording.state in _IN_STORE
                window.append((recording, pool.submit(_read_back, store, recording.sha256) if in_store else None))
                while len(window) > workers * 2:
                    settle(*window.pop(0))
        for item in window:
            settle(*item)
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
        expected = event_hash(event.prev_hash, kind=event.kind, recording_id=event.recording_id,
                              dock_session_id=event.dock_session_id, actor=event.actor, at=event.at,
                              details=event.details)
        if expected != event.hash:
            problems.append(Problem("chain", f"event {event.id} ({event.kind})",
                                    f"content does not match its hash: stored {event.hash[:16]}…, computed "
                                    f"{expected[:16]}… (the row was edited)"))
        prev, previous_id, last_id = event.hash, event.id, event.id
    head = session.get(CustodyHead, 1, populate_existing=True)
    if head is not None and head.last_hash != prev:
        problems.append(Problem("chain", "chain head", f"the head says {head.last_hash[:16]}… (event "
                                                       f"{head.last_event_id}), the last event is {last_id} with "
                                                       f"{prev[:16]}… (events after it were deleted?)"))
    problems.extend(Problem("anchor", name, detail) for name, detail in check_anchors(anchors, hashes, last_id))
    return problems, count, len(anchors)
