"""The device states and status records the station writes (the status file, GET /status, `station status --json`)."""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from ingest.station.status import BUSY, DeviceState, DeviceStatus, read_status


def test_device_states_keep_the_strings_the_status_file_has_always_carried():
    assert [s.value for s in DeviceState] == ["settling", "unknown", "queued", "ingesting", "waiting-catalog",
                                              "waiting-archive", "done", "failed", "undocked"]


def test_undocking_leaves_the_states_of_a_device_still_being_ingested():
    assert {DeviceState.QUEUED, DeviceState.INGESTING, DeviceState.WAITING_CATALOG} == BUSY


def test_a_device_status_is_written_as_plain_json_strings():
    status = DeviceStatus(path="/media/GPSREC", state=DeviceState.WAITING_ARCHIVE)
    assert type(status.as_json()["state"]) is str
    assert list(status.as_json()) == list(asdict(status))
    written = json.loads(json.dumps(status.as_json()))
    assert written["state"] == "waiting-archive"
    assert DeviceStatus(path="/media/X").state == "settling"


def test_read_status_marks_a_status_with_an_old_heartbeat_stale(tmp_path):
    # Given a status file whose heartbeat is a minute old
    beat = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    path = tmp_path / "status.json"
    path.write_text(json.dumps({"running": True, "heartbeat_at": beat.isoformat(),
                                "devices": [asdict(DeviceStatus(path="/media/X", state=DeviceState.DONE))]}))
    # When it is read with 5 s heartbeats
    status = read_status(path, heartbeat_s=5.0, now=beat + timedelta(minutes=1))
    # Then the station is not running, and the devices are as written
    assert status["running"] is False and status["stale"] is True
    assert status["devices"][0]["state"] == "done"


def test_read_status_of_a_station_that_never_ran_is_empty(tmp_path):
    assert read_status(tmp_path / "status.json") == {}
