"""Catalog tables (SQLModel): stations, officers and devices, the recordings and their custody chain.

A Recording is one set of bytes (unique SHA-256); each time those bytes are
found on a device is a Sighting. The stamp (case, time, place, collector,
purpose) lives on the Recording and every change to it is a StampRevision.
Every state change and access is a CustodyEvent in a hash chain. Cases and
disposal are catalog.case_models; users and their web sessions
catalog.user_models.
"""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, SmallInteger, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from catalog.types import UTCDateTime

__all__ = [
    "ArchiveClaim", "CustodyAnchor", "CustodyEvent", "CustodyHead", "DerivedMedia", "Device", "DeviceAssignment",
    "DeviceStatusChange", "DockResult",
    "DockSession", "IntegrityCheck", "IntegrityStatus", "MediaKind", "MediaWorkAttempt", "MediaWorkFailure", "Officer",
    "OutboxMessage", "Recording", "RecordingState", "Sighting", "SpotCheck", "SpotCheckItem", "StampRevision",
    "Station", "StationKey", "ts_field",
]


def ts_field(*, nullable: bool = True, index: bool = False) -> Any:
    """A UTC timestamp column (catalog.types.UTCDateTime): every table's times are stored the same way."""
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class RecordingState(enum.StrEnum):
    STAGED = "staged"  # hashed copy in the station's staging area, not yet in WORM storage
    ARCHIVED = "archived"  # written to the WORM store
    VERIFIED = "verified"  # stored bytes re-hashed / server checksum confirmed equal
    DISPOSED = "disposed"  # retention ended and the object was lawfully deleted (tombstone)


#: The states of a recording whose original is in the WORM store (what disposal, verification, search and the media
#: backlog work on).
IN_ARCHIVE = (RecordingState.ARCHIVED.value, RecordingState.VERIFIED.value)


class IntegrityStatus(enum.StrEnum):
    OK = "ok"  # structure checks and probe passed
    DAMAGED = "damaged"  # truncated or a header lies; bytes preserved as found
    UNREADABLE = "unreadable"  # not parseable as media at all (empty, unknown, garbage)


class MediaKind(enum.StrEnum):
    VIDEO = "video"
    AUDIO = "audio"
    PHOTO = "photo"
    DOCUMENT = "document"  # a text record attached to a case (PDF, DOCX, scan…)
    OTHER = "other"


class DockResult(enum.StrEnum):
    """How a dock session ended (catalog.docks, ingest.pipeline): what its row and `undocked` event say."""

    COMPLETE = "complete"  # every file on the device was read and preserved
    PARTIAL = "partial"  # the device was read to the end, but some files could not be preserved; each says why
    INTERRUPTED = "interrupted"  # the run stopped early: the device left, the station stopped, or the run died


class Station(SQLModel, table=True):
    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=200)
    unit_number: str = Field(default="", max_length=64)  # the unit whose station it is ("": not said)
    default_lat: float | None = None
    default_lon: float | None = None
    created_at: datetime | None = ts_field(nullable=False)


class StationKey(SQLModel, table=True):
    """A station's public signing key (Ed25519), registered so anyone can check its manifests."""

    __tablename__ = "station_key"

    id: int | None = Field(default=None, primary_key=True)
    station_code: str = Field(foreign_key="station.code", index=True, max_length=64)
    fingerprint: str = Field(unique=True, max_length=64)  # SHA-256 of the raw public key, hex
    public_key: str = Field(max_length=64)  # raw 32-byte key, base64
    created_at: datetime | None = ts_field(nullable=False)
    retired_at: datetime | None = ts_field()


class Officer(SQLModel, table=True):
    """执法人员: one enforcement officer."""

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(index=True, unique=True, max_length=32)  # 警号 / 执法证号
    name: str = Field(default="", max_length=100)
    unit_number: str = Field(default="", max_length=64)
    unit_name: str = Field(default="", max_length=200)
    post: str = Field(default="", max_length=100)
    certificate_number: str = Field(default="", max_length=64)
    category: str = Field(default="", max_length=64)
    area: str = Field(default="", max_length=200)
    valid_from: datetime | None = ts_field()
    valid_until: datetime | None = ts_field()


