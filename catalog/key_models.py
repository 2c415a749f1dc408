"""The catalogue's index of the agency root and the certificates it issued (catalog.key_certs).

A row is only the catalogue's copy: what counts is the certificate itself (its root's signature), its WORM
record under `trust/` and the custody events that recorded it (catalog.cert_trust), so a row inserted or edited
behind the application's back grants nothing.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from catalog.models import ts_field

__all__ = ["KeyCertificate"]


class KeyCertificate(SQLModel, table=True):
    """One X.509 certificate: the root's own (role `root`) or one it issued for a station or the export key."""

    __tablename__ = "key_certificate"

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(index=True, max_length=64)  # the certified key's: SHA-256 of the raw public key, hex
    role: str = Field(max_length=16)  # root | station | export (catalog.certificates.ROLES)
    subject: str = Field(max_length=200)  # the agency's name, the station code, or "export"
    serial: str = Field(unique=True, max_length=64)  # the certificate's serial number, hex
    issuer_fingerprint: str = Field(max_length=64)  # the root key's fingerprint (its own for the root)
    not_before: datetime | None = ts_field(nullable=False)
    not_after: datetime | None = ts_field(nullable=False)
    certificate_pem: str = Field(sa_column=Column(Text(), nullable=False))
    record_name: str = Field(max_length=512)  # its copy in WORM storage (records/<record_name>)
    created_at: datetime | None = ts_field(nullable=False)
    revoked_at: datetime | None = ts_field()
    revocation_reason: str | None = Field(default=None, max_length=1000)
