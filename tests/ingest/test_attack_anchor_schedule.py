"""The custody chain head is anchored in WORM storage by default, not only when a scheduler runs (issue 13, item 4):
after every dock session (`evidence ingest`, `station watch`) and every EVIDENCE_ANCHOR_INTERVAL_S by the station.
An insider who then cuts the tail of the chain with SQL (and rewrites the head row) is caught by `evidence verify`."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
from sqlmodel import Session, select

from catalog import CustodyKind, append_event, open_catalog
from catalog.models import CustodyEvent
from ingest.station.service import read_status
from storage import LocalStore
from tests.cli import run_cli
from tests.conftest import running_station, wait_for
from tests.helpers.custody import cut_tail, head_event_id, newest_anchor
from tests.helpers.media_work import backlog
from tests.helpers.webserver import start_serve, stop_serve

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def test_evidence_ingest_anchors_the_dock_session_so_its_events_cannot_be_cut(samples, env, tmp_path):
    result = run_cli(env, "ingest", str(samples.cn_recorder), "--json")
    assert result.exit_code == 0, result.output
    dock = json.loads(result.stdout)["dock_session"]
    engine = open_catalog(env["EVIDENCE_DATABASE_URL"])
    try:
        anchor = newest_anchor(engine)
        assert anchor is not None and anchor.last_event_id == head_event_id(engine)
        store = LocalStore(tmp_path / "home" / "worm")
        body = json.loads(store.get_record(anchor.record_name))["manifest"]
        assert body["reason"] == f"dock session {dock}"
        with Session(engine) as session:
            undocked = session.exec(select(CustodyEvent.id).where(CustodyEvent.kind == "undocked")).one()
            assert undocked is not None and undocked <= anchor.last_event_id
        # The insider removes the dock session's last events (undocked and what followed) and rewrites the head.
        cut_tail(engine, undocked - 1)
    finally:
        engine.dispose()
    verify = run_cli(env, "verify", "--all")
    assert verify.exit_code == 4, verify.output
    assert f"PROBLEM [anchor] {anchor.record_name}: written" in verify.output
    assert f"the catalogue has no event {anchor.last_event_id}; the chain now ends at event {undocked - 1}" \
        in verify.output


def test_station_anchors_after_each_dock_session_and_every_interval(samples, station_settings):
    settings = dataclasses.replace(station_settings, anchor_interval_s=0.5)
    engine = open_catalog(settings.database_url)
    root = settings.mount_roots[0]
    store = LocalStore(settings.store_path)

    def reasons() -> list[str]:
        return [json.loads(store.get_record(name))["manifest"].get("reason", "")
                for name in store.list_records("custody/")]

    try:
        with running_station(settings):
            shutil.copytree(samples.dcim_camera, f"{root}/CAMERA")
            wait_for(lambda: [d["state"] for d in read_status(settings.status_path).get("devices", [])] == ["done"],
                     90, "the dock to finish")
            # Then the dock's last event is under an anchor: the one the dock asked for, or an interval anchor that
            # reached the head first (an anchored head is never anchored twice, so its label may be either)
            with Session(engine) as session:
                undocked = session.exec(select(CustodyEvent.id).where(
                    CustodyEvent.kind == CustodyKind.UNDOCKED.value)).one()
            assert undocked is not None
            wait_for(lambda: (a := newest_anchor(engine)) is not None and a.last_event_id >= undocked, 30,
                     "an anchor covering the dock session")
            assert any(r.startswith("dock session") or r == "hourly (EVIDENCE_ANCHOR_INTERVAL_S)" for r in reasons())
            # The station's render thread anchors what its pass recorded ("media work"): once that pass is over and
            # anchored, only the interval can anchor what comes next (before, its anchor could cover the event below)
            wait_for(lambda: backlog(engine) == [] and (a := newest_anchor(engine)) is not None
                     and a.last_event_id == head_event_id(engine), 60, "the media work's pass to end, anchored")
            # Something happens in the archive that no dock session follows (a clerk views a recording):
            with Session(engine) as session:
                viewed = append_event(session, CustodyKind.VIEWED, actor="clerk", details={"page": "recording"})
                session.commit()
            wait_for(lambda: (a := newest_anchor(engine)) is not None and viewed.id is not None
                     and a.last_event_id >= viewed.id, 30, "the interval anchor to cover the viewed event")
        assert "hourly (EVIDENCE_ANCHOR_INTERVAL_S)" in reasons()
    finally:
        engine.dispose()


def test_evidence_serve_alone_anchors_web_activity_every_interval(env, tmp_path):
    # Where only the web app runs (no station, no scheduler), what happens there must still reach WORM storage.
    assert run_cli(env, "user", "add", "clerk:李四", "--role", "clerk", "--by", "admin").exit_code == 0
    engine = open_catalog(env["EVIDENCE_DATABASE_URL"])
    proc, _ = start_serve({**os.environ, **env, "EVIDENCE_ANCHOR_INTERVAL_S": "0.5"})
    try:
        with Session(engine) as session:  # a sign-in, a view: anything the web app appends
            viewed = append_event(session, CustodyKind.VIEWED, actor="clerk:李四", details={"via": "web page"})
            session.commit()
        wait_for(lambda: (a := newest_anchor(engine)) is not None and viewed.id is not None
                 and a.last_event_id >= viewed.id, 30, "evidence serve to anchor the viewed event")
        store = LocalStore(Path(env["EVIDENCE_HOME"]) / "worm")
        reasons = [json.loads(store.get_record(name))["manifest"].get("reason", "")
                   for name in store.list_records("custody/")]
        assert "every 0.5 s (evidence serve)" in reasons
    finally:
        stop_serve(proc)
        engine.dispose()