class Device(SQLModel, table=True):
    """A recorder in the register (catalog.devices): added by an administrator before first use, or by its first
    dock (then `unreviewed` until an administrator looks at it). officer_number and unit_* are its current
    assignment (DeviceAssignment holds the history); first_seen and last_seen its first and latest dock (or, for
    one added by hand and never docked, when it was added)."""

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(index=True, unique=True, max_length=64)
    profile: str = Field(max_length=64)
    officer_number: str | None = Field(default=None, max_length=32)
    unit_number: str = Field(default="", max_length=64)
    unit_name: str = Field(default="", max_length=200)
    first_seen: datetime | None = ts_field(nullable=False)
    last_seen: datetime | None = ts_field(nullable=False)
    model: str = Field(default="", max_length=100)
    status: str = Field(default="in_service", max_length=16, index=True)  # catalog.devices.DEVICE_STATUSES
    added_by: str | None = Field(default=None, max_length=100)  # None: the device registered itself by docking
    unreviewed: bool = False  # an unknown serial that docked: flagged until an administrator reviews it
    docked: bool = True  # False: added by hand and not docked yet (first_seen/last_seen are when it was added)


class DeviceAssignment(SQLModel, table=True):
    """Who a recorder was assigned to, and when: one row per assignment, the open one (until None) current."""

    __tablename__ = "device_assignment"

    id: int | None = Field(default=None, primary_key=True)
    device_serial: str = Field(index=True, max_length=64)
    officer_number: str | None = Field(default=None, max_length=32)
    unit_number: str = Field(default="", max_length=64)
    unit_name: str = Field(default="", max_length=200)
    since: datetime | None = ts_field(nullable=False)
    until: datetime | None = ts_field()
    by: str = Field(max_length=100)  # who assigned it ("device": what the device itself said at a dock)
    reason: str = Field(default="", max_length=500)


class DeviceStatusChange(SQLModel, table=True):
    """A recorder's status from *at* (in service, lost, in repair, retired), who set it and why."""

    __tablename__ = "device_status_change"

    id: int | None = Field(default=None, primary_key=True)
    device_serial: str = Field(index=True, max_length=64)
    status: str = Field(max_length=16)
    at: datetime | None = ts_field(nullable=False)
    by: str = Field(max_length=100)
    reason: str = Field(default="", max_length=500)


class DockSession(SQLModel, table=True):
    __tablename__ = "dock_session"

    id: int | None = Field(default=None, primary_key=True)
    station_code: str = Field(foreign_key="station.code", max_length=64)
    device_serial: str = Field(index=True, max_length=64)
    profile: str = Field(max_length=64)
    source_path: str = Field(max_length=1024)
    started_at: datetime | None = ts_field(nullable=False)
    finished_at: datetime | None = ts_field()
    files_seen: int = 0
    files_new: int = 0
    files_known: int = 0
    files_failed: int = 0
    officer_number: str | None = Field(default=None, max_length=32)
    clock_offset_s: float | None = None  # station UTC minus the device clock, when the profile can read it
    result: str | None = Field(default=None, max_length=32)  # a DockResult
    result_note: str | None = Field(default=None, max_length=2000)  # what happened, in words (catalog.docks)


#: The recordings a spot check draws from (catalog.spotcheck._population_query says the same in SQLAlchemy).
DRAWABLE = ("state IN ('archived', 'verified') AND media_kind IN ('video', 'audio', 'photo') "
            "AND redacted_from_id IS NULL AND belongs_to_id IS NULL")
#: The recordings a coverage timeline counts (catalog.coverage): originals of what records an action, with a time.
COVERED = ("media_kind IN ('video', 'audio') AND redacted_from_id IS NULL AND belongs_to_id IS NULL "
           "AND captured_start IS NOT NULL")


