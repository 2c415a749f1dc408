"""What one ingest run reports: each recording it catalogued or found known, what it left and why, what failed.

The items are plain dicts (TypedDicts), so `report.as_json()` is the report itself and readers may go on using
`item["file"]` or `item.get("ingest") == "new"`; the enum values (`IngestOutcome`, `ErrorStage`) are strings and
compare equal to them. The summary properties say the same counts in one place for the CLI and the station.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, TypedDict

from catalog import Recording, recording_as_json
from catalog.recordings import RecordingJson

__all__ = ["DiscardedItem", "ErrorItem", "ErrorStage", "IngestOutcome", "IngestReport", "IngestedItem",
           "SkippedItem"]


class IngestOutcome(enum.StrEnum):
    """What a run did with the bytes of one device file."""

    NEW = "new"  # catalogued by this run (and archived, or staged for the archive queue)
    KNOWN = "known"  # the same bytes were already catalogued: this run added a sighting


class ErrorStage(enum.StrEnum):
    """Where a file (or the whole dock) failed."""

    COPY = "copy"  # reading the device file into staging
    ARCHIVE = "archive"  # putting the staged copy in the WORM store (it stays staged)
    MANIFEST = "manifest"  # writing the signed manifest beside the stored object
    DEVICE = "device"  # the device went away mid-run (file: the device root)
    STATION = "station"  # the station stopped mid-run (file: the device root)
    SCAN = "scan"  # a folder of the device could not be listed or was too deep: what it holds was not read


class IngestedItem(RecordingJson):
    """A recording in the report: its whole public JSON (`catalog.recording_as_json`) plus these two keys."""

    ingest: IngestOutcome
    device_path: str


class SkippedItem(TypedDict):
    """A device file not read (already ingested, not a recording, unreadable identity)."""

    file: str
    reason: str


class DiscardedItem(TypedDict):
    """A device file left on the device on purpose (the profile says it is not evidence)."""

    file: str
    reason: str


class ErrorItem(TypedDict):
    """A failure; *preserved*: the bytes are safe (staged or stored) and only a later step waits."""

    file: str
    stage: ErrorStage
    reason: str
    preserved: bool


def ingested_item(recording: Recording, outcome: IngestOutcome, device_path: str) -> IngestedItem:
    """The report item of *recording*, found on the device at *device_path*."""
    return {**recording_as_json(recording), "ingest": outcome, "device_path": device_path}


@dataclass
class IngestReport:
    dock_session_id: int | None = None
    profile: str = ""
    device_serial: str = ""
    recordings: list[IngestedItem] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    discarded: list[DiscardedItem] = field(default_factory=list)  # left on the device on purpose, each with why
    errors: list[ErrorItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    renderer_pid: int | None = None  # the background renderer started for the media work (ingest.media_work)

    # -- writing (the run) ------------------------------------------------------------------------
    def add_recording(self, recording: Recording, outcome: IngestOutcome, device_path: str) -> None:
        self.recordings.append(ingested_item(recording, outcome, device_path))

    def refresh(self, recording: Recording) -> None:
        """Show *recording* as it is after the dock's last changes (a link, a revision)."""
        for entry in self.recordings:
            if entry["id"] == recording.id:
                # in place: readers may hold the entry
                entry.update(ingested_item(recording, entry["ingest"], entry["device_path"]))

    def add_skipped(self, file: str, reason: str) -> None:
        self.skipped.append({"file": file, "reason": reason})

    def add_discarded(self, file: str, reason: str) -> None:
        self.discarded.append({"file": file, "reason": reason})

    def add_error(self, file: str, stage: ErrorStage, reason: str, *, preserved: bool) -> ErrorItem:
        error: ErrorItem = {"file": file, "stage": stage, "reason": reason, "preserved": preserved}
        self.errors.append(error)
        return error

    # -- reading ----------------------------------------------------------------------------------
    @property
    def all_preserved(self) -> bool:
        return all(e.get("preserved") for e in self.errors)

    @property
    def new_count(self) -> int:
        """Recordings this run catalogued."""
        return sum(1 for r in self.recordings if r.get("ingest") == IngestOutcome.NEW)

    @property
    def known_count(self) -> int:
        """Recordings whose bytes were already catalogued (sighted again)."""
        return len(self.recordings) - self.new_count

    @property
    def implausible_count(self) -> int:
        """Recordings whose device clock gave an impossible capture time."""
        return sum(1 for r in self.recordings if r.get("time_implausible"))

    @property
    def held_count(self) -> int:
        """Recordings under a legal hold (a pending case, an important mark)."""
        return sum(1 for r in self.recordings if r.get("legal_hold"))

    @property
    def device_went_away(self) -> bool:
        return any(e["stage"] == ErrorStage.DEVICE for e in self.errors)

    def file_errors(self) -> list[ErrorItem]:
        """Errors of single files (not the device going away, nor the station stopping)."""
        return [e for e in self.errors if e["stage"] not in (ErrorStage.DEVICE, ErrorStage.STATION)]

    def error_lines(self) -> list[str]:
        """Each error as `file: reason`."""
        return [f"{e['file']}: {e['reason']}" for e in self.errors]

    def discarded_lines(self) -> list[str]:
        """Each discarded file as `file: reason`."""
        return [f"{d['file']}: {d['reason']}" for d in self.discarded]

    def as_json(self) -> dict[str, Any]:
        return {"dock_session": self.dock_session_id, "profile": self.profile,
                "device_serial": self.device_serial, "recordings": self.recordings,
                "skipped": self.skipped, "discarded": self.discarded, "errors": self.errors, "notes": self.notes,
                "renderer_pid": self.renderer_pid}
