"""Search in the browser and the API: every filter in the URL, pages, sorting, the caller's scope applied.

An officer's search is "my recordings" (their scope is their own); a supervisor with units sees their
units'; the others the whole archive. Bad input (a malformed time, a latitude of 200, page 10^20, SQL in a
text box) is a 400 page or a 422 answer that names the field, never a 500: every value is a bound parameter.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from catalog.access import cases_clause, reason_needed
from catalog.case_models import CaseStatus
from catalog.cases import list_cases
from catalog.listings import result_facts, station_codes
from catalog.models import IntegrityStatus, MediaKind
from catalog.recordings import recording_as_json
from catalog.saved_searches import saved_searches
from catalog.search import RETENTION_STATES, SORTS, SearchFilters, count_search, run_search
from evidence.web.deps import DB, Caller, SearchCaller, WebConfig, language, render, signed_in
from evidence.web.i18n import gettext_for
from evidence.web.maps import MapPoint, map_context
from evidence.web.search_form import (
    FIELDS,
    PAGE_SIZES,
    QUICK_RANGES,
    SearchInvalid,
    parse_search,
    quick_range,
    saved_query,
)

__all__ = ["BULK_ACTIONS", "BULK_CAP", "COUNT_CAP", "router", "search_view"]

router = APIRouter()
COUNT_CAP = 10_000  # a page counts matches up to this, then says "more than"
#: What can be done to a selection of results (evidence.web.bulk), each with the right it needs.
BULK_ACTIONS = {"link": "manage_cases", "tag": "stamp", "class": "classify", "export": "export"}
BULK_CAP = 1000  # the most recordings one bulk action takes ("all matching" beyond it is refused, not cut short)


def _link(query: dict[str, str], **changes: Any) -> str:
    merged = {**query, **{k: str(v) for k, v in changes.items()}}
    return "/?" + urlencode({k: v for k, v in merged.items() if v})


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def search_page(request: Request, session: DB) -> Response:
    who = signed_in(request, session, "search")
    return search_view(request, session, who, {k: request.query_params.get(k, "") for k in FIELDS})


def search_view(request: Request, session: Session, who: Caller, query: dict[str, str], *, status: int = 200,
                problems: Sequence[str] = (), bulk: Mapping[str, str] | None = None, saved_name: str = "") -> Response:
    """The search page for *query* (the filters as typed): its results, the caller's saved searches and the form
    to keep this one (evidence.web.saved_searches, *saved_name* as typed), and the bulk form (evidence.web.bulk)
    with *bulk*'s values kept; *problems* said when a form was refused."""
    lang = language(request)
    _ = gettext_for(lang)
    config: WebConfig = request.app.state.config
    actions = [a for a, right in BULK_ACTIONS.items() if who.may(right)]
    context: dict[str, Any] = {
        "user": who.user, "csrf": who.web_session.csrf_token, "q": query, "rows": [], "total": 0, "page": 1,
        "pages": [], "own": not who.scope.everything and bool(who.scope.officers) and not who.scope.units,
        "scope": who.scope, "kinds": [k.value for k in MediaKind], "integrities": [i.value for i in IntegrityStatus],
        "retentions": RETENTION_STATES, "sorts": SORTS, "sizes": PAGE_SIZES, "cap": COUNT_CAP,
        "stations": station_codes(session), "errors": list(problems),
        # a thumbnail is a view of the content: where the policy asks a reason before viewing, none is shown here
        "thumbnails": not reason_needed(request.app.state.config.access_reason, "view"),
        "facts": {}, "can_cases": who.may("cases"),
        "quick": [(name, _link(query, page="", **dict(zip(("from", "to"), quick_range(name, config.today()),
                                                           strict=True))))
                  for name in QUICK_RANGES], "bulk_actions": actions, "bulk": dict(bulk or {}), "bulk_cap": BULK_CAP,
        "query_string": urlencode({k: v for k, v in query.items() if v and k != "page"}),
        "saved": [(s.id, s.name, "/?" + s.query) for s in saved_searches(session, who.user)],
        "saved_name": saved_name, "savable": bool(saved_query(query)),
        "open_cases": [c.number for c in list_cases(session, status=CaseStatus.OPEN.value,
                                                    where=cases_clause(who.scope), limit=300)]
        if "link" in actions else []}
    # an officer's own: what is still to tag first (then newest first), and how many there are
    context["default_sort"] = "untagged" if context["own"] else "-captured"
    try:
        filters, page = parse_search(query, zone=ZoneInfo(config.zone), scope=who.scope,
                                     default_sort=context["default_sort"])
    except SearchInvalid as exc:
        context["errors"] += [p.text(_) for p in exc.problems]
        return render(request, "search.html", lang, 400, **context)
    if context["own"]:
        context["untagged"] = count_search(session, SearchFilters(tagged=False, scope=who.scope), cap=COUNT_CAP)
        context["untagged_link"] = _link({}, tagged="no")
    total = count_search(session, filters, cap=COUNT_CAP)
    last = max(1, -(-min(total, COUNT_CAP) // filters.limit))
    rows = [recording_as_json(r) for r in run_search(session, filters)] if page <= last else []
    context["facts"] = result_facts(session, [r["id"] for r in rows])
    local = request.app.state.templates.env.filters["local"]
    context["map"] = map_context(
        config.map_tiles, config.map_attribution,
        [MapPoint(r["id"], r["place"]["lat"], r["place"]["lon"], r["original_name"], local(r["captured_start"]))
         for r in rows if r["place"]], near=filters.near, pick=True)
    if page > last:
        context["errors"].append(_("There is no page {page}: the results end at page {last}.").format(page=page,
                                                                                                     last=last))
    window = sorted({1, last, *range(max(1, page - 2), min(last, page + 2) + 1)})
    context.update(rows=rows, total=total, page=page, last=last,
                   pages=[(n, _link(query, page=n)) for n in window],
                   prev=_link(query, page=page - 1) if page > 1 else None,
                   next=_link(query, page=page + 1) if page < last else None)
    return render(request, "search.html", lang, status, **context)


@router.get("/api/recordings", tags=["recordings"])
def api_search(request: Request, session: DB, who: SearchCaller,
               case: str | None = None, officer: str | None = None, device: str | None = None,
               station: str | None = None, unit: str | None = None,
               start: Annotated[str | None, Query(alias="from")] = None,
               end: Annotated[str | None, Query(alias="to")] = None,
               lat: str | None = None, lon: str | None = None, radius: str | None = None,
               purpose: str | None = None, kind: str | None = None, important: str | None = None,
               tagged: str | None = None,
               sensitivity: str | None = None, integrity: str | None = None, retention: str | None = None,
               sort: str = "captured",
               page: str | None = None, size: str | None = None) -> dict[str, Any]:
    """Search recordings (the page's filters: the caller's scope applies). `size` is 1–1000 per page,
    `page` 1–10000; `total` counts up to 10,001."""
    values = {"case": case, "officer": officer, "device": device, "station": station, "unit": unit, "from": start,
              "to": end, "lat": lat, "lon": lon, "radius": radius, "purpose": purpose, "kind": kind,
              "important": important, "tagged": tagged, "sensitivity": sensitivity, "integrity": integrity,
              "retention": retention, "sort": sort, "page": page,
              "size": size}
    try:
        filters, number = parse_search(values, zone=ZoneInfo(request.app.state.config.zone), scope=who.scope,
                                       default_sort="captured", default_size=100, sizes=tuple(range(1, 1001)))
    except SearchInvalid as exc:
        raise HTTPException(422, [p.text() for p in exc.problems]) from None
    return {"total": count_search(session, filters, cap=COUNT_CAP), "page": number, "size": filters.limit,
            "recordings": [recording_as_json(r) for r in run_search(session, filters)]}