class Recording(SQLModel, table=True):
    __table_args__ = (
        Index("ix_recording_captured", "captured_start", "captured_end"),
        Index("ix_recording_place", "lat", "lon"),
        # Search pages count and pick their page from these alone (PostgreSQL index-only scans): the overlap
        # test needs captured_end, the page's rows are then fetched by id.
        Index("ix_recording_officer_time", "officer_number", "captured_start",
              postgresql_include=["captured_end", "id"]),
        Index("ix_recording_station_time", "station_code", "captured_start",
              postgresql_include=["captured_end", "id"]),
        # Spot-check draws walk the kept recordings in id order (an index-only scan on PostgreSQL).
        Index("ix_recording_kept_id", "id", postgresql_where=text("state IN ('archived', 'verified')"),
              sqlite_where=text("state IN ('archived', 'verified')")),
        # ... and only what a spot check may draw (catalog.spotcheck.ENFORCEMENT_KINDS, never a redacted copy or a
        # housekeeping file): the same predicate as the draw's, so its count and cursor stay index-only
        Index("ix_recording_drawable_id", "id", postgresql_where=text(DRAWABLE), sqlite_where=text(DRAWABLE)),
        # A coverage timeline reads an officer's recordings ending after a period begins (catalog.coverage), every
        # column it needs in the index (PostgreSQL: index-only), and the files with a wrong clock docked in it.
        Index("ix_recording_coverage", "officer_number", "captured_end",
              postgresql_include=["captured_start", "id", "device_serial", "time_implausible"],
              postgresql_where=text(COVERED), sqlite_where=text(COVERED)),
        Index("ix_recording_implausible", "officer_number", "ingested_at",
              postgresql_include=["captured_start", "captured_end", "id", "device_serial"],
              postgresql_where=text(f"{COVERED} AND time_implausible"),
              sqlite_where=text(f"{COVERED} AND time_implausible")),
    )

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(index=True, unique=True, min_length=64, max_length=64)
    size_bytes: int = Field(sa_column=Column(BigInteger(), nullable=False))
    media_kind: str = Field(max_length=16, index=True)
    container: str | None = Field(default=None, max_length=64)
    video_codec: str | None = Field(default=None, max_length=64)
    audio_codec: str | None = Field(default=None, max_length=64)
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    original_name: str = Field(max_length=1024)
    device_serial: str | None = Field(default=None, index=True, max_length=64)
    officer_number: str | None = Field(default=None, index=True, max_length=32)
    officer_name: str | None = Field(default=None, index=True, max_length=100)
    station_code: str = Field(max_length=64)
    captured_start: datetime | None = ts_field(index=True)
    captured_end: datetime | None = ts_field()
    raw_device_time: str | None = Field(default=None, max_length=64)
    time_source: str = Field(max_length=32)
    time_implausible: bool = False
    # the capture time is before the sane floor, after the station's clock, or unrepresentable: a wrong device
    # clock. The raw value is kept (raw_device_time, technical["time_problem"]); it never shortens retention.
    zone_assumed: str | None = Field(default=None, max_length=64)
    clock_offset_s: float = 0.0
    lat: float | None = None
    lon: float | None = None
    place_source: str | None = Field(default=None, max_length=32)
    case_number: str | None = Field(default=None, index=True, max_length=64)
    purpose: str | None = Field(default=None, max_length=500)
    important: bool = False
    sensitivity: str = Field(default="internal", max_length=16, index=True)  # catalog.sensitivity.CLASSES
    # A redacted copy (ingest.redaction.derivative): the original it was made from; its `redacted` event says so too
    redacted_from_id: int | None = Field(default=None, foreign_key="recording.id", index=True)
    integrity_status: str = Field(max_length=16)
    integrity_detail: str = Field(default="", max_length=2000)
    state: str = Field(max_length=16, index=True)
    retain_until: datetime | None = ts_field()
    store_name: str | None = Field(default=None, max_length=32)
    store_key: str | None = Field(default=None, max_length=256)
    store_version: str | None = Field(default=None, max_length=256)
    stamp_revision: int = 1
    legal_hold: bool = False  # set while a linked case is open or kept permanently
    retention_rule: str = Field(default="", max_length=300)  # the rule that set retain_until
    fixity_checked_at: datetime | None = ts_field()  # last time the stored bytes were re-hashed and found equal
    ingested_at: datetime | None = ts_field(nullable=False)
    archived_at: datetime | None = ts_field()  # when the WORM store first held it (routine retention counts from
    # here too)
    belongs_to_id: int | None = Field(default=None, index=True)  # a device housekeeping file (.THM, .LRV, a
    # sidecar): the recording it belongs to, when known
    technical: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class IntegrityCheck(SQLModel, table=True):
    """One integrity verdict on a recording. Revision 1 is the ingest check (structure + probe); later ones (the
    background decode check) add to it, never overwrite it. Recording.integrity_status is the worst so far."""

    __tablename__ = "integrity_check"
    __table_args__ = (UniqueConstraint("recording_id", "revision", name="uq_integrity_revision"),)

    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    revision: int
    check: str = Field(max_length=32)  # ingest | decode
    status: str = Field(max_length=16)  # ok | damaged | unreadable: this check's own verdict
    detail: str = Field(default="", max_length=2000)
    checked_by: str = Field(max_length=100)
    checked_at: datetime | None = ts_field(nullable=False)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Sighting(SQLModel, table=True):
    """One appearance of a recording's bytes on a device."""

    __table_args__ = (
        UniqueConstraint("device_serial", "device_path", "recording_id", name="uq_sighting_place"),
        Index("ix_sighting_quick", "device_serial", "device_path", "size_bytes", "mtime_ns"),
    )

    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    dock_session_id: int = Field(foreign_key="dock_session.id")
    device_serial: str = Field(max_length=64)
    device_path: str = Field(max_length=2048)  # display-safe relative path on the device
    size_bytes: int = Field(sa_column=Column(BigInteger(), nullable=False))
    mtime_ns: int = Field(sa_column=Column(BigInteger(), nullable=False))
    important: bool = False
    seen_at: datetime | None = ts_field(nullable=False)
    # when this path stopped holding these bytes (it never stands for what the path holds after): the station
    # deleted the file from the device, or a dock found the file it had journaled gone or holding other bytes
    cleared_at: datetime | None = ts_field()


