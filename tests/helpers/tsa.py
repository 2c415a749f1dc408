"""A real RFC 3161 time-stamping authority on 127.0.0.1: `openssl ts -reply` behind a small HTTP server.

`local_tsa` (session-scoped) makes a test CA (EC P-256) and a TSA certificate it issues (extendedKeyUsage
timeStamping, critical), writes an openssl ts configuration, and serves HTTP on a free port. The URL path picks
how it answers a POST:
  /ok        a granted TimeStampResp from `openssl ts -reply` (the signer's certificate inside, if asked for)
  /chain     the same with the CA certificate too (`-chain`: openssl writes that SET unsorted, not DER)
  /refuse    a rejection (status 2: this TSA only stamps SHA-512 imprints)
  /other     a granted answer for a different query (another imprint and nonce: a misrouted or replayed answer)
  /garbage   200 with bytes that are no TimeStampResp
  /error     HTTP 500
`down_tsa_url` is a URL on 127.0.0.1 where nothing listens. A test module registers the fixtures it uses by
assignment (`local_tsa = tsa.local_tsa`): an import of the name alone would be shadowed by the test's argument.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import _missing
from tests.s3server import free_ports

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
serial = {folder}/serial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = {digests}
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@dataclass
class LocalTsa:
    """The running TSA: its files and the paths requested so far."""

    base_url: str
    folder: Path
    ca: Path  # ca.pem: the test CA's certificate (openssl -CAfile)
    cert: Path  # tsa.pem: the TSA's certificate (openssl -untrusted)
    requests: list[str] = field(default_factory=list)

    def url(self, mode: str = "ok") -> str:
        return f"{self.base_url}/{mode}"


def _name(*parts: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def _usage(*, sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=sign, content_commitment=sign, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=not sign, crl_sign=not sign,
                         encipher_only=False, decipher_only=False)


def make_tsa_files(folder: Path) -> tuple[Path, Path, Path]:
    """ca.pem, tsa.pem, tsa.key in *folder*: a CA for two days and the TSA certificate it issued. The TSA's subject
    is long so that, with `-chain`, openssl's unsorted SET (signer first) is reliably not in DER order."""
    now = datetime.now(UTC)
    ca_key, tsa_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name((NameOID.COMMON_NAME, "Evidence Test TSA CA"))
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
          .not_valid_after(now + timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_usage(sign=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    tsa_name = _name((NameOID.ORGANIZATION_NAME, "Evidence Ingest Test Time-Stamping Authority"),
                     (NameOID.ORGANIZATIONAL_UNIT_NAME, "RFC 3161 tests on 127.0.0.1"),
                     (NameOID.COMMON_NAME, "Evidence Test TSA"))
    cert = (x509.CertificateBuilder().subject_name(tsa_name).issuer_name(ca_name).public_key(tsa_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(sign=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "tsa.pem", folder / "tsa.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(tsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


def _reply(tsa: LocalTsa, query: bytes, *, config: str = "tsa.cnf", chain: bool = False) -> bytes:
    """`openssl ts -reply` for *query* (stdin to stdout): the DER TimeStampResp."""
    command = ["openssl", "ts", "-reply", "-config", str(tsa.folder / config), "-queryfile", "/dev/stdin",
               "-signer", str(tsa.cert), "-inkey", str(tsa.folder / "tsa.key")]
    if chain:
        command += ["-chain", str(tsa.ca)]
    done = subprocess.run(command, input=query, capture_output=True, timeout=30, check=True)
    return done.stdout


def outsider_token(folder: Path, data: bytes) -> tuple[bytes, Path]:
    """A genuine RFC 3161 token over *data* from a TSA of an outsider's own (its own CA, made in *folder*, the same
    `openssl ts -reply`): what someone who wants a package to look timestamped can make. The token and its CA."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, cert, _ = make_tsa_files(folder)
    (folder / "serial").write_text("01\n")
    (folder / "tsa.cnf").write_text(_CONFIG.format(folder=folder, digests="sha256"))
    (folder / "data").write_bytes(data)
    query = subprocess.run(["openssl", "ts", "-query", "-data", str(folder / "data"), "-sha256", "-cert"],
                           capture_output=True, timeout=30, check=True).stdout
    return _reply(LocalTsa(base_url="", folder=folder, ca=ca, cert=cert), query), ca


def _other_query(tsa: LocalTsa) -> bytes:
    """A query for other bytes, made by `openssl ts -query` (its own nonce)."""
    data = tsa.folder / "other-data"
    data.write_bytes(b"some other bytes entirely")
    return subprocess.run(["openssl", "ts", "-query", "-data", str(data), "-sha256", "-cert"],
                          capture_output=True, timeout=30, check=True).stdout


def _handler(tsa: LocalTsa) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server calls
            query = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            mode = self.path.strip("/")
            tsa.requests.append(self.path)
            if self.headers.get("Content-Type") != "application/timestamp-query" or mode == "error":
                self.send_error(415 if mode != "error" else 500)
                return
            answers = {"ok": lambda: _reply(tsa, query), "chain": lambda: _reply(tsa, query, chain=True),
                       "refuse": lambda: _reply(tsa, query, config="sha512-only.cnf"),
                       "other": lambda: _reply(tsa, _other_query(tsa)),
                       "garbage": lambda: b"<html>this is not a time-stamp</html>"}
            if mode not in answers:
                self.send_error(404)
                return
            body = answers[mode]()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read `tsa.requests`."""

    return Handler


@pytest.fixture(scope="session")
def local_tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTsa]:
    """A real TSA (openssl ts) on 127.0.0.1 for the session; skips (fails under CI) without openssl."""
    if shutil.which("openssl") is None:
        _missing("openssl")
    folder = tmp_path_factory.mktemp("tsa")
    ca, cert, _ = make_tsa_files(folder)
    (folder / "serial").write_text("01\n")
    (folder / "tsa.cnf").write_text(_CONFIG.format(folder=folder, digests="sha256, sha384, sha512"))
    (folder / "sha512-only.cnf").write_text(_CONFIG.format(folder=folder, digests="sha512"))
    tsa = LocalTsa(base_url="", folder=folder, ca=ca, cert=cert)
    server = HTTPServer(("127.0.0.1", 0), _handler(tsa))  # one request at a time: openssl's serial file
    tsa.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tsa
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=20)


@pytest.fixture(scope="session")
def down_tsa_url() -> str:
    """A TSA URL on 127.0.0.1 where nothing listens (a free port, not bound)."""
    (port,) = free_ports(1)
    return f"http://127.0.0.1:{port}/tsr"
