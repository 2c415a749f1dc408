"""Releases (issue 18, part 3): what may go out (a pure decision), proposed by one person and decided by a second with
the legal-review role; each decision and withdrawal signed into WORM storage and a custody event on every item.
Attacked as an outsider would: a publication of an unredacted original, a state secret, self-approval, a clerk
approving, a class raised after the proposal, a withdrawal twice. On SQLite and PostgreSQL, on the local WORM store
and SeaweedFS."""
from __future__ import annotations

import json

import pytest
from sqlmodel import Session, col, select

from catalog import CustodyEvent, CustodyKind, Recording, open_catalog
from catalog.access import AccessRefused
from catalog.classification import classify_recordings
from catalog.disposal import Signer
from catalog.errors import PermissionDenied
from catalog.package import PackageSigning
from catalog.release_package import public_summary, release_package, summary_text
from catalog.releases import (
    ItemFacts,
    ReleaseRefused,
    decide_release,
    item_problems,
    propose_release,
    release_as_json,
    withdraw_release,
)
from catalog.signing import load_or_create_key, verify_document
from catalog.types import utcnow
from catalog.users import add_user, get_user
from catalog.verification import verify_archive
from ingest.config import Settings
from ingest.pipeline import ingest_folder
from ingest.redaction import RedactionSpec, parse_box
from ingest.redaction.derivative import redact_recording
from tests.helpers.verifier_env import verifier_python  # noqa: F401 - the fixture


def test_what_may_go_out_in_a_release() -> None:
    def facts(sensitivity: str, *, state: str = "verified", copy: bool = False) -> ItemFacts:
        return ItemFacts(7, "MVI_0001.MP4", state, sensitivity, 3 if copy else None)

    assert item_problems("publication", facts("public", copy=True)) == []
    assert item_problems("publication", facts("public")) == []  # an original the agency classed public
    assert item_problems("transfer", facts("personal")) == []  # a court may receive originals
    assert item_problems("transfer", facts("commercial")) == [] == item_problems("transfer", facts("internal"))
    unredacted = item_problems("publication", facts("internal"))
    assert len(unredacted) == 1 and "publish a redacted copy instead" in unredacted[0]
    assert "a redacted copy" in item_problems("publication", facts("personal", copy=True))[0]
    for kind in ("publication", "transfer"):
        secret = item_problems(kind, facts("state_secret", copy=True))
        assert secret == ["recording 7 (MVI_0001.MP4) is a state secret (国家秘密): it is never released"]
    assert item_problems("transfer", facts("internal", state="staged")) == [
        "recording 7 (MVI_0001.MP4) is staged: only what is in the WORM store is released"]
    assert len(item_problems("transfer", facts("internal", state="disposed"))) == 1


