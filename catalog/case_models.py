"""Case files and disposal (SQLModel tables): what retention decides from, and what it did.

A Case groups recordings and documents through CaseLinks (unlinking keeps the row) and records its enforcement
actions as CaseActions (catalog.checklist: were they recorded from start to end?); a DisposalBatch is one
disposal act, approved by a second person, and each recording it disposed of leaves a Disposal tombstone. The
recording tables are catalog.models'.
"""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from catalog.models import ts_field

__all__ = ["Case", "CaseAction", "CaseGrant", "CaseLink", "CaseStatus", "Disposal", "DisposalBatch", "DisposalStatus"]


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class DisposalStatus(enum.StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"
    DONE = "done"  # every item disposed of
    PARTIAL = "partial"  # some items were refused or failed; each says why


class Case(SQLModel, table=True):
    """案件: a case file. Its recordings and documents are kept (and exported) together."""

    __tablename__ = "case_file"  # CASE is an SQL keyword

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, index=True, max_length=64)
    title: str = Field(max_length=300)
    case_type: str = Field(max_length=32)
    unit: str = Field(default="", max_length=200)
    status: str = Field(max_length=16, index=True)
    opened_on: date
    closed_on: date | None = None
    created_by: str = Field(max_length=100)
    created_at: datetime | None = ts_field(nullable=False)
    closed_by: str | None = Field(default=None, max_length=100)
    sensitivity: str = Field(default="internal", max_length=16)  # catalog.sensitivity.CLASSES


class CaseLink(SQLModel, table=True):
    """A recording (or document) serving a case, with what it proves there. Unlinking keeps the row."""

    __tablename__ = "case_link"
    __table_args__ = (Index("ix_case_link_pair", "case_id", "recording_id"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    purpose: str = Field(max_length=500)
    source: str = Field(max_length=16)  # manual | stamp | attach
    linked_by: str = Field(max_length=100)
    linked_at: datetime | None = ts_field(nullable=False)
    unlinked_by: str | None = Field(default=None, max_length=100)
    unlinked_at: datetime | None = ts_field()
    unlink_reason: str | None = Field(default=None, max_length=1000)


class DisposalBatch(SQLModel, table=True):
    """One disposal act: what was due, who asked, who approved, what happened to each item."""

    __tablename__ = "disposal_batch"

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(max_length=32, index=True)
    created_by: str = Field(max_length=100)
    created_at: datetime | None = ts_field(nullable=False)
    approved_by: str | None = Field(default=None, max_length=100)
    approved_at: datetime | None = ts_field()
    finished_at: datetime | None = ts_field()
    items: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    outcome: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    record_key: str | None = Field(default=None, max_length=512)  # the signed disposal record in WORM storage


class Disposal(SQLModel, table=True):
    """Tombstone of a disposed recording: what it was, by which rule, when, by whom."""

    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recording.id", unique=True)
    batch_id: int = Field(foreign_key="disposal_batch.id", index=True)
    sha256: str = Field(max_length=64, index=True)
    size_bytes: int = Field(sa_column=Column(BigInteger(), nullable=False))
    original_name: str = Field(max_length=1024)
    media_kind: str = Field(max_length=16)
    stamp: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    rule: str = Field(max_length=300)
    retain_until: datetime | None = ts_field(nullable=False)
    disposed_at: datetime | None = ts_field(nullable=False)
    operator: str = Field(max_length=100)
    approver: str | None = Field(default=None, max_length=100)
    store_name: str | None = Field(default=None, max_length=32)
    store_key: str | None = Field(default=None, max_length=256)
    store_version: str | None = Field(default=None, max_length=256)
    note: str = Field(default="", max_length=1000)


class CaseGrant(SQLModel, table=True):
    """An explicit right of one person to the recordings of one case whose class asks for it (catalog.sensitivity):
    who gave it, why, until when; revoking keeps the row."""

    __tablename__ = "case_grant"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    user_name: str = Field(max_length=100, index=True)
    granted_by: str = Field(max_length=100)
    granted_at: datetime | None = ts_field(nullable=False)
    reason: str = Field(max_length=500)
    expires_at: datetime | None = ts_field()
    revoked_by: str | None = Field(default=None, max_length=100)
    revoked_at: datetime | None = ts_field()
    revoke_reason: str | None = Field(default=None, max_length=500)


class CaseAction(SQLModel, table=True):
    """An enforcement action of a case (询问, 查封扣押 …) with its times, as a clerk entered it or a case-handling
    system's export gave it (catalog.checklist); a correction by a later import raises its revision, the custody
    event keeping the old values."""

    __tablename__ = "case_action"
    __table_args__ = (UniqueConstraint("case_id", "external_id", name="uq_case_action_external"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    action_type: str = Field(max_length=32)  # a code of the action checklist (catalog.checklist_rules)
    started_at: datetime | None = ts_field(nullable=False, index=True)
    ended_at: datetime | None = ts_field(nullable=False)
    place: str = Field(default="", max_length=300)
    officers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # officer numbers
    note: str = Field(default="", max_length=1000)
    source: str = Field(max_length=300)  # "clerk", or "import:<file name>"
    external_id: str | None = Field(default=None, max_length=100)  # the case-handling system's id of the action
    zone_assumed: str | None = Field(default=None, max_length=64)  # the zone its times were read in, if not written
    revision: int = 1
    entered_by: str = Field(max_length=100)
    entered_at: datetime | None = ts_field(nullable=False)
    changed_by: str | None = Field(default=None, max_length=100)
    changed_at: datetime | None = ts_field()
