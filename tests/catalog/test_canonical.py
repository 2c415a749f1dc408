"""Canonical JSON (issue 16): RFC 8785 for all that is signed from now on, the legacy bytes for what came before."""
from __future__ import annotations

import base64
import copy
import json
import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog.canonical import SCHEME_JCS, CanonicalJSONError, jcs, json_values, legacy_json
from catalog.signing import SignatureInvalid, fingerprint, public_key_b64, sign_document, signed_bytes, verify_document

#: A manifest-like body with the floats that made Python's bytes differ from every other language's.
BODY = {"format": "evidence-manifest/1", "media": {"duration_s": 30.0, "width": 1920},
        "capture": {"clock_offset_s": 0.0}, "place": {"lat": 39.9042, "lon": 116.4074},
        "stamp": {"case_number": "京朝城管罚字〔2026〕第00123号"}}


def test_rfc_8785_sample_is_reproduced_byte_for_byte():
    # RFC 8785 section 3.2.4 (numbers, string escapes, literals)
    given = r'''{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
                 "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}'''
    expected = (r'''{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'''
                r'''"string":"€$\u000f\nA'B\"\\\\\"/"}''')
    assert jcs(json.loads(given)) == expected.encode()


def test_keys_are_sorted_by_utf16_code_units_not_code_points():
    # RFC 8785 section 3.2.3: an emoji (surrogates D83D DE00) sorts before U+FB33; Python's sort_keys puts it after
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    ordered = list(json.loads(jcs(dict.fromkeys(keys, 0))))
    assert ordered == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_numbers_are_written_as_other_languages_write_them_and_legacy_keeps_python_bytes():
    assert jcs({"x": 0.0, "y": 5.0, "z": -0.0}) == b'{"x":0,"y":5,"z":0}'
    assert legacy_json({"x": 0.0, "y": 5.0}) == b'{"x":0.0,"y":5.0}'
    assert jcs({"b": 1, "a": "证明", "c": (1, 2)}) == legacy_json({"b": 1, "a": "证明", "c": [1, 2]})


@pytest.mark.parametrize(("value", "where", "shown"), [
    ({"a": {"b": [1, 2**53]}}, "$.a.b[1]", str(2**53)),
    ({"size": -(2**60)}, "$.size", str(-(2**60))),
    ({"x": [math.nan]}, "$.x[0]", "nan"),
    ({"x": math.inf}, "$.x", "inf"),
])
def test_values_without_an_exact_json_form_are_refused_naming_where_they_are(value, where, shown):
    with pytest.raises(CanonicalJSONError) as info:
        jcs(value)
    assert info.value.path == where and shown in str(info.value)


def test_objects_must_be_made_json_first():
    when = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    with pytest.raises(CanonicalJSONError, match="datetime is not a JSON value"):
        jcs({"at": when})
    assert jcs({"at": when.isoformat()}) == b'{"at":"2026-11-20T08:30:00+00:00"}'
    assert json_values({"at": when, "pair": (1, 2), 3: "x"}) == {"at": str(when), "pair": [1, 2], "3": "x"}


# -- signatures ---------------------------------------------------------------------------------------------------


def _signed_the_old_way(body: dict, key: Ed25519PrivateKey) -> dict:  # type: ignore[type-arg]
    """A document as sign_document wrote it before RFC 8785: legacy bytes signed, no "canonicalization" field."""
    public = public_key_b64(key)
    return {"manifest": body, "signature": {
        "algorithm": "Ed25519", "public_key": public, "key_fingerprint": fingerprint(public),
        "value": base64.b64encode(key.sign(legacy_json(body))).decode()}}


def test_a_new_signature_covers_the_rfc_8785_bytes_and_says_so():
    key = Ed25519PrivateKey.generate()
    document = sign_document(BODY, key)
    assert document["signature"]["canonicalization"] == SCHEME_JCS == "RFC8785"
    assert signed_bytes(document) == jcs(BODY) and b'"duration_s":30,' in jcs(BODY)
    key.public_key().verify(base64.b64decode(document["signature"]["value"]), jcs(BODY))
    assert verify_document(json.loads(json.dumps(document))) == BODY  # as read back from storage