def _events(session: Session, kind: CustodyKind, recording_id: int) -> list[CustodyEvent]:
    return list(session.exec(select(CustodyEvent).where(CustodyEvent.kind == kind.value,
                                                        CustodyEvent.recording_id == recording_id)
                             .order_by(col(CustodyEvent.id))))


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_release_is_proposed_decided_by_a_second_person_signed_and_withdrawn(tmp_path, catalog_url, worm_store):
    from tests.ingest.test_redaction_copies import _device

    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url})
    engine = open_catalog(catalog_url)
    try:
        report = ingest_folder(_device(tmp_path / "card"), settings=settings, engine=engine, store=worm_store)
        assert report.errors == []
        key = load_or_create_key(settings.station_key_path)
        signer = Signer("station-1", key)
        with Session(engine) as session:
            clip = session.exec(select(Recording).where(Recording.original_name == "MVI_0001.MP4")).one()
            photo = session.exec(select(Recording).where(Recording.original_name == "IMG_0002.JPG")).one()
            clerk = add_user(session, "clerk", roles=["clerk"], by="admin")
            supervisor = add_user(session, "supervisor", roles=["supervisor"], by="admin")
            reviewer = add_user(session, "reviewer", roles=["reviewer"], by="admin")
            both = add_user(session, "both", roles=["clerk", "reviewer"], by="admin")
            officer = add_user(session, "officer", roles=["officer"], by="admin", officer_number="000000")
            session.commit()
            copy = redact_recording(session, worm_store, settings, clip, RedactionSpec(
                boxes=(parse_box("1-2:96,64,96,96"),)), user=clerk, reason="公示前遮蔽", key=key, via="test").recording
            classify_recordings(session, supervisor, [copy], to="public", reason="审核后可公开")
            session.commit()

            def propose(user, kind, items, **kw):
                return propose_release(session, user, kind=kind, title=kw.get("title", "占道经营整治"),
                                       recipient=kw.get("recipient", "社会公众"),
                                       legal_basis=kw.get("basis", "《行政处罚法》第四十八条"), recordings=items,
                                       reason=kw.get("reason", "执法公示"), now=utcnow())

            # An officer may not propose; an unredacted original is not published; every missing field is named
            with pytest.raises(PermissionDenied, match="may not propose_release"):
                propose(officer, "publication", [copy])
            with pytest.raises(ReleaseRefused, match="publish a redacted copy instead"):
                propose(clerk, "publication", [copy, clip])
            with pytest.raises(ReleaseRefused) as missing:
                propose(clerk, "leak", [], title=" ", recipient="", basis="", reason="")
            assert len(missing.value.problems) == 6, missing.value.problems  # the kind, 4 fields, no items
            # A publication of the public redacted copy; a transfer of the originals to the prosecutor
            published = propose(clerk, "publication", [copy])
            transfer = propose(clerk, "transfer", [clip, photo], recipient="区人民检察院", reason="移送审查起诉")
            assert published.state == transfer.state == "proposed"
            proposed = _events(session, CustodyKind.RELEASE_PROPOSED, clip.id or 0)
            assert proposed[-1].details["recipient"] == "区人民检察院" and proposed[-1].actor == "clerk"

            # Nobody but legal review decides, and nobody decides their own proposal
            with pytest.raises(PermissionDenied, match="approve_release"):
                decide_release(session, worm_store, clerk, published.id, approve=True, note="同意", signer=signer,
                               now=utcnow())
            own = propose(both, "transfer", [clip], recipient="区人民法院")
            with pytest.raises(ReleaseRefused, match="no self-approval"):
                decide_release(session, worm_store, both, own.id, approve=True, note="同意", signer=signer,
                               now=utcnow())
            # The reviewer approves: the decision is signed into WORM storage and on each item's custody
            decided = decide_release(session, worm_store, reviewer, transfer.id, approve=True, note="符合移送条件",
                                     signer=signer, now=utcnow())
            assert decided.state == "approved" and decided.decided_by == "reviewer"
            record = json.loads(worm_store.get_record(decided.records[0]))
            body = verify_document(record)
            assert body["decision"] == "approved" and body["by"] == "reviewer" and body["proposed_by"] == "clerk"
            assert {i["sha256"] for i in body["items"]} == {clip.sha256, photo.sha256}
            assert body["recipient"] == "区人民检察院" and body["legal_basis"] == "《行政处罚法》第四十八条"
            for item in (clip, photo):
                approved = _events(session, CustodyKind.RELEASE_APPROVED, item.id or 0)
                assert approved[-1].details["record"] == decided.records[0]
            # A decided release is not decided again
            with pytest.raises(ReleaseRefused, match="only a proposed release is decided"):
                decide_release(session, worm_store, reviewer, transfer.id, approve=False, note="改判",
                               signer=signer, now=utcnow())
            # The record cannot be replaced: the store holds it under lock
            with pytest.raises(Exception):  # noqa: B017, PT011 - the store's own refusal (local or S3 lock)
                worm_store.put_record(decided.records[0], b"{}", retain_until=utcnow())

            # A class raised after the proposal refuses the approval, naming why
            classify_recordings(session, supervisor, [copy], to="state_secret", reason="涉及国家秘密")
            session.commit()
            with pytest.raises(ReleaseRefused, match="never released"):
                decide_release(session, worm_store, reviewer, published.id, approve=True, note="同意",
                               signer=signer, now=utcnow())
            # so the reviewer rejects it (signed too)
            rejected = decide_release(session, worm_store, reviewer, published.id, approve=False,
                                      note="已升密，不得公示", signer=signer, now=utcnow())
            assert rejected.state == "rejected" and len(rejected.records) == 1
            # a state secret is not even proposed for a transfer (the clerk may not download it to begin with)
            with pytest.raises(AccessRefused, match="state secret"):
                propose(clerk, "transfer", [copy])

            # Two reviewers at once: the second, holding the release as it was, is refused, not a second decision
            third = propose(clerk, "transfer", [photo], recipient="区人民法院")
            assert third.id is not None
            with Session(engine) as other:
                stale = other.get(type(third), third.id)
                assert stale is not None and stale.state == "proposed"
                decide_release(session, worm_store, reviewer, third.id, approve=False, note="材料不全",
                               signer=signer, now=utcnow())
                with pytest.raises(ReleaseRefused, match="someone acted on it meanwhile"):
                    decide_release(other, worm_store, get_user(other, "reviewer"), third.id, approve=True,
                                   note="同意", signer=signer, now=utcnow())
            session.refresh(third)
            assert third.state == "rejected" and len(third.records) == 1
            # Someone who neither proposed it nor reviews, and may not download its items, may not withdraw it
            stranger = add_user(session, "U9-clerk-less", roles=["supervisor"], by="admin", units=["U9"])
            session.commit()
            with pytest.raises(AccessRefused):
                withdraw_release(session, worm_store, stranger, transfer.id, reason="x", signer=signer,
                                 now=utcnow())
            # A withdrawal: recorded and signed; a withdrawn release is not withdrawn again
            with pytest.raises(PermissionDenied):
                withdraw_release(session, worm_store, officer, transfer.id, reason="x", signer=signer, now=utcnow())
            withdrawn = withdraw_release(session, worm_store, clerk, transfer.id, reason="检察院退回补充侦查",
                                         signer=signer, now=utcnow())
            assert withdrawn.state == "withdrawn" and len(withdrawn.records) == 2
            assert verify_document(json.loads(worm_store.get_record(withdrawn.records[1])))["decision"] == "withdrawn"
            assert _events(session, CustodyKind.RELEASE_WITHDRAWN, photo.id or 0)[-1].details["reason"] == \
                "检察院退回补充侦查"
            with pytest.raises(ReleaseRefused, match="only a proposed or approved one is withdrawn"):
                withdraw_release(session, worm_store, clerk, transfer.id, reason="再撤", signer=signer, now=utcnow())
            shown = release_as_json(session, withdrawn)
            assert shown["state"] == "withdrawn" and [i["recording_id"] for i in shown["items"]] == [clip.id, photo.id]

            # A proposer who may not download an item (outside their scope) is refused, and it is recorded
            outsider = add_user(session, "U9-supervisor", roles=["supervisor"], by="admin", units=["U9"])
            session.commit()
            with pytest.raises(AccessRefused):
                propose(outsider, "transfer", [clip])
            assert _events(session, CustodyKind.ACCESS_REFUSED, clip.id or 0)[-1].details["action"] == "release"
            # and the archive, custody chain included, verifies
            ids = [r.id for r in session.exec(select(Recording)) if r.id is not None]
            # (the package of a withdrawn release is refused)
            signing = PackageSigning(station="station-1", station_key=key, export_key_path=tmp_path / "export.pem")
            with pytest.raises(ReleaseRefused, match="only an approved release is handed over"):
                release_package(session, worm_store, transfer.id, out=tmp_path / "never", by="clerk", now=utcnow(),
                                signing=signing)
            assert not (tmp_path / "never").exists()
            problems = verify_archive(session, worm_store, ids).problems
            assert problems == [], "\n".join(map(str, problems))
    finally:
        engine.dispose()


