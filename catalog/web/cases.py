"""A case in the browser: its recordings and text records together, with purposes, retention and export."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.background import BackgroundTask

from catalog.cases import case_as_json, get_case
from catalog.custody import CustodyKind, append_event
from catalog.errors import CaseNotFound, ExportFailed
from catalog.export import export_package, safe_name
from catalog.types import utcnow
from catalog.users import PERMISSIONS
from catalog.web.deps import DB, Caller, language, render
from catalog.web.recordings import signed_in

__all__ = ["router"]

router = APIRouter()


@router.get("/cases/{number}", response_class=HTMLResponse, include_in_schema=False)
def case_page(number: str, request: Request, session: DB) -> Response:
    who = signed_in(request, session, "view")
    if not isinstance(who, Caller):
        return who
    try:
        case = get_case(session, number)
    except CaseNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    append_event(session, CustodyKind.VIEWED, actor=who.user.name, details={"via": "web case page", "case": number})
    session.commit()
    return render(request, "case.html", language(request), user=who.user, csrf=who.web_session.csrf_token,
                  c=case_as_json(session, case), can_export=bool(PERMISSIONS["export"] & set(who.user.roles)))


@router.post("/cases/{number}/export", include_in_schema=False)
def case_export(number: str, request: Request, session: DB, csrf: Annotated[str, Form()]) -> Response:
    """The case's BagIt package as a ZIP download (built, validated, recorded, then sent and removed)."""
    who = signed_in(request, session, "export")
    if not isinstance(who, Caller):
        return who
    if csrf != who.web_session.csrf_token:
        raise HTTPException(403, "missing or wrong form token")
    folder = Path(tempfile.mkdtemp(prefix="evidence-web-export-"))
    out = folder / f"{safe_name(number)}.zip"
    try:
        export_package(session, request.app.state.config.store, out=out, by=who.user.name, now=utcnow(),
                       case_number=number)
    except (ExportFailed, CaseNotFound) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(409 if isinstance(exc, ExportFailed) else 404, str(exc)) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(out, media_type="application/zip", filename=out.name,
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
