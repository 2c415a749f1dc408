"""The recorder register and its alerts in the browser (`/devices`, `/api/devices`): a supervisor's inbox of
what needs acting on, scoped to their units (catalog.device_alerts), each alert leading to the recorder's
recordings; below it the register (catalog.devices). Changing the register is the administrator's device form."""
from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from catalog.device_alerts import DeviceAlert, device_alerts
from catalog.devices import device_register, scope_units
from catalog.said import said_in
from catalog.types import utcnow
from evidence.web.deps import DB, Caller, WebConfig, api_caller, language, render, signed_in
from evidence.web.i18n import gettext_for

__all__ = ["router"]

router = APIRouter()
DevicesCaller = Annotated[Caller, api_caller("devices")]



def _recordings_link(alert: DeviceAlert) -> str:
    """The search that shows what the alert is about: the recorder's recordings (while lost: since it was)."""
    query = {"device": alert.serial, "sort": "-captured"}
    return "/?" + urlencode(query)


def _alerts(request: Request, session: DB, who: Caller) -> list[DeviceAlert]:
    config: WebConfig = request.app.state.config
    return device_alerts(session, config.device_rules, utcnow(), units=scope_units(who.scope))


@router.get("/devices", response_class=HTMLResponse, include_in_schema=False)
def devices_page(request: Request, session: DB) -> Response:
    """The alerts of the caller's units' recorders, then their register."""
    who = signed_in(request, session, "devices")
    lang = language(request)
    translate = gettext_for(lang)
    alerts = [{"kind": a.kind, "serial": a.serial, "officer": a.officer_number, "unit": a.unit_number,
               "since": a.since, "message": said_in(a.message, translate), "link": _recordings_link(a)}
              for a in _alerts(request, session, who)]
    return render(request, "devices.html", lang, user=who.user, csrf=who.web_session.csrf_token, alerts=alerts,
                  rows=device_register(session, units=scope_units(who.scope)), may_change=who.may("manage_devices"))


@router.get("/api/devices", tags=["devices"])
def api_devices(request: Request, session: DB, who: DevicesCaller) -> dict[str, Any]:
    """The caller's units' recorders (every recorder for agency-wide roles) and their alerts."""
    return {"devices": [r.as_json() for r in device_register(session, units=scope_units(who.scope))],
            "alerts": [a.as_json() for a in _alerts(request, session, who)]}
