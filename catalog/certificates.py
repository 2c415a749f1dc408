"""X.509 certificates for the archive's keys: an agency root certifies every station key and the export key.

X.509 because an examiner checks it with the tools already on their desk (`openssl verify -CAfile root.pem
station.pem`, `openssl x509 -text`), not with ours. Ed25519 everywhere, as for every other signature here.

* The root certificate is self-signed: CN = the agency's name, CA, keyCertSign and cRLSign.
* A key certificate: CN = the station code (or `export`), O = the agency, OU = the role (`station key`,
  `export key`), digitalSignature only, not a CA, issued by the root.
* Every certificate's SubjectKeyIdentifier is the project's key fingerprint (SHA-256 of the raw 32-byte public
  key, catalog.signing.fingerprint; for Ed25519 that is the hash of the subjectPublicKey BIT STRING, one of RFC
  7093's methods) and a key certificate's AuthorityKeyIdentifier the root's: `openssl x509 -text` shows the same
  fingerprints as `evidence keys list`.

Everything here is pure: build, issue and check; `check_certificate` and `check_root` return findings (sentences
naming what is wrong), empty when all is well.
"""
from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID
from dateutil.relativedelta import relativedelta

from catalog.signing import fingerprint

__all__ = ["EXPORT_SUBJECT", "ROLES", "ROLE_EXPORT", "ROLE_ROOT", "ROLE_STATION", "ROOT_YEARS", "CertificateInvalid",
           "KeyCertificateFacts", "build_root_certificate", "certificate_facts", "check_certificate", "check_root",
           "default_not_after", "from_pem", "issue_certificate", "key_fingerprint", "to_pem"]

ROLE_ROOT, ROLE_STATION, ROLE_EXPORT = "root", "station", "export"
#: The export key's certificate subject, and the pseudo-station its key is registered under.
EXPORT_SUBJECT = "export"
ROLES = (ROLE_ROOT, ROLE_STATION, ROLE_EXPORT)
#: The subject's OU for each role: how a certificate says what its key is for (readable in `openssl x509`).
_ROLE_UNIT = {ROLE_ROOT: "agency root", ROLE_STATION: "station key", ROLE_EXPORT: "export key"}
_UNIT_ROLE = {unit: role for role, unit in _ROLE_UNIT.items()}
#: How long the root certificate is valid: longer than any key it certifies.
ROOT_YEARS = 20
#: X.509 limits a common name to 64 characters.
_MAX_NAME = 64


class CertificateInvalid(ValueError):
    """A certificate cannot be built or read as asked (the message says which value and why)."""


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_fingerprint(public: Ed25519PublicKey) -> str:
    """The project's fingerprint of *public*: SHA-256 of the raw key, hex (catalog.signing.fingerprint)."""
    return fingerprint(base64.b64encode(_raw(public)).decode())


def _name(common_name: str, role: str, organisation: str | None) -> x509.Name:
    if not 1 <= len(common_name) <= _MAX_NAME:
        raise CertificateInvalid(f"name {common_name!r} must be 1-{_MAX_NAME} characters (an X.509 common name)")
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name),
             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _ROLE_UNIT[role])]
    if organisation:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation[:_MAX_NAME]))
    return x509.Name(parts)


def _utc(value: datetime) -> datetime:
    """X.509 times have whole seconds."""
    return value.astimezone(UTC).replace(microsecond=0)


def build_root_certificate(key: Ed25519PrivateKey, *, name: str, now: datetime,
                           years: int = ROOT_YEARS) -> x509.Certificate:
    """The agency root's self-signed certificate: CN *name*, valid from *now* for *years*."""
    public = key.public_key()
    subject = _name(name, ROLE_ROOT, None)
    start = _utc(now)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + relativedelta(years=years))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier(bytes.fromhex(key_fingerprint(public))), critical=False)
            .sign(key, None))


def issue_certificate(root_key: Ed25519PrivateKey, root: x509.Certificate, public: Ed25519PublicKey, *, role: str,
                      subject: str, not_before: datetime, not_after: datetime) -> x509.Certificate:
    """The root's certificate for a station key (*subject* = the station code) or the export key."""
    if role not in (ROLE_STATION, ROLE_EXPORT):
        raise CertificateInvalid(f"role {role!r} is not one a root certifies ({ROLE_STATION}, {ROLE_EXPORT})")
    if key_fingerprint(root_key.public_key()) != _key_id(root, x509.SubjectKeyIdentifier):
        raise CertificateInvalid("the root key given is not the key of the root certificate")
    start, end = _utc(not_before), _utc(not_after)
    if end <= start:
        raise CertificateInvalid(f"validity ends ({end.isoformat()}) before it begins ({start.isoformat()})")
    agency = _attribute(root.subject, NameOID.COMMON_NAME)
    return (x509.CertificateBuilder().subject_name(_name(subject, role, agency)).issuer_name(root.subject)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier(bytes.fromhex(key_fingerprint(public))), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier(
                key_identifier=bytes.fromhex(key_fingerprint(root_key.public_key())), authority_cert_issuer=None,
                authority_cert_serial_number=None), critical=False)
            .sign(root_key, None))


def to_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def from_pem(data: bytes | str) -> x509.Certificate:
    """One PEM certificate, or CertificateInvalid saying why it is not one."""
    try:
        return x509.load_pem_x509_certificate(data.encode() if isinstance(data, str) else data)
    except ValueError as exc:
        raise CertificateInvalid(f"not a PEM X.509 certificate ({exc})") from exc


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    found = name.get_attributes_for_oid(oid)
    return str(found[0].value) if found else None


