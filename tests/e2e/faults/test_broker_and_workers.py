"""Faults of the queue: the broker killed mid-dock, a worker killed mid-upload, `archive-pending` at the wrong
station. Each ends with everything verified, no copy left in staging, every dock session closed with a true
result, no false custody event, and the alarm up while the fault lasted and down after (tests/e2e/faults/conftest.py).
"""
from __future__ import annotations

import json
import re

import pytest

from tests.conftest import wait_for
from tests.e2e.faults.conftest import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.postgres]


def test_broker_killed_mid_dock_the_station_copies_and_catalogues_on_and_the_outbox_delivers(cluster: Cluster) -> None:
    a = cluster.a
    # Given a six-file recorder being copied at station A
    device = cluster.make_device("A100001", [24] * 6)
    expected = set(device.shas.values())
    a.dock(device)
    wait_for(lambda: cluster.mid_copy(a, device), 60, "station A to be part-way through the device")
    # When the broker dies (SIGKILL) mid-dock
    cluster.redis.kill()
    at_kill = a.device(device) or {}
    assert at_kill.get("bytes_done", 0) < at_kill.get("bytes_total", 0), f"not mid-dock any more: {at_kill}"
    # Then every file is still copied and catalogued while it is away (bound: 60 s), the dock session completes and
    # says its archive messages waited, and the station raises broker_unreachable
    wait_for(lambda: cluster.answers(lambda: set(cluster.states()) == expected), 60,
             "every file of the device catalogued while the broker is down")
    wait_for(lambda: cluster.answers(lambda: all(d.finished_at for d in cluster.dock_sessions())), 30,
             "the dock session to end")
    (dock,) = cluster.dock_sessions()
    assert dock.result == "complete", (dock.result, dock.result_note)
    assert dock.files_seen == len(device.shas) and dock.files_new == len(device.shas), dock
    assert re.search(r"[1-9]\d* not yet taken by the broker", dock.result_note or ""), dock.result_note
    # (the session row is closed inside the ingest; the station marks the device done just after it returns)
    wait_for(lambda: (a.device(device) or {}).get("state") == "done", 10, "station A to show the device done")
    wait_for(lambda: a.alarm("broker_unreachable") == 1, 20, "A's /metrics to raise broker_unreachable")
    assert a.metric("evidence_broker_reachable", station="A") == 0
    assert (a.metric("evidence_outbox_pending_messages", station="A") or 0) >= 1
    assert cluster.redis.proc.alive() is False
    # When the broker returns (same port, its append-only journal): everything is verified within 90 s
    cluster.redis.start()
    cluster.assert_healed([device], within_s=90)
    wait_for(lambda: a.alarm("broker_unreachable") == 0, 30, "A's broker_unreachable alarm to clear")
    wait_for(lambda: a.metric("evidence_outbox_pending_messages", station="A") == 0, 30, "A's outbox to empty")
    assert a.metric("evidence_broker_reachable", station="A") == 1


def test_worker_killed_mid_multipart_upload_a_restarted_worker_finishes_within_the_bounds(cluster: Cluster) -> None:
    a = cluster.a
    # Given three 20 MiB clips (5 MiB parts, one at a time) being uploaded by A's worker, B's worker running
    device = cluster.make_device("A200001", [20, 20, 20])
    a.dock(device)
    wait_for(cluster.uploading, 90, "a multipart upload with parts in the bucket")
    # When A's worker is killed (SIGKILL) mid-upload and started again
    a.worker.kill()
    assert cluster.answers(lambda: any(s == "staged" for s in cluster.states().values())), cluster.states()
    a.worker.start()
    # Then the dead worker's messages come back (heartbeat 3 s), or the reconciler re-sends them (10 s), its archive
    # claims expire (6 s), and everything is verified, one S3 version per object, within 3 + 10 + 6 + 60 s
    cluster.assert_healed([device], within_s=3 + 10 + 6 + 60)
    # B's worker never touched A's archive work (A's staged copies are only on A); the read-back reads the archive
    # and may run on any worker (the shared verify queue), but never fails a recording
    ids = {r.id for r in cluster.recordings()}
    actors = {e.actor for e in cluster.events() if e.recording_id in ids and e.kind in ("archived", "ingest_failed")}
    assert actors and not any(actor.endswith(":B") for actor in actors), actors
    assert cluster.dead_letters(a) == 0


def test_archive_pending_at_one_station_takes_only_its_own_recordings(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    # Given both stations' workers stopped, and recordings staged at A and at B
    a.worker.stop()
    b.worker.stop()
    dev_a = cluster.make_device("A300001", [2, 2])
    dev_b = cluster.make_device("B300001", [2, 2, 2])
    a.dock(dev_a)
    b.dock(dev_b)
    shas_a, shas_b = set(dev_a.shas.values()), set(dev_b.shas.values())
    wait_for(lambda: cluster.all_in_state(shas_a | shas_b, "staged"), 60, "both docks catalogued as staged")
    # When `evidence archive-pending` runs at A, and A's worker runs
    done = a.cli("archive-pending", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["enqueued"] == len(shas_a), done.stdout
    a.worker.start()
    # Then A archives its own (bound: 60 s) and nothing of B's: no failure recorded against B's evidence
    wait_for(lambda: cluster.all_in_state(shas_a, "verified"), 60, "A's recordings verified")
    wait_for(lambda: cluster.queue_holds(a) == 0, 30, "A's archive queue to be worked off")
    assert cluster.all_in_state(shas_b, "staged"), cluster.states()
    assert {p.name for p in b.staged_copies()} == shas_b
    assert cluster.events("ingest_failed") == []
    assert cluster.dead_letters(a) == 0
    # And B's worker, started again, archives B's (bound: 60 s after its start)
    b.worker.start()
    cluster.assert_healed([dev_a, dev_b], within_s=60)
    assert cluster.events("ingest_failed") == []
