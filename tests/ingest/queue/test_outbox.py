"""Production faults of the queued path, attacked the way they happened in the drill (issue 14): a broker that dies
mid-dock, a message delivered twice or to the wrong station, a recording stranded with no message, identical bytes
docked at two stations at once, a dock session left open by a killed run."""
from __future__ import annotations

import contextlib
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from catalog import (
    CustodyEvent,
    CustodyKind,
    DockSession,
    OutboxMessage,
    Recording,
    Sighting,
    append_event,
    load_or_create_key,
    open_catalog,
    outbox,
)
from catalog.types import utcnow
from ingest.archiving import READ_BACK_QUEUED, prove_stored
from ingest.config import Settings
from ingest.pipeline import IngestOptions, IngestReport, ingest_folder
from ingest.queue.actors import queue_names
from ingest.queue.connection import open_queue
from ingest.queue.relay import reconcile_once, relay_once
from ingest.queue.workers import run_ingest
from storage import LocalStore
from tests.conftest import running_station, wait_for
from tests.helpers.queues import drain, running_workers

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def _states(engine) -> dict[int, str]:
    with Session(engine) as session:
        return {r.id: r.state for r in session.exec(select(Recording)) if r.id is not None}


def _queued_settings(tmp_path: Path, catalog_url: str, broker: str, station: str = "station-1",
                     **extra: str) -> Settings:
    return Settings.from_env({"EVIDENCE_HOME": str(tmp_path / station), "EVIDENCE_DATABASE_URL": catalog_url,
                              "EVIDENCE_STORE_URL": f"file://{tmp_path / 'worm'}", "EVIDENCE_BROKER_URL": broker,
                              "EVIDENCE_STATION": station, "EVIDENCE_OUTBOX_RELAY_S": "0.2", **extra})


@pytest.mark.slow
def test_a_dead_broker_never_stops_a_dock_and_its_messages_go_when_it_returns(samples, tmp_path, catalog_url,
                                                                             private_redis):
    # Given a broker that died before the dock (every send is refused)
    private_redis.kill()
    settings = _queued_settings(tmp_path, catalog_url, private_redis.url)
    # When a device is ingested
    report = run_ingest(samples.dcim_camera, settings, IngestOptions(), derive="later")
    engine = open_catalog(settings.database_url)
    try:
        # Then every file is copied and catalogued, staged, with its message waiting in the outbox
        assert report.errors == [] and report.recordings
        ids = {r["id"] for r in report.recordings}
        assert set(_states(engine).values()) == {"staged"}
        with Session(engine) as session:
            waiting = session.exec(select(OutboxMessage).where(col(OutboxMessage.sent_at).is_(None))).all()
            dock = session.get(DockSession, report.dock_session_id)
        assert {m.recording_id for m in waiting} == ids
        # And the dock session says what really happened
        assert dock is not None and dock.result == "complete"
        assert f"{len(ids)} archive message(s) written to the outbox, {len(ids)} not yet taken by the broker" in (
            dock.result_note or "")
        # When the broker comes back and a worker runs: every message is relayed and every recording archived
        private_redis.start()
        with running_workers(settings, archive_threads=2, only=frozenset({"archive"})):
            wait_for(lambda: set(_states(engine).values()) == {"archived"}, 60, "archiving after the broker returned")
        with Session(engine) as session:
            assert outbox.backlog(session).count == 0
            failed = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "ingest_failed")).all()
        assert failed == []
    finally:
        engine.dispose()


def test_the_outbox_row_is_committed_with_its_recording(samples, settings, engine, store):
    # A dock deferring archiving to the queue: each new recording has exactly one archive message, for this station
    report = _stage(samples.sidecar_recorder, settings, engine, store)
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage)).all()
    assert sorted(r.recording_id for r in rows) == sorted(r["id"] for r in report.recordings)
    assert {(r.actor, r.station_code, r.reason, r.sent_at) for r in rows} == {
        (outbox.ARCHIVE_ACTOR, settings.station, "ingest", None)}
    # The embedded default archives inline: no messages at all
    again = ingest_folder(samples.dcim_camera, settings=settings, engine=engine, store=store)
    with Session(engine) as session:
        assert not session.exec(select(OutboxMessage).where(
            col(OutboxMessage.recording_id).in_([r["id"] for r in again.recordings]))).all()