def test_the_public_summary_names_no_person_and_no_place() -> None:
    release = {"id": 4, "kind": "publication", "title": "占道经营整治", "legal_basis": "《政府信息公开条例》",
               "decided_at": "2026-12-01T02:00:00+00:00", "proposed_by": "张三", "decided_by": "李四",
               "recipient": "社会公众", "reason": "当事人王五同意"}
    item = {"media_kind": "video", "duration_s": 3.0, "captured_start": "2026-11-20T06:10:00+00:00",
            "size_bytes": 1234, "sha256": "a" * 64, "officer_number": "010203", "lat": 31.23, "original_name": "X.MP4"}
    summary = public_summary(release, [item])
    assert summary["items"] == [{"n": 1, "media_kind": "video", "duration_s": 3.0, "captured_on": "2026-11-20",
                                 "size_bytes": 1234, "sha256": "a" * 64}]
    text = json.dumps(summary, ensure_ascii=False) + summary_text(summary)
    for personal in ("张三", "李四", "王五", "010203", "31.23", "X.MP4", "社会公众"):
        assert personal not in text
    assert "第 4 号公示：占道经营整治" in summary_text(summary) and "Release 4 (publication)" in summary_text(summary)


@pytest.mark.usefixtures("ffmpeg_available")
def test_an_approved_publication_is_handed_over_as_a_verifiable_package_with_its_summary(
        tmp_path, catalog_url, worm_store, request):
    from tests.helpers.verifier_env import named, verify_json
    from tests.ingest.test_redaction_copies import _device

    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url})
    engine = open_catalog(catalog_url)
    try:
        ingest_folder(_device(tmp_path / "card"), settings=settings, engine=engine, store=worm_store)
        key = load_or_create_key(settings.station_key_path)
        signer = Signer("station-1", key)
        with Session(engine) as session:
            clip = session.exec(select(Recording).where(Recording.original_name == "MVI_0001.MP4")).one()
            clerk = add_user(session, "clerk", roles=["clerk"], by="admin")
            supervisor = add_user(session, "supervisor", roles=["supervisor"], by="admin")
            reviewer = add_user(session, "reviewer", roles=["reviewer"], by="admin")
            session.commit()
            copy = redact_recording(session, worm_store, settings, clip, RedactionSpec(
                boxes=(parse_box("1-2:96,64,96,96"),)), user=clerk, reason="公示前遮蔽", key=key, via="test").recording
            classify_recordings(session, supervisor, [copy], to="public", reason="审核后可公开")
            session.commit()
            made = propose_release(session, clerk, kind="publication", title="占道经营整治", recipient="社会公众",
                                   legal_basis="《政府信息公开条例》", recordings=[copy], reason="执法公示",
                                   now=utcnow())
            assert made.id is not None
            decide_release(session, worm_store, reviewer, made.id, approve=True, note="可以公示", signer=signer,
                           now=utcnow())
            signing = PackageSigning(station="station-1", station_key=key, export_key_path=tmp_path / "export.pem")
            result = release_package(session, worm_store, made.id, out=tmp_path / "release-1", by="clerk",
                                     now=utcnow(), signing=signing)
            exported = _events(session, CustodyKind.EXPORTED, copy.id or 0)
            assert exported[-1].details["reason"].startswith(f"release {made.id} (publication 公示) to 社会公众")
            copy_sha, officer, records = copy.sha256, clip.officer_number, list(made.records)
        release_dir = result.path / "data" / "release"
        # the signed decision inside is the very record kept in WORM storage
        record = (release_dir / "records" / records[0].rsplit("/", 1)[1]).read_bytes()
        assert record == worm_store.get_record(records[0])
        assert verify_document(json.loads(record))["decision"] == "approved"
        # the public summary: the copy's hash and nothing personal
        summary = json.loads((release_dir / "public-summary.json").read_text())
        assert [i["sha256"] for i in summary["items"]] == [copy_sha]
        words = (release_dir / "public-summary.txt").read_text() + json.dumps(summary, ensure_ascii=False)
        for personal in ("clerk", "reviewer", "MVI_0001", "31.23", "121.47", *([officer] if officer else [])):
            assert personal not in words, personal
        assert "Release 1: publication" in (result.path / "bag-info.txt").read_text(encoding="utf-8")
        # and the examiner's verify.py passes the whole package, release files included in the manifests
        assert "data/release/public-summary.json" in (result.path / "manifest-sha256.txt").read_text()
        python = request.getfixturevalue("verifier_python")
        code, report = verify_json(python, result.path, "--trust", result.export_key_fingerprint)
        assert code == 0, named(report)
    finally:
        engine.dispose()
