"""The administrator's pages: users and what they see, officers with certificate validity, stations, devices,
the retention policy — every change a `user_changed` or `registry_changed` custody event."""
from __future__ import annotations

import html
from datetime import date, timedelta

from sqlmodel import Session, col, select

from catalog import CustodyEvent, Device, Officer, Station
from catalog.registry import OfficerForm, certificate_state, validate_officer
from catalog.types import utcnow
from catalog.users import get_user
from tests.webhelpers import form_token, web_login


def test_certificate_states_and_officer_rules():
    today = date(2026, 11, 24)
    assert certificate_state(None, None, today) == "unknown"
    assert certificate_state(date(2026, 12, 1), None, today) == "not yet valid"
    assert certificate_state(None, date(2026, 11, 23), today) == "expired"
    assert certificate_state(None, today + timedelta(days=30), today) == "expiring"
    assert certificate_state(date(2020, 1, 1), today + timedelta(days=31), today) == "valid"
    problems = validate_officer(OfficerForm(number=" ", name="x" * 101, valid_from=date(2026, 2, 1),
                                            valid_until=date(2026, 1, 1)))
    assert problems == ["the officer number (警号) is required", "the officer's name is 101 characters; at most 100",
                        "the certificate ends (2026-01-01) before it starts (2026-02-01)"]


def _registry_events(engine):
    with Session(engine) as session:
        return [e.details for e in session.exec(select(CustodyEvent).where(CustodyEvent.kind == "registry_changed")
                                                .order_by(col(CustodyEvent.id)))]


def test_an_administrator_keeps_users_officers_stations_and_devices(web_site):
    client, engine = web_site
    with Session(engine) as session:
        session.add(Station(code="station-1", name="station-1", created_at=utcnow()))
        session.add(Device(serial="DSJ-0001", profile="generic-dcim", officer_number=None, first_seen=utcnow(),
                           last_seen=utcnow()))
        session.commit()
    web_login(client, "admin")
    page = client.get("/admin")
    assert page.status_code == 200 and "执法人员 010203 本人的记录" in page.text and "单位 U2" in page.text
    assert "officer 010203" in client.get("/admin?lang=en").text  # in the reader's language
    client.get("/admin?lang=zh_CN")
    token = form_token(page.text)

    added = client.post("/admin/users", data={
        "csrf": token, "action": "add", "name": "officer:赵六", "roles": "officer", "officer_number": "030405",
        "password": "a long password 1"}, follow_redirects=False)
    assert added.status_code == 303
    client.post("/admin/users", data={"csrf": token, "action": "scope", "name": "supervisor", "units": "U1，U2"})
    self_demotion = client.post("/admin/users", data={"csrf": token, "action": "roles", "name": "admin",
                                                      "roles": "clerk"})
    assert self_demotion.status_code == 400 and "不能取消自己的管理员角色（可由其他管理员办理）" in self_demotion.text
    with Session(engine) as session:
        assert get_user(session, "officer:赵六").officer_number == "030405"
        assert get_user(session, "supervisor").units == ["U1", "U2"]

    officers = client.get("/admin/officers")
    assert officers.status_code == 200 and "张三" in officers.text
    bad = client.post("/admin/officers", data={"csrf": token, "number": "040506", "valid_from": "2026-02-30"})
    assert bad.status_code == 400 and "生效日期：'2026-02-30' 不是日期（YYYY-MM-DD）" in html.unescape(bad.text)
    soon = (date.today() + timedelta(days=10)).isoformat()
    saved = client.post("/admin/officers", data={
        "csrf": token, "number": "040506", "name": "钱七", "unit_name": "一中队", "certificate_number": "ZF-123",
        "valid_from": "2024-01-01", "valid_until": soon}, follow_redirects=False)
    assert saved.status_code == 303
    assert "即将过期" in client.get("/admin/officers").text  # the certificate ends within 30 days

    stations = client.get("/admin/stations")
    assert stations.status_code == 200 and "station-1" in stations.text
    nowhere = client.post("/admin/stations/station-1", data={"csrf": token, "name": "城东站", "lat": "95", "lon": "1"})
    assert nowhere.status_code == 400 and "（95.0, 1.0）不是地球上的地点" in nowhere.text
    client.post("/admin/stations/station-1", data={"csrf": token, "name": "城东站", "lat": "39.9", "lon": "116.4",
                                                   "unit_number": "U1"})
    with Session(engine) as session:  # whose station it is: a recorder of another unit docking here is an alert
        station = session.get(Station, "station-1")
        assert station is not None and station.unit_number == "U1"
    unknown = client.post("/admin/stations/station-9", data={"csrf": token, "name": "x"})
    assert unknown.status_code == 400 and "没有采集站 'station-9'" in html.unescape(unknown.text)

    nobody = client.post("/admin/devices/DSJ-0001", data={"csrf": token, "officer_number": "999999"})
    assert nobody.status_code == 400 and "没有警号为 '999999' 的执法人员" in html.unescape(nobody.text)
    client.post("/admin/devices/DSJ-0001", data={"csrf": token, "officer_number": "040506", "unit_name": "一中队"})
    assert "钱七" in client.get("/admin/devices").text

    policy = client.get("/admin/policy")
    assert policy.status_code == 200 and 'id="routine">6<' in policy.text and "penalty-general" in policy.text
    assert "尚未采用任何保存策略" in policy.text
    # What is in force is the adopted policy, whatever this server's own terms
    from catalog.policy_adoption import PolicyTerms, adopt_policy
    from catalog.retention import DEFAULT_CASE_TYPES, RetentionPolicy

    with Session(engine) as session:
        adopt_policy(session, PolicyTerms.of(RetentionPolicy(12, DEFAULT_CASE_TYPES, "Asia/Shanghai"),
                                             disposal_approval="required"), by="admin", reason="新规定")
        session.commit()
    policy = client.get("/admin/policy")
    assert 'id="routine">12<' in policy.text and "本服务器运行的条款与已采用的不同" in policy.text

    with Session(engine) as session:
        station = session.get(Station, "station-1")
        assert station is not None and station.name == "城东站"
        assert session.exec(select(Device)).one().officer_number == "040506"
        assert session.exec(select(Officer).where(Officer.number == "040506")).one().certificate_number == "ZF-123"
    events = _registry_events(engine)
    assert [(e["register"], e["key"]) for e in events] == [("officer", "040506"), ("station", "station-1"),
                                                           ("device", "DSJ-0001")]
    assert events[2]["old"]["officer_number"] is None and events[2]["new"]["officer_number"] == "040506"
