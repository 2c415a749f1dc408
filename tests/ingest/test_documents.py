"""Text records: recognised by their bytes (pure), attached to a case, kept in WORM storage like recordings."""
from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import date

import pytest
from sqlmodel import Session, select

from catalog import (
    DEFAULT_CASE_PATTERN,
    CaseLink,
    CaseStateError,
    close_case,
    create_case,
    read_manifest,
)
from catalog.signing import load_or_create_key
from ingest.documents import attach_document, classify_document
from tests.helpers.documents import docx_bytes, jpeg_bytes, pdf_bytes


def _classify(data: bytes, name: str):
    members = None
    if data.startswith(b"PK\x03\x04"):
        try:
            members = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            members = None
    return classify_document(data[:65536], data[-2048:], name=name, zip_members=members)


@pytest.mark.parametrize(("make", "name", "container", "status"), [
    (pdf_bytes, "笔录.pdf", "pdf", "ok"),
    (lambda: pdf_bytes()[: len(pdf_bytes()) // 2], "cut.pdf", "pdf", "damaged"),
    (docx_bytes, "询问笔录.docx", "docx", "ok"),
    (lambda: docx_bytes()[:30], "cut.docx", "zip", "damaged"),
    (jpeg_bytes, "scan.jpg", "jpeg", "ok"),
    (lambda: jpeg_bytes()[:-2], "cut.jpg", "jpeg", "damaged"),
    (lambda: "现场检查笔录\n".encode(), "notes.txt", "text", "ok"),
    (lambda: b"\xff\xfe\x00garbage" * 20, "notes.txt", "text", "damaged"),
    (lambda: b"\x00\x01\x02" * 100, "blob.bin", "unknown", "unreadable"),
    (lambda: b"", "empty.pdf", "unknown", "unreadable"),
])
def test_documents_are_recognised_by_their_bytes(make, name, container, status):
    kind = _classify(make(), name)
    assert (kind.container, kind.status) == (container, status)
    assert (kind.detail == "") == (status == "ok" and container != "zip")


def test_attached_documents_are_stored_hashed_signed_and_linked(settings, engine, store, tmp_path):
    key = load_or_create_key(settings.station_key_path)
    good, cut = tmp_path / "询问笔录.pdf", tmp_path / "现场照片.pdf"
    good.write_bytes(pdf_bytes())
    cut.write_bytes(pdf_bytes()[:200])
    with Session(engine) as session:
        case = create_case(session, number="AB-2026-00042", title="无照经营", case_type="penalty-general", unit="",
                           opened_on=date(2026, 11, 1), by="clerk", case_pattern=DEFAULT_CASE_PATTERN,
                           policy=settings.retention_policy, today=date(2026, 11, 23))
        session.commit()
        first = attach_document(session, store, settings, case, good, title="询问笔录", by="clerk", key=key,
                                dated=date(2026, 11, 2))
        broken = attach_document(session, store, settings, case, cut, title="现场照片", by="clerk", key=key)
        again = attach_document(session, store, settings, case, good, title="询问笔录", by="clerk", key=key)
        doc = first.recording
        assert first.new and not again.new and again.recording.id == doc.id
        assert (doc.media_kind, doc.container, doc.integrity_status, doc.state) == ("document", "pdf", "ok", "archived")
        assert doc.sha256 == hashlib.sha256(good.read_bytes()).hexdigest()
        assert store.verify(doc.sha256) == doc.sha256
        assert doc.captured_start is not None and doc.captured_start.date() == date(2026, 11, 1)  # 00:00 +08:00
        assert broken.recording.integrity_status == "damaged" and store.exists(broken.recording.sha256)
        manifest = read_manifest(store, doc.sha256, 1)
        assert (manifest["stamp"]["case_number"], manifest["stamp"]["purpose"]) == ("AB-2026-00042", "询问笔录")
        links = session.exec(select(CaseLink).where(CaseLink.case_id == case.id)).all()
        assert sorted(link.source for link in links) == ["attach", "attach"]
        assert list(settings.staging_dir.iterdir()) == []  # nothing left behind in staging
        close_case(session, case, by="clerk", closed_on=date(2026, 11, 23), today=date(2026, 11, 23))
        session.commit()
        with pytest.raises(CaseStateError, match=r"closed .* reopen it before attaching 询问笔录\.pdf"):
            attach_document(session, store, settings, case, good, title="x", by="clerk", key=key)


def test_unreadable_source_is_a_clear_error_and_nothing_is_catalogued(settings, engine, store, tmp_path):
    from ingest.errors import CopyFailed

    with Session(engine) as session:
        case = create_case(session, number="AB-2026-00043", title="t", case_type="inspection", unit="",
                           opened_on=date(2026, 11, 1), by="clerk", case_pattern=DEFAULT_CASE_PATTERN,
                           policy=settings.retention_policy, today=date(2026, 11, 23))
        session.commit()
        with pytest.raises(CopyFailed, match=r"missing\.pdf"):
            attach_document(session, store, settings, case, tmp_path / "missing.pdf", title="x", by="clerk",
                            key=load_or_create_key(settings.station_key_path))
        assert session.exec(select(CaseLink)).all() == []

