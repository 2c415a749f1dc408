"""Faults of the stations themselves: the same bytes docked at two stations at once, a station SIGKILLed
mid-copy, and the first start of four processes on an empty database. Plus the plain run the others build on."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import wait_for
from tests.e2e.faults.conftest import Cluster, make_cluster

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.postgres]
_ALARMS = ("broker_unreachable", "catalogue_unreachable", "staged_overdue", "outbox_backlog")


def test_without_a_fault_both_stations_archive_and_every_alarm_is_clear(cluster: Cluster) -> None:
    dev_a = cluster.make_device("A000001", [3, 1])
    dev_b = cluster.make_device("B000001", [2])
    cluster.a.dock(dev_a)
    cluster.b.dock(dev_b)
    cluster.assert_healed([dev_a, dev_b], within_s=60)
    for station in cluster.stations.values():
        assert station.metric("evidence_station_up", station=station.code) == 1
        for kind in _ALARMS:
            wait_for(lambda s=station, k=kind: s.alarm(k) == 0, 30, f"{station.code}: alarm {kind} clear")
        status = station.status() or {}
        assert status.get("running") is True and status.get("pid") == station.watch.pid, status
        assert status.get("heartbeat_at"), status


def test_same_bytes_at_two_stations_at_once_one_recording_two_sightings_no_deadlock(cluster: Cluster) -> None:
    # Given two recorders holding the same six clips (in opposite order), docked at A and B at the same moment
    blobs = [os.urandom(2 << 20) for _ in range(6)]
    dev_a = cluster.make_device("A500001", contents=blobs)
    dev_b = cluster.make_device("B500001", contents=list(reversed(blobs)))
    go = threading.Barrier(2)

    def dock(station_code: str) -> None:
        go.wait()
        station = cluster.stations[station_code]
        station.dock(dev_a if station_code == "A" else dev_b)

    threads = [threading.Thread(target=dock, args=(code,)) for code in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then (bound: 90 s) each clip is one recording, verified, seen on both recorders; both docks end with a result
    cluster.assert_healed([dev_a, dev_b], within_s=90)
    by_sha = {r.sha256: r.id for r in cluster.recordings()}
    sightings = cluster.sightings()
    for sha in set(dev_a.shas.values()) & set(dev_b.shas.values()):
        serials = sorted(s.device_serial for s in sightings if s.recording_id == by_sha[sha])
        assert serials == ["A500001", "B500001"], (sha, serials)
    docks = cluster.dock_sessions()
    assert sorted(d.station_code for d in docks) == ["A", "B"], [(d.id, d.station_code, d.result) for d in docks]
    for station, device in ((cluster.a, dev_a), (cluster.b, dev_b)):
        log = station.watch.text()
        assert "deadlock" not in log.lower(), f"station {station.code} met a deadlock:\n{log[-4000:]}"
        wait_for(lambda s=station, d=device: (s.device(d) or {}).get("state") == "done", 30,
                 f"station {station.code}'s status to say done")
        assert not (station.device(device) or {}).get("errors"), station.device(device)


def test_station_killed_mid_copy_reads_as_stale_and_the_restarted_station_finishes(cluster: Cluster) -> None:
    a = cluster.a
    device = cluster.make_device("A600001", [64, 64, 2])

    def open_session() -> int | None:
        try:
            ids = [d.id for d in cluster.dock_sessions() if d.station_code == "A" and d.finished_at is None]
        except Exception:  # noqa: BLE001 - not yet
            return None
        return ids[0] if ids else None

    # Given a recorder being copied at A, its dock session begun
    a.dock(device)
    wait_for(lambda: cluster.mid_copy(a, device) and open_session() is not None, 60,
             "A to be part-way through the device with its dock session open")
    killed_session = open_session()
    # When station A is SIGKILLed (a power cut)
    a.watch.kill()

    # Then `evidence station status` says it is not running, its status stale (3 heartbeats of 0.5 s; bound 10 s)
    def stale() -> bool:
        shown = a.cli("station", "status", "--json")
        status = json.loads(shown.stdout) if shown.returncode == 0 else {}
        return status.get("running") is False and status.get("stale") is True

    wait_for(stale, 10, "`evidence station status --json` at A to say not running, stale")
    # When it is started again it finishes (bound: 90 s), and the killed session is closed as interrupted
    a.watch.start()
    cluster.assert_healed([device], within_s=90)
    docks = {d.id: d for d in cluster.dock_sessions()}
    assert docks[killed_session].result == "interrupted", (docks[killed_session].result,
                                                           docks[killed_session].result_note)
    assert any(d.id != killed_session and d.result == "complete" for d in docks.values()), docks
    wait_for(lambda: (a.status() or {}).get("running") is True, 30, "A's status to say running again")


def test_first_start_of_two_stations_and_two_workers_on_an_empty_database(tmp_path: Path) -> None:
    # Given an empty catalogue database, when both stations and both workers start at the same moment
    with make_cluster(tmp_path, migrate_first=False) as cluster:
        # Then all four come up (bound: 60 s) and stay up, and the schema is migrated once
        for station in cluster.stations.values():
            wait_for(lambda s=station: "Workers running" in s.worker.text() or not s.worker.alive(), 60,
                     f"worker {station.code} to start")
        crashed = [p.name for p in cluster.procs if not p.alive()]
        assert not crashed, f"exited at the first start: {crashed}\n{cluster.logs()}"
        for proc in cluster.procs:
            assert "UniqueViolation" not in proc.text() and "Traceback" not in proc.text(), proc.text()[-4000:]
        with cluster.engine.connect() as conn:
            assert len(conn.execute(text("SELECT version_num FROM alembic_version")).all()) == 1
        # And they work: a dock at each is verified (bound: 60 s)
        dev_a = cluster.make_device("A800001", [1])
        dev_b = cluster.make_device("B800001", [1])
        cluster.a.dock(dev_a)
        cluster.b.dock(dev_b)
        try:
            cluster.assert_healed([dev_a, dev_b], within_s=60)
        except AssertionError:
            print(cluster.logs())
            raise
