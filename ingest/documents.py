"""Text records (PDF, Word, OFD, scans…) attached to a case: hashed, catalogued and kept like recordings.

A document is copied into staging in one read pass (SHA-256 on the way),
recognised by its bytes (`classify_document` is pure), stored in the WORM
store under its hash with a signed manifest, and linked to the case. A file
that is not a recognised document is still kept, flagged `unreadable`.
"""
from __future__ import annotations

import logging
import uuid
import zipfile
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from catalog import (
    Case,
    CaseInvalid,
    CaseStateError,
    CaseStatus,
    CustodyKind,
    IntegrityStatus,
    MediaKind,
    Recording,
    RecordingState,
    append_event,
    ensure_station_key,
    find_by_sha256,
    link_recording,
    record_stamp,
    write_manifest,
)
from catalog.cases import Attach
from catalog.clock import archive_now
from catalog.policy_adoption import policy_in_force
from catalog.replay import ROW_KEY, row_values
from catalog.retention import routine_rule
from catalog.said import say
from catalog.stamps import MAX_PURPOSE
from ingest.archiving import mark_archived
from ingest.config import Settings
from ingest.pipeline.cataloguing import Described, staged_recording
from ingest.transfer import copy_and_hash
from storage import EvidenceStore, compute_retain_until

__all__ = ["AttachResult", "DerivedFrom", "DocumentKind", "attach_document", "classify_document", "document_attacher"]

logger = logging.getLogger(__name__)

_TAIL_BYTES = 2048


@dataclass(frozen=True)
class DerivedFrom:
    """A case record made from a recording (ingest.snapshots: a still of one frame)."""

    captured: datetime | None  # the frame's time on the source's clock
    time_source: str  # how that time was found ("still frame")
    details: dict[str, object]  # the source's id and SHA-256, the position: kept in the row's technical record
    source: Recording  # whose officer, device, place, clock verdict and class the still takes: what it shows is
    # theirs, so the same people may see it (scope) and the same class keeps it (a review found a still of a
    # classed video catalogued `internal`, downloadable by those the video is closed to)


@dataclass(frozen=True)
class DocumentKind:
    container: str  # pdf | docx | xlsx | pptx | ofd | zip | ole | jpeg | png | tiff | text | unknown
    status: str  # IntegrityStatus value
    detail: str


@dataclass(frozen=True)
class AttachResult:
    recording: Recording
    new: bool  # False: the same bytes were already in the archive (only a link was added)


#: ZIP-based formats, told apart by a member only they have.
_ZIP_MARKERS = (("word/document.xml", "docx"), ("xl/workbook.xml", "xlsx"), ("ppt/presentation.xml", "pptx"),
                ("OFD.xml", "ofd"))
#: Files whose name says text: they are kept as text when their bytes are UTF-8.
_TEXT_SUFFIXES = (".txt", ".md", ".csv", ".xml", ".json")


def classify_document(head: bytes, tail: bytes, *, name: str, zip_members: list[str] | None) -> DocumentKind:
    """Recognise a document from its first and last bytes (and, for ZIP-based formats, its member names)."""
    if not head:
        return DocumentKind("unknown", IntegrityStatus.UNREADABLE.value, "empty file")
    for classify in (_classify_pdf, _classify_zip, _classify_legacy_office_or_image):
        kind = classify(head, tail, zip_members)
        if kind is not None:
            return kind
    if name.lower().endswith(_TEXT_SUFFIXES):
        return _classify_text(head)
    return DocumentKind("unknown", IntegrityStatus.UNREADABLE.value, "not a recognised document type (PDF, "
                        "Word/Excel/PowerPoint, OFD, JPEG, PNG, TIFF, text); kept as found")


def _classify_pdf(head: bytes, tail: bytes, _members: list[str] | None) -> DocumentKind | None:
    if not head.startswith(b"%PDF-"):
        return None
    if b"%%EOF" not in tail:
        return DocumentKind("pdf", IntegrityStatus.DAMAGED.value,
                            "PDF without its %%EOF trailer (truncated?); kept as found")
    return DocumentKind("pdf", IntegrityStatus.OK.value, "")


def _classify_zip(head: bytes, _tail: bytes, zip_members: list[str] | None) -> DocumentKind | None:
    if not head.startswith(b"PK\x03\x04"):
        return None
    if zip_members is None:
        return DocumentKind("zip", IntegrityStatus.DAMAGED.value,
                            "ZIP-based document whose directory cannot be read; kept as found")
    members = set(zip_members)
    for marker, container in _ZIP_MARKERS:
        if marker in members:
            return DocumentKind(container, IntegrityStatus.OK.value, "")
    return DocumentKind("zip", IntegrityStatus.OK.value, "ZIP archive (not a Word, Excel, PowerPoint or OFD document)")


def _classify_legacy_office_or_image(head: bytes, tail: bytes, _members: list[str] | None) -> DocumentKind | None:
    ok = IntegrityStatus.OK.value
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return DocumentKind("ole", ok, "legacy Office document (.doc/.xls)")
    if head.startswith(b"\xff\xd8\xff"):
        if not tail.rstrip(b"\x00").endswith(b"\xff\xd9"):
            return DocumentKind("jpeg", IntegrityStatus.DAMAGED.value,
                                "JPEG without its end-of-image marker (truncated?); kept as found")
        return DocumentKind("jpeg", ok, "")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return DocumentKind("png", ok, "")
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return DocumentKind("tiff", ok, "")
    return None


def _classify_text(head: bytes) -> DocumentKind:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the end of the sample is fine
            return DocumentKind("text", IntegrityStatus.DAMAGED.value,
                                f"not valid UTF-8 text at byte {exc.start}; kept as found")
    return DocumentKind("text", IntegrityStatus.OK.value, "")


