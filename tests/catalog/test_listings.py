"""The administration pages' listings on SQLite and PostgreSQL: officers, devices and stations in order,
each station's keys and last docking, officers' names, station codes, the latest disposal batches."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from catalog.case_models import DisposalBatch
from catalog.listings import (
    list_devices,
    list_officers,
    officer_names,
    recent_disposal_batches,
    station_codes,
    stations_overview,
)
from catalog.models import Device, DockSession, Officer, Station, StationKey

T = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_officers_and_devices_are_listed_in_order_with_names(engine):
    with Session(engine) as session:
        for number, name in (("030405", "王五"), ("010203", "张三"), ("020304", "李四")):
            session.add(Officer(number=number, name=name))
        for serial in ("B2", "A1", "C3"):
            session.add(Device(serial=serial, profile="generic", officer_number="010203", first_seen=T, last_seen=T))
        session.commit()
        assert [o.number for o in list_officers(session)] == ["010203", "020304", "030405"]
        assert [o.number for o in list_officers(session, limit=1)] == ["010203"]
        assert [d.serial for d in list_devices(session)] == ["A1", "B2", "C3"]
        assert officer_names(session) == {"010203": "张三", "020304": "李四", "030405": "王五"}


def test_stations_come_with_their_keys_and_last_docking(engine):
    # Given two stations, one with two keys and two dock sessions, the other never docked at
    with Session(engine) as session:
        session.add(Station(code="station-2", name="二号站", created_at=T))
        session.add(Station(code="station-1", name="一号站", created_at=T))
        session.flush()
        session.add(StationKey(station_code="station-1", fingerprint="a" * 64, public_key="k1", created_at=T))
        session.add(StationKey(station_code="station-1", fingerprint="b" * 64, public_key="k2", created_at=T,
                               retired_at=T))
        for hours in (1, 5):
            session.add(DockSession(station_code="station-1", device_serial="A1", profile="generic",
                                    source_path="/media/A1", started_at=T + timedelta(hours=hours)))
        session.commit()
        # When the overview is read
        overview = stations_overview(session)
        codes = station_codes(session)
    # Then stations are in code order, keys oldest first, and only the docked station has a last docking
    assert [s.code for s in overview.stations] == codes == ["station-1", "station-2"]
    assert [k.public_key for k in overview.keys["station-1"]] == ["k1", "k2"] and overview.keys["station-2"] == []
    assert overview.last_docked == {"station-1": T + timedelta(hours=5)}


def test_recent_disposal_batches_are_newest_first(engine):
    with Session(engine) as session:
        for n in range(4):
            session.add(DisposalBatch(status="proposed", created_by=f"clerk-{n}", created_at=T))
        session.commit()
        batches = recent_disposal_batches(session, limit=3)
    assert [b.created_by for b in batches] == ["clerk-3", "clerk-2", "clerk-1"]
