"""The agency root and its X.509 certificates (issue 16): built and checked without services, checked by the real
`openssl verify`, and attacked as an outsider would — a certificate from another root, a revoked key signing on,
a forged record in WORM storage, a certificate row inserted behind the application's back, an expired
certificate, a second root. Each must be named, with the values that show it, by `evidence verify`."""
from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from catalog import CustodyKind, append_event, ensure_station, ensure_station_key, load_chain
from catalog.cert_trust import cert_record_name, root_record_name, statement_record_name
from catalog.certificates import (
    ROLE_STATION,
    build_root_certificate,
    check_certificate,
    check_root,
    issue_certificate,
    key_fingerprint,
    to_pem,
)
from catalog.key_certs import KeysRefused, certify_station, init_root, revoke_key, statement_body
from catalog.key_lifecycle import create_root, rotate_station_key
from catalog.key_listing import list_keys
from catalog.key_models import KeyCertificate
from catalog.key_trust import load_key_trust
from catalog.signing import load_or_create_key, sign_document
from catalog.types import utcnow
from catalog.verification import VerifyReport
from ingest.config import Settings
from storage import LocalStore
from tests.conftest import _missing
from tests.helpers.insider import sql
from tests.helpers.recordings import archive_recording, verify_recordings

STATION = "station-1"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _openssl_verify(tmp_path: Path, root_pem: str, cert_pem: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`openssl verify -CAfile root.pem cert.pem`, the real binary, as an examiner runs it."""
    if shutil.which("openssl") is None:
        _missing("openssl")
    (tmp_path / "root.pem").write_text(root_pem)
    (tmp_path / "cert.pem").write_text(cert_pem)
    return subprocess.run(["openssl", "verify", *extra, "-CAfile", str(tmp_path / "root.pem"),
                           str(tmp_path / "cert.pem")], capture_output=True, text=True, check=False)


def _station_cert(root_key: Ed25519PrivateKey, root: x509.Certificate, key: Ed25519PrivateKey, *,
                  not_after: datetime = NOW + timedelta(days=30)) -> x509.Certificate:
    return issue_certificate(root_key, root, key.public_key(), role=ROLE_STATION, subject="dock-7", not_before=NOW,
                             not_after=not_after)


# -- pure ---------------------------------------------------------------------------------------------------------


def test_a_station_certificate_chains_to_its_root_and_openssl_agrees(tmp_path: Path) -> None:
    root_key, station_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    root = build_root_certificate(root_key, name="某市城市管理综合执法局", now=NOW)
    certificate = _station_cert(root_key, root, station_key)
    assert check_root(root, trusted_fingerprint=key_fingerprint(root_key.public_key())) == []
    assert check_certificate(certificate, root, at=NOW + timedelta(days=1)) == []
    checked = _openssl_verify(tmp_path, to_pem(root), to_pem(certificate), "-attime",
                              str(int((NOW + timedelta(days=1)).timestamp())))
    assert checked.returncode == 0 and checked.stdout.strip().endswith("cert.pem: OK"), checked.stdout + checked.stderr


def test_a_certificate_from_another_root_is_refused_naming_its_issuer(tmp_path: Path) -> None:
    root_key, other_key, station_key = (Ed25519PrivateKey.generate() for _ in range(3))
    root = build_root_certificate(root_key, name="Agency", now=NOW)
    other = build_root_certificate(other_key, name="Someone Else", now=NOW)
    forged = _station_cert(other_key, other, station_key)
    findings = check_certificate(forged, root, at=NOW)
    assert findings[0] == (f"it was issued by 'Someone Else' (key {key_fingerprint(other_key.public_key())}), not by "
                           f"the agency root 'Agency' ({key_fingerprint(root_key.public_key())})")
    assert "its signature does not verify with the root key" in findings[1]
    assert check_root(other, trusted_fingerprint=key_fingerprint(root_key.public_key()))[0].startswith(
        "unknown root: 'Someone Else' has key")
    checked = _openssl_verify(tmp_path, to_pem(root), to_pem(forged))
    assert checked.returncode != 0 and "unable to get local issuer certificate" in checked.stdout + checked.stderr


def test_an_expired_or_revoked_certificate_is_named_with_its_time(tmp_path: Path) -> None:
    root_key, station_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    root = build_root_certificate(root_key, name="Agency", now=NOW)
    certificate = _station_cert(root_key, root, station_key, not_after=NOW + timedelta(days=2))
    later = NOW + timedelta(days=3)
    assert check_certificate(certificate, root, at=later) == [
        f"it expired at {(NOW + timedelta(days=2)).isoformat()} (checked at {later.isoformat()})"]
    assert check_certificate(certificate, root, at=NOW + timedelta(days=1), revoked_at=NOW) == [
        f"its key was revoked at {NOW.isoformat()}"]
    checked = _openssl_verify(tmp_path, to_pem(root), to_pem(certificate), "-attime", str(int(later.timestamp())))
    assert checked.returncode != 0 and "certificate has expired" in checked.stdout + checked.stderr


# -- the archive --------------------------------------------------------------------------------------------------


def _archive(engine: Engine, store: LocalStore, tmp_path: Path, key: Ed25519PrivateKey, count: int = 1,
             first: int = 0) -> list[int]:
    ids = []
    with Session(engine, expire_on_commit=False) as session:
        ensure_station(session, STATION)
        ensure_station_key(session, STATION, key, actor=f"station:{STATION}", store=store)
        for n in range(first, first + count):
            recording = archive_recording(session, store, tmp_path, n, key, station=STATION,
                                          actor=f"station:{STATION}", row_fields=("state", "retain_until",
                                                                                  "legal_hold"))
            session.commit()
            assert recording.id is not None
            ids.append(recording.id)
    return ids


def _rooted(engine: Engine, store: LocalStore, tmp_path: Path, *, certify: bool = True,
            now: datetime | None = None) -> tuple[Ed25519PrivateKey, Ed25519PrivateKey]:
    """An archive with one recording signed by the station key and an agency root (the station key certified)."""
    station_key, root_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    _archive(engine, store, tmp_path, station_key)
    with Session(engine) as session:
        init_root(session, store, root_key, name="某市城管局", by="admin:root", now=utcnow())
        if certify:
            certify_station(session, store, root_key, STATION, by="admin:root", now=now or utcnow(),
                            days=1 if now else 1826)
        session.commit()
    return station_key, root_key


def _forged_certificate(station_key: Ed25519PrivateKey) -> tuple[Ed25519PrivateKey, x509.Certificate,
                                                                  x509.Certificate]:
    """Another root ("Forger"): its key, its certificate, and the certificate it issues for *station_key*."""
    other_key = Ed25519PrivateKey.generate()
    other = build_root_certificate(other_key, name="Forger", now=NOW)
    return other_key, other, issue_certificate(other_key, other, station_key.public_key(), role=ROLE_STATION,
                                               subject=STATION, not_before=NOW - timedelta(days=1),
                                               not_after=utcnow() + timedelta(days=30))


def _key_problems(report: VerifyReport) -> list[str]:
    return [f"{p.subject}: {p.detail}" for p in report.problems if p.kind == "key"]


def test_an_archive_without_a_root_is_unchanged_and_with_one_its_station_keys_need_a_certificate(
        engine: Engine, store: LocalStore, tmp_path: Path) -> None:
    station_key, root_key = _rooted(engine, store, tmp_path, certify=False)
    fp = key_fingerprint(station_key.public_key())
    report = verify_recordings(engine, store)
    assert any(f"station key {fp} (station '{STATION}'): not trusted: it has no valid certificate from the agency "
               "root: the agency root" in p for p in _key_problems(report)), _key_problems(report)
    assert any(p.kind == "signature" for p in report.problems)  # its manifest is refused until it is certified
    with Session(engine, expire_on_commit=False) as session:
        issued = certify_station(session, store, root_key, STATION, by="admin:root", now=utcnow())
        session.commit()
    assert [r.fingerprint for r in issued] == [fp]
    report = verify_recordings(engine, store)
    assert report.ok, [str(p) for p in report.problems]
    # The WORM copies are what an examiner checks, with openssl
    root_fp = key_fingerprint(root_key.public_key())
    root_pem = store.get_record(root_record_name(root_fp)).decode()
    cert_pem = store.get_record(cert_record_name(fp, issued[0].serial)).decode()
    checked = _openssl_verify(tmp_path, root_pem, cert_pem)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with Session(engine) as session:
        kinds = [e.kind for e in load_chain(session)]
        listed = list_keys(session, store, now=utcnow())
    assert kinds.count("root_key_created") == 1 and kinds.count("key_certified") == 1
    assert listed["root"]["fingerprint"] == root_fp and listed["root"]["trusted"] is True
    assert [(k["fingerprint"], k["status"], k["certifier"]) for k in listed["keys"]] == [(fp, "certified", root_fp)]


def test_a_revoked_key_keeps_what_it_signed_before_and_its_later_signatures_are_named(engine: Engine, store: LocalStore,
                                                                                      tmp_path: Path) -> None:
    station_key, root_key = _rooted(engine, store, tmp_path)
    fp = key_fingerprint(station_key.public_key())
    with Session(engine) as session:
        done = revoke_key(session, store, root_key, fp[:12], reason="laptop stolen", by="admin:root", now=utcnow())
        session.commit()
    assert done.fingerprint == fp and store.list_records("trust/revocations/") == [statement_record_name("revoked", fp)]
    with Session(engine) as session:
        revoked = [e.details for e in load_chain(session) if e.kind == "key_revoked"]
    assert [(d["fingerprint"], d["reason"], d["record"]) for d in revoked] == [
        (fp, "laptop stolen", statement_record_name("revoked", fp))]
    assert verify_recordings(engine, store).ok  # the manifest signed before the revocation still counts
    later = _archive(engine, store, tmp_path, station_key, first=1)[0]  # the station signs on with the revoked key
    problems = _key_problems(verify_recordings(engine, store))
    assert len(problems) == 1 and problems[0].startswith(f"key {fp}: manifest r1 of recording {later} (event ")
    assert "is not covered by the key's certificate: the key was revoked at" in problems[0]
    assert "laptop stolen" in problems[0]
    with Session(engine) as session:
        with pytest.raises(KeysRefused, match="already revoked"):
            revoke_key(session, store, root_key, fp, reason="again", by="admin:root", now=utcnow())
        with pytest.raises(KeysRefused, match="is never certified again"):
            certify_station(session, store, root_key, STATION, by="admin:root", now=utcnow(), renew=True)


def test_a_backdated_signature_after_the_revocation_is_named_by_its_place_in_the_chain(
        engine: Engine, store: LocalStore, tmp_path: Path) -> None:
    station_key, root_key = _rooted(engine, store, tmp_path)
    fp = key_fingerprint(station_key.public_key())
    with Session(engine) as session:
        revoke_key(session, store, root_key, fp, reason="compromised", by="admin:root", now=utcnow())
        session.commit()
        # Someone holding the key records a signature that claims a time long before the revocation
        forged = append_event(session, CustodyKind.MANIFESTED, actor=f"station:{STATION}", at=utcnow() - timedelta(
            hours=1), recording_id=None, details={"revision": 1, "key": "x", "key_fingerprint": fp})
        session.commit()
    problems = _key_problems(verify_recordings(engine, store))
    assert any(f"(event {forged.id})" in p and "it was recorded after event" in p and "compromised" in p
               for p in problems), problems


def test_an_expired_certificate_does_not_cover_what_the_key_signs_afterwards(engine: Engine, store: LocalStore,
                                                                             tmp_path: Path) -> None:
    long_ago = utcnow() - timedelta(days=10)
    station_key, _ = _rooted(engine, store, tmp_path, now=long_ago)  # certified for one day, ten days ago
    fp = key_fingerprint(station_key.public_key())
    problems = _key_problems(verify_recordings(engine, store))
    assert any(p.startswith(f"key {fp}: manifest r1 of recording") and "no certificate of the key was valid then"
               in p for p in problems), problems
    with Session(engine) as session:
        listed = list_keys(session, store, now=utcnow())
    assert listed["keys"][0]["status"] == "expired"


def test_a_certificate_from_another_root_placed_in_worm_storage_is_not_trusted(engine: Engine, store: LocalStore,
                                                                               tmp_path: Path) -> None:
    station_key, _ = _rooted(engine, store, tmp_path, certify=False)
    fp = key_fingerprint(station_key.public_key())
    other_key, other, forged = _forged_certificate(station_key)
    name = cert_record_name(fp, format(forged.serial_number, "x"))
    store.put_record(name, to_pem(forged).encode(), retain_until=utcnow() + timedelta(days=1))
    store.put_record(root_record_name(key_fingerprint(other_key.public_key())), to_pem(other).encode(),
                     retain_until=utcnow() + timedelta(days=1))
    with Session(engine) as session:
        trust = load_key_trust(session, store)
    assert fp not in trust.trusted
    assert f"its certificate {name} cannot be trusted: it was issued by 'Forger'" in trust.trusted.untrusted[fp]
    problems = _key_problems(verify_recordings(engine, store))
    assert any(p.startswith(f"{name}: the certificate of key {fp}") for p in problems), problems
    assert any("unknown root: 'Forger' has key" in p for p in problems), problems


def test_a_revocation_not_signed_by_the_root_is_named_and_ignored(engine: Engine, store: LocalStore,
                                                                  tmp_path: Path) -> None:
    station_key, _ = _rooted(engine, store, tmp_path)
    fp = key_fingerprint(station_key.public_key())
    name = statement_record_name("revoked", fp)
    forged = sign_document(statement_body("revoked", fp, role=ROLE_STATION, subject=STATION, at=NOW, reason="forged",
                                          by="mallory", root_fp="0" * 64, now=NOW), station_key)
    store.put_record(name, json.dumps(forged).encode(), retain_until=utcnow() + timedelta(days=1))
    report = verify_recordings(engine, store)
    assert [p for p in report.problems if p.kind != "key"] == []  # the key and what it signed still count
    assert _key_problems(report) == [f"{name}: the key statement cannot be trusted: it is signed by key {fp}, not by "
                                     "the agency root"]


def test_a_certificate_row_inserted_behind_the_applications_back_grants_nothing(engine: Engine, store: LocalStore,
                                                                                tmp_path: Path) -> None:
    station_key, _ = _rooted(engine, store, tmp_path, certify=False)
    fp = key_fingerprint(station_key.public_key())
    *_, forged = _forged_certificate(station_key)
    sql(engine, "INSERT INTO key_certificate (fingerprint, role, subject, serial, issuer_fingerprint, not_before, "
        "not_after, certificate_pem, record_name, created_at) VALUES (:fp, 'station', :station, 'abc123', :fp, "
        ":start, :end, :pem, 'trust/certs/x.pem', :start)", fp=fp, station=STATION, start=NOW.replace(tzinfo=None),
        end=(utcnow() + timedelta(days=30)).replace(tzinfo=None), pem=to_pem(forged))
    with Session(engine) as session:
        assert fp not in load_key_trust(session, store).trusted
        assert fp not in load_key_trust(session, None).trusted  # not even from the catalogue alone
    problems = _key_problems(verify_recordings(engine, store))
    assert any(p.startswith(f"certificate row 2 (key {fp}, serial abc123): not trusted: no certificate with this "
                            "serial chains to the agency root") for p in problems), problems


def test_trust_records_without_a_root_in_the_chain_are_named_and_change_nothing(engine: Engine, store: LocalStore,
                                                                                tmp_path: Path) -> None:
    station_key = Ed25519PrivateKey.generate()
    _archive(engine, store, tmp_path, station_key)
    planted_key = Ed25519PrivateKey.generate()
    planted = root_record_name(key_fingerprint(planted_key.public_key()))
    store.put_record(planted, to_pem(build_root_certificate(planted_key, name="Planted", now=NOW)).encode(),
                     retain_until=utcnow() + timedelta(days=1))
    report = verify_recordings(engine, store)
    assert [p for p in report.problems if p.kind != "key"] == []  # the station key is trusted as before
    assert _key_problems(report) == [f"{planted}: not trusted: the custody chain records no agency root "
                                     "(root_key_created), so nothing under trust/ or in key_certificate counts "
                                     "(placed behind the application's back?)"]


def test_a_second_root_is_refused_and_the_first_key_file_is_kept(engine: Engine, store: LocalStore,
                                                                 tmp_path: Path) -> None:
    _rooted(engine, store, tmp_path)
    out = tmp_path / "second-root.pem"
    with Session(engine) as session, pytest.raises(KeysRefused, match="already has an agency root"):
        create_root(session, store, path=out, name="Again", by="admin:root", now=utcnow())
    assert not out.exists()
    kept = tmp_path / "root.pem"
    kept.write_text("the first root key")
    with Session(engine) as session, pytest.raises(Exception, match="already exists"):
        create_root(session, store, path=kept, name="Again", by="admin:root", now=utcnow())
    assert kept.read_text() == "the first root key"
    with Session(engine) as session:
        assert len(session.exec(select(KeyCertificate).where(KeyCertificate.role == "root")).all()) == 1


def test_rotation_certifies_a_new_key_retires_the_old_and_names_what_the_old_signs_afterwards(
        engine: Engine, store: LocalStore, tmp_path: Path, settings: Settings) -> None:
    old_key = load_or_create_key(settings.station_key_path)
    _archive(engine, store, tmp_path, old_key)
    root_key = Ed25519PrivateKey.generate()
    with Session(engine, expire_on_commit=False) as session:
        init_root(session, store, root_key, name="Agency", by="admin:root", now=utcnow())
        certify_station(session, store, root_key, STATION, by="admin:root", now=utcnow())
        session.commit()
        rotation = rotate_station_key(session, store, root_key, station=STATION, key_path=settings.station_key_path,
                                      by="admin:root", now=utcnow())
    old_fp = key_fingerprint(old_key.public_key())
    new_key = load_or_create_key(settings.station_key_path)
    assert rotation.retired == [old_fp] and rotation.new_fingerprint == key_fingerprint(new_key.public_key())
    assert rotation.old_key_kept_as is not None and rotation.old_key_kept_as.read_bytes() != \
        settings.station_key_path.read_bytes()
    assert store.list_records("trust/retirements/") == [statement_record_name("retired", old_fp)]
    with Session(engine) as session:
        rotated = [e.details for e in load_chain(session) if e.kind == "key_rotated"]
    assert [(d["station"], d["fingerprint"], d["new_fingerprint"]) for d in rotated] == [
        (STATION, old_fp, rotation.new_fingerprint)]
    _archive(engine, store, tmp_path, new_key, first=1)
    assert verify_recordings(engine, store).ok
    _archive(engine, store, tmp_path, old_key, first=2)  # a service still holding the old key signs on
    problems = _key_problems(verify_recordings(engine, store))
    assert len(problems) == 1 and "the key was retired at" in problems[0] and problems[0].startswith(f"key {old_fp}")
