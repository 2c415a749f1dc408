"""One recording's detail (what `evidence show --json` and the web API print) on SQLite and PostgreSQL: every
documented key, derived media with `has_proxy`, and the proxy lookup the player uses."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from catalog import DEFAULT_CASE_TYPES, RetentionPolicy
from catalog.detail import derived_media, recording_detail
from catalog.models import DerivedMedia
from tests.helpers.recordings import add_recording

POLICY = RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai")
#: The shape catalog.detail documents: the recording's own keys, then its histories and links.
KEYS = {"id", "sha256", "size_bytes", "media_kind", "original_name", "device_serial", "officer", "station",
        "captured_start", "captured_end", "raw_device_time", "time_source", "time_implausible", "time_problem",
        "zone_assumed", "clock_offset_s", "place", "case_number", "purpose", "important", "sensitivity", "integrity",
        "state",
        "ingested_at", "archived_at", "retain_until", "legal_hold", "retention_rule", "technical", "belongs_to",
        "stamp_revision", "redacted_from", "store", "sightings", "stamp_history", "integrity_history", "cases",
        "retention", "housekeeping_files", "redacted_copies", "disposal", "derived", "custody", "custody_reads_hidden",
        "has_proxy", "media_work_failed"}


def test_the_detail_has_every_documented_key_and_no_proxy_before_one_is_made(engine):
    with Session(engine) as session:
        recording = add_recording(session, 1)
        session.commit()
        detail = recording_detail(session, recording, POLICY)
        assert recording.id is not None
        assert derived_media(session, recording.id, "proxy") is None
    assert set(detail) == KEYS
    assert (detail["derived"], detail["has_proxy"], detail["disposal"], detail["media_work_failed"]) == (
        {}, False, None, {})
    assert [h["revision"] for h in detail["stamp_history"]] == [1]
    assert set(detail["retention"]) == {"retain_until", "legal_hold", "rule", "hold_reasons", "pending_case",
                                        "rules_say", "in_line_with_rules"}


def test_a_proxy_is_found_and_shown_as_playable(engine):
    # Given a recording with a browser proxy and a thumbnail
    with Session(engine) as session:
        recording = add_recording(session, 1)
        assert recording.id is not None
        for kind, content_type in (("proxy", "video/mp4"), ("thumbnail", "image/jpeg")):
            session.add(DerivedMedia(recording_id=recording.id, derived_from_sha256=recording.sha256, kind=kind,
                                     key=f"derived/{recording.sha256}/{kind}", sha256="e" * 64, size_bytes=10,
                                     content_type=content_type, created_at=datetime(2026, 11, 20, tzinfo=UTC)))
        session.commit()
        # When the detail and the proxy are read
        detail = recording_detail(session, recording, POLICY)
        proxy = derived_media(session, recording.id, "proxy")
    # Then both kinds are listed and the proxy is the player's
    assert detail["derived"] == {"proxy": "video/mp4", "thumbnail": "image/jpeg"} and detail["has_proxy"] is True
    assert proxy is not None and (proxy.kind, proxy.content_type) == ("proxy", "video/mp4")
