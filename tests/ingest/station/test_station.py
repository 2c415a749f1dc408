"""The dock station: noticing volumes, ingesting several at once, clearing only what is verified."""
from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from catalog import CustodyEvent, Recording, StampRevision, open_catalog
from evidence.cli.main import main
from ingest.station.dock_watcher import DockWatcher, Volume
from ingest.station.service import StationService, read_status
from storage import LocalStore
from tests.cli import run_cli
from tests.conftest import running_station, station_env, wait_for

pytestmark = pytest.mark.usefixtures("ffmpeg_available")



def test_watcher_hands_over_a_volume_once_it_has_settled_and_reports_it_gone(tmp_path):
    ready: list[Volume] = []
    gone: list[Volume] = []
    watcher = DockWatcher([str(tmp_path)], is_volume=lambda p: (p / "DCIM").is_dir(), on_ready=ready.append,
                          on_gone=gone.append, stable_s=2.0)
    device = tmp_path / "CAM"
    (device / "DCIM").mkdir(parents=True)
    watcher.scan_once(now=0.0)
    (device / "DCIM" / "IMG_0001.JPG").write_bytes(b"still being written")
    watcher.scan_once(now=1.5)  # changed since the first look: settling starts again
    watcher.scan_once(now=3.0)
    assert ready == []
    watcher.scan_once(now=3.6)
    assert [v.path for v in ready] == [device]
    watcher.scan_once(now=10.0)
    assert len(ready) == 1  # handed over once
    shutil.rmtree(device)
    watcher.scan_once(now=11.0)
    assert [v.path for v in gone] == [device]


def test_watcher_looks_one_level_down_for_user_folders(tmp_path):
    ready: list[Volume] = []
    watcher = DockWatcher([str(tmp_path / "*")], is_volume=lambda p: (p / "ZFYINFO.TXT").exists(),
                          on_ready=ready.append, on_gone=lambda v: None, stable_s=0.0)
    device = tmp_path / "run" / "officer" / "ZFY"
    device.mkdir(parents=True)
    (device / "ZFYINFO.TXT").write_bytes(b"x")
    watcher.scan_once(now=0.0)
    watcher.scan_once(now=0.1)
    assert [v.path for v in ready] == [device]


def _devices(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {Path(d["path"]).name: d for d in status.get("devices", [])}


def test_station_ingests_docked_devices_and_clears_only_verified_files(samples, station_settings):
    root = Path(station_settings.mount_roots[0])
    with running_station(station_settings):
        # Given two recorders docked at nearly the same time, one whose profile allows clearing
        shutil.copytree(samples.cn_recorder, root / "ZFY", symlinks=True)
        shutil.copytree(samples.dcim_camera, root / "CAMERA")
        (root / "USBSTICK").mkdir()  # nothing any profile recognises: never a volume here
        # When the station has finished with both
        wait_for(lambda: {d["state"] for d in _devices(read_status(station_settings.status_path)).values()}
                  == {"done"} and len(_devices(read_status(station_settings.status_path))) == 2, 90,
                  "both docks to finish")
    status = read_status(station_settings.status_path)
    devices = _devices(status)
    assert status["running"] is False
    assert (devices["ZFY"]["profile"], devices["ZFY"]["device_serial"], devices["ZFY"]["new"]) == (
        "cn-enforcement-recorder", "A123456", 12)  # every file, the identity file and a stray note included
    assert devices["ZFY"]["bytes_done"] == devices["ZFY"]["bytes_total"] > 0
    assert devices["ZFY"]["first_byte_after_s"] is not None
    # Then the recorder is cleared of every file that was verified, and nothing else is touched
    assert devices["ZFY"]["cleared"] == 10
    left = sorted(str(p.relative_to(root / "ZFY")) for p in (root / "ZFY").rglob("*") if p.is_file()
                  or p.is_symlink())
    assert left == ["RECORD/20261120/ZFY_A123456_010203_20261120_092000.mp4", "RECORD/20261120/notes.txt",
                    "TIME.TXT", "ZFYINFO.TXT"]  # and the station's time (校时), written for the recorder to read
    assert devices["CAMERA"]["cleared"] == 0  # the generic camera's profile forbids clearing
    assert sorted(p.name for p in (root / "CAMERA" / "DCIM" / "100EVCAM").iterdir()) == [
        "IMG_0001.JPG", "IMG_0001.THM", "IMG_0002.JPG", "IMG_0004.JPG", "MVI_0003.MP4"]
    engine = open_catalog(station_settings.database_url)
    try:
        with Session(engine) as session:
            cleared = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "cleared")).all()
            cleared_rows = [session.get(Recording, e.recording_id) for e in cleared]
            assert None not in cleared_rows
            states = {r.state for r in cleared_rows if r is not None}
    finally:
        engine.dispose()
    assert len(cleared) == 10 and states == {"verified"}  # re-hashed in the store before each deletion


