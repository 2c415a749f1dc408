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
from sqlmodel import Session, col, select

from catalog import CustodyKind, Recording, RecordingState, Sighting, append_event
from catalog.replay import ROW_KEY, row_values
from catalog.types import utcnow
from device_profiles import DeviceProfile
from ingest.scan import scan_device
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
    report = ClearReport()
    if not profile.clear_after_archive:
        return report
    # Only recordings and the housekeeping files that belong to one (sidecars, thumbnails) go: the identity file
    # and files the profile does not know (settings, firmware, trash) stay on the device whatever happens.
    files = [f for f in scan_device(root, profile).files
             if f.role == "recording" or (f.role == "housekeeping" and f.companion is not None)]
    with Session(engine) as session:
        for file in files:
            sighting = session.exec(select(Sighting).where(
                Sighting.device_serial == device_serial, Sighting.device_path == file.relative,
                Sighting.size_bytes == file.size_bytes, Sighting.mtime_ns == file.mtime_ns,
                col(Sighting.cleared_at).is_(None)).order_by(col(Sighting.id).desc())).first()
            if sighting is None:
                report.kept[file.relative] = "not ingested in this form from this device"
                continue
            recording = session.get(Recording, sighting.recording_id)
            assert recording is not None
            if recording.state == RecordingState.STAGED.value:
                report.kept[file.relative] = "not yet archived"
                continue
            if recording.state == RecordingState.ARCHIVED.value:
                try:  # local store: prove the stored bytes by re-hashing them
                    store.verify(recording.sha256)
                except (HashMismatch, StorageError) as exc:
                    report.kept[file.relative] = f"archived copy failed verification: {exc}"
                    continue
                recording.state = RecordingState.VERIFIED.value
                session.add(recording)
                append_event(session, CustodyKind.VERIFIED, actor=actor, recording_id=recording.id,
                             details={"how": "re-hashed the stored bytes before clearing the device",
                                      ROW_KEY: row_values(recording, "state")})
            if recording.state != RecordingState.VERIFIED.value:
                report.kept[file.relative] = f"recording is {recording.state}"
                continue
            try:
                on_device = hash_device_file(file.path)
            except OSError as exc:
                report.kept[file.relative] = f"cannot read it back on the device: {exc.strerror or exc}"
                continue
            if on_device != recording.sha256:
                report.kept[file.relative] = (f"its bytes on the device hash to {on_device}, not to the archived "
                                              f"{recording.sha256} (a new file with an old file's name, size and "
                                              "time): it stays on the device")
                continue
            try:
                os.unlink(file.path)
            except OSError as exc:
                report.kept[file.relative] = f"cannot delete on the device: {exc.strerror or exc}"
                continue
            sighting.cleared_at = utcnow()
            session.add(sighting)
            append_event(session, CustodyKind.CLEARED, actor=actor, recording_id=recording.id, details={
                "device_serial": device_serial, "device_path": file.relative, "sha256": recording.sha256,
                "store_key": recording.store_key, "checked": "device bytes re-hashed and equal"})
            session.commit()
            report.cleared.append(file.relative)
        session.commit()
    logger.info("Cleared %d file(s) from %r; %d kept.", len(report.cleared), str(root), len(report.kept))
    return report
