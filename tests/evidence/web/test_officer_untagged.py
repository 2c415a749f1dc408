"""An officer's search page puts what they still have to tag first and says how many there are; they tag them in
one go with one reason, and the page then says none are left."""
from __future__ import annotations

import re

from tests.webhelpers import form_token, web_login


def _cards(page: str) -> list[str]:
    return re.findall(r'<div class="card" data-id="(\d+)">', page)


def test_an_officer_finds_their_untagged_recordings_first_and_tags_them_at_once(web_site):
    client, _engine = web_site
    web_login(client, "officer")  # officer 010203: recordings 1 and 2, neither tagged yet
    client.post("/recordings/2/stamp", data={"csrf": form_token(client.get("/").text), "purpose": "巡查",
                                             "reason": "补充"})
    page = client.get("/").text
    assert "您有 1 条记录尚未标注" in page and _cards(page) == ["1", "2"]  # untagged first, though older
    assert 'value="untagged" selected' in page
    assert _cards(client.get("/", params={"tagged": "no"}).text) == ["1"]
    assert _cards(client.get("/", params={"sort": "-captured"}).text) == ["2", "1"]

    token = form_token(page)
    done = client.post("/recordings/bulk", data={"csrf": token, "action": "tag", "purpose": "日常巡查",
                                                 "reason": "下班前补标", "every": "matching", "query": "tagged=no"})
    assert done.status_code == 200 and "已标注 1 条录像。" in done.text
    assert "尚未标注" not in client.get("/").text.split('id="count"')[0]
    assert client.get("/", params={"tagged": "maybe"}).status_code == 400


def test_a_clerk_gets_no_officers_reminder(web_site):
    client, _engine = web_site
    web_login(client, "clerk")
    page = client.get("/").text
    assert 'id="untagged"' not in page and 'value="-captured" selected' in page
