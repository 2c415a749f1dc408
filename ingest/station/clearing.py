"""Clear a recorder only after its recordings are safe: the one place that deletes on a device.

A device file is removed only when (1) its profile allows clearing and calls it a recording (or a housekeeping
file of one), (2) it is still the very file we copied: same device, path, size and mtime as a sighting not yet
cleared, *and* its bytes on the device hash to the archived SHA-256 (read again here: a recorder whose clock
restarts at 2000-01-01 writes new recordings with the path, size and time of old ones), and (3) the archived
copy is verified: on S3 the server confirmed the SHA-256 on write and the read-back matched (`verified`); on
the local store the stored object is re-hashed here and must equal the ingest hash. Each removal is a custody
event, and the sighting is marked cleared, so whatever that path holds later is read as a new file.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import CustodyKind, Recording, RecordingState, append_event, find_known_sighting
from catalog.types import utcnow
from device_profiles import DeviceProfile
from ingest.archiving import prove_stored
from ingest.scan import DeviceFile, scan_device
from ingest.transfer import hash_device_file
from storage import EvidenceStore, HashMismatch, StorageError

__all__ = ["ClearReport", "clear_device"]

logger = logging.getLogger(__name__)


@dataclass
class ClearReport:
    cleared: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # device path -> why it stays

    @property
    def waiting(self) -> int:
        """Files that will be clearable once archiving finishes."""
        return sum(1 for why in self.kept.values() if why.startswith("not yet"))


def clear_device(engine: Engine, store: EvidenceStore, root: Path, profile: DeviceProfile, *, device_serial: str,
                 actor: str) -> ClearReport:
    """Delete from the device at *root* every file the rules above allow; each other file is kept with its reason."""
    report = ClearReport()
    if not profile.clear_after_archive:
        return report
    # Only recordings and the housekeeping files that belong to one (sidecars, thumbnails) go: the identity file
    # and files the profile does not know (settings, firmware, trash) stay on the device whatever happens.
    files = [f for f in scan_device(root, profile).files
             if f.role == "recording" or (f.role == "housekeeping" and f.companion is not None)]
    with Session(engine) as session:
        for file in files:
            why = _clear_file(session, store, file, device_serial=device_serial, actor=actor)
            if why is None:
                report.cleared.append(file.relative)
            else:
                report.kept[file.relative] = why
        session.commit()
    logger.info("Cleared %d file(s) from %r; %d kept.", len(report.cleared), str(root), len(report.kept))
    return report


def _clear_file(session: Session, store: EvidenceStore, file: DeviceFile, *, device_serial: str,
                actor: str) -> str | None:
    """Delete one device file if the rules allow (committing its CLEARED event); else say why it stays."""
    sighting = find_known_sighting(session, device_serial=device_serial, device_path=file.relative,
                                   size_bytes=file.size_bytes, mtime_ns=file.mtime_ns)
    if sighting is None:
        return "not ingested in this form from this device"
    recording = session.get(Recording, sighting.recording_id)
    assert recording is not None
    why = _unverified(session, store, recording, actor=actor) or _differs_on_device(file, recording)
    if why is not None:
        return why
    try:
        os.unlink(file.path)
    except OSError as exc:
        return f"cannot delete on the device: {exc.strerror or exc}"
    sighting.cleared_at = utcnow()
    session.add(sighting)
    append_event(session, CustodyKind.CLEARED, actor=actor, recording_id=recording.id, details={
        "device_serial": device_serial, "device_path": file.relative, "sha256": recording.sha256,
        "store_key": recording.store_key, "checked": "device bytes re-hashed and equal"})
    session.commit()
    return None


def _unverified(session: Session, store: EvidenceStore, recording: Recording, *, actor: str) -> str | None:
    """Why *recording*'s archived copy is not (yet) proven, or None once it is `verified` (an `archived` one is
    re-hashed in the store here and marked verified)."""
    if recording.state == RecordingState.STAGED:
        return "not yet archived"
    if recording.state == RecordingState.ARCHIVED:
        try:  # not read back yet (the verify queue has not reached it, or the local store): prove it now
            prove_stored(session, store, recording, actor=actor,
                         how="re-hashed the stored bytes before clearing the device")
        except (HashMismatch, StorageError) as exc:
            return f"archived copy failed verification: {exc}"
    if recording.state != RecordingState.VERIFIED:
        return f"recording is {recording.state}"
    return None


def _differs_on_device(file: DeviceFile, recording: Recording) -> str | None:
    """Why the device file is not the recording's bytes (read again now), or None when it is."""
    try:
        on_device = hash_device_file(file.path)
    except OSError as exc:
        return f"cannot read it back on the device: {exc.strerror or exc}"
    if on_device != recording.sha256:
        return (f"its bytes on the device hash to {on_device}, not to the archived {recording.sha256} (a new file "
                "with an old file's name, size and time): it stays on the device")
    return None
