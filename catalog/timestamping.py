"""Trusted time (RFC 3161): a time-stamping authority (TSA) signs that given bytes existed at a given time.

Every time the archive writes (an anchor's `written_at`, a package's export date) comes from its own clock, which
whoever runs the archive can set. With EVIDENCE_TSA_URL set, anchors and evidence packages also carry an RFC 3161
TimeStampResp from an outside TSA over the SHA-256 of their exact signed bytes; `openssl ts -verify` checks it
with nothing from this project (docs/verification.md). Without a TSA, or while it is down, nothing is blocked:
the anchor or package is written anyway and says "no trusted timestamp: the time is the archive's own clock".

Requests are built and answers parsed with `rfc3161-client` (TimestampRequestBuilder: SHA-256 imprint, a random
64-bit nonce, certReq). That library parses strict DER only: an answer whose certificate SET is not sorted (an
openssl-based TSA configured to send its chain) does not parse, so such an answer is asked for once more without
certificates (certReq false); `openssl ts -verify -untrusted TSA.pem` checks that one just as well. What is
returned and stored is the TSA's whole DER TimeStampResp (what `openssl ts -verify -in X.tsr` reads), never
re-encoded. `token_problem` is the archive's own check of a stored token: its imprint must be the SHA-256 of the
stamped bytes. The TSA's signature is checked by `openssl ts -verify` against the TSA's CA certificate, which
the archive does not hold.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)
from rfc3161_client.tsp import TimeStampResponse, TimeStampTokenInfo

from catalog.errors import CatalogError
from catalog.package_verifier import parse_timestamp
from storage import EvidenceStore, StorageError, StoredObject

__all__ = ["NO_TRUSTED_TIME", "TOKEN_SUFFIX", "Stamp", "TimestampFailed", "TsaSettings", "check_response",
           "describe_token", "stamp_record", "stored_token_findings", "timestamp", "token_name", "token_problem",
           "token_signature_problem", "token_signer", "trusted_time_statement", "try_timestamp"]

logger = logging.getLogger(__name__)

#: What an anchor, a package and a report say when no TSA vouches for the time.
NO_TRUSTED_TIME = "no trusted timestamp: the time is the archive's own clock"
#: A stored token's name: the stamped record's name with this instead of ".json".
TOKEN_SUFFIX = ".tsr"
#: A TimeStampResp is a few KiB (a token and a certificate chain); more is not an answer.
MAX_RESPONSE_BYTES = 1 << 20
_DIGESTS = {"2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.2": "sha384", "2.16.840.1.101.3.4.2.3": "sha512"}
_SHA256_OID = "2.16.840.1.101.3.4.2.1"
_GRANTED = (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS)  # RFC 3161 2.4.2: both carry a token


class TsaSettings(Protocol):
    """What timestamping reads of the settings (ingest.config.Settings has both)."""

    @property
    def tsa_url(self) -> str: ...  # EVIDENCE_TSA_URL; empty: no TSA

    @property
    def tsa_timeout_s(self) -> float: ...  # EVIDENCE_TSA_TIMEOUT_S


class TimestampFailed(CatalogError):
    """The TSA at *url* gave no usable timestamp; *reason* says what went wrong."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"no RFC 3161 timestamp from the TSA at {url}: {reason}")


class _Unparsable(TimestampFailed):
    """The answer is not a TimeStampResp rfc3161-client can read (asked again without certificates)."""


@dataclass(frozen=True)
class Stamp:
    """A timestamp or its absence, in words a result or report can show."""

    token: bytes | None  # the DER TimeStampResp; None: no trusted time
    note: str  # "RFC 3161 time … from …", or NO_TRUSTED_TIME and why


def timestamp(data: bytes, settings: TsaSettings) -> bytes | None:
    """The TSA's DER TimeStampResp over SHA-256(*data*), checked (granted, our imprint and nonce, a token that
    parses); None when EVIDENCE_TSA_URL is unset.

    Raises:
      TimestampFailed: names the URL and why (refused, unreachable, timed out, not an answer, wrong imprint…).
    """
    url = settings.tsa_url.strip()
    if not url:
        return None
    _check_url(url)
    if not data:
        raise TimestampFailed(url, "there is nothing to stamp (no bytes)")
    try:
        return _ask(data, url, settings.tsa_timeout_s, cert_req=True)
    except _Unparsable as first:
        try:
            return _ask(data, url, settings.tsa_timeout_s, cert_req=False)
        except TimestampFailed as again:
            raise TimestampFailed(url, f"{first.reason}; asked again without certificates: {again.reason}") from None


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        scheme, host, user = parts.scheme, parts.hostname, parts.username
    except ValueError as exc:
        raise TimestampFailed(url, f"EVIDENCE_TSA_URL is not a usable URL ({exc})") from None
    if scheme not in ("http", "https") or not host:
        raise TimestampFailed(url, "EVIDENCE_TSA_URL must be an http:// or https:// URL with a host")
    if user is not None:  # it would be written into logs and anchors' signed bodies
        raise TimestampFailed(_shown(url), "EVIDENCE_TSA_URL must not carry a user name or password")