def _stage(device: Path, settings: Settings, engine, store) -> IngestReport:
    """Ingest *device* with archiving deferred to the queue: its recordings staged, their messages in the outbox."""
    return ingest_folder(device, settings=settings, engine=engine, store=store,
                         options=IngestOptions(defer_archive=True))


def _stub_worker(settings: Settings, engine, store, *, station: str):
    from dataclasses import replace

    key = load_or_create_key(settings.station_key_path)
    queue = open_queue(replace(settings, station=station, broker_url=""), engine=engine, store=store, key=key)
    return queue.broker, queue.actors


def test_a_message_for_another_stations_recording_is_passed_on_never_a_failure(samples, tmp_path, catalog_url,
                                                                               engine):
    # Given recordings staged at station B (B's staging area holds them)
    b = _queued_settings(tmp_path, catalog_url, "", station="station-b")
    store = LocalStore(tmp_path / "worm")
    report = _stage(samples.sidecar_recorder, b, engine, store)
    ids = [r["id"] for r in report.recordings]
    # When station A's worker gets their archive messages (archive-pending at the wrong station, a misroute)
    broker, actors = _stub_worker(b, engine, store, station="station-a")
    for recording_id in ids:
        actors.archive.send(recording_id)
    drain(broker, queue_names("evidence", "station-a")["archive"])
    # Then nothing is recorded against the evidence, the messages are not dead-lettered, and each recording has
    # a new message on station B's queue; B's staged copies are untouched
    with Session(engine) as session:
        failed = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "ingest_failed")).all()
        rerouted = session.exec(select(OutboxMessage).where(OutboxMessage.reason == "re-routed from station-a"))
        rerouted_ids = sorted(m.recording_id for m in rerouted if m.station_code == "station-b")
    assert failed == [] and broker.dead_letters == []
    assert rerouted_ids == sorted(ids)
    assert set(_states(engine).values()) == {"staged"}
    assert all((b.staging_dir / r["sha256"]).exists() for r in report.recordings)
    # And station B's own worker archives them, and reads each back
    broker_b, actors_b = _stub_worker(b, engine, store, station="station-b")
    for recording_id in ids:
        actors_b.archive.send(recording_id)
    names = queue_names("evidence", "station-b")
    drain(broker_b, names["archive"], names["verify"])
    assert set(_states(engine).values()) == {"verified"}


def test_archive_pending_takes_only_its_own_stations_recordings(samples, tmp_path, catalog_url, engine):
    from ingest.archiving import archive_staged

    a = _queued_settings(tmp_path, catalog_url, "", station="station-a")
    b = _queued_settings(tmp_path, catalog_url, "", station="station-b")
    store = LocalStore(tmp_path / "worm")
    at_b = _stage(samples.sidecar_recorder, b, engine, store)
    at_a = _stage(samples.dcim_camera, a, engine, store)
    done = archive_staged(engine, store, a.staging_dir, key=load_or_create_key(a.station_key_path),
                          policy=a.retention_policy, station="station-a")
    states = _states(engine)
    assert done == len(at_a.recordings)
    assert {states[r["id"]] for r in at_a.recordings} == {"archived"}
    assert {states[r["id"]] for r in at_b.recordings} == {"staged"}
    with Session(engine) as session:
        assert session.exec(select(CustodyEvent).where(CustodyEvent.kind == "ingest_failed")).all() == []


