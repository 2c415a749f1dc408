"""Key operations that also make key files: the agency root, the export key, rotating a station's key.

The catalogue and WORM storage are written first and committed; only then is the new key file put in place, so a
failure leaves either nothing (rolled back, the staged file removed) or a committed key whose file the error names.
A replaced station key file is kept beside the new one (`<name>.retired-<fp16>.pem`), never deleted.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session, col, select

from catalog.certificates import ROOT_YEARS, key_fingerprint
from catalog.key_certs import KEY_DAYS, certify_export_key, certify_station, current_root, init_root, record_retirement
from catalog.key_files import KeyFileError, read_private_key, write_private_key
from catalog.key_models import KeyCertificate
from catalog.manifests import ensure_station_key
from catalog.models import StationKey
from storage import EvidenceStore

__all__ = ["Rotation", "create_root", "init_export_key", "rotate_station_key"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rotation:
    station: str
    retired: list[str]  # the fingerprints of the station's former keys
    new_fingerprint: str
    certificate: KeyCertificate
    key_path: Path
    old_key_kept_as: Path | None  # where the replaced key file now is (None: there was none)


@contextmanager
def _committed_or_removed(session: Session, new_file: Path) -> Iterator[None]:
    """Commit what the block wrote; if it fails, roll back and remove *new_file* (made just before, by us)."""
    try:
        yield
        session.commit()
    except Exception:
        session.rollback()
        new_file.unlink(missing_ok=True)
        raise


def _file_fingerprint(path: Path) -> str:
    try:
        return key_fingerprint(read_private_key(path).public_key())
    except KeyFileError:
        return "unreadable"


def _swap_key_files(key_path: Path, staged: Path, *, now: datetime) -> Path | None:
    """Put *staged* at *key_path*; the file it replaces stays, hard-linked under a `.retired-…` name."""
    kept = None
    if key_path.exists():
        kept = key_path.with_name(f"{key_path.name.removesuffix('.pem')}.retired-"
                                  f"{_file_fingerprint(key_path)[:16]}.pem")
        if kept.exists():
            kept = kept.with_name(f"{kept.name.removesuffix('.pem')}-{now.strftime('%Y%m%dT%H%M%S')}.pem")
        os.link(key_path, kept)
    os.replace(staged, key_path)
    return kept


def rotate_station_key(session: Session, store: EvidenceStore, root_key: Ed25519PrivateKey, *, station: str,
                       key_path: Path, by: str, now: datetime, days: int = KEY_DAYS) -> Rotation:
    """Give *station* a new signing key: registered (event and WORM key record) and certified by the root, every
    former key of the station retired (the root's statement, the row's retired_at, a `key_rotated` event), then
    the new key file put at *key_path*. Commits. Services holding the old key must be restarted: what the old key
    signs from now on is named by `evidence verify`."""
    current_root(session, store, root_key)
    former = list(session.exec(select(StationKey).where(StationKey.station_code == station,
                                                        col(StationKey.retired_at).is_(None))))
    key = Ed25519PrivateKey.generate()
    new_fp = key_fingerprint(key.public_key())
    staged = key_path.with_name(f"{key_path.name}.new")
    write_private_key(staged, key)  # refuses a leftover from a rotation that failed half-way: it says where
    with _committed_or_removed(session, staged):
        ensure_station_key(session, station, key, actor=by, store=store)
        # certified before anything is retired: a refusal here leaves the former keys as they were
        issued = certify_station(session, store, root_key, station, by=by, now=now, days=days, only=new_fp)
        for old in former:
            record_retirement(session, store, root_key, old, new_fingerprint=new_fp, by=by, now=now)
    try:
        kept = _swap_key_files(key_path, staged, now=now)
    except OSError as exc:
        raise KeyFileError(f"the catalogue has station {station!r}'s new key {new_fp}, but its file could not be "
                           f"put in place ({exc}): move {staged} to {key_path}") from exc
    logger.info("Rotated the key of station %r: %s retired, %s certified.", station,
                ", ".join(k.fingerprint[:16] for k in former) or "nothing", new_fp[:16])
    return Rotation(station=station, retired=[k.fingerprint for k in former], new_fingerprint=new_fp,
                    certificate=issued[0], key_path=key_path, old_key_kept_as=kept)


def init_export_key(session: Session, store: EvidenceStore, root_key: Ed25519PrivateKey, *, path: Path, by: str,
                    now: datetime, days: int = KEY_DAYS) -> KeyCertificate:
    """Create the export key (the key evidence packages are signed with) at *path*, never over an existing file,
    and certify it. Commits; on failure the new file is removed again."""
    current_root(session, store, root_key)
    key = Ed25519PrivateKey.generate()
    write_private_key(path, key)
    with _committed_or_removed(session, path):
        row = certify_export_key(session, store, root_key, key.public_key(), by=by, now=now, days=days)
    return row


def create_root(session: Session, store: EvidenceStore, *, path: Path, name: str, by: str, now: datetime,
                passphrase: bytes | None = None, years: int = ROOT_YEARS) -> KeyCertificate:
    """Create the agency root key at *path* (0600, never over an existing file; encrypted with *passphrase* if
    given) and register it (catalog.key_certs.init_root). Commits; if the archive refuses it (it already has a
    root), the new file is removed again and nothing else is written."""
    key = Ed25519PrivateKey.generate()
    write_private_key(path, key, passphrase=passphrase)
    with _committed_or_removed(session, path):
        row = init_root(session, store, key, name=name, by=by, now=now, years=years)
    return row