def _classify_file(path: Path, name: str) -> DocumentKind:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(65536)
        fh.seek(max(0, size - _TAIL_BYTES))
        tail = fh.read(_TAIL_BYTES)
    members = None
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                members = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            members = None
    return classify_document(head, tail, name=name, zip_members=members)


def attach_document(session: Session, store: EvidenceStore, settings: Settings, case: Case, path: Path, *,
                    title: str, by: str, key: Ed25519PrivateKey, dated: date | None = None,
                    derived: DerivedFrom | None = None) -> AttachResult:
    """Store *path* as a document of *case* (WORM, hashed, signed manifest) and link it with *title*. *derived*:
    the file was made from a recording (a still): its capture time is the frame's, and its row says from what.

    Raises:
      CaseStateError: the case is closed, or the same bytes were disposed of.
      CopyFailed: the file cannot be read (nothing is stored).
      StorageError: the store refused or is down (the staged copy stays for a retry).
    """
    if case.status != CaseStatus.OPEN.value:
        raise CaseStateError(say("case {case} is closed (on {day}); reopen it before attaching {file}",
                                 case=case.number, day=case.closed_on, file=path.name))
    if len(title.strip()) > MAX_PURPOSE:  # refused before anything is staged (the link would refuse it after)
        raise CaseInvalid([say("{file}: what it is (its purpose in case {case}) is {n} characters; at most {max}",
                               file=path.name, case=case.number, n=len(title.strip()), max=MAX_PURPOSE)])
    staging = settings.staging_dir
    staging.mkdir(parents=True, exist_ok=True)
    copy = copy_and_hash(path, staging, part_name=f"attach-{uuid.uuid4().hex}", resume=False)
    existing = find_by_sha256(session, copy.sha256)
    if existing is not None:
        if existing.state != RecordingState.STAGED.value:
            copy.destination.unlink(missing_ok=True)
        link_recording(session, case, existing, purpose=title, by=by, source="attach")
        session.commit()
        return AttachResult(existing, new=False)
    kind = _classify_file(copy.destination, path.name)
    ensure_station_key(session, settings.station, key, actor=by, station_name=settings.station_name,
                       store=store)
    now = archive_now(session)[0]  # never earlier than the custody chain (catalog.clock)
    captured = datetime.combine(dated, time(), tzinfo=ZoneInfo(settings.station_tz)) if dated else None
    time_source = "document date" if dated else "none"
    if derived is not None:
        captured, time_source = derived.captured, derived.time_source
    source = derived.source if derived is not None else None
    described = Described(media_kind=MediaKind.DOCUMENT.value, container=kind.container,
                          time_source=time_source, integrity_status=kind.status,
                          integrity_detail=kind.detail, captured_start=captured, captured_end=captured,
                          case_number=case.number, purpose=title)
    if source is not None:
        described = replace(described, device_serial=source.device_serial, officer_number=source.officer_number,
                            officer_name=source.officer_name, lat=source.lat, lon=source.lon,
                            place_source=source.place_source, time_implausible=source.time_implausible)
    policy = policy_in_force(session, settings.retention_policy)  # a web app left running after a re-adoption
    months = policy.routine_months
    recording = staged_recording(copy, described, original_name=path.name, station=settings.station, now=now,
                                 retain_until=compute_retain_until(now, routine_months=months, zone=policy.zone),
                                 retention_rule=routine_rule(months),
                                 technical={"attached_from": path.name,
                                            **({"derived_from": derived.details} if derived else {})})
    if source is not None:
        recording.sensitivity = source.sensitivity  # before its first event: the chain says so from the start
    session.add(recording)
    try:
        session.flush()
    except IntegrityError:  # the same bytes catalogued by another request since find_by_sha256 looked
        session.rollback()
        copy.destination.unlink(missing_ok=True)
        raise CaseStateError(say("{file}: the same bytes (sha256 {sha}…) were catalogued by another request at this "
                                 "moment; try again to link them", file=path.name, sha=copy.sha256[:12])) from None
    append_event(session, CustodyKind.DOCUMENT_ATTACHED, actor=by, recording_id=recording.id, details={
        "case": case.number, "name": path.name, "sha256": copy.sha256, "size_bytes": copy.size_bytes,
        "container": kind.container, "integrity": kind.status, ROW_KEY: row_values(recording)})
    record_stamp(session, recording, by=by, reason=f"attached to case {case.number}")
    link_recording(session, case, recording, purpose=title, by=by, source="attach")
    session.commit()  # catalogued as staged first: a store failure leaves a recoverable staged copy
    assert recording.retain_until is not None
    stored = store.put_file(copy.destination, sha256=copy.sha256, size_bytes=copy.size_bytes,
                            retain_until=recording.retain_until, consume=True)
    mark_archived(session, [(recording, stored)], store, actor=by)
    # Committed before the manifest goes to the store, as every archive step does: a manifest in the store then
    # always lists events the catalogue holds (a run killed between the two leaves one that can be adopted).
    session.commit()
    write_manifest(session, store, recording, key, actor=by)
    session.commit()
    return AttachResult(recording, new=True)


def document_attacher(settings: Settings, store: EvidenceStore, key: Ed25519PrivateKey) -> Attach:
    """`attach_document` for the web application's upload on the case page (evidence.web.deps.Attach)."""
    def attach(session: Session, case: Case, path: Path, *, title: str, by: str,
               dated: date | None) -> tuple[Recording, bool]:
        result = attach_document(session, store, settings, case, path, title=title, by=by, key=key, dated=dated)
        return result.recording, result.new
    return attach
