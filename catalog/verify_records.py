"""A stored recording's row held against its stamp revisions, its signed manifests and its sightings.

The pure comparison (`check_recording_record`, `check_sightings`) returns the
problems it finds, each naming the values that show it; `record_problems`
feeds it the rows of a batch (`RecordRows`, one query per table) and the
manifests read from WORM storage, and reads once more before reporting a
difference. `Problem` lives here, the lowest of the verify modules;
catalog.verification re-exports it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.integrity import worst
from catalog.manifests import read_manifest, read_manifests, signed_retain_until
from catalog.models import CustodyEvent, Recording, Sighting, StampRevision
from catalog.replay import RecordingReplay, load_replays
from catalog.signing import SignatureInvalid
from storage import EvidenceStore, ObjectMissing, StorageError

__all__ = ["Problem", "RecordRows", "check_recording_record", "check_sightings", "record_problems",
           "recording_subject"]


@dataclass(frozen=True)
class Problem:
    kind: str  # object | seal | retention | catalog | manifest | signature | key | chain | anchor | policy | derived
    subject: str  # what it is about: "recording 12 (clip.mp4)", "event 45", an anchor's name
    detail: str  # what was expected and what was found
    recording_id: int | None = None

    def __str__(self) -> str:
        return f"[{self.kind}] {self.subject}: {self.detail}"


def recording_subject(recording: Recording) -> str:
    """How a problem names a recording: `recording 12 (clip.mp4)`."""
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
    problems = _revision_run_problems(recording, revisions)
    current = next((r for r in revisions if r.revision == recording.stamp_revision), None)
    if current is not None:
        problems += _current_revision_problems(recording, current)
    for revision in revisions:
        problems += _manifest_problems(recording, revision, manifests.get(revision.revision), events)
    if sightings is not None:
        problems += check_sightings(recording, sightings, manifests, places or {})
    return [replace(p, recording_id=recording.id) for p in problems]


def _revision_run_problems(recording: Recording, revisions: list[StampRevision]) -> list[Problem]:
    """A stored row needs stamp revisions 1..stamp_revision (revision 1 at least: its signed manifest)."""
    numbers = [r.revision for r in revisions]
    if recording.stamp_revision < 1:
        return [Problem("manifest", recording_subject(recording),
                        f"in the store, but it has no stamp revision (stamp_revision {recording.stamp_revision}, "
                        f"revisions {numbers}) and so no signed manifest: every stored recording is stamped and "
                        "sealed when it is archived, so nothing vouches for this row (inserted or edited behind the "
                        "application's back)")]
    if numbers != list(range(1, recording.stamp_revision + 1)):
        return [Problem("catalog", recording_subject(recording),
                        f"stamp revisions {numbers} do not run 1..{recording.stamp_revision}")]
    return []


def _current_revision_problems(recording: Recording, current: StampRevision) -> list[Problem]:
    """The row's stamp must be the one its current stamp revision recorded."""
    pairs = {"case_number": (recording.case_number, current.case_number),
             "captured_start": (_iso(recording.captured_start), _iso(current.captured_start)),
             "lat": (recording.lat, current.lat), "lon": (recording.lon, current.lon),
             "collector": (recording.officer_number, current.collector),
             "purpose": (recording.purpose, current.purpose), "important": (recording.important, current.important)}
    return [Problem("catalog", recording_subject(recording),
                    f"{name} is {row!r} in the recording row but {rev!r} in stamp revision {current.revision}")
            for name, (row, rev) in pairs.items() if row != rev]


def _manifest_problems(recording: Recording, revision: StampRevision, body: Any,
                       events: dict[int, str]) -> list[Problem]:
    """One revision's signed manifest (a verified body, an exception text, or None when not read) against the row,
    the revision and the custody events."""
    where = f"{recording_subject(recording)}, manifest r{revision.revision}"
    if isinstance(body, str):
        return [Problem("signature" if body.startswith("signature") else "manifest", where, body)]
    if body is None:
        return []
    stamp = body.get("stamp") or {}
    current = revision.revision == recording.stamp_revision
    facts = {**_signed_facts(recording, revision, body), **_signed_row_facts(recording, body, current=current)}
    problems = [Problem("catalog", where, f"{name}: the catalogue says {catalogue!r}, the signed manifest says "
                                          f"{signed!r}")
                for name, (catalogue, signed) in facts.items() if catalogue != signed]
    times: list[tuple[str, datetime | None, Any]] = [
        ("stamp.captured_start", revision.captured_start, stamp.get("captured_start")),
        ("stamp.changed_at", revision.changed_at, stamp.get("changed_at"))]
    capture = body.get("capture")
    if current and isinstance(capture, dict):  # a later stamp moves the capture time: the current one says it
        times += [(f"capture.{name}", held, capture[name])
                  for name, held in (("start", recording.captured_start), ("end", recording.captured_end))
                  if name in capture]
    for name, held, signed in times:
        if not _same_time(held, signed):
            problems.append(Problem("catalog", where, f"{name}: the catalogue says {_iso(held)!r}, the signed "
                                                      f"manifest says {signed!r}"))
    problems += _signed_retention_problems(recording, body, where)
    problems += _signed_integrity_problems(recording, body, where)
    problems += _listed_custody_problems(body, events, where)
    return problems


