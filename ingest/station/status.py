"""What the station says about each docked device: its state, its progress, and reading the status file back.

`station watch` keeps one DeviceStatus per docked volume and writes them all to the status file (and the kiosk's
GET /status); `evidence station status` reads that file with read_status. The state values are the strings that
file and `station status --json` have always carried.
"""
from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.station.health import liveness

__all__ = ["DeviceState", "DeviceStatus", "read_status"]


class DeviceState(enum.StrEnum):
    SETTLING = "settling"  # mounted, waiting for the volume to stay unchanged for EVIDENCE_MOUNT_STABLE_S
    UNKNOWN = "unknown"  # no device profile recognises the volume: not ingested
    QUEUED = "queued"  # recognised; waiting for a free ingest thread
    INGESTING = "ingesting"  # copying, hashing and cataloguing its files
    WAITING_CATALOG = "waiting-catalog"  # copies staged and journaled; the catalogue did not answer (retried)
    WAITING_ARCHIVE = "waiting-archive"  # ingested; files are cleared from the device as their archive verifies
    DONE = "done"  # ingested (and cleared, where its profile allows)
    FAILED = "failed"  # the ingest stopped with an error (the message says which)
    UNDOCKED = "undocked"  # taken off the dock while no ingest of it was queued or running


#: States in which the device's own ingest thread is still at work: undocking does not change them.
BUSY = frozenset({DeviceState.QUEUED, DeviceState.INGESTING, DeviceState.WAITING_CATALOG})


@dataclass
class DeviceStatus:
    path: str
    state: DeviceState = DeviceState.SETTLING
    profile: str | None = None
    device_serial: str | None = None
    dock_session: int | None = None
    files_total: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    rate_bytes_s: float = 0.0
    eta_s: float | None = None
    new: int = 0
    known: int = 0
    skipped: int = 0
    cleared: int = 0
    waiting_clear: int = 0
    errors: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)  # left on the device on purpose: "path: why"
    message: str = ""
    docked_at: str = ""
    first_byte_after_s: float | None = None
    finished_at: str | None = None
    usb: dict[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        """The record as the status file and GET /status carry it (the state as its plain string)."""
        return {**asdict(self), "state": str(self.state)}


def read_status(path: Path, *, heartbeat_s: float = 5.0, now: datetime | None = None) -> dict[str, Any]:
    """The last status the station wrote ({} if it never ran); `running` is false and `stale` true when its
    heartbeat is older than three beats (a station killed without a chance to say so)."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return liveness(data, now or datetime.now(UTC), heartbeat_s)
