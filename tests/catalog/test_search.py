"""Search filters, sorting, paging and scopes on SQLite and PostgreSQL; the pure form parser and scope rules."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from catalog import Officer, SearchFilters, run_search
from catalog.access import Scope, can_see, scope_for
from catalog.search import Near, count_search, haversine_m
from evidence.web.search_form import MAX_PAGE, SearchInvalid, parse_search
from tests.helpers.recordings import T0, add_recording

SHANGHAI = ZoneInfo("Asia/Shanghai")
EVERYTHING = Scope(everything=True)


@pytest.fixture
def archive(engine):
    """Six recordings of three officers in two units at two stations, in every retention state."""
    now = datetime(2026, 11, 24, tzinfo=UTC)
    with Session(engine) as session:
        session.add(Officer(number="010203", name="张三", unit_number="U1", unit_name="一中队"))
        session.add(Officer(number="020304", name="李四", unit_number="U1", unit_name="一中队"))
        session.add(Officer(number="030405", name="王五", unit_number="U2", unit_name="二中队"))
        add_recording(session, 1, retain_until=now + timedelta(days=90), purpose="100% 占道_经营", lat=39.9042,
                      lon=116.4074)
        add_recording(session, 2, officer_number="020304", officer_name="李四", station_code="station-2",
                      retain_until=now - timedelta(days=1), important=True, size_bytes=5000)
        add_recording(session, 3, officer_number="030405", officer_name="王五", legal_hold=True,
                      retain_until=now - timedelta(days=1), integrity_status="damaged", lat=39.9142, lon=116.4074)
        add_recording(session, 4, officer_number="030405", officer_name="王五", state="staged")
        add_recording(session, 5, state="disposed", retain_until=now - timedelta(days=10))
        add_recording(session, 6, officer_number=None, officer_name=None, retain_until=None, media_kind="photo")
        session.commit()
    return engine, now


def _names(session, **kw):
    return [r.original_name.removeprefix("clip").removesuffix(".mp4") for r in run_search(session, SearchFilters(**kw))]


def test_filters_sorting_paging_and_counts(archive):
    engine, now = archive
    with Session(engine) as session:
        assert _names(session, station="station-2") == ["2"]
        assert _names(session, unit="U1") == _names(session, unit="一中队") == ["1", "2", "5"]
        assert _names(session, important=True) == ["2"]
        assert _names(session, important=False, kind="video") == ["1", "3", "4", "5"]
        assert _names(session, integrity="damaged") == ["3"]
        assert _names(session, retention="held", now=now) == ["3"]
        assert _names(session, retention="kept", now=now) == ["1", "6"]  # no date yet: still kept
        assert _names(session, retention="due", now=now) == ["2"]
        assert _names(session, retention="disposed", now=now) == ["5"]
        assert _names(session, retention="staged", now=now) == ["4"]
        # a purpose search matches % and _ literally, not as wildcards
        assert _names(session, purpose="100%") == ["1"] and _names(session, purpose="道_经") == ["1"]
        assert _names(session, purpose="0%占") == [] and _names(session, purpose="_") == ["1"]
        assert _names(session, sort="-captured") == ["6", "5", "4", "3", "2", "1"]
        assert _names(session, sort="-size")[0] == "2"
        assert _names(session, sort="officer")[:2] == ["1", "5"]  # officer 010203, then by time
        pages = [_names(session, sort="captured", offset=o, limit=4) for o in (0, 4)]
        assert pages == [["1", "2", "3", "4"], ["5", "6"]]
        assert count_search(session, SearchFilters(unit="U1")) == 3
        assert count_search(session, SearchFilters(), cap=3) == 4  # counting stops just past the cap
        with pytest.raises(ValueError, match="sort must be one of"):
            run_search(session, SearchFilters(sort="id; DROP TABLE recording"))


def test_near_a_point_is_a_circle_in_sql_so_pages_and_counts_agree(archive):
    engine, _now = archive
    d = haversine_m(39.9042, 116.4074, 39.9142, 116.4074)  # 1112 m apart
    with Session(engine) as session:
        assert _names(session, near=Near(39.9042, 116.4074, d - 5)) == ["1"]
        assert _names(session, near=Near(39.9042, 116.4074, d + 5)) == ["1", "3"]
        assert count_search(session, SearchFilters(near=Near(39.9042, 116.4074, d + 5))) == 2
        # a point 1112 m east at this latitude is inside a 1120 m circle, not inside a 1100 m one
        east = 116.4074 + (39.9142 - 39.9042) / 0.7669
        add_recording(session, 7, lat=39.9042, lon=east)
        session.commit()
        assert haversine_m(39.9042, 116.4074, 39.9042, east) == pytest.approx(1112, abs=5)
        assert "7" in _names(session, near=Near(39.9042, 116.4074, 1120))
        assert "7" not in _names(session, near=Near(39.9042, 116.4074, 1100))


def test_scopes_limit_search_and_single_lookups(archive):
    engine, _now = archive
    own = scope_for(roles=["officer"], officer_number="030405", units=[])
    unit_one = scope_for(roles=["supervisor"], officer_number=None, units=["一中队"])
    with Session(engine) as session:
        assert _names(session, scope=own) == ["3", "4"]
        assert _names(session, scope=unit_one) == ["1", "2", "5"]
        assert _names(session, scope=Scope()) == []
        assert can_see(session, own, 3) and not can_see(session, own, 1)
        assert can_see(session, EVERYTHING, 6) and not can_see(session, unit_one, 6)


def test_scope_rules():
    assert scope_for(roles=["clerk"], officer_number=None, units=["U1"]) == EVERYTHING
    assert scope_for(roles=["supervisor"], officer_number=None, units=[]) == EVERYTHING  # agency-wide
    assert scope_for(roles=["supervisor"], officer_number=None, units=[" U1 ", ""]) == Scope(units=frozenset({"U1"}))
    assert scope_for(roles=["officer"], officer_number="010203", units=["U1"]) == Scope(officers=frozenset({"010203"}))
    assert scope_for(roles=["officer"], officer_number=None, units=[]) == Scope()
    both = scope_for(roles=["officer", "supervisor"], officer_number="010203", units=["U2"])
    assert both == Scope(officers=frozenset({"010203"}), units=frozenset({"U2"}))
    assert "nothing" in Scope().describe() and "unit U2" in both.describe()


def test_a_day_typed_as_the_end_of_the_range_takes_in_the_whole_day(archive):
    # The report: `from=2026-11-20&to=2026-11-20` silently found 1 recording of 17 (the "to" date read as
    # its first instant). Every recording here was made on 20 November, on the agency's clock (09:30 to 14:30).
    engine, _now = archive

    def found(**query: str) -> list[str]:
        filters, _page = parse_search({**query, "size": "96"}, zone=SHANGHAI, scope=EVERYTHING)
        with Session(engine) as session:
            return sorted(r.original_name for r in run_search(session, filters))

    everything = found()
    assert len(everything) == 6
    for day in ("2026-11-20", "2026/11/20", "2026.11.20", "2026年11月20日", "20261120"):
        assert found(**{"from": day, "to": day}) == everything, day
    assert found(to="2026-11-19") == [] and found(**{"from": "2026-11-21"}) == []
    # a time typed is that instant: up to 10:00 on the agency's clock, the two made at 09:30 and before
    assert found(**{"from": "2026/11/20", "to": "2026-11-20 10:00"}) == ["clip1.mp4"]
    assert found(to="2026-11-20T02:00Z") == ["clip1.mp4"]  # 10:00 in Shanghai


def test_search_form_reads_every_filter_from_the_url():
    filters, page = parse_search({"case": " AB-1 ", "from": "2026-11-20T08:00", "to": "2026-11-21T00:00Z",
                                  "lat": "39.9", "lon": "116.4", "radius": "250", "important": "yes",
                                  "integrity": "damaged", "retention": "held", "sort": "size", "page": "3",
                                  "size": "48", "station": "s1", "unit": "U1"}, zone=SHANGHAI, scope=EVERYTHING)
    assert (filters.case_number, filters.near, filters.important, filters.sort) == ("AB-1", Near(39.9, 116.4, 250),
                                                                                    True, "size")
    assert filters.start == datetime(2026, 11, 20, 8, 0, tzinfo=SHANGHAI)  # no zone: the agency's clock
    assert filters.end == datetime(2026, 11, 21, tzinfo=UTC)
    assert (page, filters.offset, filters.limit, filters.station, filters.unit) == (3, 96, 48, "s1", "U1")
    defaults, first = parse_search({}, zone=SHANGHAI, scope=EVERYTHING)
    assert (first, defaults.offset, defaults.sort, defaults.near) == (1, 0, "-captured", None)


@pytest.mark.parametrize(("query", "field", "words"), [
    ({"from": "2026-13-45"}, "from", "not a time"),
    ({"from": "20/11/2026"}, "from", "type e.g. 2026-11-20, 2026/11/20 08:30"),  # day first: not guessed at
    ({"to": "last week"}, "to", "not a time"),
    ({"to": "2026-11-20 08:30 and later"}, "to", "not a time"),
    ({"from": "2026-11-21", "to": "2026-11-20"}, "to", "before the start"),
    ({"lat": "91", "lon": "0", "radius": "10"}, "lat", "not a latitude"),
    ({"lat": "0", "lon": "-181", "radius": "10"}, "lon", "not a longitude"),
    ({"lat": "0", "lon": "0", "radius": "1e9"}, "radius", "not a radius"),
    ({"lat": "nan", "lon": "0", "radius": "10"}, "lat", "not a number"),
    ({"lat": "1"}, "lon", "not a number"),
    ({"page": "0"}, "page", "not a page number"),
    ({"page": str(MAX_PAGE + 1)}, "page", "not a page number"),
    ({"page": "9" * 40}, "page", "not a page number"),
    ({"page": "-1"}, "page", "not a page number"),
    ({"size": "1000"}, "size", "not one of 24, 48, 96"),
    ({"sort": "id desc; --"}, "sort", "not one of"),
    ({"kind": "<script>"}, "kind", "not one of"),
    ({"case": "x" * 201}, "case", "longer than 200"),
    ({"officer": "a\x00b"}, "officer", "NUL byte"),
])
def test_search_form_names_the_field_and_the_reason(query, field, words):
    with pytest.raises(SearchInvalid) as caught:
        parse_search(query, zone=SHANGHAI, scope=EVERYTHING)
    assert any(p.field == field and words in p.text() for p in caught.value.problems), caught.value


def test_forgiving_search_finds_part_of_a_case_officer_unit_station_or_purpose(archive):
    """Part of a case number (stamped or linked) in any letter case from three characters on, and part of an
    officer's number or name, a unit or a station in their registers at any length; never a wildcard typed."""
    from datetime import date

    from catalog import DEFAULT_CASE_PATTERN, DEFAULT_CASE_TYPES, RetentionPolicy
    from catalog.cases import create_case, link_recording
    from catalog.models import Recording, Station

    engine, _now = archive
    with Session(engine) as session:
        session.add(Station(code="station-2", name="城东执法中队采集站", created_at=T0))
        for n in (1, 2):
            row = session.get(Recording, n)
            assert row is not None
            row.case_number = "AB-2026-00042" if n == 1 else None
        case = create_case(session, number="CD-2026-00777", title="夜间施工", case_type="penalty-general", unit="",
                           opened_on=date(2026, 11, 1), by="clerk", case_pattern=DEFAULT_CASE_PATTERN,
                           policy=RetentionPolicy(6, DEFAULT_CASE_TYPES, "Asia/Shanghai"), today=date(2026, 11, 23))
        second = session.get(Recording, 2)
        assert second is not None
        link_recording(session, case, second, purpose="证明施工", by="clerk")
        session.commit()
        assert _names(session, case_number="ab-2026-0004") == ["1"]  # lower case, part of it
        assert _names(session, case_number="00777") == ["2"]  # part of a linked case's number
        assert _names(session, case_number="2026-00") == ["1", "2"]
        assert _names(session, case_number="AB") == []  # two characters: the whole number, not a part of every one
        assert _names(session, case_number="%") == [] and _names(session, case_number="AB-2026-_0042") == []
        assert _names(session, officer="0304") == ["2", "3", "4"]  # part of two officers' numbers
        assert _names(session, officer="王") == ["3", "4"]  # part of a registered name
        assert _names(session, officer="张三") == ["1", "5"]
        assert _names(session, unit="二中") == ["3", "4"] and _names(session, unit="u2") == ["3", "4"]
        assert _names(session, station="城东") == ["2"] and _names(session, station="STATION-2") == ["2"]
        assert _names(session, station="station-1") == ["1", "3", "4", "5", "6"]  # unregistered: its exact code
        assert _names(session, purpose="占道") == ["1"]  # two characters of a purpose: part of it still