class StampRevision(SQLModel, table=True):
    """One version of a recording's evidence stamp; revision 1 is the ingest stamp."""

    __tablename__ = "stamp_revision"
    __table_args__ = (UniqueConstraint("recording_id", "revision", name="uq_stamp_revision"),)

    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    revision: int
    case_number: str | None = Field(default=None, max_length=64)
    captured_start: datetime | None = ts_field()
    lat: float | None = None
    lon: float | None = None
    place_source: str | None = Field(default=None, max_length=32)
    collector: str | None = Field(default=None, max_length=32)
    purpose: str | None = Field(default=None, max_length=500)
    important: bool = False
    changed_by: str = Field(max_length=100)
    changed_at: datetime | None = ts_field(nullable=False)
    reason: str = Field(default="", max_length=1000)
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class CustodyEvent(SQLModel, table=True):
    """A link of the custody hash chain."""

    __tablename__ = "custody_event"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)
    recording_id: int | None = Field(default=None, index=True)
    dock_session_id: int | None = None
    actor: str = Field(max_length=100)
    at: datetime | None = ts_field(nullable=False)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)
    #: Which hash formula covers the row (catalog.event_hashes): 1 before migration 0017, 2 from then on.
    chain_version: int = Field(default=1, sa_column=Column(SmallInteger(), nullable=False, server_default="1"))


class CustodyHead(SQLModel, table=True):
    """Single row holding the chain head; locked while appending so the chain stays linear."""

    __tablename__ = "custody_head"

    id: int = Field(default=1, primary_key=True)
    last_event_id: int | None = None
    last_hash: str = Field(max_length=64)


class CustodyAnchor(SQLModel, table=True):
    """The chain head as it was written, signed, to WORM storage. The store's copy is the one that counts."""

    __tablename__ = "custody_anchor"

    id: int | None = Field(default=None, primary_key=True)
    last_event_id: int = Field(index=True)
    last_hash: str = Field(max_length=64)
    written_at: datetime | None = ts_field(nullable=False)
    written_by: str = Field(max_length=100)
    record_name: str = Field(max_length=512, unique=True)
    key_fingerprint: str = Field(max_length=64)