def test_a_claimed_recording_is_archived_by_one_worker_and_a_dead_workers_claim_runs_out(samples, settings, engine,
                                                                                         store):
    report = _stage(samples.sidecar_recorder, settings, engine, store)
    rid = report.recordings[0]["id"]
    now = utcnow()
    with Session(engine) as session:
        # A worker holds it; another cannot take it while the hold lasts, and can once it has run out
        assert outbox.claim(session, rid, holder="w1", now=now, lease_s=30)
        assert not outbox.claim(session, rid, holder="w2", now=now + timedelta(seconds=29), lease_s=30)
        assert outbox.claim(session, rid, holder="w1", now=now + timedelta(seconds=29), lease_s=30)  # renewed
        assert not outbox.claim(session, rid, holder="w2", now=now + timedelta(seconds=58), lease_s=30)
        assert outbox.claim(session, rid, holder="w2", now=now + timedelta(seconds=60), lease_s=30)
        assert outbox.claimed(session, now=now + timedelta(seconds=61)) == {rid}
        outbox.release(session, rid, holder="w1", now=now)  # not w1's any more: nothing happens
        assert outbox.claimed(session, now=now + timedelta(seconds=61)) == {rid}
        outbox.release(session, rid, holder="w2", now=now)
        assert outbox.claimed(session, now=now + timedelta(seconds=61)) == set()
    # A message delivered while another live worker holds the recording is retried later, never uploaded twice
    with Session(engine) as session:
        assert outbox.claim(session, rid, holder="someone-else", now=utcnow(), lease_s=3)
    broker, actors = _stub_worker(settings, engine, store, station=settings.station)
    actors.archive.send(rid)
    names = queue_names("evidence", settings.station)
    drain(broker, names["archive"], names["verify"])
    assert _states(engine)[rid] == "verified"  # after the other hold ran out (3 s), by this worker, read back
    assert store.exists(report.recordings[0]["sha256"])
    with Session(engine) as session:
        archived = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "archived",
                                                           CustodyEvent.recording_id == rid)).all()
    assert len(archived) == 1


def _sent_and_ingested_long_ago(session: Session) -> None:
    """Every message handed to the broker, and every recording ingested, two hours ago (commits)."""
    for row in session.exec(select(OutboxMessage)):
        row.sent_at = row.created_at = utcnow() - timedelta(hours=2)
        session.add(row)
    for recording in session.exec(select(Recording)):
        recording.ingested_at = utcnow() - timedelta(hours=2)
        session.add(recording)
    session.commit()


def test_the_reconciler_queues_again_only_what_has_no_message_in_flight(samples, settings, engine, store):
    report = _stage(samples.dcim_camera, settings, engine, store)
    ids = sorted(r["id"] for r in report.recordings)
    assert len(ids) >= 3
    recent_message, held, stranded = ids[0], ids[1], ids[2:]
    with Session(engine) as session:
        # Every message was sent long ago and lost (a broker that forgot them); one recording got a fresh message,
        # one is held by a live worker
        _sent_and_ingested_long_ago(session)
        outbox.add(session, recent_message, station=settings.station, now=utcnow(), reason="ingest")
        session.commit()
        assert outbox.claim(session, held, holder="live-worker", now=utcnow(), lease_s=60)
    # When the reconciler runs with a 10-minute threshold
    queued = reconcile_once(engine, station=settings.station, after_s=600)
    # Then exactly the stranded ones get a new message, and a second pass adds nothing
    assert sorted(queued) == stranded
    assert reconcile_once(engine, station=settings.station, after_s=600) == []
    # Another station's reconciler never touches them
    assert reconcile_once(engine, station="station-elsewhere", after_s=600) == []


def test_relay_stops_at_a_refusing_broker_and_resends_nothing_twice(samples, settings, engine, store):
    _stage(samples.sidecar_recorder, settings, engine, store)
    sent: list[int] = []

    def flaky(actor: str, recording_id: int) -> None:
        if len(sent) == 2:
            raise ConnectionError("Connection refused (broker down)")
        sent.append(recording_id)

    first = relay_once(engine, flaky, station=settings.station)
    assert (first.sent, first.ok) == (2, False) and "Connection refused" in (first.error or "")
    assert first.waiting >= 1

    def good(actor: str, recording_id: int) -> None:
        sent.append(recording_id)

    second = relay_once(engine, good, station=settings.station)
    assert second.ok and second.waiting == 0
    assert len(sent) == len(set(sent))  # each message handed over once
    assert relay_once(engine, good, station=settings.station).sent == 0


