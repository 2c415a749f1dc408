"""Signed manifests: Ed25519 over canonical JSON, stored under WORM retention."""
from __future__ import annotations

import copy
import json
import stat
from datetime import UTC, datetime, timedelta

import pytest

from catalog.canonical import jcs, legacy_json
from catalog.signing import (
    SignatureInvalid,
    fingerprint,
    load_or_create_key,
    public_key_b64,
    sign_document,
    verify_document,
)
from storage import ObjectExists, S3WormStore, manifest_key

BODY = {"format": "evidence-manifest/1", "sha256": "ab" * 32, "stamp": {"case_number": "京朝城管罚字〔2026〕第00123号"}}
UNTIL = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)


def test_station_key_is_created_private_once_and_reused(tmp_path):
    path = tmp_path / "keys" / "station-1.ed25519.pem"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_b64(load_or_create_key(path)) == public_key_b64(key)


def test_canonical_json_is_stable_and_keeps_chinese():
    assert legacy_json({"b": 1, "a": "证明"}) == jcs({"b": 1, "a": "证明"}) == '{"a":"证明","b":1}'.encode()


def test_signed_document_verifies_and_names_its_key(tmp_path):
    key = load_or_create_key(tmp_path / "k.pem")
    document = sign_document(BODY, key)
    assert document["signature"]["key_fingerprint"] == fingerprint(public_key_b64(key))
    assert verify_document(document, trusted_fingerprints={fingerprint(public_key_b64(key))}) == BODY


def test_any_change_to_the_manifest_breaks_the_signature(tmp_path):
    document = sign_document(BODY, load_or_create_key(tmp_path / "k.pem"))
    forged = copy.deepcopy(document)
    forged["manifest"]["stamp"]["case_number"] = "京朝城管罚字〔2026〕第00999号"
    with pytest.raises(SignatureInvalid) as info:
        verify_document(forged)
    assert str(info.value) == "signature does not verify: the manifest was changed after it was signed"


def test_a_key_the_catalog_does_not_know_is_refused(tmp_path):
    document = sign_document(BODY, load_or_create_key(tmp_path / "rogue.pem"))
    with pytest.raises(SignatureInvalid, match="is not a registered station key"):
        verify_document(document, trusted_fingerprints={"0" * 64})


def test_swapping_in_another_public_key_is_detected(tmp_path):
    document = sign_document(BODY, load_or_create_key(tmp_path / "a.pem"))
    other = public_key_b64(load_or_create_key(tmp_path / "b.pem"))
    document["signature"]["public_key"] = other
    with pytest.raises(SignatureInvalid, match="fingerprint does not match"):
        verify_document(document)
    document["signature"]["key_fingerprint"] = fingerprint(other)
    with pytest.raises(SignatureInvalid, match="changed after it was signed"):
        verify_document(document)


def test_malformed_documents_are_refused():
    with pytest.raises(SignatureInvalid, match="malformed signed document"):
        verify_document({"manifest": BODY})


def test_manifest_key_names_the_revision():
    assert manifest_key("ab" * 32, 2) == f"manifests/sha256/ab/ab/{'ab' * 32}.r2.json"
    with pytest.raises(ValueError, match="stamp revisions start at 1"):
        manifest_key("ab" * 32, 0)


def test_manifests_are_write_once_in_every_store(worm_store, tmp_path):
    data = json.dumps(sign_document(BODY, load_or_create_key(tmp_path / "k.pem"))).encode()
    stored = worm_store.put_manifest("ab" * 32, 1, data, retain_until=UNTIL)
    assert worm_store.put_manifest("ab" * 32, 1, data, retain_until=UNTIL).key == stored.key  # idempotent
    with pytest.raises(ObjectExists):
        worm_store.put_manifest("ab" * 32, 1, data.replace(b"00123", b"00999"), retain_until=UNTIL)
    assert worm_store.get_manifest("ab" * 32, 1) == data
    if isinstance(worm_store, S3WormStore):
        head = worm_store.client.head_object(Bucket=worm_store.bucket, Key=stored.key)
        assert head["ObjectLockMode"] == "COMPLIANCE" and stored.verified