class DerivedMedia(SQLModel, table=True):
    """A thumbnail or browser proxy made from a recording. Never evidence; says what it derives from."""

    __tablename__ = "derived_media"
    __table_args__ = (UniqueConstraint("recording_id", "kind", name="uq_derived_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    derived_from_sha256: str = Field(max_length=64)
    kind: str = Field(max_length=32)  # thumbnail | proxy
    key: str = Field(max_length=512)
    sha256: str = Field(max_length=64)
    size_bytes: int = Field(sa_column=Column(BigInteger(), nullable=False))
    content_type: str = Field(max_length=64)
    created_at: datetime | None = ts_field(nullable=False)


class MediaWorkFailure(SQLModel, table=True):
    """Work after archiving that failed for good on a recording's media: a thumbnail or proxy the original cannot
    be rendered into, or a decode check that never finishes. Never evidence; kept so the backlog
    (`catalog.media_work`) does not try the same hopeless work again at every pass, and so the detail says why."""

    __tablename__ = "media_work_failure"
    __table_args__ = (UniqueConstraint("recording_id", "kind", name="uq_media_work_failure_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    derived_from_sha256: str = Field(max_length=64)
    kind: str = Field(max_length=32)  # thumbnail | proxy | decode-check
    reason: str = Field(max_length=1000)
    failed_by: str = Field(max_length=100)
    failed_at: datetime | None = ts_field(nullable=False)


class MediaWorkAttempt(SQLModel, table=True):
    """Times one kind of media work on one recording was cut short by a SIGKILL from outside (the kernel's
    out-of-memory killer ending the ffmpeg that decodes or renders it). After `catalog.media_work.MAX_KILLS` the
    work is recorded as failed for good, instead of being taken again at every pass forever."""

    __tablename__ = "media_work_attempt"

    recording_id: int = Field(foreign_key="recording.id", primary_key=True)
    kind: str = Field(max_length=32, primary_key=True)  # thumbnail | proxy | decode-check
    kills: int = Field(default=0)
    last_by: str = Field(max_length=100)  # the worker that saw the last kill
    last_at: datetime | None = ts_field(nullable=False)


class RedactionJob(SQLModel, table=True):
    """A redaction asked for and not rendered in the asker's process (the web app, `evidence redact --queue`): the
    derive queue's workers, or the installation's renderer, take it (catalog.redaction_jobs). The request as made
    (specification, face search, reason, who) is kept here; the copy it made is a recording of its own whose
    `redacted` custody event records all of it again. Never evidence."""

    __tablename__ = "redaction_job"

    id: int | None = Field(default=None, primary_key=True)
    original_id: int = Field(foreign_key="recording.id", index=True)
    requested_by: str = Field(max_length=100)
    reason: str = Field(max_length=500)
    via: str = Field(max_length=100)
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    faces: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # None: no search
    state: str = Field(default="queued", max_length=16, index=True)  # queued | running | done | failed
    stage: str = Field(default="queued", max_length=32)  # what a running job does now
    progress: float = Field(default=0.0)  # 0 to 1
    attempts: int = Field(default=0)  # times a worker took it
    holder: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = ts_field()
    copy_id: int | None = Field(default=None, foreign_key="recording.id")
    error: str | None = Field(default=None, max_length=2000)
    #: The error as catalog.said.kept holds it (a page says it in its reader's language); None: plain text
    error_said: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime | None = ts_field(nullable=False)
    sent_at: datetime | None = ts_field()  # its message last handed to the broker
    started_at: datetime | None = ts_field()
    finished_at: datetime | None = ts_field()


class Release(SQLModel, table=True):
    """A release (issue 18, part 3): items published (公示) or transferred (移送) to a named recipient on a legal
    basis, proposed by one person and decided by a second with the legal-review role (catalog.releases). Each
    decision and withdrawal is a signed record in WORM storage and a custody event on every item."""

    __tablename__ = "evidence_release"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # publication | transfer
    title: str = Field(max_length=200)
    recipient: str = Field(max_length=200)
    legal_basis: str = Field(max_length=500)
    reason: str = Field(max_length=500)
    state: str = Field(default="proposed", max_length=16, index=True)  # proposed | approved | rejected | withdrawn
    proposed_by: str = Field(max_length=100)
    proposed_at: datetime | None = ts_field(nullable=False)
    decided_by: str | None = Field(default=None, max_length=100)
    decided_at: datetime | None = ts_field()
    decision_note: str | None = Field(default=None, max_length=500)
    withdrawn_by: str | None = Field(default=None, max_length=100)
    withdrawn_at: datetime | None = ts_field()
    withdrawal_reason: str | None = Field(default=None, max_length=500)
    records: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # signed, in WORM


class ReleaseItem(SQLModel, table=True):
    """One recording in a release, as it was when proposed (its SHA-256 and class)."""

    __tablename__ = "evidence_release_item"
    __table_args__ = (UniqueConstraint("release_id", "recording_id", name="uq_release_item"),)

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="evidence_release.id", index=True)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    sha256: str = Field(max_length=64)
    sensitivity: str = Field(max_length=32)


class ShareLink(SQLModel, table=True):
    """A link that hands an approved release to one named recipient without an account (catalog.shares): for a
    time, opened once with a one-time code, every download recorded, revocable. Only hashes of the link's token,
    its code and the browser session that used the code are kept."""

    __tablename__ = "share_link"

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="evidence_release.id", index=True)
    recipient: str = Field(max_length=200)
    token_sha256: str = Field(max_length=64, unique=True)
    code_sha256: str = Field(max_length=64)
    created_by: str = Field(max_length=100)
    created_at: datetime | None = ts_field(nullable=False)
    expires_at: datetime | None = ts_field(nullable=False)
    opened_at: datetime | None = ts_field()  # the code was used (it works once)
    session_sha256: str | None = Field(default=None, max_length=64)  # the browser session that used it
    failures: int = Field(default=0)  # wrong codes entered
    revoked_at: datetime | None = ts_field()
    revoked_by: str | None = Field(default=None, max_length=100)
    revoke_reason: str | None = Field(default=None, max_length=500)


class SpotCheck(SQLModel, table=True):
    """双随机 spot check: a random sample drawn with a recorded seed (anyone can redraw it and get the same)."""

    __tablename__ = "spot_check"

    id: int | None = Field(default=None, primary_key=True)
    created_by: str = Field(max_length=100)
    created_at: datetime | None = ts_field(nullable=False)
    seed: str = Field(max_length=64)
    criteria: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    population: int  # how many recordings matched the criteria when drawn
    sample_size: int
    # 双随机's second draw: who reviews, drawn from a pool with the seed "<seed>/reviewers" (catalog.spotcheck_team)
    reviewer_pool: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False,
                                                                            server_default="[]"))
    reviewers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    signed_off_by: str | None = Field(default=None, max_length=100)
    signed_off_at: datetime | None = ts_field()
    result_record: str | None = Field(default=None, max_length=200)  # the signed result's name in WORM storage
    result_sha256: str | None = Field(default=None, max_length=64)  # and its SHA-256 (the published summary's)


