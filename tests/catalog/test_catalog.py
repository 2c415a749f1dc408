"""Catalog on SQLite and PostgreSQL: migrations, stamps as revisions, search, custody."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel, select

from catalog import (
    DEFAULT_CASE_PATTERN,
    CustodyKind,
    Near,
    Recording,
    RecordingNotFound,
    SearchFilters,
    Stamp,
    StampInvalid,
    append_event,
    find_chain_breaks,
    get_recording,
    load_chain,
    restamp,
    run_search,
    stamp_history,
    validate_stamp,
)
from catalog.db import TRIGRAM_INDEXES
from catalog.search import bounding_box, haversine_m
from tests.conftest import as_attacker
from tests.helpers.recordings import T0, add_recording


def test_migrations_produce_exactly_the_models(engine):
    def compared(item, name, kind, _reflected, _compare_to) -> bool:  # PostgreSQL's trigram indexes are not models'
        return not (kind == "index" and name in TRIGRAM_INDEXES)

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_object": compared}),
                                SQLModel.metadata)
        indexes = {row[0] for row in conn.exec_driver_sql("SELECT indexname FROM pg_indexes")} \
            if engine.dialect.name == "postgresql" else set()
    assert diff == []
    if engine.dialect.name == "postgresql":  # made on PostgreSQL, where this role may create pg_trgm
        assert set(TRIGRAM_INDEXES) <= indexes


def test_restamp_writes_a_revision_with_old_and_new_values(engine):
    with Session(engine) as session:
        rec = add_recording(session, 1, case_number=None, purpose="巡查")
        assert rec.id is not None
        rev = restamp(session, rec, by="clerk:王五", reason="linked to case after review",
                      case_pattern=DEFAULT_CASE_PATTERN, case_number="AB-2026-00042", purpose="证明违法事实")
        session.commit()
        assert rev.revision == 2
        assert rev.changes == {"case_number": {"old": None, "new": "AB-2026-00042"},
                               "purpose": {"old": "巡查", "new": "证明违法事实"}}
        history = stamp_history(session, rec.id)
        assert [(h.revision, h.case_number, h.purpose, h.changed_by) for h in history] == [
            (1, None, "巡查", "station:test"), (2, "AB-2026-00042", "证明违法事实", "clerk:王五")]
        assert get_recording(session, rec.id).case_number == "AB-2026-00042"
        kinds = [e.kind for e in load_chain(session)]
        assert kinds == ["stamped", "restamped"]


def test_restamp_moving_the_capture_time_keeps_the_duration(engine):
    with Session(engine) as session:
        rec = add_recording(session, 1)
        restamp(session, rec, by="clerk", reason="device clock was 8 h off", case_pattern=DEFAULT_CASE_PATTERN,
                captured_start=T0)
        assert (rec.captured_start, rec.captured_end) == (T0, T0 + timedelta(seconds=30))


@pytest.mark.parametrize(("changes", "message"), [
    ({"case_number": "bad case!"}, "case number 'bad case!' does not match the pattern"),
    ({"lat": 95.0, "lon": 10.0}, "latitude 95.0 is outside -90..90"),
    ({"lat": 10.0}, "place needs both latitude and longitude"),
    ({"purpose": "  "}, "purpose is blank"),
    ({"colour": "red"}, "unknown stamp field(s): colour"),
    ({"purpose": "巡查"}, "the change leaves the stamp as it is"),
])
def test_invalid_stamp_changes_are_refused_and_nothing_changes(engine, changes, message):
    with Session(engine) as session:
        rec = add_recording(session, 1, purpose="巡查")
        assert rec.id is not None
        with pytest.raises(StampInvalid) as info:
            restamp(session, rec, by="clerk", reason="why", case_pattern=DEFAULT_CASE_PATTERN, **changes)
        assert info.value.details[0].startswith(message)
        assert rec.stamp_revision == 1 and len(stamp_history(session, rec.id)) == 1


def test_a_stamp_change_needs_a_reason_and_an_author(engine):
    with Session(engine) as session:
        rec = add_recording(session, 1)
        with pytest.raises(StampInvalid, match="needs a reason"):
            restamp(session, rec, by="clerk", reason=" ", case_pattern=DEFAULT_CASE_PATTERN, purpose="x")
        with pytest.raises(StampInvalid, match="needs the name of who makes it"):
            restamp(session, rec, by="", reason="r", case_pattern=DEFAULT_CASE_PATTERN, purpose="x")


def test_validate_stamp_accepts_a_chinese_case_number():
    stamp = Stamp(case_number="京朝城管罚字〔2026〕第00123号", captured_start=T0, lat=39.9, lon=116.4,
                  place_source="exif", collector="010203", purpose="证明对象", important=True)
    assert validate_stamp(stamp, case_pattern=DEFAULT_CASE_PATTERN) == []


def test_search_filters(engine):
    with Session(engine) as session:
        add_recording(session, 1, case_number="C-0001", purpose="占道经营 现场", lat=39.9042, lon=116.4074)
        add_recording(session, 2, case_number="C-0002", purpose="噪声扰民", lat=39.9142, lon=116.4074,
                      officer_number="020304", officer_name="李四", device_serial="GPS7788", media_kind="audio")
        add_recording(session, 3, purpose=None, lat=31.2304, lon=121.4737, media_kind="photo")
        session.commit()

        def ids(**kw):
            return [r.original_name for r in run_search(session, SearchFilters(**kw))]

        assert ids() == ["clip1.mp4", "clip2.mp4", "clip3.mp4"]
        assert ids(case_number="C-0002") == ["clip2.mp4"]
        assert ids(officer="李四") == ids(officer="020304") == ["clip2.mp4"]
        assert ids(device="A123456") == ["clip1.mp4", "clip3.mp4"]
        assert ids(kind="photo") == ["clip3.mp4"]
        assert ids(purpose="占道") == ["clip1.mp4"]
        # time windows select recordings that overlap them
        assert ids(start=T0 + timedelta(hours=2, seconds=10)) == ["clip2.mp4", "clip3.mp4"]
        assert ids(end=T0 + timedelta(hours=1, seconds=59)) == ["clip1.mp4"]
        # 1.1 km apart in Beijing; Shanghai far away
        assert ids(near=Near(39.9042, 116.4074, 500)) == ["clip1.mp4"]
        assert ids(near=Near(39.9042, 116.4074, 1500)) == ["clip1.mp4", "clip2.mp4"]
        assert ids(limit=1) == ["clip1.mp4"]


def test_distance_helpers():
    assert haversine_m(39.9042, 116.4074, 39.9142, 116.4074) == pytest.approx(1112, abs=2)
    min_lat, max_lat, _min_lon, _max_lon = bounding_box(Near(0.0, 0.0, 111_195))
    assert (min_lat, max_lat) == pytest.approx((-1.0, 1.0), abs=1e-3)


def test_recording_lookup_by_id_or_hash_prefix(engine):
    with Session(engine) as session:
        rec = add_recording(session, 7, sha256="abcdef12" + "0" * 56)
        add_recording(session, 8, sha256="abcdef13" + "0" * 56)
        session.commit()
        assert get_recording(session, str(rec.id)).id == rec.id
        assert get_recording(session, "ABCDEF12").id == rec.id
        with pytest.raises(RecordingNotFound):
            get_recording(session, "abcdef1")  # too short to be unambiguous
        with pytest.raises(RecordingNotFound, match="no recording '999999' in the catalog"):
            get_recording(session, "999999")


def test_a_hash_prefix_of_digits_only_is_looked_up_as_a_hash_too(engine):
    """One 12-digit prefix in 280 has no letter: it is past any row id (PostgreSQL had refused the id lookup and
    the command failed), and an 8-digit one can be both an id and another recording's hash."""
    with Session(engine) as session:
        digits = add_recording(session, 1, sha256="971309589468" + "a" * 52)
        by_number = add_recording(session, 2, id=12345678)
        other = add_recording(session, 3, sha256="12345678" + "b" * 56)
        session.commit()
        assert get_recording(session, "971309589468").id == digits.id
        with pytest.raises(RecordingNotFound, match="no recording '99999999999999999999' in the catalog"):
            get_recording(session, "9" * 20)
        with pytest.raises(RecordingNotFound, match=f"'12345678' is ambiguous: recording {by_number.id} has that id "
                                                    f"and recording {other.id}'s hash begins with it"):
            get_recording(session, "12345678")
        assert get_recording(session, "12345678b").id == other.id
        for nothing in ("0", "-1", "2147483648"):  # past the largest id PostgreSQL holds
            with pytest.raises(RecordingNotFound):
                get_recording(session, nothing)


