"""The recorder register and its alerts in the browser (`/devices`, `/api/devices`): a supervisor's inbox of
what needs acting on, scoped to their units (catalog.device_alerts), each alert leading to the recorder's
recordings; below it the register (catalog.devices). Changing the register is the administrator's device form."""
from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from catalog.device_alerts import DeviceAlert, device_alerts
from catalog.devices import assignments_of, device_register, docks_of, scope_units, statuses_of
from catalog.said import said_in, say
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
def devices_page(request: Request, session: DB, serial: str = "") -> Response:
    """The alerts of the caller's units' recorders, then their register; with *serial*, that recorder's history
    (assignments, statuses, its latest docks with the files and bytes read off it) first."""
    who = signed_in(request, session, "devices")
    lang = language(request)
    translate = gettext_for(lang)
    alerts = [{"kind": a.kind, "serial": a.serial, "officer": a.officer_number, "unit": a.unit_number,
               "since": a.since, "message": said_in(a.message, translate), "link": _recordings_link(a)}
              for a in _alerts(request, session, who)]
    rows = device_register(session, units=scope_units(who.scope))
    history = None
    if serial:
        shown = [r for r in rows if r.device.serial == serial]
        if not shown:  # outside the caller's units: said exactly as a device that is not there
            raise HTTPException(404, say("no device {serial}", serial=repr(serial[:64])))
        history = {"row": shown[0], "assignments": assignments_of(session, serial),
                   "statuses": statuses_of(session, serial), "docks": docks_of(session, serial)}
    return render(request, "devices.html", lang, user=who.user, csrf=who.web_session.csrf_token, alerts=alerts,
                  rows=rows, may_change=who.may("manage_devices"), history=history)


@router.get("/api/devices", tags=["devices"])
def api_devices(request: Request, session: DB, who: DevicesCaller) -> dict[str, Any]:
    """The caller's units' recorders (every recorder for agency-wide roles) and their alerts."""
    return {"devices": [r.as_json() for r in device_register(session, units=scope_units(who.scope))],
            "alerts": [a.as_json() for a in _alerts(request, session, who)]}