def _shown(url: str) -> str:
    """*url* without a user name or password in it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()


def try_timestamp(data: bytes, settings: TsaSettings, *, what: str) -> Stamp:
    """`timestamp`, never raising: a TSA that fails is logged as a warning naming *what* went unstamped, and the
    Stamp says there is no trusted time and why (evidence is never held back for a TSA)."""
    try:
        token = timestamp(data, settings)
    except TimestampFailed as exc:
        logger.warning("%s has %s (%s).", what, NO_TRUSTED_TIME, exc)
        return Stamp(None, f"{NO_TRUSTED_TIME} ({exc})")
    if token is None:
        return Stamp(None, f"{NO_TRUSTED_TIME} (EVIDENCE_TSA_URL is not set)")
    return Stamp(token, describe_token(token))


def _ask(data: bytes, url: str, timeout_s: float, *, cert_req: bool) -> bytes:
    request = (TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA256).nonce(nonce=True)
               .cert_request(cert_request=cert_req).build())
    answer = _post(url, request.as_bytes(), timeout_s)
    check_response(answer, data=data, nonce=request.nonce, url=url)
    return answer


def _post(url: str, query: bytes, timeout_s: float) -> bytes:
    """POST *query* as application/timestamp-query (RFC 3161 3.4); the answer's bytes."""
    request = urllib.request.Request(url, data=query, method="POST", headers={
        "Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # http(s) only: checked first
            answer: bytes = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise TimestampFailed(url, f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise TimestampFailed(url, f"cannot reach it ({exc.reason})") from None
    except TimeoutError:
        raise TimestampFailed(url, f"no answer within {timeout_s:g} s (EVIDENCE_TSA_TIMEOUT_S)") from None
    except (OSError, http.client.HTTPException) as exc:
        raise TimestampFailed(url, f"the connection failed ({exc!r})") from None
    except ValueError as exc:  # urllib's word for a URL it cannot use
        raise TimestampFailed(url, f"not a usable URL ({exc})") from None
    if len(answer) > MAX_RESPONSE_BYTES:
        raise TimestampFailed(url, f"the answer is larger than {MAX_RESPONSE_BYTES} bytes")
    return answer


def check_response(answer: bytes, *, data: bytes, nonce: int | None, url: str) -> TimeStampResponse:
    """The parsed TimeStampResp if it grants a token over SHA-256(*data*) with our *nonce*; else TimestampFailed."""
    response, info = _parse(answer, url)
    if info.message_imprint.hash_algorithm.dotted_string != _SHA256_OID:
        raise TimestampFailed(url, f"the token's imprint uses {info.message_imprint.hash_algorithm.dotted_string}, "
                                   "not the SHA-256 asked for")
    if (problem := _imprint_problem(info, data)) is not None:
        raise TimestampFailed(url, problem)
    if nonce is not None and info.nonce != nonce:
        raise TimestampFailed(url, f"the token's nonce {info.nonce} is not the request's {nonce} (a replayed or "
                                   "misrouted answer)")
    return response


def _parse(answer: bytes, url: str) -> tuple[TimeStampResponse, TimeStampTokenInfo]:
    try:
        response = decode_timestamp_response(answer)
    except ValueError as exc:
        raise _Unparsable(url, f"the answer ({len(answer)} bytes) is not a DER TimeStampResp ({exc})") from None
    if response.status not in _GRANTED:
        texts = "; ".join(response.status_string) or "no reason given"
        raise TimestampFailed(url, f"the TSA refused: status {response.status} ({texts})")
    try:
        return response, response.tst_info
    except ValueError as exc:
        raise _Unparsable(url, f"the granted answer holds no readable token ({exc})") from None


def _imprint_problem(info: TimeStampTokenInfo, data: bytes) -> str | None:
    """Why the token's imprint is not that of *data* (None: it is)."""
    oid = info.message_imprint.hash_algorithm.dotted_string
    if oid not in _DIGESTS:
        return f"the token's imprint uses an unknown digest {oid}"
    algorithm = _DIGESTS[oid]
    expected = hashlib.new(algorithm, data).hexdigest()
    found = info.message_imprint.message.hex()
    if found != expected:
        return (f"the token stamps {algorithm} {found[:16]}…, but the stamped bytes have {algorithm} "
                f"{expected[:16]}… (a token for other bytes)")
    return None


def token_problem(data: bytes, token: bytes) -> str | None:
    """Why *token* (a stored DER TimeStampResp) does not stamp *data*: not a granted answer, or an imprint that is
    not *data*'s digest. None: it stamps *data* (its signature is for `openssl ts -verify`)."""
    try:
        _, info = _parse(token, "(stored token)")
    except TimestampFailed as exc:
        return exc.reason
    return _imprint_problem(info, data)


def describe_token(token: bytes) -> str:
    """"RFC 3161 time <genTime> from <TSA>" for a token `token_problem` accepts."""
    info = decode_timestamp_response(token).tst_info
    gen_time: datetime = info.gen_time
    try:
        tsa = str(info.name.value)
    except (ValueError, AttributeError):  # tsa_name is optional
        tsa = "a TSA that does not name itself"
    return f"RFC 3161 time {gen_time.isoformat()} from {tsa}"


def token_signature_problem(token: bytes, data: bytes, ca_file: str) -> str | None:
    """Why *token*'s signature does not verify over *data* up to the CA certificates in *ca_file* (EVIDENCE_TSA_CA:
    self-signed ones are the roots; a certificate for time stamping there stands in for a token that carries none);
    None: it verifies (rfc3161-client's Verifier: chain, signature, imprint)."""
    try:
        certificates = x509.load_pem_x509_certificates(Path(ca_file).read_bytes())
    except (OSError, ValueError) as exc:
        return f"EVIDENCE_TSA_CA {ca_file} cannot be read as PEM certificates ({exc})"
    roots = [c for c in certificates if c.subject == c.issuer]
    others = [c for c in certificates if c.subject != c.issuer]
    stamper = next((c for c in others if _stamps_time(c)), None)
    builder = VerifierBuilder(roots=roots, intermediates=[c for c in others if c is not stamper],
                              tsa_certificate=stamper)
    try:
        builder.build().verify_message(decode_timestamp_response(token), data)
    except (VerificationError, ValueError) as exc:
        return f"its signature does not verify up to the TSA's CA in EVIDENCE_TSA_CA {ca_file} ({exc})"
    return None


def _stamps_time(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return x509.oid.ExtendedKeyUsageOID.TIME_STAMPING in usage


def token_signer(token: bytes) -> str | None:
    """"<hash>:<hex>" naming the TSA certificate that signed *token* (its ESS signing-certificate attribute, which
    every RFC 3161 token carries); None if it names none or does not parse. The package verifier's own parser, so
    the archive writes exactly what verify.py reads."""
    try:
        return parse_timestamp(token).signer
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def token_name(record_name: str) -> str:
    """The stored token's name beside *record_name*: `custody/anchor-….json` → `custody/anchor-….tsr`."""
    return record_name.removesuffix(".json") + TOKEN_SUFFIX


def trusted_time_statement(settings: TsaSettings | None) -> str:
    """What a record signed now says about its time: NO_TRUSTED_TIME without a TSA, else where its token goes."""
    if settings is None or not settings.tsa_url.strip():
        return NO_TRUSTED_TIME
    return (f"RFC 3161 token from {_shown(settings.tsa_url.strip())} over these signed bytes, stored beside this "
            f"record (its name with {TOKEN_SUFFIX} for .json); where there is none the TSA did not answer: "
            f"{NO_TRUSTED_TIME}")


def stamp_record(store: EvidenceStore, record_name: str, signed: bytes, settings: TsaSettings | None, *,
                 retain_until: datetime) -> StoredObject | None:
    """Timestamp *signed* (the record's exact signed bytes) and store the token beside the record, kept as long
    (`token_name`). None, with a warning, when there is no TSA, it fails, or the store refuses the token: the
    record stands without trusted time."""
    if settings is None:
        return None
    stamp = try_timestamp(signed, settings, what=record_name)
    if stamp.token is None:
        return None
    try:
        return store.put_record(token_name(record_name), stamp.token, retain_until=retain_until)
    except (StorageError, ValueError, OSError) as exc:
        logger.warning("%s has %s: its RFC 3161 token could not be stored (%s).", record_name, NO_TRUSTED_TIME, exc)
        return None


def stored_token_findings(store: EvidenceStore, signed: dict[str, bytes], names: list[str],
                          tsa_ca: str = "") -> tuple[dict[str, str], list[tuple[str, str]]]:
    """For the records in *signed* (name -> exact signed bytes) and the stored *names* listed beside them: each
    record's trusted time ("RFC 3161 time …", else NO_TRUSTED_TIME), and (token name, problem) for every token that
    does not stamp its record or has no record beside it."""
    times: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    tokens = {name for name in names if name.endswith(TOKEN_SUFFIX)}
    records = {token_name(name): name for name in names if not name.endswith(TOKEN_SUFFIX)}
    for name in sorted(tokens - set(records)):
        problems.append((name, "an RFC 3161 token with no record beside it (its record was removed from WORM "
                               "storage)"))
    for record, data in signed.items():
        times[record] = NO_TRUSTED_TIME
        if (name := token_name(record)) not in tokens:
            continue
        try:
            token = store.get_record(name)
        except StorageError as exc:
            problems.append((name, f"the RFC 3161 token of {record} cannot be read ({exc})"))
            continue
        if (problem := token_problem(data, token)) is not None:
            problems.append((name, f"this RFC 3161 token does not stamp {record}: {problem}"))
        elif tsa_ca and (problem := token_signature_problem(token, data, tsa_ca)) is not None:
            problems.append((name, f"this RFC 3161 token of {record}: {problem}"))
        else:
            times[record] = describe_token(token)
    return times, problems