def test_a_dock_session_left_open_by_a_killed_station_is_closed_at_start(station_settings, engine):
    from catalog import ensure_station

    with Session(engine) as session:
        ensure_station(session, station_settings.station, name="s")
        session.flush()
        session.add(DockSession(station_code=station_settings.station, device_serial="CAM-9", profile="p",
                                source_path="/media/x", started_at=utcnow() - timedelta(minutes=5)))
        session.commit()
    with running_station(station_settings):
        def closed() -> DockSession | None:
            with Session(engine) as session:
                dock = session.exec(select(DockSession)).one()
                return dock if dock.finished_at is not None else None

        wait_for(closed, 20, "the abandoned dock session to be closed")
    dock = closed()
    assert dock is not None and dock.result == "interrupted"
    assert "the station stopped" in (dock.result_note or "")
    with Session(engine) as session:
        event = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "undocked",
                                                        CustodyEvent.dock_session_id == dock.id)).one()
    assert event.details["result"] == "interrupted"


@pytest.mark.postgres
def test_the_same_bytes_docked_at_two_stations_at_once_make_one_recording_and_no_deadlock(tmp_path, samples):
    from tests.conftest import postgres_database

    databases = postgres_database()
    url = next(databases)
    try:
        engine = open_catalog(url)
        store = LocalStore(tmp_path / "worm")
        try:
            for round_ in range(3):
                # Given the same 12 files on two devices (one per station), docked at the same moment
                devices = []
                for station in ("a", "b"):
                    device = tmp_path / f"r{round_}-{station}" / "DCIM" / "100CAM"
                    device.mkdir(parents=True)
                    for i in range(12):
                        (device / f"MVI_{i:04d}.MP4").write_bytes(f"round {round_} file {i} ".encode() * 4096)
                    devices.append((station, device.parent.parent))
                reports: dict[str, IngestReport] = {}
                errors: list[BaseException] = []
                barrier = threading.Barrier(2)

                def dock(station: str, root: Path, barrier=barrier, reports=reports, errors=errors) -> None:
                    settings = _queued_settings(tmp_path, url, "", station=f"station-{station}")
                    barrier.wait()
                    try:
                        reports[station] = ingest_folder(root, settings=settings, engine=engine, store=store,
                                                         options=IngestOptions(defer_archive=True,
                                                                               profile="generic-dcim-camera"))
                    except BaseException as exc:  # noqa: BLE001 - the test reports it
                        errors.append(exc)

                threads = [threading.Thread(target=dock, args=d) for d in devices]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=120)
                # Then both docks end cleanly: no deadlock, nothing journaled
                assert errors == []
                for report in reports.values():
                    assert report.errors == []
            with Session(engine) as session:
                recordings = session.exec(select(Recording)).all()
                sightings = session.exec(select(Sighting)).all()
                docks = session.exec(select(DockSession)).all()
            # One recording per distinct file, two sightings each, every dock closed complete
            assert len(recordings) == 36 and len(sightings) == 72
            assert {d.result for d in docks} == {"complete"} and all(d.finished_at for d in docks)
            # Each station archives its own; the copies the losing station kept of bytes staged at the other go with
            # the staging sweep once the other has archived them: no orphan is left anywhere
            from ingest.archiving import archive_staged
            from ingest.station.staging_sweep import sweep_staging

            for station in ("a", "b"):
                here = _queued_settings(tmp_path, url, "", station=f"station-{station}")
                archive_staged(engine, store, here.staging_dir, key=load_or_create_key(here.station_key_path),
                               policy=here.retention_policy, station=here.station)
            for station in ("a", "b"):
                staging = tmp_path / f"station-{station}" / "staging"
                sweep_staging(engine, store, staging, station=f"station-{station}", protect=set())
                left = [p.name for p in staging.iterdir() if p.is_file() and len(p.name) == 64]
                assert left == [], f"orphan staged copies at station-{station}: {left[:3]}"
            assert set(_states(engine).values()) == {"archived"}
        finally:
            engine.dispose()
    finally:
        for _ in databases:
            pass


