"""Every page rendered in zh-CN asks its catalog for nothing it lacks: each request the app serves (tests/evidence/
web/test_web_roles.GUARDED: pages, forms and the answers they lead to, in an order that gives each page something
to show), made by every role, and the sign-in pages. A text a page shows through `_()` without a translation is
recorded by evidence.web.i18n (UNTRANSLATED) and named here with the request that showed it."""
from __future__ import annotations

from sqlmodel import Session

from catalog.users import set_roles
from evidence.web import i18n
from tests.evidence.web.test_web_roles import GUARDED, PAGE, _send
from tests.webhelpers import form_token, web_login


def test_every_page_is_wholly_in_chinese_for_every_role(web_site):
    client, engine = web_site
    with Session(engine) as session:  # legal review's pages are a reviewer's: this administrator is one too
        set_roles(session, "admin", ["admin", "reviewer"], by="test")
        session.commit()
    i18n.UNTRANSLATED.clear()
    missing: dict[str, set[str]] = {}
    pages = 0

    def check(what: str) -> None:
        if i18n.UNTRANSLATED:
            missing[what] = set(i18n.UNTRANSLATED)
            i18n.UNTRANSLATED.clear()

    for path in ("/login", "/share/not-a-token"):
        client.get(path)
        check(f"GET {path}")
    for name in ("admin", "officer", "clerk", "supervisor", "auditor", "reviewer", "unit-2-supervisor"):
        client.cookies.clear()
        web_login(client, name)
        check(f"sign-in of {name}")
        token = form_token(client.get("/").text)
        for (method, _declared), (path, form, files, refusal) in GUARDED.items():
            if refusal != PAGE:
                continue
            answer = _send(client, method, path, form, files, token)
            if answer.status_code == 303 and answer.headers["location"] != "/login":
                answer = client.get(answer.headers["location"])  # the page a form post leads to
            pages += "text/html" in answer.headers.get("content-type", "")
            check(f"{name}: {method} {path}")
    assert missing == {}
    assert pages > 7 * 40  # pages were rendered (not sign-in redirects), in Chinese
    assert "检索音视频记录" in client.get("/").text
