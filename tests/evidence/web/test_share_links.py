"""Share links (issue 18, part 3) attacked as an outsider would: a recipient without an account opens an approved
release with the one-time code and downloads it, every download recorded; wrong codes are counted and the fifth
revokes the link; the code works once (a forwarded link, a second browser); an expired, revoked or withdrawn link
refuses; an item whose class was raised is no longer served; an unknown token says nothing. On SQLite and
PostgreSQL, on the local WORM store and SeaweedFS."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from catalog import CustodyEvent, CustodyKind, Recording, ShareLink, open_catalog
from catalog.access import AccessRefused
from catalog.classification import classify_recordings
from catalog.disposal import Signer
from catalog.releases import decide_release, propose_release, withdraw_release
from catalog.shares import MAX_FAILURES, ShareRefused, create_share, revoke_share
from catalog.signing import load_or_create_key
from catalog.types import utcnow
from catalog.users import add_user, get_user
from evidence.web import WebConfig, create_app
from ingest.config import Settings
from ingest.pipeline import ingest_folder
from tests.ingest.test_redaction_copies import _device
from tests.webhelpers import form_token


def _events(session: Session, kind: CustodyKind, recording_id: int) -> list[CustodyEvent]:
    return list(session.exec(select(CustodyEvent).where(CustodyEvent.kind == kind.value,
                                                        CustodyEvent.recording_id == recording_id)
                             .order_by(col(CustodyEvent.id))))


def _open(client: TestClient, path: str, code: str):
    page = client.get(path)
    return client.post(path, data={"code": code, "csrf": form_token(page.text)}, follow_redirects=False)


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_recipient_opens_a_shared_release_once_and_every_download_is_recorded(tmp_path, catalog_url, worm_store):
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url})
    engine = open_catalog(catalog_url)
    try:
        ingest_folder(_device(tmp_path / "card"), settings=settings, engine=engine, store=worm_store)
        key = load_or_create_key(settings.station_key_path)
        with Session(engine) as session:
            clip = session.exec(select(Recording).where(Recording.original_name == "MVI_0001.MP4")).one()
            photo = session.exec(select(Recording).where(Recording.original_name == "IMG_0002.JPG")).one()
            clerk = add_user(session, "clerk", roles=["clerk"], by="admin")
            add_user(session, "supervisor", roles=["supervisor"], by="admin")
            reviewer = add_user(session, "reviewer", roles=["reviewer"], by="admin")
            officer = add_user(session, "officer", roles=["officer"], by="admin", officer_number="000000")
            session.commit()
            release = propose_release(session, clerk, kind="transfer", title="无照经营案", recipient="张律师",
                                      legal_basis="行政诉讼法", recordings=[clip, photo], reason="应诉",
                                      now=utcnow())
            assert release.id is not None
            # Only an approved release is shared, and only by those who may hand one over
            with pytest.raises(ShareRefused, match="only an approved release is shared"):
                create_share(session, clerk, release.id, recipient="张律师", days=7, now=utcnow())
            decide_release(session, worm_store, reviewer, release.id, approve=True, note="同意",
                           signer=Signer("station-1", key), now=utcnow())
            with pytest.raises(Exception, match="may not share"):
                create_share(session, officer, release.id, recipient="张律师", days=7, now=utcnow())
            with pytest.raises(ShareRefused, match="1 to 90 days"):
                create_share(session, clerk, release.id, recipient="张律师", days=365, now=utcnow())
            # who may not download the items (another unit's supervisor) may not hand them over: refused, recorded
            outsider = add_user(session, "U9-supervisor", roles=["supervisor"], by="admin", units=["U9"])
            session.commit()
            with pytest.raises(AccessRefused):
                create_share(session, outsider, release.id, recipient="某人", days=7, now=utcnow())
            assert _events(session, CustodyKind.ACCESS_REFUSED, clip.id or 0)[-1].details["action"] == "share"
            shared = create_share(session, clerk, release.id, recipient="张律师（某律师事务所）", days=7, now=utcnow())
            guessed = create_share(session, clerk, release.id, recipient="李律师", days=7, now=utcnow())
            third = create_share(session, clerk, release.id, recipient="王书记员", days=1, now=utcnow())
            ids = {"clip": clip.id or 0, "photo": photo.id or 0}
            shared_id, guessed_id, release_id = shared.link.id or 0, guessed.link.id, release.id
            shas = {clip.id: clip.sha256, photo.id: photo.sha256}
            # the code is never kept, only hashes
            row = session.get(ShareLink, shared.link.id)
            assert row is not None and shared.code not in (row.code_sha256, row.token_sha256)
            assert shared.token not in row.token_sha256
        config = WebConfig(engine=engine, store=worm_store, key=key)
        with TestClient(create_app(config)) as browser, TestClient(create_app(config)) as other:
            # An unknown token says nothing; the link asks for its code; the items are not served without it
            assert browser.get("/share/not-a-token").status_code == 404
            assert 'id="share-code"' in browser.get(shared.path).text
            assert browser.get(f"{shared.path}/items/{ids['clip']}").status_code == 403
            # Wrong codes are counted and recorded
            wrong = _open(browser, shared.path, "00000000" if shared.code != "00000000" else "11111111")
            assert wrong.status_code == 403 and f"再错 {MAX_FAILURES - 1} 次" in wrong.text
            # The right code: this browser gets the items, with their hashes
            opened = _open(browser, shared.path, shared.code)
            assert opened.status_code == 303, opened.text
            listing = browser.get(shared.path)
            assert 'id="share-items"' in listing.text and shas[ids["clip"]] in listing.text
            # A download that skips the first byte is a download too; its repeat within the hour is not counted again
            skipped = browser.get(f"{shared.path}/items/{ids['photo']}", headers={"Range": "bytes=1-"})
            assert skipped.status_code == 206
            assert browser.get(f"{shared.path}/items/{ids['photo']}", headers={"Range": "bytes=1-"}).status_code == 206
            # Downloads: whole, then a player's later range (not counted again), then whole again
            whole = browser.get(f"{shared.path}/items/{ids['clip']}")
            assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == shas[ids["clip"]]
            assert "attachment" in whole.headers["content-disposition"]
            later = browser.get(f"{shared.path}/items/{ids['clip']}", headers={"Range": "bytes=100-199"})
            assert later.status_code == 206 and later.content == whole.content[100:200]
            assert browser.get(f"{shared.path}/items/{ids['clip']}").status_code == 200
            photo_bytes = browser.get(f"{shared.path}/items/{ids['photo']}").content
            assert hashlib.sha256(photo_bytes).hexdigest() == shas[ids["photo"]]
            # An item outside the release is not served through the link
            assert browser.get(f"{shared.path}/items/999999").status_code == 403
            # The code works once: a second browser with it (a forwarded link) is refused
            again = _open(other, shared.path, shared.code)
            assert again.status_code == 403 and "验证码已被使用" in again.text
            assert other.get(f"{shared.path}/items/{ids['clip']}").status_code == 403
            # Five wrong codes revoke a link
            for n in range(MAX_FAILURES):
                last = _open(other, guessed.path, f"{n:08d}" if f"{n:08d}" != guessed.code else "99999999")
            assert "链接现已作废" in last.text
            assert other.get(guessed.path).status_code == 410
            with Session(engine) as session:
                downloads = _events(session, CustodyKind.SHARE_DOWNLOADED, ids["clip"])
                assert len(downloads) == 2 and downloads[0].actor.endswith("张律师（某律师事务所）")
                photo_downloads = _events(session, CustodyKind.SHARE_DOWNLOADED, ids["photo"])
                last = len(photo_bytes) - 1
                assert [e.details["bytes"].split(" ")[0] for e in photo_downloads] == [f"1-{last}", f"0-{last}"]
                assert len(_events(session, CustodyKind.SHARE_OPENED, ids["clip"])) == 1
                refusals = [e for e in _events(session, CustodyKind.ACCESS_REFUSED, ids["clip"])
                            if e.details.get("action") == "share" and e.actor.startswith("share:")]
                assert len(refusals) == 1 + MAX_FAILURES
                revoked = _events(session, CustodyKind.SHARE_REVOKED, ids["photo"])
                assert revoked[-1].actor == "system" and revoked[-1].details["link"] == guessed_id
                # A class raised since the approval: the item is no longer served
                raised = session.get(Recording, ids["photo"])
                assert raised is not None
                classify_recordings(session, get_user(session, "supervisor"), [raised], to="state_secret",
                                    reason="涉密")
                session.commit()
            assert browser.get(f"{shared.path}/items/{ids['photo']}").status_code == 403
            assert f"/items/{ids['photo']}" not in browser.get(shared.path).text  # not even listed
            # A transfer item raised to personal privacy since the approval is no longer served either
            with Session(engine) as session:
                raised_clip = session.get(Recording, ids["clip"])
                assert raised_clip is not None
                classify_recordings(session, get_user(session, "supervisor"), [raised_clip], to="personal",
                                    reason="含当事人隐私")
                session.commit()
            assert browser.get(f"{shared.path}/items/{ids['clip']}").status_code == 403
            # An expired link, a revoked one, and a withdrawn release refuse
            with Session(engine) as session:
                session.execute(update(ShareLink).where(col(ShareLink.id) == shared_id)
                                .values(expires_at=utcnow() - timedelta(minutes=1)))
                session.commit()
            assert "已于" in browser.get(shared.path).text and browser.get(shared.path).status_code == 410
            with Session(engine) as session:
                session.execute(update(ShareLink).where(col(ShareLink.id) == shared_id)
                                .values(expires_at=utcnow() + timedelta(days=1)))
                session.commit()
                assert browser.get(shared.path).status_code == 200  # alive again
                revoke_share(session, get_user(session, "clerk"), shared_id, reason="案件已和解", now=utcnow())
            assert browser.get(shared.path).status_code == 410 and "已被撤销" in browser.get(shared.path).text
            with Session(engine) as session:
                withdraw_release(session, worm_store, get_user(session, "clerk"), release_id, reason="撤回",
                                 signer=Signer("station-1", key), now=utcnow())
            assert other.get(third.path).status_code == 410
            assert "不再提供" in other.get(third.path).text
    finally:
        engine.dispose()
