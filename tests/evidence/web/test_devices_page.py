"""The recorder alerts in the browser (/devices, /api/devices, /metrics): a supervisor's inbox holds only their
units' recorders, says each alert in the reader's language and leads to the recorder's recordings."""
from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from catalog import ensure_station
from catalog.devices import add_device, device_docked
from catalog.models import DockSession, Recording
from catalog.types import utcnow
from tests.webhelpers import web_login


def _fleet(engine) -> None:
    """OK-1 (officer 010203, unit U1) docked yesterday with its clock 2 minutes off; AWAY-2 (030405, U2), which
    made recording 3, silent for 10 days."""
    now = utcnow()
    with Session(engine) as session:
        ensure_station(session, "station-1", name="一号站")
        for serial, officer, unit, days, offset in (("OK-1", "010203", "U1", 1, -120.0),
                                                    ("AWAY-2", "030405", "U2", 10, 1.0)):
            add_device(session, serial, profile="cn-enforcement-recorder", officer_number=officer, unit_number=unit,
                       by="admin", now=now - timedelta(days=40))
            device_docked(session, serial, profile="cn-enforcement-recorder", officer_number=None,
                          now=now - timedelta(days=days))
            session.add(DockSession(station_code="station-1", device_serial=serial, profile="cn-enforcement-recorder",
                                    source_path="/media/x", started_at=now - timedelta(days=days),
                                    clock_offset_s=offset))
        recording = session.get(Recording, 3)
        assert recording is not None
        recording.device_serial = "AWAY-2"
        session.add(recording)
        session.commit()


def test_a_supervisor_goes_from_their_units_alert_to_the_recorders_recordings(web_site):
    client, engine = web_site
    _fleet(engine)
    web_login(client, "unit-2-supervisor")
    page = client.get("/devices")
    assert page.status_code == 200 and 'data-kind="silent"' in page.text
    assert "执法记录仪 AWAY-2（执法人员 030405）已 10 天未接入采集站" in page.text
    assert "OK-1" not in page.text and 'data-kind="clock_drift"' not in page.text  # another unit's recorder
    link = "/?device=AWAY-2&amp;sort=-captured"
    assert f'href="{link}"' in page.text
    results = client.get(link.replace("&amp;", "&"))
    assert results.status_code == 200 and 'href="/recordings/3"' in results.text
    history = client.get("/devices?serial=AWAY-2")  # the recorder's own page: its docks and assignments
    assert 'id="device-docks"' in history.text and "station-1" in history.text
    assert 'id="device-assignments"' in history.text
    assert client.get("/devices?serial=OK-1").status_code == 404  # another unit's: said as not there
    api = client.get("/api/devices").json()
    assert [d["serial"] for d in api["devices"]] == ["AWAY-2"] and [a["kind"] for a in api["alerts"]] == ["silent"]
    assert "has not docked for 10 days" in client.get("/devices?lang=en").text


def test_the_whole_agency_sees_every_alert_an_officer_none_and_the_metrics_count_them(web_site):
    client, engine = web_site
    _fleet(engine)
    web_login(client, "clerk")
    page = client.get("/devices")
    assert 'data-kind="silent"' in page.text and 'data-kind="clock_drift"' in page.text
    assert "执法记录仪 OK-1 最近一次接入时时钟与采集站相差 -120 秒（超过 60 秒）" in page.text
    assert 'id="device-register"' in page.text and "-120" in page.text
    metrics = client.get("/metrics").text
    assert 'evidence_device_alerts{kind="silent"} 1.0' in metrics
    assert 'evidence_device_alerts{kind="clock_drift"} 1.0' in metrics
    assert 'evidence_device_alerts{kind="unreviewed"} 0.0' in metrics
    client.cookies.clear()
    web_login(client, "officer")
    assert client.get("/devices").status_code == 403 and client.get("/api/devices").status_code == 403