def test_not_yet_tagged_is_a_filter_and_an_officers_first_order(archive):
    """Untagged: no case number, no purpose, not marked important, and still here to tag (the archive fixture: 1
    has a purpose, 2 is important, 5 is disposed of, the others have nothing)."""
    engine, _now = archive
    with Session(engine) as session:
        assert _names(session, tagged=False) == ["3", "4", "6"]
        assert _names(session, tagged=True) == ["1", "2", "5"]  # "tagged": not still to tag
        officer = scope_for(roles=["officer"], officer_number="010203", units=[])
        # officer 010203's own: 1 (tagged) and 5 (disposed): nothing to tag, newest first
        assert _names(session, scope=officer, sort="untagged") == ["5", "1"]
        assert _names(session, sort="untagged") == ["6", "4", "3", "5", "2", "1"]
        assert count_search(session, SearchFilters(tagged=False, scope=officer)) == 0
        add_recording(session, 7, purpose=None)  # officer 010203's, untagged: first though it is the newest anyway
        add_recording(session, 8, purpose=None, captured_start=T0, captured_end=T0)  # the oldest: first still
        session.commit()
        assert _names(session, scope=officer, sort="untagged")[:2] == ["7", "8"]
        assert count_search(session, SearchFilters(tagged=False, scope=officer)) == 2


def test_any_letter_case_is_the_same_on_sqlite_and_postgresql(archive):
    engine, _now = archive
    with Session(engine) as session:
        add_recording(session, 7, purpose="Ärger ÉTUDE Дело", case_number="ÄB-2026-1")
        session.commit()
        found = {text: [r.id for r in run_search(session, filters)]
                 for text, filters in (("ärger", SearchFilters(purpose="ärger")),
                                       ("дело", SearchFilters(purpose="дело")),
                                       ("äb-2026", SearchFilters(case_number="äb-2026")))}
    assert all(ids for ids in found.values()), found  # SQLite had found none (its lower() folds ASCII alone)
