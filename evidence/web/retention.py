"""Retention and disposal in the browser: what is due and what soon will be (with the rule that decides
each), holds, and disposal batches — a clerk proposes a batch of what is due, a second, named person
(supervisor or admin, never the proposer) approves it and it is carried out; each batch ends with a signed
disposal record in WORM storage. The same catalogue calls as `evidence retention sweep|approve`.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from catalog.access import disposal_in_scope
from catalog.case_models import DisposalStatus
from catalog.disposal import Signer, approve_batch, plan_disposal, plan_pending_cases, start_sweep
from catalog.errors import DisposalError
from catalog.listings import recent_disposal_batches
from catalog.said import say
from catalog.types import utcnow
from evidence.web.deps import DB, Caller, WebConfig, done, language, render, signed_in
from storage import BackendUnavailable

__all__ = ["router"]

router = APIRouter()
PLAN_DAYS = 30
PLAN_ROWS = 200


def _page(request: Request, session: Session, who: Caller, status: int = 200, error: str | None = None) -> Response:
    config: WebConfig = request.app.state.config
    items = plan_disposal(session, config.policy, as_of=utcnow(), within_days=PLAN_DAYS, limit=PLAN_ROWS)
    batches = recent_disposal_batches(session, limit=50)
    pending = plan_pending_cases(session, config.policy, limit=PLAN_ROWS)
    # A supervisor limited to units sees only their units' recordings: nothing of the others, not even a name
    # (the same filter as `evidence retention plan|batches`).
    seen = disposal_in_scope(session, who.scope, plan=items, pending=pending, batches=batches)
    counts = {s: sum(1 for i in seen.plan if i.status == s) for s in ("due", "upcoming", "held")}
    return render(request, "retention.html", language(request), status, user=who.user,
                  csrf=who.web_session.csrf_token, items=seen.plan, counts=counts, batches=seen.batches,
                  error=error, pending=seen.pending,
                  days=PLAN_DAYS, rows=PLAN_ROWS, approval=config.disposal_approval,
                  can_propose=who.may("propose_disposal"), can_approve=who.may("approve_disposal"))


def _signer(config: WebConfig) -> Signer:
    if config.key is None:
        raise HTTPException(503, say("this server has no signing key, so it cannot write signed disposal records; "
                                     "run `evidence serve`, which loads EVIDENCE_STATION_KEY"))
    return Signer(config.station, config.key, tsa=config.settings)


@router.get("/retention", response_class=HTMLResponse, include_in_schema=False)
def retention(request: Request, session: DB) -> Response:
    who = signed_in(request, session, "retention")
    return _page(request, session, who)


@router.post("/retention/sweep", include_in_schema=False)
def sweep(request: Request, session: DB, csrf: Annotated[str, Form()]) -> Response:
    """Propose a batch of everything due now (or, without required approval, dispose of it at once)."""
    who = signed_in(request, session, "propose_disposal", csrf)
    config: WebConfig = request.app.state.config
    try:
        batch = start_sweep(session, config.store, config.policy, now=utcnow(), by=who.user.name,
                            approval_required=config.disposal_approval, signer=_signer(config))
    except DisposalError as exc:
        return _page(request, session, who, 400, str(exc))
    except BackendUnavailable as exc:
        return _page(request, session, who, 503, say("the evidence store cannot be reached now: {problem}",
                                                     problem=str(exc)))
    if batch is None:
        return done(request, who, RedirectResponse("/retention", status_code=303), "nothing_due")
    return done(request, who, RedirectResponse(f"/retention#batch-{batch.id}", status_code=303),
                "batch_proposed" if batch.status == DisposalStatus.AWAITING_APPROVAL else "batch_disposed",
                batch=str(batch.id))


@router.post("/retention/batches/{batch_id}/approve", include_in_schema=False)
def approve(batch_id: int, request: Request, session: DB, csrf: Annotated[str, Form()],
            confirm: Annotated[str, Form()] = "") -> Response:
    """A second person approves a proposed batch; it is carried out at once (each item re-checked first)."""
    who = signed_in(request, session, "approve_disposal", csrf)
    if confirm != "yes":
        return _page(request, session, who, 400, say("tick the box to confirm the disposal of batch {batch}",
                                                     batch=batch_id))
    config: WebConfig = request.app.state.config
    try:
        approve_batch(session, config.store, config.policy, batch_id, by=who.user.name, now=utcnow(),
                      signer=_signer(config), scope=who.scope)
    except DisposalError as exc:
        return _page(request, session, who, 400, str(exc))
    except BackendUnavailable as exc:
        return _page(request, session, who, 503, say("the evidence store cannot be reached now: {problem}",
                                                     problem=str(exc)))
    return done(request, who, RedirectResponse(f"/retention#batch-{batch_id}", status_code=303), "batch_approved",
                batch=str(batch_id))
