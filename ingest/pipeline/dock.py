"""Opening a dock session: the station, officer, device and key rows, the session itself and its DOCKED event.

This runs on a helper thread while the first file already copies (first byte fast); the ingest thread waits for
it the first time it needs the session (`DockStart.dock`). Also here: which devices this process is ingesting
now (`busy_serials`), which the station asks before it catalogues a journal left behind.
"""
from __future__ import annotations

import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from catalog import (
    CustodyKind,
    DockSession,
    append_event,
    ensure_officer,
    ensure_station,
    ensure_station_key,
    load_or_create_key,
)
from catalog.db import begin_write
from catalog.devices import device_docked
from catalog.docks import close_open_sessions
from catalog.types import utcnow
from device_profiles import DeviceProfile
from ingest.config import Settings
from ingest.describe.identity import DeviceIdentity
from ingest.pipeline.device import ClockReading
from ingest.pipeline.options import IngestOptions
from ingest.pipeline.report import IngestReport

__all__ = ["DockStart", "busy_serials", "mark_busy", "mark_idle"]

#: Registration of station, officer, device and key rows, one dock at a time within a process.
_REGISTER_LOCK = threading.Lock()
#: Device serials an ingest run of this process is working on (their journals are live, not left over); shared by
#: every run thread of the process, read and written only under _BUSY_LOCK.
_BUSY_SERIALS: set[str] = set()
_BUSY_LOCK = threading.Lock()


def busy_serials() -> set[str]:
    """Serials of the devices this process is ingesting or cataloguing right now."""
    with _BUSY_LOCK:
        return set(_BUSY_SERIALS)


def mark_busy(serial: str) -> None:
    with _BUSY_LOCK:
        _BUSY_SERIALS.add(serial)


def mark_idle(serial: str) -> None:
    with _BUSY_LOCK:
        _BUSY_SERIALS.discard(serial)


class DockStart:
    """Registers one dock on its own thread; the ingest thread reads the outcome only after joining it."""

    def __init__(self, engine: Engine, settings: Settings, options: IngestOptions, *, root: Path,
                 profile: DeviceProfile, identity: DeviceIdentity, serial: str, report: IngestReport) -> None:
        self._engine, self._settings, self._options, self._report = engine, settings, options, report
        self._root, self._profile, self._identity, self._serial = root, profile, identity, serial
        self._thread: threading.Thread | None = None
        # Written by the dock-begin thread only, before it ends; read by the ingest thread only after join():
        self._begun_dock_id: int | None = None
        self._begun_key: Ed25519PrivateKey | None = None
        self._begun_error: BaseException | None = None
        # The ingest thread's own:
        self._dock: DockSession | None = None

    def start(self, *, measured: ClockReading | None, journaled: bool) -> None:
        """Begin registering. Every other open session of the device at this station was abandoned (this run holds
        the device's lock) and is closed, saying why: *journaled*, it left copies in the staging journal that this
        session catalogues."""
        self._thread = threading.Thread(target=self._begin_safely, args=(measured, journaled),
                                        name="dock-begin", daemon=True)
        self._thread.start()

    @property
    def is_open(self) -> bool:
        """The session is registered and loaded on the ingest thread."""
        return self._dock is not None

    def dock(self, session: Session) -> DockSession:
        """The registered session, loaded in *session* (waits for the registration; raises what it raised).

        The report names the session from then on."""
        if self._dock is None:
            if self._thread is not None:
                self._thread.join()
            if self._begun_error is not None:
                raise self._begun_error
            self._dock = session.get(DockSession, self._begun_dock_id)
            self._report.dock_session_id = self._begun_dock_id
            self._report.profile, self._report.device_serial = self._profile.name, self._serial
        assert self._dock is not None
        return self._dock

    @property
    def key(self) -> Ed25519PrivateKey:
        """The station's signing key (known once the dock is open)."""
        assert self._dock is not None and self._begun_key is not None
        return self._begun_key

    def _begin_safely(self, measured: ClockReading | None, journaled: bool) -> None:
        try:
            self._begin(measured, journaled)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the ingest thread by dock()
            self._begun_error = exc

    def _begin(self, measured: ClockReading | None, journaled: bool) -> None:
        # Several docks may register the same station/officer/key at once: one at a time in this process,
        # and a retry when another process won the race (the rows then exist and are found).
        for attempt in range(3):
            with Session(self._engine, expire_on_commit=False) as session:
                try:
                    with _REGISTER_LOCK:
                        self._register(session, measured, journaled)
                    return
                except IntegrityError:
                    session.rollback()
                    if attempt == 2:
                        raise

    def _register(self, s: Session, measured: ClockReading | None, journaled: bool) -> None:
        opts, settings, identity, serial = self._options, self._settings, self._identity, self._serial
        place = settings.station_place
        # The head before the station's, officers' and device's rows (written before the `docked` event by the
        # queries below): an administrator assigning the device takes the head, then its row
        begin_write(s)
        ensure_station(s, settings.station, name=settings.station_name,
                       lat=place[0] if place else None, lon=place[1] if place else None)
        officer_number = opts.officer or identity.officer_number
        if identity.officer_number:
            ensure_officer(s, identity.officer_number, name=identity.officer_name or "",
                           unit_number=identity.unit_number or "", unit_name=identity.unit_name or "",
                           actor=opts.actor)
        if opts.officer:
            ensure_officer(s, opts.officer, actor=opts.actor)
        now = utcnow()
        device_docked(s, serial, profile=self._profile.name, officer_number=identity.officer_number,
                      unit_number=identity.unit_number or "", unit_name=identity.unit_name or "", now=now,
                      actor=opts.actor)
        key = load_or_create_key(settings.station_key_path)
        self._begun_key = key
        ensure_station_key(s, settings.station, key, actor=opts.actor)
        dock = DockSession(station_code=settings.station, device_serial=serial, profile=self._profile.name,
                           source_path=str(self._root), started_at=now, officer_number=officer_number,
                           clock_offset_s=measured.offset_s if measured else None)
        s.add(dock)
        s.flush()
        append_event(s, CustodyKind.DOCKED, actor=opts.actor, dock_session_id=dock.id, details={
            "station": settings.station, "device_serial": serial, "profile": self._profile.name,
            "path": str(self._root), "identity": {k: v for k, v in vars(identity).items() if v},
            "device_clock_offset_s": measured.offset_s if measured else None,
            "device_clock_measured_by": measured.measured_by if measured else None, "usb": opts.usb,
        })
        self._end_earlier_docks(s, dock, journaled=journaled)
        s.commit()
        self._begun_dock_id = dock.id

    def _end_earlier_docks(self, s: Session, dock: DockSession, *, journaled: bool) -> None:
        # Holding the device's run lock (DockRun._claim_device), this run is the only live one of it in any
        # process: every other open session of it here was abandoned, and ends now, saying so. With *journaled*
        # copies (catalogue away, station killed) this dock catalogues what it staged; without, its run was
        # killed before it could close it (a one-shot `evidence ingest` has no station start-up to do that).
        assert dock.id is not None
        note = (f"ended before its files were catalogued (the catalogue was unreachable, or the station stopped); "
                f"what it copied was journaled in staging and is catalogued by dock session {dock.id}" if journaled
                else f"ended without a result: its run stopped before closing it (killed, or the machine lost "
                     f"power); the device was docked again in dock session {dock.id}")
        close_open_sessions(s, station=self._settings.station, device_serial=self._serial, exclude={dock.id},
                            now=utcnow(), actor=self._options.actor, note=note)