class _SlowStore(LocalStore):
    """The real local store, whose uploads wait for each other: two deliveries of one message mid-upload at once."""

    def __init__(self, root: Path, parties: int) -> None:
        super().__init__(root)
        self.barrier = threading.Barrier(parties, timeout=30)

    def put_file(self, *args, **kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait()
        return super().put_file(*args, **kwargs)


def test_two_deliveries_racing_to_the_end_record_one_archive(samples, settings, engine):
    # Given a recording staged, and two workers that both passed the claim (a hold lost to a network partition)
    from ingest.archiving import archive_recording

    report = _stage(samples.sidecar_recorder, settings, engine, LocalStore(settings.store_path))
    rid = report.recordings[0]["id"]
    store = _SlowStore(settings.store_path, parties=2)
    key = load_or_create_key(settings.station_key_path)
    results: list[str] = []
    errors: list[BaseException] = []

    def deliver(name: str) -> None:
        try:
            results.append(archive_recording(engine, store, settings.staging_dir, rid, key=key, actor=name,
                                             policy=settings.retention_policy, station=settings.station))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(f"worker:{n}",)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # Then both finish, the recording is archived once: one `archived` event, one stored object
    from sqlalchemy.exc import OperationalError

    assert all(isinstance(e, OperationalError) for e in errors), errors  # SQLite: the loser may find it locked
    assert set(results) <= {"archived"} and _states(engine)[rid] == "archived"
    with Session(engine) as session:
        archived = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "archived",
                                                           CustodyEvent.recording_id == rid)).all()
    assert len(archived) == 1


class _NoManifests(LocalStore):
    """The real local store whose manifest writes fail (the store went away between the two commits)."""

    def put_manifest(self, *args, **kwargs):
        from storage.errors import BackendUnavailable

        raise BackendUnavailable("local", "manifest write: connection reset")


def test_an_archived_recording_whose_manifest_failed_is_sealed_by_the_reconciler(samples, settings, engine):
    # Given a recording archived while its signed manifest could not be written (attack, issue 14 review)
    from catalog.manifests import MANIFEST_MISSING, read_manifests, trusted_fingerprints
    from ingest.archiving import archive_recording

    report = _stage(samples.sidecar_recorder, settings, engine, LocalStore(settings.store_path))
    rid = report.recordings[0]["id"]
    key = load_or_create_key(settings.station_key_path)
    kw = {"key": key, "actor": "worker:x", "policy": settings.retention_policy, "station": settings.station}
    assert archive_recording(engine, _NoManifests(settings.store_path), settings.staging_dir, rid, **kw) == "archived"
    # When the reconciler runs later, the recording is queued again, and its message (the store back) seals it
    with Session(engine) as session:
        later = outbox.db_now(session) + timedelta(hours=1)
        for row in session.exec(select(OutboxMessage)):
            row.sent_at = row.created_at  # every original message was handed over long ago
            session.add(row)
        session.commit()
        assert rid in outbox.reconcile(session, station=settings.station, now=later, after_s=600)
        session.commit()
    good = LocalStore(settings.store_path)
    assert archive_recording(engine, good, settings.staging_dir, rid, **kw) == "archived"
    # Then its manifest is in the store and recorded; and it is not queued again
    with Session(engine) as session:
        recording = session.get(Recording, rid)
        assert recording is not None
        manifests = read_manifests(good, recording, trusted=trusted_fingerprints(session, good))
        assert manifests[1] != MANIFEST_MISSING and isinstance(manifests[1], dict)
        manifested = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "manifested",
                                                             CustodyEvent.recording_id == rid)).all()
        assert len(manifested) == 1
        for row in session.exec(select(OutboxMessage).where(col(OutboxMessage.sent_at).is_(None))):
            row.sent_at = later
            session.add(row)
        session.commit()
        # (still `archived`: queued once more for its read-back; once read back, never again)
        assert rid in outbox.reconcile(session, station=settings.station, now=later + timedelta(hours=1),
                                       after_s=600)
        for row in session.exec(select(OutboxMessage).where(col(OutboxMessage.sent_at).is_(None))):
            row.sent_at = later + timedelta(hours=1)
            session.add(row)
        prove_stored(session, good, recording, actor="worker:x", how=READ_BACK_QUEUED)
        session.commit()
        assert rid not in outbox.reconcile(session, station=settings.station, now=later + timedelta(hours=2),
                                           after_s=600)