def _key_id(certificate: x509.Certificate, kind: type[x509.SubjectKeyIdentifier] |
            type[x509.AuthorityKeyIdentifier]) -> str | None:
    try:
        value = certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    digest = value.digest if isinstance(value, x509.SubjectKeyIdentifier) else value.key_identifier
    return digest.hex() if digest else None


class KeyCertificateFacts:
    """What a certificate says, read once: the key's fingerprint, role, subject, issuer and validity."""

    def __init__(self, certificate: x509.Certificate) -> None:
        public = certificate.public_key()
        if not isinstance(public, Ed25519PublicKey):
            raise CertificateInvalid(f"its key is {type(public).__name__}, not Ed25519")
        self.certificate = certificate
        self.public_key = public
        self.fingerprint = key_fingerprint(public)
        self.role = _UNIT_ROLE.get(_attribute(certificate.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) or "")
        self.subject = _attribute(certificate.subject, NameOID.COMMON_NAME) or ""
        self.issuer = _attribute(certificate.issuer, NameOID.COMMON_NAME) or certificate.issuer.rfc4514_string()
        self.issuer_fingerprint = _key_id(certificate, x509.AuthorityKeyIdentifier)
        self.serial = format(certificate.serial_number, "x")
        self.not_before = certificate.not_valid_before_utc
        self.not_after = certificate.not_valid_after_utc

    def valid_at(self, at: datetime) -> bool:
        return self.not_before <= at <= self.not_after


def certificate_facts(certificate: x509.Certificate) -> KeyCertificateFacts:
    return KeyCertificateFacts(certificate)


def _signed_by(certificate: x509.Certificate, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(certificate.signature, certificate.tbs_certificate_bytes)
    except InvalidSignature:
        return False
    return True


def _validity_findings(facts: KeyCertificateFacts, at: datetime | None) -> list[str]:
    if at is None:
        return []
    if at > facts.not_after:
        return [f"it expired at {facts.not_after.isoformat()} (checked at {at.astimezone(UTC).isoformat()})"]
    if at < facts.not_before:
        return [f"it is not valid before {facts.not_before.isoformat()} (checked at {at.astimezone(UTC).isoformat()})"]
    return []


def _usage_findings(certificate: x509.Certificate, *, ca: bool) -> list[str]:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return ["it lacks the basicConstraints extension"]
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ["it lacks the keyUsage extension"]
    if constraints.ca != ca:
        return ["it is a CA certificate, not a key certificate" if constraints.ca else "it is not a CA certificate"]
    if ca and not usage.key_cert_sign:
        return ["its key usage does not allow signing certificates (keyCertSign)"]
    if not ca and not usage.digital_signature:
        return ["its key usage does not allow signatures (digitalSignature)"]
    return []


def check_root(root: x509.Certificate, *, trusted_fingerprint: str | None = None) -> list[str]:
    """Findings about a root certificate: self-signed with an Ed25519 key, a CA that may sign certificates, and (with
    *trusted_fingerprint*) the archive's own root, not some other one."""
    try:
        facts = KeyCertificateFacts(root)
    except CertificateInvalid as exc:
        return [f"root certificate: {exc}"]
    findings = []
    if trusted_fingerprint is not None and facts.fingerprint != trusted_fingerprint:
        findings.append(f"unknown root: {facts.subject!r} has key {facts.fingerprint}, the archive's root is "
                        f"{trusted_fingerprint}")
    if root.issuer != root.subject or not _signed_by(root, facts.public_key):
        findings.append(f"root {facts.subject!r} is not self-signed by its own key")
    findings += [f"root {facts.subject!r}: {text}" for text in _usage_findings(root, ca=True)]
    return findings


def check_certificate(certificate: x509.Certificate, root: x509.Certificate, *, at: datetime | None = None,
                      revoked_at: datetime | None = None) -> list[str]:
    """Findings about a key certificate under *root* (check the root itself with `check_root`): the issuer, the
    root's signature, the key usage, and with *at* its validity then (and *revoked_at* at or before it)."""
    try:
        facts, root_facts = KeyCertificateFacts(certificate), KeyCertificateFacts(root)
    except CertificateInvalid as exc:
        return [str(exc)]
    findings = []
    if facts.issuer_fingerprint not in (None, root_facts.fingerprint) or certificate.issuer != root.subject:
        findings.append(f"it was issued by {facts.issuer!r} (key {facts.issuer_fingerprint or 'not named'}), not by "
                        f"the agency root {root_facts.subject!r} ({root_facts.fingerprint})")
    if not _signed_by(certificate, root_facts.public_key):
        findings.append(f"its signature does not verify with the root key {root_facts.fingerprint}")
    if facts.role not in (ROLE_STATION, ROLE_EXPORT):
        findings.append(f"its subject {certificate.subject.rfc4514_string()!r} names no role a root certifies")
    findings += _usage_findings(certificate, ca=False) + _validity_findings(facts, at)
    if revoked_at is not None and (at is None or at >= revoked_at):
        findings.append(f"its key was revoked at {revoked_at.astimezone(UTC).isoformat()}")
    return findings


def default_not_after(not_before: datetime, days: int) -> datetime:
    """The end of a key certificate valid *days* from *not_before*."""
    return _utc(not_before) + timedelta(days=days)
