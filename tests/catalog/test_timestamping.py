"""Trusted time (RFC 3161, issue 16): tokens from a real TSA on 127.0.0.1 (`openssl ts -reply`, tests.helpers.tsa)
are checked by the real `openssl ts -verify`; anchors carry theirs in WORM storage beside them; a TSA that is away
never holds an anchor back, and a token that stamps other bytes is a verification finding."""
from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
from pathlib import Path

import pytest
import rfc8785
from sqlmodel import Session

from catalog import CustodyKind, append_event, ensure_station, ensure_station_key
from catalog.anchors import ANCHOR_PREFIX, put_anchor, read_anchors, write_anchor
from catalog.signing import load_or_create_key, signed_bytes
from catalog.timestamping import (
    NO_TRUSTED_TIME,
    TimestampFailed,
    describe_token,
    timestamp,
    token_name,
    token_problem,
    trusted_time_statement,
    try_timestamp,
)
from catalog.types import utcnow
from ingest.config import Settings
from storage import LocalStore
from tests.cli import run_cli
from tests.helpers import tsa as tsa_helpers
from tests.helpers.recordings import verify_recordings

# The shared fixtures, registered in this module.
local_tsa = tsa_helpers.local_tsa
down_tsa_url = tsa_helpers.down_tsa_url

STATION = "station-1"
DATA = b'{"format":"evidence-custody-anchor/1","last_event_id":7}'


def _tsa(url: str, settings: Settings | None = None) -> Settings:
    return dataclasses.replace(settings or Settings.defaults(), tsa_url=url, tsa_timeout_s=5)


def _openssl_verify(tsa: tsa_helpers.LocalTsa, data: bytes, token: bytes,
                    folder: Path) -> subprocess.CompletedProcess[str]:
    """What docs/verification.md tells an examiner to run, with nothing of this project."""
    (folder / "stamped.bin").write_bytes(data)
    (folder / "stamped.tsr").write_bytes(token)
    return subprocess.run(["openssl", "ts", "-verify", "-data", str(folder / "stamped.bin"), "-in",
                           str(folder / "stamped.tsr"), "-CAfile", str(tsa.ca), "-untrusted", str(tsa.cert)],
                          capture_output=True, text=True, timeout=60)


def test_without_a_tsa_url_nothing_is_asked_and_the_note_says_so():
    assert timestamp(DATA, Settings.defaults()) is None
    stamp = try_timestamp(DATA, Settings.defaults(), what="a test")
    assert stamp.token is None
    assert stamp.note == f"{NO_TRUSTED_TIME} (EVIDENCE_TSA_URL is not set)"


def test_a_token_from_the_local_tsa_verifies_with_openssl(local_tsa, tmp_path):
    token = timestamp(DATA, _tsa(local_tsa.url()))
    assert token is not None
    done = _openssl_verify(local_tsa, DATA, token, tmp_path)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    assert token_problem(DATA, token) is None
    assert describe_token(token).startswith("RFC 3161 time ") and "Evidence Test TSA" in describe_token(token)


def test_a_token_for_other_bytes_fails_openssl_and_our_check(local_tsa, tmp_path):
    token = timestamp(b"the bytes the TSA was shown", _tsa(local_tsa.url()))
    assert token is not None
    done = _openssl_verify(local_tsa, DATA, token, tmp_path)
    assert done.returncode != 0 and "message imprint mismatch" in done.stderr
    problem = token_problem(DATA, token)
    assert problem is not None and "a token for other bytes" in problem
    assert token_problem(DATA, b"not a token") is not None


@pytest.mark.parametrize(("mode", "reason"), [
    ("refuse", "the TSA refused: status 2"),
    ("other", "a token for other bytes"),  # a granted answer to someone else's query
    ("garbage", "is not a DER TimeStampResp"),
    ("error", "HTTP 500"),
])
def test_a_tsa_that_answers_wrong_is_named(local_tsa, mode, reason):
    url = local_tsa.url(mode)
    with pytest.raises(TimestampFailed) as caught:
        timestamp(DATA, _tsa(url))
    assert caught.value.url == url and url in str(caught.value)
    assert reason in caught.value.reason


def test_a_tsa_that_is_down_is_named_and_a_bad_url_is_not_asked(down_tsa_url, local_tsa):
    with pytest.raises(TimestampFailed, match=r"cannot reach it") as caught:
        timestamp(DATA, _tsa(down_tsa_url))
    assert down_tsa_url in str(caught.value)
    asked = len(local_tsa.requests)
    with pytest.raises(TimestampFailed, match=r"must be an http:// or https:// URL"):
        timestamp(DATA, _tsa("file:///etc/passwd"))
    with pytest.raises(TimestampFailed, match=r"must not carry a user name or password") as caught:
        timestamp(DATA, _tsa(local_tsa.base_url.replace("//", "//bob:secret@") + "/ok"))
    assert "secret" not in str(caught.value)
    assert "secret" not in trusted_time_statement(_tsa("https://bob:secret@tsa.example/tsr"))
    assert len(local_tsa.requests) == asked


