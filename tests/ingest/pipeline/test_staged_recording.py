"""One builder of a staged copy's catalogue row, used by device ingest and by attached documents alike."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session

from catalog import Recording
from ingest.pipeline.cataloguing import Described, staged_recording
from ingest.transfer import CopyResult

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _copy(tmp_path: Path) -> CopyResult:
    return CopyResult(source=tmp_path / "a.pdf", destination=tmp_path / ("ab" * 32), size_bytes=123,
                      sha256="ab" * 32, resumed_from=0)


def test_a_staged_row_takes_the_bytes_from_the_copy_and_the_rest_from_its_description(tmp_path):
    described = Described(media_kind="document", container="pdf", time_source="none", integrity_status="ok",
                          case_number="C-1", purpose="statement")
    row = staged_recording(_copy(tmp_path), described, original_name="a.pdf", station="ST1", now=NOW,
                           retain_until=datetime(2030, 1, 1, tzinfo=UTC), retention_rule="routine",
                           technical={"attached_from": "a.pdf"})
    assert (row.sha256, row.size_bytes, row.state, row.ingested_at, row.archived_at) == (
        "ab" * 32, 123, "staged", NOW, None)
    assert (row.case_number, row.purpose, row.station_code, row.original_name) == ("C-1", "statement", "ST1",
                                                                                    "a.pdf")


def test_what_a_description_leaves_out_is_the_catalogue_default(tmp_path, engine):
    # Given a row built with a minimal description
    described = Described(media_kind="document", container=None, time_source="none", integrity_status="ok")
    row = staged_recording(_copy(tmp_path), described, original_name="a.pdf", station="ST1", now=NOW,
                           retain_until=datetime(2030, 1, 1, tzinfo=UTC), retention_rule="routine", technical={})
    # Then every column it leaves out holds what the model itself would (and the row is storable)
    bare = Recording(sha256="cd" * 32, size_bytes=1, media_kind="document", original_name="b", station_code="ST1",
                     time_source="none", integrity_status="ok", state="staged", ingested_at=NOW)
    for column in ("video_codec", "duration_s", "device_serial", "officer_number", "captured_start",
                   "time_implausible", "clock_offset_s", "lat", "important", "legal_hold", "integrity_detail"):
        assert getattr(row, column) == getattr(bare, column), column
    with Session(engine) as session:
        session.add(row)
        session.commit()
        assert row.id is not None
