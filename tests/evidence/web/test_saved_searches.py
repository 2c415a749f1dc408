"""Saved searches on the search page (evidence.web.saved_searches): kept from the page's own form, said after the
redirect, run with one click; attacked with junk in the posted filters, a search the page refuses, a hostile name,
another user's id, and a saved search run after its owner's scope shrank."""
from __future__ import annotations

import html
import re

from sqlmodel import Session

from catalog.saved_searches import saved_searches
from catalog.users import get_user, set_scope
from tests.webhelpers import form_token, web_login


def _shown_ids(text: str) -> set[int]:
    return {int(n) for n in re.findall(r'<div class="name"><strong><a href="/recordings/(\d+)"', text)}


def _saved(engine, name: str) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(s.name, s.query) for s in saved_searches(session, get_user(session, name))]


def _keep(client, engine, user: str, name: str, query: str) -> int:
    """Sign *user* in and keep *query* as their search *name* through the page's form; its id."""
    web_login(client, user)
    client.post("/saved-searches", data={"csrf": form_token(client.get("/").text), "name": name, "query": query})
    with Session(engine) as session:
        kept = [s.id for s in saved_searches(session, get_user(session, user)) if s.name == name]
    assert len(kept) == 1 and kept[0] is not None
    return kept[0]


def test_a_clerk_keeps_the_search_on_screen_and_runs_it_again_with_one_click(web_site):
    client, engine = web_site
    web_login(client, "clerk")
    page = client.get("/", params={"station": "station-1", "kind": "video", "page": "1"})
    assert page.status_code == 200 and 'id="save-search"' in page.text
    form = re.search(r'id="save-search".*?name="query" value="([^"]*)"', page.text, re.S)
    assert form is not None
    query = html.unescape(form.group(1))
    # what the form posts is the search on screen; a stray parameter or a page number added to it is not kept
    kept = client.post("/saved-searches", data={"csrf": form_token(page.text), "name": " 一号站录像 ",
                                                "query": query + "&page=3&csrf=x&evil=1"}, follow_redirects=False)
    assert kept.status_code == 303 and kept.headers["location"] == "/?station=station-1&kind=video"
    shown = client.get(kept.headers["location"])
    assert "检索已保存为“一号站录像”。" in shown.text  # said once after the redirect
    assert "检索已保存为" not in client.get("/").text
    assert _saved(engine, "clerk") == [("一号站录像", "station=station-1&kind=video")]
    link = re.search(r'<span class="saved-search"><a href="([^"]+)">一号站录像</a>', client.get("/").text)
    assert link is not None
    again = client.get(html.unescape(link.group(1)))
    assert _shown_ids(again.text) == _shown_ids(shown.text) == {1, 3}
    assert client.get("/api/saved-searches").json()["saved_searches"][0]["query"] == "station=station-1&kind=video"


def test_a_search_the_page_refuses_is_not_kept_and_the_name_typed_stays(web_site):
    client, engine = web_site
    web_login(client, "clerk")
    token = form_token(client.get("/").text)
    refused = client.post("/saved-searches", data={"csrf": token, "name": "坏日期", "query": "from=2026-13-45"})
    assert refused.status_code == 400
    assert "起始时间" in refused.text and 'value="坏日期"' in refused.text  # the box named, the name kept
    assert refused.text.count('class="error" role="alert"') == 1  # said once, not by the form and the page both
    empty = client.post("/saved-searches", data={"csrf": token, "name": "全部", "query": "page=2"})
    assert empty.status_code == 400 and "没有可保存的内容" in empty.text  # only a page number: nothing to keep
    for nothing in ("size=96", "sort=size&size=48", "case=%20%20&purpose=+"):  # an order or blanks: no search
        kept = client.post("/saved-searches", data={"csrf": token, "name": "空", "query": nothing})
        assert kept.status_code == 400 and "没有可保存的内容" in kept.text, nothing
    assert 'id="save-search"' not in client.get("/?size=96").text  # nor offered to keep
    nameless = client.post("/saved-searches", data={"csrf": token, "name": "   ", "query": "kind=video"})
    assert nameless.status_code == 400 and "请为检索命名" in nameless.text
    bidi = client.post("/saved-searches", data={"csrf": token, "name": "案\u202e件", "query": "kind=video"})
    assert bidi.status_code == 400 and "控制字符" in bidi.text
    assert _saved(engine, "clerk") == []


def test_a_hostile_name_is_shown_as_text(web_site):
    client, _engine = web_site
    web_login(client, "clerk")
    token = form_token(client.get("/").text)
    name = '"><script>alert(1)</script>'
    assert client.post("/saved-searches", data={"csrf": token, "name": name, "query": "kind=video"},
                       follow_redirects=False).status_code == 303
    text = client.get("/").text
    assert "<script>alert(1)</script>" not in text and "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_nobody_lists_runs_or_deletes_another_users_saved_search(web_site):
    client, engine = web_site
    theirs = _keep(client, engine, "clerk", "档案员的", "kind=video")
    client.cookies.clear()
    web_login(client, "supervisor")
    page = client.get("/")
    assert "档案员的" not in page.text
    assert client.get("/api/saved-searches").json() == {"saved_searches": []}
    gone = client.post(f"/saved-searches/{theirs}/delete", data={"csrf": form_token(page.text)})
    assert gone.status_code == 404
    assert _saved(engine, "clerk") == [("档案员的", "kind=video")]
    forged = client.post(f"/saved-searches/{theirs}/delete", data={"csrf": "not-the-token"})
    assert forged.status_code in (400, 403) and _saved(engine, "clerk") == [("档案员的", "kind=video")]


def test_a_saved_search_runs_with_the_scope_its_owner_has_today(web_site):
    """Saved while the supervisor's units were U1 and U2, run after U2 was taken away: only U1's recordings."""
    client, engine = web_site
    with Session(engine) as session:
        set_scope(session, "unit-2-supervisor", officer_number=None, units=["U1", "U2"], by="admin")
        session.commit()
    web_login(client, "unit-2-supervisor")
    kept = client.post("/saved-searches", data={"csrf": form_token(client.get("/").text), "name": "全部录像",
                                                "query": "kind=video"}, follow_redirects=False)
    assert _shown_ids(client.get(kept.headers["location"]).text) == {1, 3}
    with Session(engine) as session:
        set_scope(session, "unit-2-supervisor", officer_number=None, units=["U1"], by="admin")
        session.commit()
    assert _shown_ids(client.get("/?" + _saved(engine, "unit-2-supervisor")[0][1]).text) == {1}


def test_deleting_ones_own_says_so_after_the_redirect(web_site):
    client, engine = web_site
    mine = _keep(client, engine, "officer", "未标注", "tagged=no")
    gone = client.post(f"/saved-searches/{mine}/delete", data={"csrf": form_token(client.get("/").text)},
                       follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/"
    assert "已删除保存的检索“未标注”。" in client.get("/").text
    assert _saved(engine, "officer") == []