def test_an_unsorted_certificate_set_is_asked_for_again_without_certificates(local_tsa, tmp_path):
    """openssl sends `-chain` certificates as an unsorted SET, which rfc3161-client does not parse: one more request
    without certificates gives a token openssl verifies all the same."""
    before = len(local_tsa.requests)
    token = timestamp(DATA, _tsa(local_tsa.url("chain")))
    assert token is not None
    assert local_tsa.requests[before:] == ["/chain", "/chain"], "rfc3161-client now parses unsorted SETs?"
    done = _openssl_verify(local_tsa, DATA, token, tmp_path)
    assert done.returncode == 0, done.stderr


def _catalogue_with_events(engine, settings) -> None:
    with Session(engine) as session:
        ensure_station(session, STATION)
        ensure_station_key(session, STATION, load_or_create_key(settings.station_key_path), actor="test")
        session.commit()


def _one_more_event(engine) -> None:
    with Session(engine) as session:
        append_event(session, CustodyKind.VERIFICATION_RUN, actor="test", details={"problems": 0})
        session.commit()


def _anchor(engine, store, settings, tsa: Settings | None):
    with Session(engine, expire_on_commit=False) as session:
        written = put_anchor(session, store, station=STATION, key=load_or_create_key(settings.station_key_path),
                             actor="test", now=utcnow(), tsa=tsa)
    assert written is not None
    return written


def test_an_anchor_carries_its_token_in_worm_storage_beside_it(engine, settings, local_tsa, tmp_path):
    store = LocalStore(settings.store_path)
    _catalogue_with_events(engine, settings)
    tsa = _tsa(local_tsa.url(), settings)
    written = _anchor(engine, store, settings, tsa)
    name = written.row.record_name
    assert written.token is not None and written.token.key == f"records/{token_name(name)}"
    assert written.token.retain_until == written.stored.retain_until
    assert store.list_records(ANCHOR_PREFIX) == [name, token_name(name)]
    document = json.loads(store.get_record(name))
    assert local_tsa.url() in document["manifest"]["trusted_time"]
    assert rfc8785.dumps(document["manifest"]) == signed_bytes(document)  # docs/verification.md's one-liner
    done = _openssl_verify(local_tsa, signed_bytes(document), store.get_record(token_name(name)), tmp_path)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    anchors, problems = read_anchors(store, trusted=None)
    assert problems == []
    assert [a.name for a in anchors] == [name] and anchors[0].trusted_time.startswith("RFC 3161 time ")


def test_with_the_tsa_down_the_anchor_is_written_and_says_there_is_no_trusted_time(engine, settings, down_tsa_url,
                                                                                    caplog):
    store = LocalStore(settings.store_path)
    _catalogue_with_events(engine, settings)
    with caplog.at_level(logging.WARNING, logger="catalog.timestamping"):
        written = _anchor(engine, store, settings, _tsa(down_tsa_url, settings))
    assert written.token is None
    assert store.list_records(ANCHOR_PREFIX) == [written.row.record_name]
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert written.row.record_name in warning and NO_TRUSTED_TIME in warning and down_tsa_url in warning
    anchors, problems = read_anchors(store, trusted=None)
    assert problems == [] and anchors[0].trusted_time == NO_TRUSTED_TIME


def test_without_a_tsa_the_anchor_says_its_time_is_the_archives_own_clock(engine, settings):
    store = LocalStore(settings.store_path)
    _catalogue_with_events(engine, settings)
    with Session(engine, expire_on_commit=False) as session:
        row = write_anchor(session, store, station=STATION, key=load_or_create_key(settings.station_key_path),
                           actor="test", now=utcnow())
    assert row is not None
    document = json.loads(store.get_record(row.record_name))
    assert document["manifest"]["trusted_time"] == NO_TRUSTED_TIME
    assert store.list_records(ANCHOR_PREFIX) == [row.record_name]


def _swap(store: LocalStore, first: str, second: str) -> None:
    """Below the application: exchange two sealed record files' bytes, seals put back."""
    paths = [store.root / "records" / name for name in (first, second)]
    contents = [path.read_bytes() for path in paths]
    for path, data in zip(paths, reversed(contents), strict=True):
        mode = path.stat().st_mode & 0o777
        path.chmod(0o644)
        path.write_bytes(data)
        path.chmod(mode)


