"""Cataloguing what a dock staged and journaled while the catalogue was unreachable, once it answers again.

The device may be gone: everything needed is in the journal entries (`ingest.journal`) and the staged copies.
A copy already catalogued (its run ended after all) is passed over; a catalogue still away leaves the journal
as it is and raises CatalogueDeferred.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.engine import Engine

from catalog import redact_url
from device_profiles import get_profile, load_profiles
from ingest.config import Settings
from ingest.describe.identity import DeviceIdentity
from ingest.errors import CatalogueDeferred
from ingest.journal import JournalEntry
from ingest.journal import load as load_journal
from ingest.pipeline.options import AfterCommit, IngestOptions
from ingest.pipeline.outage import stamp_options
from ingest.pipeline.report import IngestReport
from ingest.pipeline.run import DockRun, Pending
from storage import EvidenceStore

__all__ = ["catalogue_journal", "journaled_options", "replay_journal"]


def journaled_options(entry: JournalEntry, *, defer_archive: bool) -> IngestOptions:
    """The options of the run that journaled *entry* (what it stamps its recordings with)."""
    stamp = stamp_options(entry)
    raw = entry.options if isinstance(entry.options, dict) else {}
    return IngestOptions(officer=stamp.officer, case_number=stamp.case_number, purpose=stamp.purpose,
                         clock_offset_s=stamp.clock_offset_s, actor=str(raw.get("actor") or "station"),
                         defer_archive=defer_archive)


def _journaled_identity(entry: JournalEntry) -> DeviceIdentity:
    known = set(DeviceIdentity.__dataclass_fields__)
    return DeviceIdentity(**{k: v for k, v in entry.identity.items() if k in known})


def replay_journal(run: DockRun, entries: list[JournalEntry]) -> None:
    """Catalogue staged copies from a journal in *run*; the device itself may be gone (nothing says its files
    changed since: each copy's sighting stands for its file, as after any dock)."""
    pending: Pending = deque()
    with ThreadPoolExecutor(max_workers=run.settings.probe_workers, thread_name_prefix="probe") as pool:
        run.catalogue_journaled(entries, pool, pending, on_device=True)
        run.register_ready(pending, wait=True)


def catalogue_journal(device_serial: str, *, settings: Settings, engine: Engine,
                      store: EvidenceStore, after_commit: AfterCommit | None = None) -> IngestReport | None:
    """Catalogue what a dock of *device_serial* staged during a catalogue outage (the device may be gone).

    With a broker the recordings are archived as after any dock: through the outbox and the station's queue (never
    inline from here, where a store outage would leave them staged with no message). Returns None when nothing
    waits. Raises CatalogueDeferred if the catalogue is still unreachable.
    """
    entries = [e for e in load_journal(settings.staging_dir, device_serial).values() if e.root and e.profile]
    if not entries:
        return None
    first = entries[0]
    profiles = load_profiles((settings.profiles_dir,) if settings.profiles_dir else ())
    profile = get_profile(profiles, first.profile)
    run = DockRun(Path(first.root), settings, engine, store,
                  journaled_options(first, defer_archive=bool(settings.broker_url)), profile=profile,
                  identity=_journaled_identity(first), serial=device_serial, after_commit=after_commit)
    run.begin()
    try:
        replay_journal(run, entries)
    finally:
        run.finish()
    if run.outage.is_offline:
        raise CatalogueDeferred(redact_url(settings.database_url), run.outage.reason, device_serial=device_serial,
                                journaled=len(entries))
    return run.report