def test_an_unknown_volume_is_reported_not_ingested(station_settings, tmp_path):
    service = StationService(station_settings)
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "holiday.mp4").write_bytes(b"not evidence")
    service._docked(Volume(path=stick, identity=(0, 0)))
    status = service.devices[str(stick)]
    assert status.state == "unknown" and status.message.startswith("no device profile recognises")
    assert (stick / "holiday.mp4").exists()


def test_station_tag_stamps_a_dock_session_as_the_officer(samples, station_settings):
    env = {"EVIDENCE_HOME": str(station_settings.home), "EVIDENCE_DATABASE_URL": station_settings.database_url}
    runner = CliRunner()
    ingested = runner.invoke(main, ["ingest", str(samples.sidecar_recorder), "--json", "--no-derive"], env=env)
    session_id = json.loads(ingested.stdout)["dock_session"]
    # the officer's archive user is bound to the OS account at the station (tests.cli.run_cli)
    result = run_cli(env, "station", "tag", "--session", str(session_id), "--by", "020304",
                     "--case", "AB-2026-00042", "--purpose", "证明违法事实", "--important",
                     "--file", "CLIPS/CLIP0001.mp4", "--json")
    assert result.exit_code == 0, result.output
    assert [(t["device_path"], t["revision"]) for t in json.loads(result.stdout)["tagged"]] == [
        ("CLIPS/CLIP0001.mp4", 2)]
    engine = open_catalog(station_settings.database_url)
    try:
        with Session(engine) as session:
            revision = session.exec(select(StampRevision).where(StampRevision.revision == 2)).one()
    finally:
        engine.dispose()
    assert (revision.changed_by, revision.case_number, revision.purpose, revision.important) == (
        "020304", "AB-2026-00042", "证明违法事实", True)
    missing = run_cli(env, "station", "tag", "--session", str(session_id), "--by", "x", "--case",
                      "AB-2026-00043", "--file", "CLIPS/NOPE.mp4")
    assert missing.exit_code == 2 and "CLIPS/NOPE.mp4" in missing.stderr