def test_custody_events_are_append_only_in_the_database(engine):
    with Session(engine) as session:
        append_event(session, CustodyKind.VIEWED, actor="user", details={})
        session.commit()
    for statement in ("UPDATE custody_event SET actor = 'someone else'", "DELETE FROM custody_event"):
        with pytest.raises(DBAPIError, match="custody events are append-only"), engine.begin() as conn:
            conn.execute(text(statement))


def test_custody_chain_detects_a_deleted_event(engine):
    with Session(engine) as session:
        for n in range(4):
            append_event(session, CustodyKind.VIEWED, actor=f"user{n}", details={"n": n})
        session.commit()
        chain = load_chain(session)
        assert find_chain_breaks(chain) == []
        as_attacker(engine)
        session.delete(chain[1])
        session.commit()
        problems = find_chain_breaks(load_chain(session))
    assert len(problems) == 1 and problems[0].startswith(f"event {chain[2].id}: prev_hash")


def test_naive_times_are_refused_by_the_catalog(engine):
    with Session(engine) as session:
        session.add(Recording(sha256="f" * 64, size_bytes=1, media_kind="other", original_name="x",
                              station_code="s", captured_start=datetime(2026, 1, 1), time_source="file_mtime",
                              integrity_status="ok", state="staged", ingested_at=T0))
        with pytest.raises(Exception, match="refusing to store naive datetime 2026-01-01T00:00:00"):
            session.commit()


def test_times_come_back_in_utc(engine):
    with Session(engine) as session:
        rec = add_recording(session, 5)
        session.commit()
        rec_id = rec.id
    with Session(engine) as session:
        again = session.exec(select(Recording).where(Recording.id == rec_id)).one()
        assert again.captured_start == T0 + timedelta(hours=5) and again.captured_start.tzinfo == UTC