def _manifest_left_by_a_killed_run(engine, store: LocalStore, rid: int, key, *, edit=None, signer=None,
                                   dump=None) -> None:
    """What a run killed between storing *rid*'s manifest and committing its `manifested` event leaves: the real
    write_manifests against *store*, then the transaction lost. With *edit* / *signer* / *dump*, the stored manifest
    is instead one whose body was edited, which another key signed (not the killed run's), or whose document was
    written out by *dump* (default: as the archive writes it)."""
    import json

    from catalog.manifests import write_manifests
    from catalog.signing import sign_document
    from storage import manifest_key

    with Session(engine) as session:
        recording = session.get(Recording, rid)
        assert recording is not None
        if edit is None and signer is None:
            write_manifests(session, store, [recording], key, actor="worker:killed")
            session.rollback()
            return
        scratch = LocalStore(store.root.parent / f"scratch-{rid}")
        write_manifests(session, scratch, [recording], key, actor="worker:killed")
        session.rollback()
        document = json.loads((scratch.root / manifest_key(recording.sha256, 1)).read_bytes())
        body = edit(document["manifest"]) if edit is not None else document["manifest"]
        forged = sign_document(body, signer or key)
        assert recording.retain_until is not None
        data = (dump or (lambda d: json.dumps(d, ensure_ascii=False, indent=1, sort_keys=True).encode()))(forged)
        store.put_manifest(recording.sha256, 1, data, retain_until=recording.retain_until)


def _manifested(engine, rid: int) -> list[CustodyEvent]:
    with Session(engine) as session:
        return list(session.exec(select(CustodyEvent).where(CustodyEvent.kind == "manifested",
                                                            CustodyEvent.recording_id == rid)))


def test_a_manifest_stored_by_a_run_killed_before_recording_it_is_checked_and_recorded_not_refused_for_ever(
        samples, settings, engine, caplog):
    # Given recordings archived by a run whose manifest writes failed, and then, for each, a run that stored the
    # manifest and was killed before its `manifested` event was committed: the write-once store now refuses any
    # other signature of revision 1 (a new one is timed differently) for ever
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from catalog.signing import fingerprint, public_key_b64
    from catalog.verification import verify_archive
    from ingest.archiving import archive_recording

    report = _stage(samples.sidecar_recorder, settings, engine, LocalStore(settings.store_path))
    genuine, edited, foreign = sorted(r["id"] for r in report.recordings)[:3]
    key = load_or_create_key(settings.station_key_path)
    kw = {"key": key, "actor": "worker:x", "policy": settings.retention_policy, "station": settings.station}
    store = LocalStore(settings.store_path)
    for rid in (genuine, edited, foreign):
        assert archive_recording(engine, _NoManifests(settings.store_path), settings.staging_dir, rid, **kw) \
            == "archived"
    _manifest_left_by_a_killed_run(engine, store, genuine, key)
    _manifest_left_by_a_killed_run(engine, store, edited, key, edit=lambda b: {
        **b, "stamp": {**b["stamp"], "purpose": "edited behind the catalogue's back"}})
    _manifest_left_by_a_killed_run(engine, store, foreign, key, signer=Ed25519PrivateKey.generate())
    assert all(_manifested(engine, rid) == [] for rid in (genuine, edited, foreign))
    # When the reconciler's messages seal them
    for rid in (genuine, edited, foreign):
        assert archive_recording(engine, store, settings.staging_dir, rid, **kw) == "archived"
    # Then the genuine one is recorded, said to be adopted, and the archive verifies clean
    (event,) = _manifested(engine, genuine)
    assert "adopted" in event.details and event.details["key_fingerprint"] == fingerprint(public_key_b64(key))
    assert "stored by a run that stopped before recording it" in caplog.text
    with Session(engine) as session:
        assert verify_archive(session, store, [genuine]).problems == []
        # the edited one and the one another key signed are not vouched for: no event, and verify names them
        assert _manifested(engine, edited) == [] and _manifested(engine, foreign) == []
        problems = verify_archive(session, store, [edited, foreign], chain=False).problems
    assert any("purpose" in str(p) and p.recording_id == edited for p in problems)
    assert any("signature" in p.kind and p.recording_id == foreign for p in problems)