def test_a_document_signed_the_old_way_keeps_verifying():
    old = _signed_the_old_way(BODY, Ed25519PrivateKey.generate())
    assert legacy_json(BODY) != jcs(BODY)  # the floats make the two forms differ
    assert signed_bytes(old) == legacy_json(BODY)
    stored = json.loads(json.dumps(old, indent=1, sort_keys=True))  # as write_manifest stores it
    assert verify_document(stored, trusted_fingerprints={old["signature"]["key_fingerprint"]}) == BODY
    forged = copy.deepcopy(stored)
    forged["manifest"]["media"]["duration_s"] = 31.0
    with pytest.raises(SignatureInvalid, match="changed after it was signed"):
        verify_document(forged)


def test_the_scheme_tag_cannot_be_swapped_or_invented():
    new = sign_document(BODY, Ed25519PrivateKey.generate())
    stripped = copy.deepcopy(new)
    del stripped["signature"]["canonicalization"]  # now read as legacy bytes, which were not signed
    with pytest.raises(SignatureInvalid, match="changed after it was signed"):
        verify_document(stripped)
    tagged = _signed_the_old_way(BODY, Ed25519PrivateKey.generate())
    tagged["signature"]["canonicalization"] = SCHEME_JCS
    with pytest.raises(SignatureInvalid, match="changed after it was signed"):
        verify_document(tagged)
    invented = copy.deepcopy(new)
    invented["signature"]["canonicalization"] = "C14N"
    with pytest.raises(SignatureInvalid, match="unsupported canonicalization 'C14N'"):
        verify_document(invented)


def test_a_body_that_rfc_8785_cannot_carry_is_not_signed():
    with pytest.raises(CanonicalJSONError, match=r"\$\.size_bytes"):
        sign_document({"size_bytes": 2**63}, Ed25519PrivateKey.generate())


# -- the fast path (the C json encoder) against the reference serialiser ------------------------------------------

#: Characters that differ between encoders if any do: controls, quotes, backslash, DEL, line separators, BMP
#: characters on both sides of the surrogate block, astral ones (surrogate pairs in UTF-16), lone surrogates.
_TRICKY = ["\x00", "\x01", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1f", '"', "\\", "/", "\x7f", "\x80", "é",
           "\u2028", "\u2029", "证", "\ud7ff", "\ue000", "\ufb33", "\uffff", "\U00010000", "\U0001f600", "\ud800",
           "\udfff", "a", "Z", "1", " "]


def _random_float(rng: random.Random) -> float:
    kind = rng.randrange(6)
    if kind == 0:
        return float(rng.randrange(-10**6, 10**6))  # integral
    if kind == 1:
        return rng.choice([0.0, -0.0, 1e-4, 1e16, 9.999999999999999e15, 1e21, 1e-7, 5e-324, 1.7976931348623157e308,
                           2.0**53, 2.0**53 + 2, -(2.0**53), 0.1, 1 / 3, 333333333.33333329])
    if kind == 2:
        return rng.uniform(-180, 180)  # places, offsets, durations
    return (rng.random() - 0.5) * 10.0 ** rng.randrange(-30, 30)  # every exponent range


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_TRICKY) for _ in range(rng.randrange(0, 6)))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randrange(-(2**53) + 1, 2**53)
    if kind == 2:
        return _random_float(rng)
    if kind in (3, 4):
        return _random_text(rng)
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {_random_text(rng): _random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def test_jcs_writes_the_reference_serialisers_bytes_for_any_value():
    import rfc8785
    rng = random.Random(8785)
    checked = refused = 0
    for _ in range(20000):
        value = _random_value(rng)
        try:
            expected = rfc8785.dumps(json.loads(json.dumps(value, ensure_ascii=False)))
        except ValueError as exc:  # the reference refuses it (a lone surrogate): jcs too, the same way
            with pytest.raises(type(exc)):
                jcs(value)
            refused += 1
            continue
        assert jcs(value) == expected, value
        checked += 1
    assert checked > 15000 and refused > 100  # both kinds were really tried


def test_jcs_of_a_manifest_and_a_custody_event_is_the_reference_serialisers():
    import rfc8785
    event = {"kind": "ingested", "actor": "station:京A-01", "details": {"name": "IMG_0001.JPG\n", "size": 123,
                                                                         "clock_offset_s": -3600.5}}
    for body in (BODY, event, {"lat": 0.00001, "big": 1e16, "small": -2.5e-5, "x": 5e-324}):
        assert jcs(body) == rfc8785.dumps(json.loads(json.dumps(body)))
