"""People and their browsers (SQLModel tables): users, web sessions, remembered sign-in devices, what a web
session has already been recorded as reading, and each user's saved searches. The decisions on them are
catalog.users', catalog.sign_in's and catalog.saved_searches'.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from catalog.models import ts_field

__all__ = ["SavedSearch", "SignInDevice", "User", "ViewingAccess", "WebSession"]


class User(SQLModel, table=True):
    """A person who uses the archive, with roles (officer, clerk, supervisor, auditor, admin)."""

    __tablename__ = "app_user"  # USER is reserved in PostgreSQL

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=100)
    display_name: str = Field(default="", max_length=200)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True
    created_at: datetime | None = ts_field(nullable=False)
    password_hash: str | None = Field(default=None, max_length=200)  # argon2id; None: cannot sign in
    failed_logins: int = 0  # consecutive failures since the last success
    locked_until: datetime | None = ts_field()  # sign-in refused until then (too many failures)
    officer_number: str | None = Field(default=None, max_length=32)  # an officer's own 警号: their recordings
    units: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    # a supervisor's units (unit numbers or names); empty: the whole agency
    os_user: str | None = Field(default=None, max_length=64, unique=True, index=True)  # the OS login whose
    # `evidence` commands act as this user (catalog.users.identify); None: not usable from the command line
    sign_in_reset_at: datetime | None = ts_field()  # failed sign-ins before this (a success, a new password) are
    # forgiven


class WebSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime | None = ts_field(nullable=False)
    expires_at: datetime | None = ts_field(nullable=False)


class SignInDevice(SQLModel, table=True):
    """A browser that has signed in as a user (OWASP "device cookie"). The browser's cookie holds a random token;
    only its SHA-256 is stored. Sign-in attempts that carry it for that user are slowed only by their own failures
    (catalog.sign_in.sign_in), never by other people's guesses on the name or from the same address."""

    __tablename__ = "sign_in_device"

    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    created_at: datetime | None = ts_field(nullable=False)
    signed_in_at: datetime | None = ts_field(nullable=False)  # the last successful sign-in with it (it expires after)


class ViewingAccess(SQLModel, table=True):
    """What a web session has already been recorded as reading: one row per (session, recording, what), written
    in the same transaction as the `accessed` custody event it stands for (catalog.access.read_evidence), so the
    first request of a viewing session is recorded whatever its Range header says and its follow-ups are not."""

    __tablename__ = "viewing_access"
    __table_args__ = (UniqueConstraint("session_key", "recording_id", "what", name="uq_viewing_access"),)

    id: int | None = Field(default=None, primary_key=True)
    session_key: str = Field(max_length=64)  # SHA-256 of the web session's token (WebSession.token_sha256)
    recording_id: int
    what: str = Field(max_length=16)  # original, photo, proxy, thumbnail
    event_id: int | None = None  # the custody event that recorded this access
    at: datetime | None = ts_field(nullable=False)


class SavedSearch(SQLModel, table=True):
    """A search a user keeps under a name (catalog.saved_searches): only the filters, as the search page's query
    string. Run again, it is run with the caller's scope of that day, so it never opens more than they may see."""

    __tablename__ = "saved_search"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_saved_search_name"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    name: str = Field(max_length=100)
    query: str = Field(max_length=2000)  # the filters, URL-encoded (evidence.web.search_form.saved_query)
    saved_at: datetime | None = ts_field(nullable=False)
