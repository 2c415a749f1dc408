"""Catalogue (PostgreSQL) outages at a running station: a dock journaled then catalogued from the journal with the
archive away too, and a known device docked again while the catalogue is down (its files are not read again)."""
from __future__ import annotations

import os

import pytest

from tests.conftest import wait_for
from tests.e2e.faults.conftest import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.postgres]


def test_catalogue_down_during_a_dock_then_s3_down_when_it_returns_nothing_stays_staged(cluster: Cluster) -> None:
    a = cluster.a
    device = cluster.make_device("A400001", [3, 3, 3])
    expected = set(device.shas.values())
    # Given the catalogue goes down, then a recorder is docked at A
    cluster.db.down()
    a.dock(device)
    # Then every file is copied into staging and journaled, and A raises catalogue_unreachable (bound: 60 s)
    wait_for(lambda: {p.name for p in a.staged_copies()} == expected, 60, "every file copied into A's staging")
    wait_for(lambda: (a.device(device) or {}).get("state") == "waiting-catalog", 60, "A to wait for the catalogue")
    wait_for(lambda: a.alarm("catalogue_unreachable") == 1, 30, "A's /metrics to raise catalogue_unreachable")
    # When the officer leaves with the recorder, the archive (S3) goes down, and then the catalogue returns
    parking = cluster.tmp / "parked"
    parking.mkdir()
    a.undock(device, parking)
    cluster.stop_weed()
    cluster.db.up()
    # Then the journal is catalogued (bound: 60 s), and its archive messages go through the queue: once S3 is back
    # every recording is verified (bound: 120 s) and nothing stays staged
    wait_for(lambda: cluster.all_in_state(expected, "staged"), 60, "the journal catalogued while S3 is down")
    wait_for(lambda: a.alarm("catalogue_unreachable") == 0, 30, "A's catalogue_unreachable alarm to clear")
    cluster.start_weed()
    cluster.assert_healed([device], within_s=120)
    journal = a.staging / "journal"
    assert not journal.exists() or [p for p in journal.iterdir() if p.stat().st_size] == [], list(journal.iterdir())


def test_catalogue_down_at_a_second_dock_known_files_are_not_read_again(cluster: Cluster) -> None:
    a = cluster.a
    parking = cluster.tmp / "parked"
    parking.mkdir()
    # Given a recorder docked, catalogued and verified at A, then undocked
    device = cluster.make_device("A700001", [4, 4, 4])
    a.dock(device)
    cluster.assert_healed([device], within_s=60)
    wait_for(lambda: (a.device(device) or {}).get("state") == "done", 30, "the first dock to be done")
    first_docks = len(cluster.dock_sessions())
    a.undock(device, parking)
    wait_for(lambda: (a.status() or {}).get("devices") and all(
        d["state"] == "undocked" for d in (a.status() or {})["devices"]), 30, "A to see the recorder leave")
    # (its clips' bytes now differ but look the same, size and time: proof that a pass does not read them again)
    for rel, path in device.files.items():
        if rel != "ZFYINFO.TXT":
            stat = path.stat()
            path.write_bytes(bytes(stat.st_size))
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # When the catalogue is down and the same recorder is docked again
    cluster.db.down()
    a.dock(device)
    wait_for(lambda: (a.device(device) or {}).get("state") in ("done", "waiting-catalog", "failed"), 60,
             "A to finish the second dock")
    wait_for(lambda: a.alarm("catalogue_unreachable") == 1, 30, "A's /metrics to raise catalogue_unreachable")
    # Then none of its known files was copied again
    assert a.staged_copies() == [], "known files copied into staging again during the outage"
    assert (a.device(device) or {}).get("state") != "failed", a.device(device)
    # And once the catalogue is back nothing new appears: the same recordings, every dock session closed
    cluster.db.up()
    wait_for(lambda: a.alarm("catalogue_unreachable") == 0, 30, "A's catalogue_unreachable alarm to clear")
    wait_for(lambda: (a.device(device) or {}).get("state") == "done", 60, "the second dock to be done")
    cluster.assert_healed([device], within_s=60)
    assert len(cluster.dock_sessions()) >= first_docks