@pytest.mark.slow
def test_station_watch_process_ingests_and_stops_cleanly_on_sigterm(samples, station_settings):
    root = Path(station_settings.mount_roots[0])
    env = station_env(station_settings)
    evidence = str(Path(sys.executable).with_name("evidence"))
    proc = subprocess.Popen([evidence, "station", "watch"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: read_status(station_settings.status_path).get("running"), 30, "the station to start")
        shutil.copytree(samples.sidecar_recorder, root / "GPSREC")
        wait_for(lambda: _devices(read_status(station_settings.status_path)).get("GPSREC", {}).get("state")
                  == "done", 90, "the dock to finish")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Docked" in err and "Ingested" in err and "7 new" in err  # plain log lines when not a terminal
    assert read_status(station_settings.status_path)["running"] is False
    # the recordings and their sidecars are cleared; the recorder's identity file stays
    assert sorted(str(p.relative_to(root / "GPSREC")) for p in (root / "GPSREC").rglob("*")) == [
        "CLIPS", "RECORDER.JSON"]
    # the catalogue and the store hold what the device held, verified before it was cleared
    engine = open_catalog(station_settings.database_url)
    try:
        with Session(engine) as session:
            rows = {r.original_name: r for r in session.exec(select(Recording))}
    finally:
        engine.dispose()
    assert sorted(rows) == ["CLIP0001.json", "CLIP0001.mp4", "CLIP0002.json", "CLIP0002.wav", "CLIP0003.json",
                            "CLIP0003.mp4", "RECORDER.JSON"]
    assert {r.state for n, r in rows.items() if n != "RECORDER.JSON"} == {"verified"}
    store = LocalStore(station_settings.store_path)
    for name, row in rows.items():
        with store.open(row.sha256) as fh:
            original = samples.sidecar_recorder / ("" if name == "RECORDER.JSON" else "CLIPS") / name
            assert fh.read() == original.read_bytes()


def _kiosk(address: tuple[str, int], method: str, path: str,
           body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """The kiosk endpoint's answer (status, JSON) to a request of its own page."""
    host, port = address
    request = urllib.request.Request(f"http://{host}:{port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_kiosk_endpoint_shows_status_and_tags_a_dock_session(samples, station_settings):
    root = Path(station_settings.mount_roots[0])
    address: list[tuple[str, int]] = []

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        return _kiosk(address[0], method, path, body)

    with running_station(station_settings) as service:
        wait_for(lambda: service.endpoint_address is not None, 30, "the endpoint")
        assert service.endpoint_address is not None
        address.append(service.endpoint_address)
        assert address[0][0] == "127.0.0.1"
        shutil.copytree(samples.sidecar_recorder, root / "GPSREC")
        wait_for(lambda: _devices(call("GET", "/status")[1]).get("GPSREC", {}).get("state") in ("done",
                                                                                              "waiting-archive"),
                 90, "the dock to finish")
        session_id = _devices(call("GET", "/status")[1])["GPSREC"]["dock_session"]
        code, body = call("POST", f"/sessions/{session_id}/tag",
                          {"by": "020304", "case_number": "AB-2026-00042", "files": ["CLIPS/CLIP0002.wav"]})
        assert (code, [t["revision"] for t in body["tagged"]]) == (200, [2])
        # The kiosk tags as the station: taking the case number (and so its pending-case hold) away again is a
        # clerk's decision, refused here whatever "by" says (catalog.restamping.change_stamp).
        code, body = call("POST", f"/sessions/{session_id}/tag",
                          {"by": "020304", "case_number": "", "files": ["CLIPS/CLIP0002.wav"]})
        assert code == 403 and "removes case number AB-2026-00042" in body["error"]
        assert "a clerk decides that" in body["error"]
        assert call("POST", f"/sessions/{session_id}/tag", {"case_number": "AB-2026-00042"})[0] == 400
        assert call("POST", f"/sessions/{session_id}/tag", {"by": "x", "case_number": "?"})[0] == 400
        assert call("POST", "/sessions/999999/tag", {"by": "x", "purpose": "p"})[0] == 404
        assert call("GET", "/nothing")[0] == 404
        # Another site's page in an officer's browser on the station's network (a review stamped a case number and
        # a hold this way): a form or text/plain body, or JSON naming another origin, is refused and changes nothing
        host, port = address[0]
        forged = json.dumps({"by": "anyone", "purpose": "forged", "files": ["CLIPS/CLIP0003.mp4"]}).encode()
        for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"},
                        {"Content-Type": "application/json", "Origin": "https://evil.example"},
                        {"Content-Type": "application/json", "Origin": "null"}):
            request = urllib.request.Request(f"http://{host}:{port}/sessions/{session_id}/tag", method="POST",
                                             data=forged, headers=headers)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 403, headers
        same_page = {"Content-Type": "application/json", "Origin": f"http://{host}:{port}"}
        request = urllib.request.Request(f"http://{host}:{port}/sessions/{session_id}/tag", method="POST",
                                         data=json.dumps({"by": "020304", "purpose": "巡查",
                                                          "files": ["CLIPS/CLIP0003.mp4"]}).encode(),
                                         headers=same_page)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200  # the kiosk's own page
    engine = open_catalog(station_settings.database_url)
    try:
        with Session(engine) as session:
            assert not [r for r in session.exec(select(Recording)) if r.purpose == "forged"]
    finally:
        engine.dispose()


def _refuse_legal_hold_events(engine: Engine) -> None:
    """The catalogue refuses every `legal_hold` event from now on (a database fault part way through a tag)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("CREATE FUNCTION refuse_hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                              "IF NEW.kind = 'legal_hold' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
                              "RETURN NEW; END $$"))
            conn.execute(text("CREATE TRIGGER refuse_hold BEFORE INSERT ON custody_event FOR EACH ROW "
                              "EXECUTE FUNCTION refuse_hold()"))
        else:
            conn.execute(text("CREATE TRIGGER refuse_hold BEFORE INSERT ON custody_event "
                              "WHEN NEW.kind = 'legal_hold' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))


def test_a_catalogue_fault_while_tagging_at_the_kiosk_is_answered_and_the_hold_follows(samples, station_settings):
    # CI's run on 1790961: a database error part way through a tag (a deadlock, then) dropped the kiosk's
    # connection without an answer. Given a station whose catalogue refuses the hold a case number asks for
    root = Path(station_settings.mount_roots[0])
    engine = open_catalog(station_settings.database_url)
    try:
        with running_station(station_settings) as service:
            wait_for(lambda: service.endpoint_address is not None, 30, "the endpoint")
            assert service.endpoint_address is not None
            address = service.endpoint_address
            shutil.copytree(samples.sidecar_recorder, root / "GPSREC")
            wait_for(lambda: _devices(_kiosk(address, "GET", "/status")[1]).get("GPSREC", {}).get("state")
                     in ("done", "waiting-archive"), 90, "the dock to finish")
            session_id = _devices(_kiosk(address, "GET", "/status")[1])["GPSREC"]["dock_session"]
            _refuse_legal_hold_events(engine)
            # When an officer tags a recording with a case number at the kiosk
            code, body = _kiosk(address, "POST", f"/sessions/{session_id}/tag",
                                {"by": "020304", "case_number": "AB-2026-00042", "files": ["CLIPS/CLIP0002.wav"]})
            # Then the kiosk answers, naming the fault and what finishes the rest
            assert code == 503, body
            assert "the tag could not be finished" in body["error"] and "refused by the test" in body["error"]
            assert "nightly retention job" in body["error"]
            # and the station keeps answering
            assert _kiosk(address, "GET", "/status")[0] == 200
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_hold" + (" ON custody_event" if engine.dialect.name
                                                               == "postgresql" else "")))
        with Session(engine) as session:
            [tagged] = [r for r in session.exec(select(Recording)) if r.original_name == "CLIP0002.wav"]
            assert tagged.case_number == "AB-2026-00042" and not tagged.legal_hold  # the revision stands
        # and the retention job, once the catalogue takes the event, holds the recording
        applied = run_cli(station_env(station_settings), "retention", "apply")
        assert applied.exit_code == 0, applied.output
        with Session(engine) as session:
            held = session.get(Recording, tagged.id)
            assert held is not None and held.legal_hold
    finally:
        engine.dispose()


def test_a_device_redocked_at_once_is_a_new_docking_that_copies_nothing_again(samples, station_settings):
    root = Path(station_settings.mount_roots[0])
    station_settings = dataclasses.replace(station_settings, clear_devices="never")
    with running_station(station_settings) as service:
        shutil.copytree(samples.sidecar_recorder, root / "GPSREC")
        wait_for(lambda: _devices(service.snapshot()).get("GPSREC", {}).get("state") == "done", 90, "first dock")
        first = _devices(service.snapshot())["GPSREC"]["dock_session"]
        parked = root.parent / "GPSREC-unplugged"
        (root / "GPSREC").rename(parked)  # pulled out ...
        wait_for(lambda: _devices(service.snapshot())["GPSREC"]["state"] == "undocked", 30, "the undock")
        parked.rename(root / "GPSREC")  # ... and straight back in
        wait_for(lambda: _devices(service.snapshot())["GPSREC"]["dock_session"] not in (None, first)
                 and _devices(service.snapshot())["GPSREC"]["state"] == "done", 90, "the second dock")
        second = _devices(service.snapshot())["GPSREC"]
    assert (second["new"], second["skipped"]) == (0, 7)  # every file recognised as already ingested
    engine = open_catalog(station_settings.database_url)
    try:
        with Session(engine) as session:
            assert len(session.exec(select(Recording)).all()) == 7
    finally:
        engine.dispose()