def test_only_this_stations_own_manifest_in_its_own_bytes_is_adopted(samples, settings, engine):
    # Given recordings archived without their manifests, and under their manifest keys: one signed by another
    # station's key (registered and published: trusted archive-wide) with facts the checks of `verify` do not
    # compare falsified, and one that is the killed run's genuine manifest re-serialised (same signed body)
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from catalog.manifests import ensure_station_key
    from ingest.archiving import archive_recording

    report = _stage(samples.sidecar_recorder, settings, engine, LocalStore(settings.store_path))
    foreign, reformatted = sorted(r["id"] for r in report.recordings)[:2]
    key = load_or_create_key(settings.station_key_path)
    kw = {"key": key, "actor": "worker:x", "policy": settings.retention_policy, "station": settings.station}
    store = LocalStore(settings.store_path)
    other = Ed25519PrivateKey.generate()
    with Session(engine) as session:
        ensure_station_key(session, "station-b", other, actor="admin", store=store)
        session.commit()
    for rid in (foreign, reformatted):
        assert archive_recording(engine, _NoManifests(settings.store_path), settings.staging_dir, rid, **kw) \
            == "archived"
    _manifest_left_by_a_killed_run(engine, store, foreign, key, signer=other, edit=lambda b: {
        **b, "officer": {**b["officer"], "name": "SOMEONE ELSE"}, "custody": [],
        "capture": {**b["capture"], "end": "1999-01-01T00:00:00+00:00"}})
    _manifest_left_by_a_killed_run(engine, store, reformatted, key, edit=lambda b: b,  # the same signed body,
                                   dump=lambda d: json.dumps({**d, "note": "unsigned"}).encode())  # one more field
    with Session(engine) as session:
        row = session.get(Recording, reformatted)
        assert row is not None
        sha = row.sha256
    assert json.loads(store.get_manifest(sha, 1))["signature"]["key_fingerprint"]  # a genuine signature
    # When the reconciler's messages seal them
    for rid in (foreign, reformatted):
        assert archive_recording(engine, store, settings.staging_dir, rid, **kw) == "archived"
    # Then neither is recorded, and verify names the re-written bytes (whose signed body is intact)
    assert _manifested(engine, foreign) == [] and _manifested(engine, reformatted) == []
    from catalog.verification import verify_archive

    with Session(engine) as session:
        problems = verify_archive(session, store, [reformatted], chain=False).problems
    assert any(p.recording_id == reformatted and "content was added outside what is signed" in p.detail
               for p in problems), problems