def _signed_integrity_problems(recording: Recording, body: dict[str, Any], where: str) -> list[Problem]:
    """The integrity verdict only worsens and its detail only grows after signing (a later check appends its
    finding, catalog.integrity): a row milder than a signed status, or whose detail does not begin with the signed
    detail, was edited (a review emptied a damaged file's detail and every check passed)."""
    signed = body.get("integrity")
    if not isinstance(signed, dict):
        return []
    problems = []
    status = signed.get("status")
    if isinstance(status, str) and worst(recording.integrity_status, status) != recording.integrity_status:
        problems.append(Problem("catalog", where, f"integrity status: the catalogue says "
                                                  f"{recording.integrity_status!r}, milder than the {status!r} "
                                                  "signed in this manifest (it only worsens: the row was edited)"))
    detail = signed.get("detail")
    if isinstance(detail, str) and not (recording.integrity_detail or "").startswith(detail):
        problems.append(Problem("catalog", where, f"integrity detail: the catalogue says "
                                                  f"{recording.integrity_detail!r}, which does not begin with the "
                                                  f"{detail!r} signed in this manifest (later checks only add to it: "
                                                  "the row was edited)"))
    return problems


def _signed_facts(recording: Recording, revision: StampRevision, body: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """name -> (what the catalogue holds, what the manifest signed), in the order problems name them."""
    stamp = body.get("stamp") or {}
    place = stamp.get("place") or {}
    facts = {"sha256": (recording.sha256, body.get("sha256")),
             "size_bytes": (recording.size_bytes, body.get("size_bytes")),
             "original_name": (recording.original_name, body.get("original_name")),
             "device_serial": (recording.device_serial, body.get("device_serial")),
             "station": (recording.station_code, body.get("station")),
             "stamp.case_number": (revision.case_number, stamp.get("case_number")),
             "stamp.lat": (revision.lat, place.get("lat")), "stamp.lon": (revision.lon, place.get("lon")),
             "stamp.collector": (revision.collector, stamp.get("collector")),
             "stamp.purpose": (revision.purpose, stamp.get("purpose")),
             "stamp.important": (revision.important, stamp.get("important")),
             "stamp.changed_by": (revision.changed_by, stamp.get("changed_by")),
             "stamp.reason": (revision.reason, stamp.get("reason")),
             "stamp.changes": (revision.changes, stamp.get("changes"))}
    if stamp.get("place"):  # the place's source is signed with the place (none without a position)
        facts["stamp.place.source"] = (revision.place_source, place.get("source"))
    return facts


def _signed_row_facts(recording: Recording, body: dict[str, Any], *, current: bool) -> dict[str, tuple[Any, Any]]:
    """The recording's own facts a manifest signs (media, officer, how its capture time was read; a redacted copy's
    record of what was hidden), each as (what
    the catalogue holds, what the manifest signed), where the manifest signs it (an early format may not). Only the
    current revision's manifest is held to the facts a later stamp changes (the officer's number)."""
    sections: dict[str, tuple[tuple[str, Any], ...]] = {
        "media": (("kind", recording.media_kind), ("container", recording.container),
                  ("video_codec", recording.video_codec), ("audio_codec", recording.audio_codec),
                  ("duration_s", recording.duration_s), ("width", recording.width), ("height", recording.height)),
        "officer": (("name", recording.officer_name),) + ((("number", recording.officer_number),) if current else ()),
        "capture": (("raw_device_time", recording.raw_device_time), ("time_source", recording.time_source),
                    ("zone_assumed", recording.zone_assumed), ("clock_offset_s", recording.clock_offset_s)),
    }
    facts: dict[str, tuple[Any, Any]] = {}
    for section, fields in sections.items():
        signed = body.get(section)
        if isinstance(signed, dict):
            facts.update({f"{section}.{name}": (held, signed[name]) for name, held in fields if name in signed})
    made = (recording.technical or {}).get("redaction")
    if made is not None or "redaction" in body:  # a redacted copy: what was hidden, from which original, by whom
        facts["redaction"] = (made, body.get("redaction"))
    return facts


def _signed_retention_problems(recording: Recording, body: dict[str, Any], where: str) -> list[Problem]:
    signed_until = signed_retain_until(body)
    if signed_until is None or (recording.retain_until is not None and recording.retain_until >= signed_until):
        return []
    return [Problem("catalog", where, f"retain_until: the catalogue says {_iso(recording.retain_until)}, earlier "
                                      f"than the {signed_until.isoformat()} signed in this manifest (retention only "
                                      "grows: the row was edited)")]


def _listed_custody_problems(body: dict[str, Any], events: dict[int, str], where: str) -> list[Problem]:
    """Every custody event the manifest lists must be in the catalogue with the hash it signed."""
    problems = []
    for listed in body.get("custody", []):
        found = events.get(listed.get("id"))
        if found != listed.get("hash"):
            problems.append(Problem("chain", where, f"the manifest lists custody event {listed.get('id')} "
                                                    f"({listed.get('kind')}) with hash "
                                                    f"{str(listed.get('hash'))[:16]}…; the catalogue has "
                                                    + (f"{found[:16]}…" if found else "no such event")))
    return problems


def _signed_sightings(manifests: dict[int, Any]) -> dict[tuple[str, str], tuple[Any, list[int]]]:
    """(device serial, device path) -> (seen_at as first signed, the revisions that list it). Pure."""
    signed: dict[tuple[str, str], tuple[Any, list[int]]] = {}
    for number in sorted(manifests):
        body = manifests[number]
        if not isinstance(body, dict):
            continue
        for item in body.get("sightings") or []:
            if isinstance(item, dict):
                where = (str(item.get("device_serial")), str(item.get("device_path")))
                signed.setdefault(where, (item.get("seen_at"), []))[1].append(number)
    return signed


def check_sightings(recording: Recording, sightings: list[Sighting], manifests: dict[int, Any],
                    places: Mapping[tuple[str, str], int]) -> list[Problem]:
    """Where the recording was found: every sighting a signed manifest lists (each lists those of its signing time,
    so older revisions list fewer) must still be in the catalogue as signed; a sighting no manifest lists (found
    after the last signing) must be named by a `copied` or `sighted` custody event. Pure."""
    who = recording_subject(recording)
    held = {(s.device_serial, s.device_path): s for s in sightings}
    signed = _signed_sightings(manifests)
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


@dataclass
class RecordRows:
    """What a batch of recordings is compared with, one query per table for the batch: stamp revisions, sightings
    and (id -> hash) custody events. Sightings are read before events, so a sighting committed with its `sighted`
    event while verify runs is never seen without it."""

    revisions: dict[int, list[StampRevision]]
    sightings: dict[int, list[Sighting]]
    events: dict[int, dict[int, str]]

    @classmethod
    def load(cls, session: Session, ids: list[int]) -> RecordRows:
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

    def update(self, other: RecordRows) -> None:
        self.revisions.update(other.revisions)
        self.sightings.update(other.sightings)
        self.events.update(other.events)


def record_problems(session: Session, store: EvidenceStore, recording: Recording, rows: RecordRows,
                    replay: RecordingReplay, keys: set[str]) -> tuple[list[Problem], int]:
    """`check_recording_record` on a stored row, with its signed manifests read from *store*; a difference is read
    again once (row, revisions, sightings, events and manifests together), so a re-stamp or a sighting committed
    while verify ran is not reported. Returns the problems and how many manifests were read."""
    assert recording.id is not None

    def compared(rows: RecordRows, replay: RecordingReplay) -> tuple[list[Problem], int]:
        revisions, sightings, events = rows.pop(recording.id or 0)
        manifests = read_manifests(store, recording, trusted=keys)
        return (check_recording_record(recording, revisions, manifests, events, sightings, replay.places)
                + revision_rollback(recording, replay) + manifest_beyond(store, recording, keys)), len(manifests)

    problems, read = compared(rows, replay)
    if problems:
        session.refresh(recording)
        problems, read = compared(RecordRows.load(session, [recording.id]),
                                  load_replays(session, [recording.id])[0][recording.id])
    return problems, read


def manifest_beyond(store: EvidenceStore, recording: Recording, keys: set[str]) -> list[Problem]:
    """The store holds a manifest of the revision after the row's: written once, it says the recording was
    re-stamped after what the catalogue holds, whatever was cut from the catalogue since (the revision row, the
    chain's tail past the newest anchor: found by a review). One more read per recording (absent, as a rule)."""
    number = recording.stamp_revision + 1
    try:
        body = read_manifest(store, recording.sha256, number, trusted=keys)
    except ObjectMissing:
        return []
    except (SignatureInvalid, StorageError, ValueError, KeyError) as exc:
        what = f"a manifest r{number} that does not verify ({exc})"
    else:
        listed = max((e["id"] for e in body.get("custody", []) if isinstance(e, dict) and isinstance(e.get("id"), int)),
                     default=None)
        what = (f"signed manifest r{number} (signed at {body.get('signed_at')}, listing custody events up to "
                f"{listed})")
    return [Problem("catalog", recording_subject(recording),
                    f"the store holds {what}, but the catalogue holds revision {recording.stamp_revision}: a re-stamp "
                    "was rolled back or the custody chain's tail cut behind the application's back",
                    recording_id=recording.id)]


def revision_rollback(recording: Recording, replay: RecordingReplay) -> list[Problem]:
    """The chain names a later stamp revision than the row holds: a re-stamp rolled back behind the application's
    back (its revision row deleted, the row's stamp put back; every other check passed, found by a review). Pure."""
    if replay.revision <= recording.stamp_revision:
        return []
    return [Problem("catalog", recording_subject(recording),
                    f"custody event {replay.revision_event} names stamp revision {replay.revision}, but the catalogue "
                    f"holds revision {recording.stamp_revision}: a re-stamp was rolled back behind the application's "
                    f"back (its signed manifest r{replay.revision} is in the store)", recording_id=recording.id)]