def test_swapped_anchor_tokens_are_verification_findings(engine, settings, local_tsa):
    store = LocalStore(settings.store_path)
    _catalogue_with_events(engine, settings)
    tsa = _tsa(local_tsa.url(), settings)
    first = _anchor(engine, store, settings, tsa)
    _one_more_event(engine)
    second = _anchor(engine, store, settings, tsa)
    assert verify_recordings(engine, store).ok
    tokens = [token_name(w.row.record_name) for w in (first, second)]
    _swap(store, *tokens)
    report = verify_recordings(engine, store)
    found = {p.subject: p.detail for p in report.problems}
    assert set(found) == set(tokens), [str(p) for p in report.problems]
    assert f"does not stamp {first.row.record_name}" in found[tokens[0]]
    assert "a token for other bytes" in found[tokens[1]]


def test_with_evidence_tsa_ca_a_token_from_another_tsa_is_found_though_it_stamps_the_right_bytes(
        engine, settings, local_tsa, tmp_path):
    """Someone who can write to WORM storage replaces an anchor's token with one from a TSA of their own, over the
    anchor's exact bytes: the imprint is right, so only the TSA's signature, checked against EVIDENCE_TSA_CA, tells."""
    store = LocalStore(settings.store_path)
    _catalogue_with_events(engine, settings)
    written = _anchor(engine, store, settings, _tsa(local_tsa.url(), settings))
    name = written.row.record_name
    assert verify_recordings(engine, store, tsa_ca=str(local_tsa.ca)).ok
    own, own_ca = tsa_helpers.outsider_token(tmp_path / "own-tsa", signed_bytes(json.loads(store.get_record(name))))
    path = store.root / "records" / token_name(name)
    mode = path.stat().st_mode & 0o777
    path.chmod(0o644)
    path.write_bytes(own)
    path.chmod(mode)
    assert verify_recordings(engine, store).ok  # the imprint alone cannot tell
    found = [(p.subject, p.detail) for p in verify_recordings(engine, store, tsa_ca=str(local_tsa.ca)).problems]
    assert [subject for subject, _ in found] == [token_name(name)], found
    assert "its signature does not verify up to the TSA's CA in EVIDENCE_TSA_CA" in found[0][1]
    assert verify_recordings(engine, store, tsa_ca=str(own_ca)).ok  # the forger's own CA would vouch for it
    missing = [p.detail for p in verify_recordings(engine, store, tsa_ca=str(tmp_path / "none.pem")).problems]
    assert missing and "cannot be read as PEM certificates" in missing[0]


def test_the_commands_anchor_with_the_tsa_of_the_settings(env, local_tsa):
    """`evidence verify` (anchoring after it, ingest.anchoring) and `evidence custody anchor` read EVIDENCE_TSA_URL."""
    env = {**env, "EVIDENCE_TSA_URL": local_tsa.url(), "EVIDENCE_TSA_CA": str(local_tsa.ca)}
    anchored = run_cli(env, "custody", "anchor", "--force", "--json")  # makes the station key, too
    assert anchored.exit_code == 0, anchored.output
    assert run_cli(env, "verify", "--all").exit_code == 0  # adds an event, then anchors it; tokens' signatures OK
    store = LocalStore(Settings.from_env(env).store_path)
    names = store.list_records(ANCHOR_PREFIX)
    anchors = [n for n in names if n.endswith(".json")]
    assert len(anchors) == 2 and json.loads(anchored.stdout)["anchor"]["record"] in anchors
    assert names == sorted(anchors + [token_name(n) for n in anchors])
    found, problems = read_anchors(store, trusted=None)
    assert problems == [] and all(a.trusted_time.startswith("RFC 3161 time ") for a in found)
    checked = run_cli({**env, "EVIDENCE_TSA_CA": str(local_tsa.cert)}, "verify", "--all")  # not the TSA's CA
    assert checked.exit_code == 4 and "does not verify up to the TSA's CA" in checked.output


def test_a_token_whose_anchor_is_gone_is_named(tmp_path):
    store = LocalStore(tmp_path / "worm")
    orphan = f"{ANCHOR_PREFIX}anchor-000000000001-{STATION}-20260101T000000000000.tsr"
    store.put_record(orphan, b"token bytes", retain_until=utcnow().replace(year=2100))
    anchors, problems = read_anchors(store, trusted=None)
    assert anchors == []
    assert problems == [(orphan, "an RFC 3161 token with no record beside it (its record was removed from WORM "
                                 "storage)")]
