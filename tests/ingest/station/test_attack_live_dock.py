"""Attack (issue 14 review): `station watch` starting while a one-shot `evidence ingest` of the same station runs in
another process must neither close that live dock session as `interrupted` (a false custody event) nor replay its
journal under a second dock session."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, select

from catalog import CustodyEvent, DockSession, Recording
from tests.conftest import running_station, wait_for


def test_a_station_starting_beside_a_live_one_shot_ingest_leaves_its_dock_alone(samples, station_settings, engine):
    script = Path(__file__).with_name("_slow_oneshot.py")
    proc = subprocess.Popen([sys.executable, str(script), str(station_settings.home), station_settings.database_url,
                             str(samples.dcim_camera)], stdout=subprocess.PIPE, text=True)
    try:
        def begun() -> bool:
            with Session(engine) as session:
                return session.exec(select(DockSession)).first() is not None

        wait_for(begun, 60, "the one-shot's dock session")
        with running_station(station_settings) as service:
            # the station has started, closed what was abandoned and swept the journals at least once
            wait_for(lambda: station_settings.status_path.exists() and service.snapshot()["running"], 30,
                     "the station to run")
            wait_for(lambda: proc.poll() is not None, 300, "the one-shot ingest to finish")
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "DOCK 1 errors []" in out
    with Session(engine) as session:
        docks = session.exec(select(DockSession)).all()
        undocked = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "undocked")).all()
        recordings = session.exec(select(Recording)).all()
        failed = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "ingest_failed")).all()
    assert len(docks) == 1 and docks[0].result == "complete"
    assert [e.details.get("result") for e in undocked] == ["complete"]
    assert failed == [] and {r.integrity_status for r in recordings} != {"unreadable"}
