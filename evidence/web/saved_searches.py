"""Saved searches on the search page (catalog.saved_searches): keep the filters on screen under a name, run one
with a click, delete one; and the caller's list in the API. Only filters are kept: a saved search runs with the
caller's scope of the day. A search the page would refuse (a malformed time, a latitude of 200) is not kept."""
from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from catalog.errors import SavedSearchInvalid
from catalog.said import say
from catalog.saved_searches import delete_saved_search, save_search, saved_searches
from evidence.web.deps import DB, SearchCaller, done, signed_in
from evidence.web.search import search_view
from evidence.web.search_form import SearchInvalid, parse_search, query_of, saved_query

__all__ = ["router"]

router = APIRouter()


@router.post("/saved-searches", include_in_schema=False)
def keep_search(request: Request, session: DB, csrf: Annotated[str, Form()], name: Annotated[str, Form()] = "",
                query: Annotated[str, Form()] = "") -> Response:
    """Keep the search the form was posted from as *name*; back to that search, saying so. A refusal shows the
    search again with the reason and the name as typed."""
    who = signed_in(request, session, "search", csrf)
    searched = query_of(query)
    try:
        parse_search(searched, zone=ZoneInfo(request.app.state.config.zone), scope=who.scope)
        saved = save_search(session, who.user, name, saved_query(searched))
    except SearchInvalid:  # the page says each problem itself, reading the same filters
        return search_view(request, session, who, searched, status=400, saved_name=name)
    except SavedSearchInvalid as exc:
        session.rollback()
        return search_view(request, session, who, searched, status=400, saved_name=name,
                           problems=exc.problems)  # said in the page's language (deps.render)
    return done(request, who, RedirectResponse("/?" + saved.query, status_code=303), "search_saved",
                search=saved.name)


@router.post("/saved-searches/{saved_id}/delete", include_in_schema=False)
def forget_search(saved_id: int, request: Request, session: DB, csrf: Annotated[str, Form()]) -> Response:
    """Delete one of the caller's saved searches; back to the search page, saying so. Another user's, or none: 404."""
    who = signed_in(request, session, "search", csrf)
    name = delete_saved_search(session, who.user, saved_id)
    if name is None:
        raise HTTPException(404, say("you have no saved search {saved}", saved=saved_id))
    return done(request, who, RedirectResponse("/", status_code=303), "search_forgotten", search=name)


@router.get("/api/saved-searches", tags=["recordings"])
def api_saved_searches(session: DB, who: SearchCaller) -> dict[str, Any]:
    """The caller's saved searches, by name: each one's filters (`query`, as `/api/recordings` takes them)."""
    return {"saved_searches": [{"id": s.id, "name": s.name, "query": s.query,
                                "saved_at": s.saved_at.isoformat() if s.saved_at else None}
                               for s in saved_searches(session, who.user)]}