def test_two_workers_adopting_one_manifest_record_it_once(samples, settings, engine):
    # Given a recording whose manifest a killed run stored, and two archive steps for it (a redelivery and the
    # reconciler's message) that both signed before either wrote
    import threading

    from ingest.archiving import archive_recording

    report = _stage(samples.sidecar_recorder, settings, engine, LocalStore(settings.store_path))
    rid = sorted(r["id"] for r in report.recordings)[0]
    key = load_or_create_key(settings.station_key_path)
    kw = {"key": key, "actor": "worker:x", "policy": settings.retention_policy, "station": settings.station}
    assert archive_recording(engine, _NoManifests(settings.store_path), settings.staging_dir, rid, **kw) == "archived"
    _manifest_left_by_a_killed_run(engine, LocalStore(settings.store_path), rid, key)
    both_signed = threading.Barrier(2)

    class _BothAtOnce(LocalStore):
        """The real store; each worker's first manifest write waits until both have signed theirs."""

        def put_manifest(self, *args, **kwargs):
            if not getattr(threading.current_thread(), "signed", False):
                threading.current_thread().signed = True  # type: ignore[attr-defined]
                both_signed.wait(timeout=30)
            return super().put_manifest(*args, **kwargs)

    store = _BothAtOnce(settings.store_path)
    results: list[str] = []
    workers = [threading.Thread(target=lambda: results.append(
        archive_recording(engine, store, settings.staging_dir, rid, **kw))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    # Then it is recorded once
    assert results == ["archived", "archived"]
    (event,) = _manifested(engine, rid)
    assert "adopted" in event.details


def test_a_restamp_whose_manifest_failed_is_sealed_by_the_reconciler(samples, settings, engine):
    # Given an archived, sealed recording re-stamped while the store refused its new manifest
    from catalog import DEFAULT_CASE_PATTERN
    from catalog.recordings import has_manifest
    from catalog.restamping import change_stamp
    from ingest.archiving import archive_recording
    from storage import StorageError

    store = LocalStore(settings.store_path)
    report = _stage(samples.sidecar_recorder, settings, engine, store)
    rid = sorted(r["id"] for r in report.recordings)[0]
    key = load_or_create_key(settings.station_key_path)
    kw = {"key": key, "actor": "worker:x", "policy": settings.retention_policy, "station": settings.station}
    assert archive_recording(engine, store, settings.staging_dir, rid, **kw) == "archived"
    with Session(engine) as session:
        recording = session.get(Recording, rid)
        assert recording is not None and has_manifest(session, rid, revision=1)
        with pytest.raises(StorageError):
            change_stamp(session, _NoManifests(settings.store_path), recording, by="clerk", reason="purpose typo",
                         case_pattern=DEFAULT_CASE_PATTERN, policy=settings.retention_policy, key=key,
                         purpose="现场检查")
        assert recording.stamp_revision == 2 and not has_manifest(session, rid, revision=2)
        later = outbox.db_now(session) + timedelta(hours=1)
        for row in session.exec(select(OutboxMessage)):
            row.sent_at = row.created_at
            session.add(row)
        session.commit()
        # When the reconciler runs, the recording is queued again, and its message seals revision 2
        assert rid in outbox.reconcile(session, station=settings.station, now=later, after_s=600)
        session.commit()
    assert archive_recording(engine, store, settings.staging_dir, rid, **kw) == "archived"
    # Then revision 2 is sealed and recorded, and the recording is not queued for it again
    with Session(engine) as session:
        assert has_manifest(session, rid, revision=2)
        for row in session.exec(select(OutboxMessage).where(col(OutboxMessage.sent_at).is_(None))):
            row.sent_at = later
            session.add(row)
        sealed = session.get(Recording, rid)
        assert sealed is not None
        prove_stored(session, store, sealed, actor="worker:x", how=READ_BACK_QUEUED)
        session.commit()
        assert rid not in outbox.reconcile(session, station=settings.station, now=later + timedelta(hours=2),
                                           after_s=600)


def test_an_archived_recording_whose_read_back_was_lost_is_verified_after_the_reconciler(samples, settings, engine):
    # Given recordings archived by a worker that died before it sent their read-back (verify) messages
    from ingest.archiving import archive_recording

    store = LocalStore(settings.store_path)
    report = _stage(samples.sidecar_recorder, settings, engine, store)
    ids = sorted(r["id"] for r in report.recordings)
    key = load_or_create_key(settings.station_key_path)
    kw = {"key": key, "actor": "worker:x", "policy": settings.retention_policy, "station": settings.station}
    for rid in ids:
        assert archive_recording(engine, store, settings.staging_dir, rid, **kw) == "archived"
    # and one of them whose read-back already failed for good
    failed = ids[0]
    with Session(engine) as session:
        append_event(session, CustodyKind.INGEST_FAILED, actor="worker:x", recording_id=failed,
                     details={"stage": "verify", "reason": "sha256 mismatch (test)"})
        _sent_and_ingested_long_ago(session)
    # When the reconciler runs, and a worker takes what it queued
    queued = reconcile_once(engine, station=settings.station, after_s=600)
    assert sorted(queued) == ids[1:]  # never the one a person must look at
    broker, actors = _stub_worker(settings, engine, store, station=settings.station)
    for rid in queued:
        actors.archive.send(rid)
    names = queue_names("evidence", settings.station)
    drain(broker, names["archive"], names["verify"])
    # Then they are read back and verified; the failed one stays archived
    states = _states(engine)
    assert {states[rid] for rid in ids[1:]} == {"verified"} and states[failed] == "archived"


def test_the_reconciler_adds_nothing_while_messages_wait_for_a_broker_that_is_away(samples, settings, engine, store):
    # Given staged recordings whose messages wait in the outbox (the broker away for hours)
    report = _stage(samples.sidecar_recorder, settings, engine, store)
    staged = len(report.recordings)
    with Session(engine) as session:
        now = outbox.db_now(session)
    # When the reconciler passes hourly for six hours
    for hour in range(1, 7):
        with Session(engine) as session:
            assert outbox.reconcile(session, station=settings.station, now=now + timedelta(hours=hour),
                                    after_s=600) == []
            session.commit()
    # Then there is still one waiting message per recording
    with Session(engine) as session:
        assert outbox.backlog(session, station=settings.station).count == staged
