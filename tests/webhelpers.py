"""Helpers the web tests share: users with passwords, the form token of a page, signing in."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from catalog.models import DerivedMedia, Recording
from catalog.users import add_user, set_password

WEB_PASSWORD = "correct horse battery"


def add_web_users(engine: Engine, users: dict[str, str], *, password: str = WEB_PASSWORD,
                  officer_numbers: dict[str, str] | None = None, units: dict[str, list[str]] | None = None) -> None:
    """Add each user (name -> role) with *password*, an officer's own number and a supervisor's units."""
    with Session(engine) as session:
        for name, role in users.items():
            add_user(session, name, roles=[role], by="admin", officer_number=(officer_numbers or {}).get(name),
                     units=(units or {}).get(name, []))
            set_password(session, name, password, by="admin")
        session.commit()


def form_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', page)
    assert found, page
    return found.group(1)


def web_login(client: Any, name: str, password: str = WEB_PASSWORD) -> Any:
    """Sign in through the form (as a browser does); the response is the redirect or the refusal."""
    token = form_token(client.get("/login").text)
    return client.post("/login", data={"name": name, "password": password, "csrf": token}, follow_redirects=False)


def served_app(engine: Engine, settings: Any, **config: Any) -> tuple[Any, int]:
    """The web app over an ingested archive as `evidence serve` wires it (local store, the station key, document
    upload, the deployment settings; *config*: other WebConfig fields), and the id of a video with a browser
    copy."""
    from catalog import load_or_create_key
    from evidence.web import WebConfig, create_app
    from ingest.documents import document_attacher
    from storage import LocalStore

    with Session(engine) as session:
        video = session.exec(select(Recording).join(DerivedMedia, col(DerivedMedia.recording_id) == Recording.id)
                             .where(DerivedMedia.kind == "proxy", Recording.media_kind == "video")).first()
        assert video is not None and video.id is not None
    store = LocalStore(settings.store_path)
    key = load_or_create_key(settings.station_key_path)
    return create_app(WebConfig(engine=engine, store=store, key=key, case_pattern=settings.case_pattern,
                                attach=document_attacher(settings, store, key), settings=settings, **config)), video.id