class SpotCheckItem(SQLModel, table=True):
    __tablename__ = "spot_check_item"
    __table_args__ = (UniqueConstraint("check_id", "recording_id", name="uq_spot_check_item"),)

    id: int | None = Field(default=None, primary_key=True)
    check_id: int = Field(foreign_key="spot_check.id", index=True)
    recording_id: int = Field(foreign_key="recording.id")
    outcome: str = Field(default="pending", max_length=16)  # pending | compliant | issue | unreadable
    notes: str = Field(default="", max_length=2000)
    reviewed_by: str | None = Field(default=None, max_length=100)
    reviewed_at: datetime | None = ts_field()


class OutboxMessage(SQLModel, table=True):
    """A queue message written in the same transaction as the rows it names (the transactional outbox): a broker
    outage never loses it; `ingest.queue.relay` hands it to the broker when it answers. Not evidence: sent rows are
    pruned after a week."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_station_sent", "station_code", "sent_at"),)

    id: int | None = Field(default=None, primary_key=True)
    actor: str = Field(max_length=64)  # the dramatiq actor name, e.g. ingest.archive_recording
    recording_id: int = Field(index=True)
    station_code: str = Field(max_length=64)  # whose queue takes it (archiving reads that station's staging)
    created_at: datetime | None = ts_field(nullable=False)
    sent_at: datetime | None = ts_field()
    reason: str = Field(default="", max_length=200)  # ingest, reconcile, re-routed, archive-pending


class ArchiveClaim(SQLModel, table=True):
    """A worker archiving a recording holds it (renewed while the upload runs): two workers never upload the same
    bytes at once, and a killed worker's hold expires so another can take the recording."""

    __tablename__ = "archive_claim"

    recording_id: int = Field(primary_key=True)
    holder: str = Field(max_length=200)
    expires_at: datetime | None = ts_field(nullable=False)
