"""The canonical JSON bytes that are signed and hashed: RFC 8785 (JCS) now, the legacy form kept forever.

A signature or a hash is only checkable by someone who can rebuild the exact bytes. The legacy form
(`json.dumps` with sorted keys, no spaces, UTF-8) is what Python writes: `5.0` stays `5.0`, while `jq -cS`,
JavaScript or Go write `5`, so an examiner outside Python could not reproduce it. RFC 8785 (the JSON
Canonicalization Scheme) fixes numbers (ECMAScript form), key order (UTF-16 code units) and string escapes, and
has implementations in many languages. Everything signed or hashed from now on uses `jcs`; `legacy_json` stays
for the signatures and custody events already written with it (a document says which by its scheme tag).
"""
from __future__ import annotations

import json
import math
from typing import Any

import rfc8785

__all__ = ["SCHEME_JCS", "SCHEME_LEGACY", "CanonicalJSONError", "jcs", "json_values", "legacy_json"]

#: The scheme tags: what a signature's "canonicalization" field says (absent means legacy).
SCHEME_JCS = "RFC8785"
SCHEME_LEGACY = "legacy-sorted-json"

#: JSON numbers are IEEE 754 doubles: integers beyond ±(2**53 - 1) do not survive another language's parser.
_SAFE_INT = 2**53 - 1


class CanonicalJSONError(ValueError):
    """A value that has no RFC 8785 form (named with where it sits, so the caller can see which)."""

    def __init__(self, path: str, value: Any, why: str) -> None:
        self.path, self.value = path, value
        super().__init__(f"cannot canonicalise {path} = {value!r}: {why}")


def legacy_json(value: Any) -> bytes:
    """The bytes signed and hashed before RFC 8785: sorted keys, no spaces, UTF-8 (`5.0` stays `5.0`).

    Kept unchanged forever: the signatures and version-1 custody events already written cover these bytes."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def json_values(value: Any) -> Any:
    """*value* as a JSON column gives it back: tuples become lists, keys strings, other objects (datetimes,
    enums, paths) their str(). What is stored, hashed and compared later is then one and the same."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _check(value: Any, path: str) -> None:
    """Refuse what RFC 8785 cannot represent exactly, naming where it is."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > _SAFE_INT:
            raise CanonicalJSONError(path, value, "integers beyond ±(2**53 - 1) are not exact in JSON "
                                                  "(store it as a string)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalJSONError(path, value, "NaN and infinity are not JSON")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
    else:
        raise CanonicalJSONError(path, value, f"{type(value).__name__} is not a JSON value")


def jcs(value: Any) -> bytes:
    """RFC 8785 bytes of *value* (plain JSON values: dict, list, str, int, float, bool, None; tuples count as lists
    and non-string keys become strings, as `json.dumps` would). CanonicalJSONError names any value without an exact
    JSON form: an integer beyond 2**53, NaN or infinity, a datetime or other object."""
    normalised = json.loads(json.dumps(value, ensure_ascii=False, default=_refuse))
    _check(normalised, "$")
    return rfc8785.dumps(normalised)


def _refuse(value: Any) -> Any:
    raise CanonicalJSONError("a value", value, f"{type(value).__name__} is not a JSON value (convert it first, "
                                               "e.g. a datetime with isoformat())")
